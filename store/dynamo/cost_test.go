package dynamo

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/store/storetest"
)

// usage is what one phase of a request's life costs in DynamoDB calls
// and request units. Units assume what the test checks: every item is
// under 1 KB (1 write unit; a transaction's item 2) and every read under
// 4 KB (1 strongly consistent read unit).
type usage struct {
	phase                      string
	gets, queries              int // read calls
	writes, txs, txItems       int // PutItem/UpdateItem/DeleteItem calls; transactions and their items
	readUnits, writeUnits, all int
}

func usageOf(phase string, rec *recorder) usage {
	ops, items := rec.snapshot()
	u := usage{phase: phase, gets: ops["GetItem"], queries: ops["Query"],
		writes: ops["PutItem"] + ops["UpdateItem"] + ops["DeleteItem"],
		txs:    ops["TransactWriteItems"], txItems: items["TransactWriteItems"]}
	u.readUnits = u.gets + u.queries
	u.writeUnits = u.writes + 2*u.txItems
	u.all = u.gets + u.queries + u.writes + u.txs
	rec.reset()
	return u
}

// TestCostPerRequest counts the DynamoDB calls and units of one export's
// life, phase by phase, and of one job poll (issue 10, acceptance 7; the
// numbers are in deploy/dynamodb/README.md). It fails when a change makes
// a phase dearer, so that the README is updated with it.
func TestCostPerRequest(t *testing.T) {
	rec := newRecorder()
	c := client(t, rec, "")
	clock := &storetest.Clock{}
	clock.Set(storetest.T0)
	s, err := New(c, Options{Table: newTable(t, c), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	card := actions.Event{Kind: actions.Card}
	say := func(text string) actions.Event { return actions.Event{Kind: actions.Message, Text: text} }
	// deliver is the reporter's round for one request: read what is new,
	// post it, move the cursor.
	deliver := func(id string) {
		t.Helper()
		evs, cur, err := s.Undelivered(id)
		must(err)
		if len(evs) == 0 {
			t.Fatalf("nothing to deliver for %s", id)
		}
		cur.Delivered = evs[len(evs)-1].Seq
		must(s.MarkDelivered(id, cur))
	}
	var got []usage
	rec.reset()

	// A realistic request item, to check the 1 KB assumption.
	in := storetest.NewRequest("export:prod_txlog")
	in.State = actions.Received
	in.Input = "/osio-export prod_txlog"
	in.What = "export of `prod_txlog` by AWS Data Pipeline (runbook)"
	in.Plan = []string{"Find or create the pipeline `prod_txlog` and activate it", "Watch the run", "Verify the export folder in osio-dev", "Post the follow-up"}

	res, err := s.Create(in, "env-slash-1")
	must(err)
	id := res.Request.ID
	got = append(got, usageOf("intake: envelope, lock, request (received)", rec))

	_, err = s.Transition(id, []actions.State{actions.Received}, actions.Pending, nil, card)
	must(err)
	got = append(got, usageOf("checks passed: pending, card event", rec))

	_, err = s.Update(id, nil, func(r *actions.Request) error { r.Told = true; return nil })
	must(err)
	got = append(got, usageOf("requester told: told flag", rec))

	deliver(id)
	got = append(got, usageOf("deliver the card", rec))

	ok, err := s.ClaimEnvelope("env-click-1")
	must(err)
	if !ok {
		t.Fatal("click not claimed")
	}
	_, err = s.Transition(id, []actions.State{actions.Pending}, actions.Approved, func(r *actions.Request) {
		r.Decision = &actions.Decision{Action: "approved", By: "U0APPROVER", At: clock.Now()}
	}, card, say("Approved by <@U0APPROVER>"))
	must(err)
	got = append(got, usageOf("approve: claim the click, approved + 2 events", rec))

	deliver(id)
	got = append(got, usageOf("deliver the approval", rec))

	lease, err := s.AcquireLease(actions.JobLease(id), "replica-a", 30*time.Second)
	must(err)
	_, err = s.TransitionFenced(lease, id, []actions.State{actions.Approved}, actions.Running, nil, card, say("Started"))
	must(err)
	got = append(got, usageOf("job start: lease, running + 2 events (fenced)", rec))

	must(s.SaveCheckpointEventsFenced(lease, id, "pipeline", map[string]string{"id": "df-0123456789"}, say("Pipeline df-0123456789 created")))
	must(s.SaveCheckpointEventsFenced(lease, id, "activated", map[string]string{"at": "2025-03-01T12:00:00Z"}, say("Activated")))
	got = append(got, usageOf("2 steps: checkpoint + event each (fenced)", rec))

	deliver(id)
	got = append(got, usageOf("deliver the steps", rec))

	var poll usage
	for i := range 3 {
		clock.Add(10 * time.Second)
		lease, err = s.RenewLease(lease, 30*time.Second)
		must(err)
		must(s.AppendEventsFenced(lease, id, actions.Event{Kind: actions.Progress, Text: fmt.Sprintf("RUNNING (%d)", i)}))
		u := usageOf("job poll: renew the lease, 1 progress event (fenced)", rec)
		if i > 0 && u != poll {
			t.Errorf("poll %d = %+v, want each poll alike %+v", i, u, poll)
		}
		poll = u
		deliver(id)
		got = append(got, usageOf("deliver 1 progress", rec))
	}
	got = append(got, poll)

	_, err = s.TransitionFenced(lease, id, []actions.State{actions.Running}, actions.Succeeded, nil, card, say("Verified: 12 files, 3.4 MB"), say("Follow-up: ..."))
	must(err)
	must(s.ReleaseLease(lease))
	got = append(got, usageOf("done: succeeded + 3 events, locks freed (fenced), lease released", rec))

	deliver(id)
	got = append(got, usageOf("deliver the end", rec))

	// A sweep (expiry, resume) reads only the requests still going.
	for range 3 {
		_, err := s.Create(storetest.NewRequest(), "")
		must(err)
	}
	rec.reset()
	active, err := s.ListActive(nil)
	must(err)
	if len(active) != 3 {
		t.Fatalf("ListActive = %d requests, want 3", len(active))
	}
	sweep := usageOf("sweep: ListActive, 3 requests going, 1 ended", rec)

	// The 1 KB assumption.
	r, err := s.Get(id)
	must(err)
	data, _ := json.Marshal(r)
	n := len(data) + 150
	t.Logf("a request item is about %d bytes", n)
	if n > 1024 {
		t.Errorf("a request item is about %d bytes, over the 1 KB the units assume", n)
	}
	rec.reset()

	var b strings.Builder
	fmt.Fprintf(&b, "\n| phase | GetItem | Query | single writes | transactions (items) | read units | write units |\n|---|---|---|---|---|---|---|\n")
	var total usage
	deliveries := usage{phase: "deliveries"}
	for _, u := range got {
		if u.phase == poll.phase {
			continue
		}
		if u.phase == "deliver 1 progress" {
			if deliveries.gets == 0 {
				deliveries = u
				deliveries.phase = "deliver 1 progress (each poll)"
			}
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d (%d) | %d | %d |\n", u.phase, u.gets, u.queries, u.writes, u.txs, u.txItems, u.readUnits, u.writeUnits)
		total.gets += u.gets
		total.queries += u.queries
		total.writes += u.writes
		total.txs += u.txs
		total.txItems += u.txItems
		total.readUnits += u.readUnits
		total.writeUnits += u.writeUnits
	}
	fmt.Fprintf(&b, "| **request, without polls** | %d | %d | %d | %d (%d) | **%d** | **%d** |\n", total.gets, total.queries, total.writes, total.txs, total.txItems, total.readUnits, total.writeUnits)
	for _, u := range []usage{poll, deliveries, sweep} {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d (%d) | %d | %d |\n", u.phase, u.gets, u.queries, u.writes, u.txs, u.txItems, u.readUnits, u.writeUnits)
	}
	t.Log(b.String())

	// Regression bounds: the figures in deploy/dynamodb/README.md.
	if total.readUnits > wantRequestReads || total.writeUnits > wantRequestWrites {
		t.Errorf("a request costs %d read and %d write units, more than the %d and %d in deploy/dynamodb/README.md",
			total.readUnits, total.writeUnits, wantRequestReads, wantRequestWrites)
	}
	if pu := poll.readUnits + deliveries.readUnits; pu > wantPollReads || poll.writeUnits+deliveries.writeUnits > wantPollWrites {
		t.Errorf("a poll costs %d read and %d write units, more than the %d and %d in deploy/dynamodb/README.md",
			pu, poll.writeUnits+deliveries.writeUnits, wantPollReads, wantPollWrites)
	}
	if sweep.readUnits != 1+len(active) || sweep.writeUnits != 0 {
		t.Errorf("a sweep over %d requests going costs %d read and %d write units, want %d and 0",
			len(active), sweep.readUnits, sweep.writeUnits, 1+len(active))
	}
}

// The figures of deploy/dynamodb/README.md: one request's life without
// its polls, and one job poll with the delivery of its progress.
const (
	wantRequestReads  = 23
	wantRequestWrites = 98
	wantPollReads     = 4
	wantPollWrites    = 15
)
