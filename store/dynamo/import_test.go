package dynamo

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/store"
	"github.com/osio/osio-bot/store/storetest"
)

// TestImportFromBolt: a bbolt store holding requests in every state, with
// events, cursors, checkpoints, locks, envelopes and a lease, exported and
// imported, is served by two DynamoDB clients as bbolt served it (issue 10,
// acceptance 8, the store's half).
func TestImportFromBolt(t *testing.T) {
	clock := &storetest.Clock{}
	clock.Set(storetest.T0)
	bolt, err := store.Open(filepath.Join(t.TempDir(), "osio-bot.db"), store.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	msg := func(s string) actions.Event { return actions.Event{Kind: actions.Message, Text: s} }
	states := []actions.State{actions.Received, actions.Pending, actions.Approved, actions.Running, actions.Succeeded,
		actions.Failed, actions.Denied, actions.Cancelled, actions.Expired, actions.Refused}
	for i, st := range states {
		in := storetest.NewRequest(fmt.Sprintf("export:t%d", i))
		if st == actions.Received {
			in.State = st
		}
		res, err := bolt.Create(in, fmt.Sprintf("slash-%d", i), actions.Event{Kind: actions.Card}, msg("created"))
		must(err)
		if st != actions.Received && st != actions.Pending {
			_, err = bolt.Transition(res.Request.ID, nil, st, func(r *actions.Request) {
				if st == actions.Failed {
					r.Retry, r.Error = "Resend", "mail failed"
				}
			}, msg(string(st)))
			must(err)
		}
	}
	must(bolt.MarkDelivered("R-000002", actions.Cursor{Delivered: 1, StatusTS: "1.2", LastTS: "1.3"}))
	must(bolt.MarkDelivered("R-000005", actions.Cursor{Delivered: 3}))
	lease, err := bolt.AcquireLease(actions.JobLease("R-000004"), "old-replica", 30*time.Second)
	must(err)
	must(bolt.SaveCheckpointEventsFenced(lease, "R-000004", "pipeline", map[string]string{"id": "df-1"}, msg("pipeline df-1")))
	must(bolt.SaveCheckpoint("R-000006", "reset", map[string]any{"ciphertext": "-----BEGIN PGP MESSAGE-----", "set": true}))
	ok, err := bolt.ClaimEnvelope("click-1")
	must(err)
	if !ok {
		t.Fatal("click not claimed")
	}
	contents, err := bolt.Export()
	must(err)

	c := client(t, nil, "")
	table := newTable(t, c)
	a, err := New(c, Options{Table: table, Now: clock.Now})
	must(err)
	must(a.Import(contents))
	must(a.Import(contents)) // idempotent: an interrupted import is run again
	b, err := New(client(t, nil, ""), Options{Table: table, Now: clock.Now})
	must(err)

	jsonOf := func(v any) string { data, _ := json.Marshal(v); return string(data) }
	for _, s := range []*Store{a, b} {
		for _, want := range contents.Requests {
			got, err := s.Get(want.ID)
			if err != nil || jsonOf(got) != jsonOf(want) {
				t.Errorf("Get(%s) = %s, %v; want %s", want.ID, jsonOf(got), err, jsonOf(want))
			}
			wantEvs, wantCur, _ := bolt.Undelivered(want.ID)
			evs, cur, err := s.Undelivered(want.ID)
			if err != nil || jsonOf(evs) != jsonOf(wantEvs) || cur != wantCur {
				t.Errorf("Undelivered(%s) = %v %+v %v; want %v %+v", want.ID, evs, cur, err, wantEvs, wantCur)
			}
			all, _ := s.Events(want.ID)
			if jsonOf(all) != jsonOf(contents.Events[want.ID]) {
				t.Errorf("Events(%s) differ", want.ID)
			}
		}
		outbox, err := s.Outbox()
		wantOutbox, _ := bolt.Outbox()
		if err != nil || !slices.Equal(outbox, wantOutbox) {
			t.Errorf("Outbox = %v, %v; want %v", outbox, err, wantOutbox)
		}
		var cp json.RawMessage
		if ok, err := s.LoadCheckpoint("R-000006", "reset", &cp); !ok || err != nil || !strings.Contains(string(cp), "BEGIN PGP") {
			t.Errorf("checkpoint = %s, %v, %v", cp, ok, err)
		}
		active, err := s.ListActive(nil)
		wantActive, _ := bolt.ListActive(nil)
		if err != nil || jsonOf(active) != jsonOf(wantActive) {
			t.Errorf("ListActive = %d requests, %v; want %d", len(active), err, len(wantActive))
		}
		all, _ := s.List(nil)
		wantAll, _ := bolt.List(nil)
		if jsonOf(all) != jsonOf(wantAll) {
			t.Errorf("List differs after the import")
		}
	}
	// Claims, locks and the sequence carry over.
	res, err := b.Create(storetest.NewRequest(), "slash-0")
	if err != nil || !res.Duplicate || res.Request.ID != "R-000001" {
		t.Errorf("slash envelope after import: %+v, %v; want a duplicate of R-000001", res, err)
	}
	if ok, err := a.ClaimEnvelope("click-1"); ok || err != nil {
		t.Errorf("click envelope after import: %v, %v; want claimed before", ok, err)
	}
	for i, st := range states {
		lock := fmt.Sprintf("export:t%d", i)
		res, err := b.Create(storetest.NewRequest(lock), "")
		must(err)
		if held := res.Request == nil; held != !st.Terminal() {
			t.Errorf("%s after import: held %v, want %v (%s)", lock, held, !st.Terminal(), st)
		}
		if res.Request != nil {
			_, err := b.Transition(res.Request.ID, nil, actions.Cancelled, nil)
			must(err)
		}
	}
	if r, err := a.Create(storetest.NewRequest(), "slash-new"); err != nil || r.Request.ID <= "R-000010" {
		t.Errorf("next id after import: %+v, %v; want after R-000010", r, err)
	}
	// The old replica's lease still fences; expired, the new one takes
	// the job over with the next epoch and finishes it.
	if _, err := b.AcquireLease(lease.Name, "new-replica", 30*time.Second); err == nil {
		t.Error("the imported lease was not held")
	}
	clock.Add(31 * time.Second)
	fresh, err := b.AcquireLease(lease.Name, "new-replica", 30*time.Second)
	if err != nil || fresh.Epoch != lease.Epoch+1 {
		t.Fatalf("takeover after import: %+v, %v", fresh, err)
	}
	if err := a.AppendEventsFenced(lease, "R-000004", msg("stale")); !actions.LeaseLost(err) {
		t.Errorf("the old lease's write after import: %v, want lost", err)
	}
	if _, err := b.TransitionFenced(fresh, "R-000004", []actions.State{actions.Running}, actions.Succeeded, nil, msg("done")); err != nil {
		t.Fatal(err)
	}
	evs, _ := a.Events("R-000004")
	if n := len(evs); n == 0 || evs[n-1].Text != "done" || evs[n-1].Seq != uint64(n) {
		t.Errorf("events of R-000004 after the import and the finish: %+v", evs)
	}
	if res, err := a.Create(storetest.NewRequest("export:t3"), ""); err != nil || res.Request == nil {
		t.Errorf("the finished job's lock is still held: %+v, %v", res, err)
	}

	// A table holding another store's requests is refused.
	other := &store.Contents{Requests: contents.Requests[:1]}
	if err := a.Import(other); err == nil || !strings.Contains(err.Error(), "another bot's") {
		t.Errorf("import into a table with other requests: %v", err)
	}
}
