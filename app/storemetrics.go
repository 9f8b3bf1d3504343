package app

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/osio/osio-bot/actions"
)

// meteredStore is the store as the bot sees it, with metrics: each
// operation's latency (osio_bot_store_op_seconds) and failures
// (osio_bot_store_errors_total), and each request's transitions
// (osio_bot_requests_total, osio_bot_decision_seconds,
// osio_bot_job_seconds), counted when the store has recorded them.
type meteredStore struct {
	Store
	m   *metrics
	now func() time.Time

	mu      sync.Mutex
	started map[string]time.Time // request id -> when its job started here
}

func newMeteredStore(st Store, m *metrics) *meteredStore {
	return &meteredStore{Store: st, m: m, now: time.Now, started: map[string]time.Time{}}
}

// expected are errors that are answers, not store failures.
func expected(err error) bool {
	if _, ok := actions.IsConflict(err); ok {
		return true
	}
	if _, ok := errors.AsType[*actions.LockConflict](err); ok {
		return true
	}
	return errors.Is(err, actions.ErrNotFound) || actions.LeaseLost(err) || errors.Is(err, actions.ErrLeaseHeld)
}

// observe times one operation.
func (s *meteredStore) observe(op string, start time.Time, err error) {
	s.m.storeOp.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !expected(err) {
		s.m.storeErrs.WithLabelValues(op).Inc()
	}
}

// transitioned counts a recorded change of r from state before ("" when
// unknown) to r.State.
func (s *meteredStore) transitioned(before actions.State, r *actions.Request) {
	if r == nil || before == r.State {
		return
	}
	now := s.now()
	to := r.State
	if to == actions.Running {
		s.mu.Lock()
		s.started[r.ID] = now
		s.mu.Unlock()
		return
	}
	if !outcomes[to] {
		return
	}
	s.m.requests.WithLabelValues(r.Kind, string(to)).Inc()
	if decisions[to] && !before.Terminal() {
		at := r.UpdatedAt
		if r.Decision != nil && !r.Decision.At.IsZero() {
			at = r.Decision.At
		}
		s.m.decision.WithLabelValues(r.Kind, string(to)).Observe(max(0, at.Sub(r.CreatedAt).Seconds()))
	}
	if to == actions.Succeeded || to == actions.Failed {
		s.mu.Lock()
		start, ok := s.started[r.ID]
		delete(s.started, r.ID)
		s.mu.Unlock()
		if ok {
			s.m.job.WithLabelValues(r.Kind, string(to)).Observe(now.Sub(start).Seconds())
		}
	}
}

// fromOf is the state a Transition left: the only one it accepts, else
// unknown.
func fromOf(from []actions.State) actions.State {
	if len(from) == 1 {
		return from[0]
	}
	return ""
}

func (s *meteredStore) Create(r *actions.Request, envelopeID string, events ...actions.Event) (actions.Created, error) {
	start := time.Now()
	c, err := s.Store.Create(r, envelopeID, events...)
	s.observe("create", start, err)
	if err == nil && !c.Duplicate && len(c.LockedBy) == 0 && c.Request != nil {
		s.transitioned(actions.Received, c.Request)
	}
	return c, err
}

func (s *meteredStore) Update(id string, from []actions.State, mutate func(*actions.Request) error, events ...actions.Event) (*actions.Request, error) {
	start := time.Now()
	var before actions.State
	r, err := s.Store.Update(id, from, func(q *actions.Request) error {
		before = q.State
		if mutate == nil {
			return nil
		}
		return mutate(q)
	}, events...)
	s.observe("update", start, err)
	if err == nil {
		s.transitioned(before, r)
	}
	return r, err
}

func (s *meteredStore) Transition(id string, from []actions.State, to actions.State, mutate func(*actions.Request), events ...actions.Event) (*actions.Request, error) {
	start := time.Now()
	r, err := s.Store.Transition(id, from, to, mutate, events...)
	s.observe("transition", start, err)
	if err == nil {
		s.transitioned(fromOf(from), r)
	}
	return r, err
}

func (s *meteredStore) TransitionFenced(l actions.Lease, id string, from []actions.State, to actions.State, mutate func(*actions.Request), events ...actions.Event) (*actions.Request, error) {
	start := time.Now()
	r, err := s.Store.TransitionFenced(l, id, from, to, mutate, events...)
	s.observe("transition", start, err)
	if err == nil {
		s.transitioned(fromOf(from), r)
	}
	return r, err
}

func (s *meteredStore) Get(id string) (*actions.Request, error) {
	start := time.Now()
	r, err := s.Store.Get(id)
	s.observe("get", start, err)
	return r, err
}

func (s *meteredStore) List(keep func(*actions.Request) bool) ([]*actions.Request, error) {
	start := time.Now()
	rs, err := s.Store.List(keep)
	s.observe("list", start, err)
	return rs, err
}

// ListActive keeps the store's cheaper listing of requests still going
// (actions.ListActive looks for it).
func (s *meteredStore) ListActive(keep func(*actions.Request) bool) ([]*actions.Request, error) {
	start := time.Now()
	rs, err := actions.ListActive(s.Store, keep)
	s.observe("list_active", start, err)
	return rs, err
}

func (s *meteredStore) AppendEvents(id string, events ...actions.Event) error {
	start := time.Now()
	err := s.Store.AppendEvents(id, events...)
	s.observe("append_events", start, err)
	return err
}

func (s *meteredStore) AppendEventsFenced(l actions.Lease, id string, events ...actions.Event) error {
	start := time.Now()
	err := s.Store.AppendEventsFenced(l, id, events...)
	s.observe("append_events", start, err)
	return err
}

func (s *meteredStore) SaveCheckpoint(id, key string, v any) error {
	start := time.Now()
	err := s.Store.SaveCheckpoint(id, key, v)
	s.observe("save_checkpoint", start, err)
	return err
}

func (s *meteredStore) SaveCheckpointFenced(l actions.Lease, id, key string, v any) error {
	start := time.Now()
	err := s.Store.SaveCheckpointFenced(l, id, key, v)
	s.observe("save_checkpoint", start, err)
	return err
}

func (s *meteredStore) SaveCheckpointEvents(id, key string, v any, events ...actions.Event) error {
	start := time.Now()
	err := s.Store.SaveCheckpointEvents(id, key, v, events...)
	s.observe("save_checkpoint", start, err)
	return err
}

func (s *meteredStore) SaveCheckpointEventsFenced(l actions.Lease, id, key string, v any, events ...actions.Event) error {
	start := time.Now()
	err := s.Store.SaveCheckpointEventsFenced(l, id, key, v, events...)
	s.observe("save_checkpoint", start, err)
	return err
}

func (s *meteredStore) LoadCheckpoint(id, key string, v any) (bool, error) {
	start := time.Now()
	ok, err := s.Store.LoadCheckpoint(id, key, v)
	s.observe("load_checkpoint", start, err)
	return ok, err
}

func (s *meteredStore) Outbox() ([]string, error) {
	start := time.Now()
	ids, err := s.Store.Outbox()
	s.observe("outbox", start, err)
	return ids, err
}

func (s *meteredStore) Undelivered(id string) ([]actions.Event, actions.Cursor, error) {
	start := time.Now()
	evs, cur, err := s.Store.Undelivered(id)
	s.observe("undelivered", start, err)
	return evs, cur, err
}

func (s *meteredStore) MarkDelivered(id string, cur actions.Cursor) error {
	start := time.Now()
	err := s.Store.MarkDelivered(id, cur)
	s.observe("mark_delivered", start, err)
	return err
}

func (s *meteredStore) Events(id string) ([]actions.Event, error) {
	start := time.Now()
	evs, err := s.Store.Events(id)
	s.observe("events", start, err)
	return evs, err
}

func (s *meteredStore) ClaimEnvelope(envelopeID string) (bool, error) {
	start := time.Now()
	ok, err := s.Store.ClaimEnvelope(envelopeID)
	s.observe("claim_envelope", start, err)
	return ok, err
}

func (s *meteredStore) PruneEnvelopes(before time.Time) (int, error) {
	start := time.Now()
	n, err := s.Store.PruneEnvelopes(before)
	s.observe("prune_envelopes", start, err)
	return n, err
}

func (s *meteredStore) AcquireLease(name, owner string, ttl time.Duration) (actions.Lease, error) {
	start := time.Now()
	l, err := s.Store.AcquireLease(name, owner, ttl)
	s.observe("acquire_lease", start, err)
	return l, err
}

func (s *meteredStore) RenewLease(l actions.Lease, ttl time.Duration) (actions.Lease, error) {
	start := time.Now()
	nl, err := s.Store.RenewLease(l, ttl)
	s.observe("renew_lease", start, err)
	return nl, err
}

func (s *meteredStore) ReleaseLease(l actions.Lease) error {
	start := time.Now()
	err := s.Store.ReleaseLease(l)
	s.observe("release_lease", start, err)
	return err
}

func (s *meteredStore) Ping(ctx context.Context) error {
	start := time.Now()
	err := s.Store.Ping(ctx)
	s.observe("ping", start, err)
	return err
}
