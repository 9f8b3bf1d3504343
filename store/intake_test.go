package store

import (
	"errors"
	"testing"

	"github.com/osio/osio-bot/actions"
)

// Issue 9, part 1: an intake is one store write (envelope claimed, locks
// taken, request "received"); a refusal is terminal, keeps its reason and
// releases the locks, so the audit holds every command typed.
func TestIntakeReceivedThenRefused(t *testing.T) {
	s, _ := newStore(t)
	const lock = "export:prod_txlog"
	in := newReq(lock)
	in.State = actions.Received
	r := mustCreate(t, s, in, "env-1")
	if r.State != actions.Received || r.State.Terminal() {
		t.Fatalf("intake is %q (terminal %v), want received, not terminal", r.State, r.State.Terminal())
	}
	// The envelope is claimed by the intake: a redelivery finds it.
	dup, err := s.Create(newReq(lock), "env-1")
	if err != nil || !dup.Duplicate || dup.Request.ID != r.ID {
		t.Fatalf("redelivered envelope: %+v %v, want duplicate of %s", dup, err, r.ID)
	}
	// The intake holds its lock: today's "already in progress".
	if res, err := s.Create(newReq(lock), ""); err != nil || res.LockedBy[lock] == nil || res.LockedBy[lock].ID != r.ID {
		t.Fatalf("second request on %s: %+v %v, want locked by %s", lock, res, err, r.ID)
	}
	got, err := s.Transition(r.ID, []actions.State{actions.Received}, actions.Refused, func(q *actions.Request) {
		q.Error = "table prod_txlog does not exist"
	})
	if err != nil {
		t.Fatal(err)
	}
	if !got.State.Terminal() || got.Error == "" {
		t.Fatalf("refused request: state %q terminal %v error %q", got.State, got.State.Terminal(), got.Error)
	}
	if res, err := s.Create(newReq(lock), ""); err != nil || res.Request == nil {
		t.Fatalf("the refusal kept its lock: %+v %v", res, err)
	}
}

// A check that passes may name locks the intake could not know (a
// self-reset learns its IAM user only from the directory): the move
// received -> pending takes them in the same write, or, when another
// request holds one, changes nothing and names the holder.
func TestIntakePassTakesTheLocksItsCheckNamed(t *testing.T) {
	s, _ := newStore(t)
	const lock = "reset:prod:alice"
	holder := mustCreate(t, s, newReq(lock), "")

	in := newReq()
	in.State = actions.Received
	r := mustCreate(t, s, in, "env-2")
	_, err := s.Transition(r.ID, []actions.State{actions.Received}, actions.Pending, func(q *actions.Request) { q.Locks = []string{lock} })
	var lc *actions.LockConflict
	if !errors.As(err, &lc) || lc.LockedBy[lock] == nil || lc.LockedBy[lock].ID != holder.ID {
		t.Fatalf("pass onto a held lock: %v, want a LockConflict naming %s", err, holder.ID)
	}
	if got, _ := s.Get(r.ID); got.State != actions.Received || len(got.Locks) != 0 {
		t.Fatalf("after the conflict the intake is %q with locks %v; want it unchanged", got.State, got.Locks)
	}

	if _, err := s.Transition(holder.ID, []actions.State{actions.Pending}, actions.Cancelled, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transition(r.ID, []actions.State{actions.Received}, actions.Pending, func(q *actions.Request) { q.Locks = []string{lock} }); err != nil {
		t.Fatalf("pass onto a free lock: %v", err)
	}
	if res, err := s.Create(newReq(lock), ""); err != nil || res.LockedBy[lock] == nil || res.LockedBy[lock].ID != r.ID {
		t.Fatalf("a third request on %s: %+v %v, want it locked by %s", lock, res, err, r.ID)
	}
	// A lock the request gives up is released.
	if _, err := s.Update(r.ID, nil, func(q *actions.Request) error { q.Locks = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	if res, err := s.Create(newReq(lock), ""); err != nil || res.Request == nil {
		t.Fatalf("the dropped lock is still held: %+v %v", res, err)
	}
}
