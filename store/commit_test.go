package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/osio/osio-bot/actions"
)

// Concurrent intakes share transactions (group commit): each is durable
// and distinct, and they take far fewer commits than writes. This is what
// keeps a slash command's ack from queueing behind other writes (issue 9,
// BenchmarkExportAck).
func TestConcurrentWritesShareCommits(t *testing.T) {
	s, _ := newStore(t)
	const n = 200
	before := s.w.commits.Load()
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			res, err := s.Create(&actions.Request{Kind: "export", State: actions.Received, Locks: []string{fmt.Sprintf("export:t%03d", i)}}, fmt.Sprintf("env-%d", i))
			if err == nil {
				ids[i] = res.Request.ID
			}
			errs[i] = err
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("write %d: %v", i, errs[i])
		}
		if seen[ids[i]] {
			t.Fatalf("id %s given twice", ids[i])
		}
		seen[ids[i]] = true
		if r, err := s.Get(ids[i]); err != nil || r.State != actions.Received {
			t.Fatalf("%s: %+v %v", ids[i], r, err)
		}
	}
	commits := s.w.commits.Load() - before
	t.Logf("%d writes in %d commits", n, commits)
	if commits >= n/2 {
		t.Errorf("%d concurrent writes took %d commits: not grouped", n, commits)
	}
}

// A lone write commits at once: no batch window.
func TestLoneWriteDoesNotWait(t *testing.T) {
	s, _ := newStore(t)
	var worst time.Duration
	for i := range 20 {
		start := time.Now()
		if _, err := s.Create(&actions.Request{Kind: "export", State: actions.Received}, fmt.Sprintf("env-%d", i)); err != nil {
			t.Fatal(err)
		}
		worst = max(worst, time.Since(start))
	}
	t.Logf("slowest of 20 lone writes: %v", worst)
}

// One failing (or panicking) write in a group gets its own error; the
// others commit, and see nothing of it.
func TestFailingWriteInAGroup(t *testing.T) {
	s, _ := newStore(t)
	c := s.w
	bucket := []byte("commit_test")
	if err := s.db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket(bucket); return err }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	// Hold the committer busy so that the writes below queue into one group.
	release := make(chan struct{})
	started := make(chan struct{})
	go func() {
		_ = c.do(func(*bbolt.Tx) error { close(started); <-release; return nil })
	}()
	<-started
	const n = 30
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = c.do(func(tx *bbolt.Tx) error {
				if err := tx.Bucket(bucket).Put(fmt.Appendf(nil, "k%02d", i), []byte("v")); err != nil {
					return err
				}
				switch i {
				case 7:
					return boom
				case 19:
					panic("nineteen")
				}
				return nil
			})
		})
	}
	time.Sleep(50 * time.Millisecond) // all queued behind the busy transaction
	close(release)
	wg.Wait()
	for i, err := range errs {
		switch {
		case i == 7 && !errors.Is(err, boom):
			t.Errorf("write 7: %v, want boom", err)
		case i == 19 && (err == nil || !strings.Contains(err.Error(), "nineteen")):
			t.Errorf("write 19: %v, want the panic as an error", err)
		case i != 7 && i != 19 && err != nil:
			t.Errorf("write %d: %v", i, err)
		}
	}
	_ = s.db.View(func(tx *bbolt.Tx) error {
		for i := range n {
			got := tx.Bucket(bucket).Get(fmt.Appendf(nil, "k%02d", i)) != nil
			if want := i != 7 && i != 19; got != want {
				t.Errorf("key %d stored: %v, want %v", i, got, want)
			}
		}
		return nil
	})
}
