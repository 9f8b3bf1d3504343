// Package store is osio-bot's durable state: requests, job checkpoints,
// audit events with their delivery cursor, resource locks and seen Slack
// envelope ids. It is embedded (one bbolt file, no server). Every state
// change is a compare-and-set inside one bbolt transaction; bbolt's file
// lock keeps a second process off the same file.
package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/bbolt"

	"github.com/osio/osio-bot/actions"
)

var (
	bRequests    = []byte("requests")
	bEvents      = []byte("events")
	bCursors     = []byte("cursors")
	bOutbox      = []byte("outbox")
	bCheckpoints = []byte("checkpoints")
	bLocks       = []byte("locks")
	bMeta        = []byte("meta")
	bLeases      = []byte("leases")
)

// Store is the bbolt-backed store. It is safe for concurrent use.
type Store struct {
	db  *bbolt.DB
	w   *committer
	now func() time.Time
	// claims are the envelope claims (claims.go), used in the committer's
	// transactions only.
	claims *claimSet
}

// Options tune Open.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Open opens (or creates) the store file at path. It fails after 5s if
// another process holds the file, and with a *CorruptError (naming the
// file and how to recover) when the file is damaged: every page is read
// here, so that damage stops the start instead of panicking a later write.
// A file from before width-independent request keys is migrated.
func Open(path string, o Options) (*Store, error) {
	db, err := openBolt(path, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	if problems := verify(db); len(problems) > 0 {
		db.Close()
		return nil, &CorruptError{Path: path, Problems: problems}
	}
	var claims *claimSet
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bRequests, bEvents, bCursors, bOutbox, bCheckpoints, bLocks, bEnvelopes, bMeta, bLeases} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if err := migrate(tx); err != nil {
			return err
		}
		claims = loadClaims(tx)
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialising store %s: %w", path, err)
	}
	s := &Store{db: db, w: &committer{db: db, begin: claims.begin, committed: claims.commit}, now: o.Now, claims: claims}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Path is the file's path.
func (s *Store) Path() string { return s.db.Path() }

// Create stores a new pending request r, claiming envelopeID and r.Locks,
// and appends events, all in one transaction. A seen envelope returns the
// request it created (Duplicate); a held lock returns LockedBy and creates
// nothing. r.ID, CreatedAt, UpdatedAt and Version are set here.
func (s *Store) Create(r *actions.Request, envelopeID string, events ...actions.Event) (actions.Created, error) {
	var res actions.Created
	err := s.w.do(func(tx *bbolt.Tx) error {
		res = actions.Created{}
		if envelopeID != "" {
			if id, ok := s.claims.get("slash:" + envelopeID); ok {
				prev, err := getReq(tx, string(id))
				if err != nil {
					return err
				}
				res.Request, res.Duplicate = prev, true
				return nil
			}
		}
		for _, l := range r.Locks {
			if holder := tx.Bucket(bLocks).Get([]byte(l)); holder != nil {
				h, err := getReq(tx, string(holder))
				if err != nil {
					return err
				}
				if res.LockedBy == nil {
					res.LockedBy = map[string]*actions.Request{}
				}
				res.LockedBy[l] = h
			}
		}
		if len(res.LockedBy) > 0 {
			return nil
		}
		seq, err := tx.Bucket(bRequests).NextSequence()
		if err != nil {
			return err
		}
		nr := *r
		nr.ID = formatID(seq)
		now := s.now().UTC()
		nr.CreatedAt, nr.UpdatedAt, nr.Version = now, now, 1
		if nr.State == "" {
			nr.State = actions.Pending
		}
		if err := putReq(tx, &nr); err != nil {
			return err
		}
		for _, l := range nr.Locks {
			if err := tx.Bucket(bLocks).Put([]byte(l), []byte(nr.ID)); err != nil {
				return err
			}
		}
		if envelopeID != "" {
			if err := s.claims.put(tx, "slash:"+envelopeID, []byte(nr.ID), now); err != nil {
				return err
			}
		}
		if err := appendEvents(tx, nr.ID, now, events); err != nil {
			return err
		}
		res.Request = &nr
		return nil
	})
	if err != nil {
		return actions.Created{}, fmt.Errorf("creating request: %w", err)
	}
	return res, nil
}

// Get returns the request with id, or actions.ErrNotFound.
func (s *Store) Get(id string) (*actions.Request, error) {
	var r *actions.Request
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		r, err = getReq(tx, id)
		return err
	})
	return r, err
}

// Update is the compare-and-set: when the request is in one of from (any
// state if from is empty), mutate changes it and events are appended, all
// in one transaction. Otherwise it returns *actions.StateConflict and
// changes nothing. A request that reaches a terminal state releases its
// locks; one that leaves a terminal state (an approver's retry, e.g.
// Resend) takes them back in the same transaction, or, when another
// request holds any of them, changes nothing and returns
// *actions.LockConflict naming the holders. So does a request that is
// still going when mutate changes its Locks (an intake whose check named
// what it works on): it takes the new ones, or nothing changes, and
// releases those it no longer names.
func (s *Store) Update(id string, from []actions.State, mutate func(*actions.Request) error, events ...actions.Event) (*actions.Request, error) {
	return s.update(nil, id, from, mutate, events)
}

// UpdateFenced is Update fenced by lease l: it changes nothing and
// returns an error wrapping actions.ErrLeaseLost unless l is current
// (same name, owner and epoch, unexpired) when it writes.
func (s *Store) UpdateFenced(l actions.Lease, id string, from []actions.State, mutate func(*actions.Request) error, events ...actions.Event) (*actions.Request, error) {
	return s.update(&l, id, from, mutate, events)
}

func (s *Store) update(fence *actions.Lease, id string, from []actions.State, mutate func(*actions.Request) error, events []actions.Event) (*actions.Request, error) {
	var out *actions.Request
	err := s.w.do(func(tx *bbolt.Tx) error {
		out = nil
		now := s.now().UTC()
		if err := checkFence(tx, fence, now); err != nil {
			return err
		}
		r, err := getReq(tx, id)
		if err != nil {
			return err
		}
		if len(from) > 0 && !slices.Contains(from, r.State) {
			return &actions.StateConflict{ID: id, Current: r}
		}
		wasTerminal := r.State.Terminal()
		oldLocks := slices.Clone(r.Locks)
		if mutate != nil {
			if err := mutate(r); err != nil {
				return err
			}
		}
		if !r.State.Terminal() && (wasTerminal || !slices.Equal(oldLocks, r.Locks)) {
			if err := relock(tx, r); err != nil {
				return err
			}
			for _, l := range oldLocks {
				if !slices.Contains(r.Locks, l) && string(tx.Bucket(bLocks).Get([]byte(l))) == r.ID {
					if err := tx.Bucket(bLocks).Delete([]byte(l)); err != nil {
						return err
					}
				}
			}
		}
		r.UpdatedAt = now
		r.Version++
		if r.State.Terminal() {
			for _, l := range r.Locks {
				if string(tx.Bucket(bLocks).Get([]byte(l))) == r.ID {
					if err := tx.Bucket(bLocks).Delete([]byte(l)); err != nil {
						return err
					}
				}
			}
		}
		if err := putReq(tx, r); err != nil {
			return err
		}
		if err := appendEvents(tx, id, now, events); err != nil {
			return err
		}
		out = r
		return nil
	})
	return out, err
}

// relock takes r's locks back for it. A lock held by another request
// that is still going is a conflict; one left behind by an ended or
// missing request is taken over.
func relock(tx *bbolt.Tx, r *actions.Request) error {
	locks := tx.Bucket(bLocks)
	held := map[string]*actions.Request{}
	for _, l := range r.Locks {
		h := locks.Get([]byte(l))
		if h == nil || string(h) == r.ID {
			continue
		}
		holder, err := getReq(tx, string(h))
		if errors.Is(err, actions.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if !holder.State.Terminal() {
			held[l] = holder
		}
	}
	if len(held) > 0 {
		return &actions.LockConflict{ID: r.ID, LockedBy: held}
	}
	for _, l := range r.Locks {
		if err := locks.Put([]byte(l), []byte(r.ID)); err != nil {
			return err
		}
	}
	return nil
}

// Transition moves a request from one of from to to; see Update.
func (s *Store) Transition(id string, from []actions.State, to actions.State, mutate func(*actions.Request), events ...actions.Event) (*actions.Request, error) {
	return s.update(nil, id, from, transition(to, mutate), events)
}

// TransitionFenced is Transition fenced by lease l (see UpdateFenced).
func (s *Store) TransitionFenced(l actions.Lease, id string, from []actions.State, to actions.State, mutate func(*actions.Request), events ...actions.Event) (*actions.Request, error) {
	return s.update(&l, id, from, transition(to, mutate), events)
}

func transition(to actions.State, mutate func(*actions.Request)) func(*actions.Request) error {
	return func(r *actions.Request) error {
		r.State = to
		if mutate != nil {
			mutate(r)
		}
		return nil
	}
}

// List returns the requests keep accepts, newest first.
func (s *Store) List(keep func(*actions.Request) bool) ([]*actions.Request, error) {
	var out []*actions.Request
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bRequests).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var r actions.Request
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decoding request under key %x: %w", k, err)
			}
			if keep == nil || keep(&r) {
				out = append(out, &r)
			}
		}
		return nil
	})
	return out, err
}

// ListActive returns the active requests (actions.Request.Active: still
// going, or not yet told to their requester) that keep accepts, newest
// first: what the expiry sweeper, the runner's resume scan and the recheck
// of untold outcomes look at. (The DynamoDB store reads only those; here
// it is List.)
func (s *Store) ListActive(keep func(*actions.Request) bool) ([]*actions.Request, error) {
	return s.List(func(r *actions.Request) bool { return r.Active() && (keep == nil || keep(r)) })
}

// AppendEvents stores events for request id, to be delivered in order.
func (s *Store) AppendEvents(id string, events ...actions.Event) error {
	return s.appendEvents(nil, id, events)
}

// AppendEventsFenced is AppendEvents fenced by lease l (see UpdateFenced).
func (s *Store) AppendEventsFenced(l actions.Lease, id string, events ...actions.Event) error {
	return s.appendEvents(&l, id, events)
}

func (s *Store) appendEvents(fence *actions.Lease, id string, events []actions.Event) error {
	return s.w.do(func(tx *bbolt.Tx) error {
		now := s.now().UTC()
		if err := checkFence(tx, fence, now); err != nil {
			return err
		}
		return appendEvents(tx, id, now, events)
	})
}

// Cursor is how far a request's events have reached its thread (see
// actions.Cursor).
type Cursor = actions.Cursor

// Undelivered returns the request's events after its cursor, in order,
// and the cursor.
func (s *Store) Undelivered(id string) ([]actions.Event, Cursor, error) {
	var evs []actions.Event
	var cur Cursor
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		cur, err = getCursor(tx, id)
		if err != nil {
			return err
		}
		evs, err = readEvents(tx, id, cur.Delivered)
		return err
	})
	return evs, cur, err
}

// Events returns every event of the request, in order.
func (s *Store) Events(id string) ([]actions.Event, error) {
	var evs []actions.Event
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		evs, err = readEvents(tx, id, 0)
		return err
	})
	return evs, err
}

// MarkDelivered advances the request's cursor; once it reaches the last
// event the request leaves the outbox.
func (s *Store) MarkDelivered(id string, cur Cursor) error {
	return s.w.do(func(tx *bbolt.Tx) error {
		data, _ := json.Marshal(cur)
		if err := tx.Bucket(bCursors).Put([]byte(id), data); err != nil {
			return err
		}
		eb := tx.Bucket(bEvents).Bucket([]byte(id))
		if eb == nil || eb.Sequence() <= cur.Delivered {
			return tx.Bucket(bOutbox).Delete([]byte(id))
		}
		return nil
	})
}

// Outbox returns the ids of requests with undelivered events, oldest
// request first.
func (s *Store) Outbox() ([]string, error) {
	var ids []string
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bOutbox).ForEach(func(k, _ []byte) error {
			ids = append(ids, string(k))
			return nil
		})
	})
	slices.SortFunc(ids, compareIDs)
	return ids, err
}

// SaveCheckpoint durably records v under the request's key.
func (s *Store) SaveCheckpoint(id, key string, v any) error {
	return s.saveCheckpoint(nil, id, key, v, nil)
}

// SaveCheckpointFenced is SaveCheckpoint fenced by lease l (see
// UpdateFenced).
func (s *Store) SaveCheckpointFenced(l actions.Lease, id, key string, v any) error {
	return s.saveCheckpoint(&l, id, key, v, nil)
}

// SaveCheckpointEventsFenced is SaveCheckpointEvents fenced by lease l
// (see UpdateFenced).
func (s *Store) SaveCheckpointEventsFenced(l actions.Lease, id, key string, v any, events ...actions.Event) error {
	return s.saveCheckpoint(&l, id, key, v, events)
}

func (s *Store) saveCheckpoint(fence *actions.Lease, id, key string, v any, events []actions.Event) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding checkpoint %s/%s: %w", id, key, err)
	}
	return s.w.do(func(tx *bbolt.Tx) error {
		now := s.now().UTC()
		if err := checkFence(tx, fence, now); err != nil {
			return err
		}
		b, err := tx.Bucket(bCheckpoints).CreateBucketIfNotExists([]byte(id))
		if err != nil {
			return err
		}
		if err := b.Put([]byte(key), data); err != nil {
			return err
		}
		return appendEvents(tx, id, now, events)
	})
}

// SaveCheckpointEvents records v under the request's key and appends
// events, as AppendEvents does (to be delivered in order, the request put
// in the outbox), in one transaction: both are written or neither, so a
// step's checkpoint never outlives the thread message saying it was done.
func (s *Store) SaveCheckpointEvents(id, key string, v any, events ...actions.Event) error {
	return s.saveCheckpoint(nil, id, key, v, events)
}

// LoadCheckpoint reads the request's key into v; false when none.
func (s *Store) LoadCheckpoint(id, key string, v any) (bool, error) {
	var data []byte
	err := s.db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(bCheckpoints).Bucket([]byte(id)); b != nil {
			data = slices.Clone(b.Get([]byte(key)))
		}
		return nil
	})
	if err != nil || data == nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("decoding checkpoint %s/%s: %w", id, key, err)
	}
	return true, nil
}

func getReq(tx *bbolt.Tx, id string) (*actions.Request, error) {
	k, ok := reqKey(id)
	var v []byte
	if ok {
		v = tx.Bucket(bRequests).Get(k)
	}
	if v == nil {
		return nil, fmt.Errorf("%w: %s", actions.ErrNotFound, id)
	}
	var r actions.Request
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("decoding request %s: %w", id, err)
	}
	return &r, nil
}

func putReq(tx *bbolt.Tx, r *actions.Request) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding request %s: %w", r.ID, err)
	}
	k, ok := reqKey(r.ID)
	if !ok {
		return fmt.Errorf("storing request: malformed id %q", r.ID)
	}
	return tx.Bucket(bRequests).Put(k, data)
}

func appendEvents(tx *bbolt.Tx, id string, now time.Time, events []actions.Event) error {
	if len(events) == 0 {
		return nil
	}
	b, err := tx.Bucket(bEvents).CreateBucketIfNotExists([]byte(id))
	if err != nil {
		return err
	}
	prev := ""
	if _, v := b.Cursor().Last(); v != nil {
		var last actions.Event
		if err := json.Unmarshal(v, &last); err != nil {
			return fmt.Errorf("decoding the last event of %s: %w", id, err)
		}
		prev = last.Hash
	}
	for _, e := range events {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.Seq = seq
		if e.At.IsZero() {
			e.At = now
		}
		actions.Chain(prev, &e)
		prev = e.Hash
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := b.Put(seqKey(seq), data); err != nil {
			return err
		}
	}
	return tx.Bucket(bOutbox).Put([]byte(id), []byte{1})
}

func readEvents(tx *bbolt.Tx, id string, after uint64) ([]actions.Event, error) {
	b := tx.Bucket(bEvents).Bucket([]byte(id))
	if b == nil {
		return nil, nil
	}
	var out []actions.Event
	c := b.Cursor()
	for k, v := c.Seek(seqKey(after + 1)); k != nil; k, v = c.Next() {
		var e actions.Event
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("decoding event %s/%d: %w", id, binary.BigEndian.Uint64(k), err)
		}
		out = append(out, e)
	}
	return out, nil
}

func getCursor(tx *bbolt.Tx, id string) (Cursor, error) {
	var c Cursor
	if v := tx.Bucket(bCursors).Get([]byte(id)); v != nil {
		if err := json.Unmarshal(v, &c); err != nil {
			return c, fmt.Errorf("decoding cursor %s: %w", id, err)
		}
	}
	return c, nil
}

func seqKey(n uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, n)
	return k
}

// IsConflict reports whether err is a compare-and-set conflict, and
// returns it (see actions.IsConflict).
func IsConflict(err error) (*actions.StateConflict, bool) { return actions.IsConflict(err) }
