package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/store"
)

// Issue 11, acceptance 5: `audit verify` names each request whose events
// were changed, removed or reordered in the store file, and only those.
func TestAuditVerifyFindsEditedEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "osio-bot.db")
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 0; i < 4; i++ {
		res, err := st.Create(&actions.Request{Kind: "export", Requester: "U1"}, "",
			actions.Event{Kind: actions.Card}, actions.Event{Kind: actions.Message, Text: "Requested by <@U1>."})
		if err != nil {
			t.Fatal(err)
		}
		id := res.Request.ID
		if _, err := st.Transition(id, []actions.State{actions.Pending}, actions.Approved, nil, actions.Event{Kind: actions.Message, Text: "Approved by <@U2>."}); err != nil {
			t.Fatal(err)
		}
		if err := st.AppendEvents(id, actions.Event{Kind: actions.Message, Text: "pipeline activated"}, actions.Event{Kind: actions.Message, Text: "done"}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	st.Close()
	verify := func() (int, string) {
		var out, errb bytes.Buffer
		code := run([]string{"audit", "verify", "--file", path}, &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := verify(); code != 0 || !strings.Contains(out, "4 requests: every event chain is intact") {
		t.Fatalf("intact store: exit %d\n%s", code, out)
	}

	// Edit the file as someone covering their tracks would.
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := func(n uint64) []byte { k := make([]byte, 8); binary.BigEndian.PutUint64(k, n); return k }
	err = db.Update(func(tx *bbolt.Tx) error {
		evs := tx.Bucket([]byte("events"))
		// ids[0]: "Approved by <@U2>." becomes someone else.
		b := evs.Bucket([]byte(ids[0]))
		var e actions.Event
		if err := json.Unmarshal(b.Get(key(3)), &e); err != nil {
			return err
		}
		e.Text = strings.Replace(e.Text, "<@U2>", "<@U9>", 1)
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := b.Put(key(3), data); err != nil {
			return err
		}
		// ids[1]: the approval is removed.
		if err := evs.Bucket([]byte(ids[1])).Delete(key(3)); err != nil {
			return err
		}
		// ids[2]: two events swap places.
		b = evs.Bucket([]byte(ids[2]))
		four, five := bytes.Clone(b.Get(key(4))), bytes.Clone(b.Get(key(5)))
		if err := b.Put(key(4), five); err != nil {
			return err
		}
		return b.Put(key(5), four)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, out := verify()
	t.Logf("audit verify:\n%s", out)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for i, want := range []string{"changed", "removed", "reordered"} {
		line := ""
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, ids[i]+":") {
				line = l
			}
		}
		if !strings.Contains(line, want) {
			t.Errorf("%s (%s) not named as %s: %q", ids[i], want, want, line)
		}
	}
	if strings.Contains(out, ids[3]+":") {
		t.Errorf("the untouched %s is named", ids[3])
	}
	if !strings.Contains(out, "3 of 4 requests have events changed, removed or reordered") {
		t.Errorf("summary missing:\n%s", out)
	}
}

// `store compact` on a bbolt file: smaller or equal, the original kept,
// every request still there; on a held file it says to stop the bot.
func TestStoreCompactCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "osio-bot.db")
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := st.Create(&actions.Request{Kind: "export", Requester: "U1"}, "", actions.Event{Kind: actions.Message, Text: strings.Repeat("x", 2000)}); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"store", "compact", "--file", path}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "stop the bot first") {
		t.Errorf("compacting a held file: exit %d: %s", code, errb.String())
	}
	st.Close()
	out.Reset()
	errb.Reset()
	if code := run([]string{"store", "compact", "--file", path}, &out, &errb); code != 0 || !strings.Contains(out.String(), "compacted "+path) {
		t.Fatalf("exit %d: %s %s", code, out.String(), errb.String())
	}
	st, err = store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if rs, _ := st.List(nil); len(rs) != 20 {
		t.Errorf("%d requests after compaction, want 20", len(rs))
	}
}
