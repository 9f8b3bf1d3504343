// Package storetest is the store contract as a test suite: the same cases
// run against every backend (bbolt in package store, DynamoDB in
// store/dynamo), each through two clients of one store, so that the
// compare-and-sets, claims, locks and leases are shown to hold between
// replicas, not only inside one process.
package storetest

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/osio/osio-bot/actions"
)

// Backend is the whole store API both backends implement.
type Backend interface {
	// Requests.
	Create(r *actions.Request, envelopeID string, events ...actions.Event) (actions.Created, error)
	Get(id string) (*actions.Request, error)
	Update(id string, from []actions.State, mutate func(*actions.Request) error, events ...actions.Event) (*actions.Request, error)
	Transition(id string, from []actions.State, to actions.State, mutate func(*actions.Request), events ...actions.Event) (*actions.Request, error)
	List(keep func(*actions.Request) bool) ([]*actions.Request, error)
	// ListActive is List of the requests not in a terminal state.
	ListActive(keep func(*actions.Request) bool) ([]*actions.Request, error)

	// Events and their delivery.
	AppendEvents(id string, events ...actions.Event) error
	Events(id string) ([]actions.Event, error)
	Undelivered(id string) ([]actions.Event, actions.Cursor, error)
	MarkDelivered(id string, cur actions.Cursor) error
	Outbox() ([]string, error)

	// Checkpoints.
	SaveCheckpoint(id, key string, v any) error
	SaveCheckpointEvents(id, key string, v any, events ...actions.Event) error
	LoadCheckpoint(id, key string, v any) (bool, error)

	// Envelopes.
	ClaimEnvelope(envelopeID string) (bool, error)
	PruneEnvelopes(before time.Time) (int, error)

	// Leases and the writes they fence.
	AcquireLease(name, owner string, ttl time.Duration) (actions.Lease, error)
	RenewLease(l actions.Lease, ttl time.Duration) (actions.Lease, error)
	ReleaseLease(l actions.Lease) error
	UpdateFenced(l actions.Lease, id string, from []actions.State, mutate func(*actions.Request) error, events ...actions.Event) (*actions.Request, error)
	TransitionFenced(l actions.Lease, id string, from []actions.State, to actions.State, mutate func(*actions.Request), events ...actions.Event) (*actions.Request, error)
	AppendEventsFenced(l actions.Lease, id string, events ...actions.Event) error
	SaveCheckpointFenced(l actions.Lease, id, key string, v any) error
	SaveCheckpointEventsFenced(l actions.Lease, id, key string, v any, events ...actions.Event) error

	// Ping writes to the store (readiness).
	Ping(ctx context.Context) error
}

// Open gives two clients of one new, empty store whose clock is now; it
// closes them when t ends.
type Open func(t *testing.T, now func() time.Time) (a, b Backend)

// T0 is the suite's clock at the start of every case.
var T0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// Clock is a settable clock, shared by a case's two clients.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one case's world: two clients and their clock.
type env struct {
	a, b  Backend
	clock *Clock
}

// testCase is one conformance case.
type testCase struct {
	name string
	run  func(t *testing.T, e *env)
}

// Run runs every case, each on a new store from open. It returns how
// many cases ran.
func Run(t *testing.T, open Open) int {
	n := 0
	for _, c := range cases() {
		t.Run(c.name, func(t *testing.T) {
			clock := &Clock{t: T0}
			a, b := open(t, clock.Now)
			c.run(t, &env{a: a, b: b, clock: clock})
		})
		n++
	}
	return n
}

// NewRequest is a pending export request holding locks.
func NewRequest(locks ...string) *actions.Request {
	return &actions.Request{
		Kind:      "export",
		Requester: "U0123",
		Origin:    "C0ORIGIN",
		Args:      json.RawMessage(`{"tables":["prod_txlog"]}`),
		Thread:    actions.Thread{Channel: "C0APPROVE"},
		ExpiresAt: T0.Add(24 * time.Hour),
		Locks:     locks,
	}
}
