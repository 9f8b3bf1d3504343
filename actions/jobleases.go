package actions

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Leases is what the runner needs to share jobs with other replicas on one
// store: a lease per job, renewed while the job runs, and writes fenced by
// it. A store used by one process alone needs none (Runner.Leases nil).
type Leases interface {
	AcquireLease(name, owner string, ttl time.Duration) (Lease, error)
	RenewLease(l Lease, ttl time.Duration) (Lease, error)
	ReleaseLease(l Lease) error
	TransitionFenced(l Lease, id string, from []State, to State, mutate func(*Request), events ...Event) (*Request, error)
	AppendEventsFenced(l Lease, id string, events ...Event) error
	SaveCheckpointFenced(l Lease, id, key string, v any) error
	SaveCheckpointEventsFenced(l Lease, id, key string, v any, events ...Event) error
}

// heldLease is a job's lease as its heartbeat keeps it: the current one,
// and whether it was lost.
type heldLease struct {
	mu   sync.Mutex
	l    Lease
	lost error
}

func (h *heldLease) get() Lease { h.mu.Lock(); defer h.mu.Unlock(); return h.l }

func (h *heldLease) lostErr() error { h.mu.Lock(); defer h.mu.Unlock(); return h.lost }

// heartbeat renews the lease every third of ttl until ctx ends. When the
// lease is lost (another replica took it, or it expired while the store
// could not be reached) it records that and calls stop: the job must
// record nothing more, and its fenced writes would be refused anyway.
func (h *heldLease) heartbeat(ctx context.Context, ls Leases, ttl time.Duration, now func() time.Time, log *zap.Logger, stop func()) {
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := h.get()
		next, err := ls.RenewLease(cur, ttl)
		if err == nil {
			h.mu.Lock()
			h.l = next
			h.mu.Unlock()
			continue
		}
		if !LeaseLost(err) && now().Before(cur.Expires) {
			log.Warn("renewing the job's lease failed; retrying", zap.Error(err), zap.Time("expires", cur.Expires))
			continue
		}
		if !LeaseLost(err) {
			err = LostLease(cur, "expired while it could not be renewed: "+err.Error())
		}
		h.mu.Lock()
		h.lost = err
		h.mu.Unlock()
		log.Error("lost the job's lease: stopping the job; it records nothing more and another replica goes on with it",
			zap.Error(err), zap.String("lease", cur.Name), zap.Uint64("epoch", cur.Epoch))
		stop()
		return
	}
}

// fencedStore is the store as a leased job sees it: every write is
// conditional on the job's current lease, so a replica that lost it (a
// pause, a partition) cannot record a checkpoint, and so cannot reach the
// side effect that follows one.
type fencedStore struct {
	Store
	ls   Leases
	held *heldLease
}

func (s fencedStore) Transition(id string, from []State, to State, mutate func(*Request), events ...Event) (*Request, error) {
	return s.ls.TransitionFenced(s.held.get(), id, from, to, mutate, events...)
}

func (s fencedStore) AppendEvents(id string, events ...Event) error {
	return s.ls.AppendEventsFenced(s.held.get(), id, events...)
}

func (s fencedStore) SaveCheckpoint(id, key string, v any) error {
	return s.ls.SaveCheckpointFenced(s.held.get(), id, key, v)
}

func (s fencedStore) SaveCheckpointEvents(id, key string, v any, events ...Event) error {
	return s.ls.SaveCheckpointEventsFenced(s.held.get(), id, key, v, events...)
}

// isLeaseHeld reports whether err says another replica holds the lease,
// and until when.
func isLeaseHeld(err error) (time.Time, bool) {
	if h, ok := errors.AsType[*LeaseHeld](err); ok {
		return h.Current.Expires, true
	}
	return time.Time{}, false
}
