package store

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/osio/osio-bot/actions"
)

// bulkLoad writes n requests that ended at start+i seconds (succeeded),
// each with 5 events, a cursor and a checkpoint, in few transactions: a
// store as a year of use leaves it, made fast.
func bulkLoad(tb testing.TB, s *Store, n int, start time.Time) {
	tb.Helper()
	const per = 5000
	for lo := 0; lo < n; lo += per {
		err := s.db.Update(func(tx *bbolt.Tx) error {
			for i := lo; i < min(n, lo+per); i++ {
				seq, err := tx.Bucket(bRequests).NextSequence()
				if err != nil {
					return err
				}
				at := start.Add(time.Duration(i) * time.Second)
				r := &actions.Request{ID: formatID(seq), Kind: "export", State: actions.Succeeded, Requester: "U0123456789",
					Origin: "C0123456789", Input: fmt.Sprintf("/osio-export prod_table_%d", i), What: fmt.Sprintf("export of `prod_table_%d`", i),
					Args: json.RawMessage(fmt.Sprintf(`{"tables":["prod_table_%d"],"method":"datapipeline"}`, i)),
					Plan: []string{"• create pipeline", "• activate", "• verify the folder"}, CreatedAt: at, UpdatedAt: at, ExpiresAt: at.Add(24 * time.Hour),
					Decision: &actions.Decision{Action: "approved", By: "U0987654321", At: at}, Version: 6,
					Thread: actions.Thread{Channel: "C0APPROVALS", TS: "1764180000.000100", Permalink: "https://example.slack.com/archives/C0APPROVALS/p1764180000000100"}}
				if err := putReq(tx, r); err != nil {
					return err
				}
				if err := appendEvents(tx, r.ID, at, []actions.Event{{Kind: actions.Card}, {Kind: actions.Message, Text: "Requested by <@U0123456789> in <#C0123456789>. Waiting for an approver."},
					{Kind: actions.Message, Text: "Approved by <@U0987654321>."}, {Kind: actions.Message, Text: "`prod_table`: activated pipeline `df-0123456789ABCDEFGHIJ`; output `s3://dynamodb-migration-backups-osio/backups/prod_table/2026-01-01-00-00-00/`."},
					{Kind: actions.Message, Text: ":white_check_mark: Request finished."}}); err != nil {
					return err
				}
				if err := tx.Bucket(bOutbox).Delete([]byte(r.ID)); err != nil {
					return err
				}
				cur, _ := json.Marshal(actions.Cursor{Delivered: 5})
				if err := tx.Bucket(bCursors).Put([]byte(r.ID), cur); err != nil {
					return err
				}
				b, err := tx.Bucket(bCheckpoints).CreateBucketIfNotExists([]byte(r.ID))
				if err != nil {
					return err
				}
				if err := b.Put([]byte("table:prod_table"), []byte(`{"PipelineID":"df-0123456789ABCDEFGHIJ","Activated":true}`)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// Prune removes ended requests older than the cutoff with everything
// they left, and only those (and only when may agrees); Compact gives the
// space back and keeps the rest.
func TestPruneAndCompact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := start.Add(365 * 24 * time.Hour)
	s, err := Open(path, Options{Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	bulkLoad(t, s, 300, start) // R-000001..300, ended at start+i s
	active, err := s.Create(&actions.Request{Kind: "export", State: actions.Pending, Requester: "U1", Locks: []string{"export:t"}}, "", actions.Event{Kind: actions.Card})
	if err != nil {
		t.Fatal(err)
	}
	cutoff := start.Add(200 * time.Second) // R-000001..200 ended before it
	n, err := s.Prune(cutoff, func(r *actions.Request) bool { return r.ID != "R-000007" })
	if err != nil || n != 199 {
		t.Fatalf("pruned %d, %v; want 199 (R-000007 kept by may)", n, err)
	}
	for id, want := range map[string]bool{"R-000001": false, "R-000007": true, "R-000200": false, "R-000201": true, "R-000300": true, active.Request.ID: true} {
		_, err := s.Get(id)
		if got := err == nil; got != want {
			t.Errorf("%s kept %v, want %v (%v)", id, got, want, err)
		}
		evs, _ := s.Events(id)
		var cp map[string]any
		found, _ := s.LoadCheckpoint(id, "table:prod_table", &cp)
		if !want && (len(evs) != 0 || found) {
			t.Errorf("%s pruned but left %d events, checkpoint %v", id, len(evs), found)
		}
	}
	_ = s.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bCursors).Get([]byte("R-000001")) != nil || tx.Bucket(bEvents).Bucket([]byte("R-000150")) != nil {
			t.Errorf("a pruned request's cursor or events bucket is left")
		}
		return nil
	})
	if ids, _ := s.Outbox(); len(ids) != 1 || ids[0] != active.Request.ID {
		t.Errorf("outbox %v", ids)
	}
	s.Close()
	before, after, err := Compact(path)
	if err != nil {
		t.Fatal(err)
	}
	if after >= before {
		t.Errorf("compaction: %d -> %d bytes", before, after)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs, _ := s.List(nil)
	if len(rs) != 102 {
		t.Errorf("%d requests after compaction, want 102", len(rs))
	}
	if evs, _ := s.Events("R-000250"); len(evs) != 5 || len(actions.VerifyChain(evs)) != 0 {
		t.Errorf("R-000250's events after compaction: %d, chain %v", len(evs), actions.VerifyChain(evs))
	}
	t.Logf("compaction: %d -> %d bytes", before, after)
}

// BenchmarkRetention100k measures a store of 100,000 ended requests (5
// events, a cursor and a checkpoint each): its file size and the time to
// open it (the bot's start: Open reads every page), then after pruning
// the 90,000 oldest (store.retention), then after `store compact`.
//
//	go test ./store -run '^$' -bench BenchmarkRetention100k -benchtime 1x
func BenchmarkRetention100k(b *testing.B) {
	for i := 0; i < b.N; i++ {
		path := filepath.Join(b.TempDir(), "s.db")
		start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		s, err := Open(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		bulkLoad(b, s, 100_000, start)
		s.Close()
		open := func() time.Duration {
			t0 := time.Now()
			s, err := Open(path, Options{})
			if err != nil {
				b.Fatal(err)
			}
			d := time.Since(t0)
			s.Close()
			return d
		}
		mb := func(p string) float64 { fi, _ := os.Stat(p); return float64(fi.Size()) / (1 << 20) }
		b.ReportMetric(mb(path), "MB-100k")
		b.ReportMetric(float64(open().Microseconds())/1000, "open-ms-100k")
		s, err = Open(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		n, err := s.Prune(start.Add(90_000*time.Second), nil)
		if err != nil || n != 90_000 {
			b.Fatalf("pruned %d: %v", n, err)
		}
		b.ReportMetric(float64(time.Since(t0).Milliseconds()), "prune-ms")
		s.Close()
		b.ReportMetric(mb(path), "MB-pruned")
		b.ReportMetric(float64(open().Microseconds())/1000, "open-ms-pruned")
		if _, _, err := Compact(path); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(mb(path), "MB-compacted")
		b.ReportMetric(float64(open().Microseconds())/1000, "open-ms-compacted")
	}
}
