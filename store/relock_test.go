package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/osio/osio-bot/actions"
)

// Issue 8, item 2: a request leaving a terminal state (a retry such as
// Resend) takes its locks back in the same transaction, or changes nothing
// and names the request holding them.
func TestRetryTakesLocksBack(t *testing.T) {
	s, _ := newStore(t)
	const lock = "reset:osio-dev:dana"
	res, err := s.Create(newReq(lock), "")
	if err != nil {
		t.Fatal(err)
	}
	r1 := res.Request.ID
	if _, err := s.Transition(r1, []actions.State{actions.Pending}, actions.Failed, func(q *actions.Request) { q.Retry = "Resend" }); err != nil {
		t.Fatal(err)
	}
	res, err = s.Create(newReq(lock), "")
	if err != nil || res.Request == nil {
		t.Fatalf("the failed request kept its lock: %+v %v", res, err)
	}
	r2 := res.Request.ID
	retry := func() (*actions.Request, error) {
		return s.Update(r1, []actions.State{actions.Failed}, func(q *actions.Request) error {
			q.State, q.Retry = actions.Approved, ""
			return nil
		}, actions.Event{Kind: actions.Message, Text: "Resend requested"})
	}

	// r2 holds the lock: the retry is refused, naming r2, and r1 is as it was.
	_, err = retry()
	var lc *actions.LockConflict
	if !errors.As(err, &lc) || lc.ID != r1 || lc.LockedBy[lock] == nil || lc.LockedBy[lock].ID != r2 {
		t.Fatalf("retry while %s holds the lock: %v", r2, err)
	}
	if !strings.Contains(err.Error(), lock+" is held by "+r2+" (pending)") {
		t.Errorf("error text %q", err)
	}
	if q, _ := s.Get(r1); q.State != actions.Failed || q.Retry != "Resend" {
		t.Errorf("r1 changed: %s, retry %q", q.State, q.Retry)
	}
	if evs, _ := s.Events(r1); len(evs) != 0 {
		t.Errorf("a refused retry recorded %d events", len(evs))
	}

	// r2 ends: the retry takes the lock back, so a third request is told
	// r1 holds it.
	if _, err := s.Transition(r2, []actions.State{actions.Pending}, actions.Denied, nil); err != nil {
		t.Fatal(err)
	}
	if q, err := retry(); err != nil || q.State != actions.Approved {
		t.Fatalf("retry after %s ended: %v", r2, err)
	}
	res, err = s.Create(newReq(lock), "")
	if err != nil || res.Request != nil || res.LockedBy[lock] == nil || res.LockedBy[lock].ID != r1 {
		t.Fatalf("a new request after the retry: %+v %v; want it refused, held by %s", res, err, r1)
	}
	// And r1 releases it again when it ends.
	if _, err := s.Transition(r1, []actions.State{actions.Approved}, actions.Succeeded, nil); err != nil {
		t.Fatal(err)
	}
	if res, err := s.Create(newReq(lock), ""); err != nil || res.Request == nil {
		t.Fatalf("lock not released after the retry ended: %+v %v", res, err)
	}
}
