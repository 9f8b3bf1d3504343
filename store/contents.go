package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/bbolt"

	"github.com/osio/osio-bot/actions"
)

// Contents is everything a store holds, as plain values, for moving a
// running bot's state to another backend (`osio-bot store migrate`): its
// requests with their events and cursors, checkpoints, locks, envelope
// claims, leases and the request number sequence.
type Contents struct {
	// Requests, oldest first, each with its Version.
	Requests []*actions.Request
	// Events of each request id, in order, and the last event number taken.
	Events    map[string][]actions.Event
	EventSeqs map[string]uint64
	// Cursors of each request id whose delivery has moved.
	Cursors map[string]actions.Cursor
	// Outbox holds the ids of requests with undelivered events.
	Outbox []string
	// Checkpoints maps a request id to its checkpoints (key to JSON).
	Checkpoints map[string]map[string]json.RawMessage
	// Locks maps a resource to the id of the request holding it.
	Locks map[string]string
	// Envelopes maps a claimed envelope ("slash:<id>" or "click:<id>") to
	// its claim.
	Envelopes map[string]EnvelopeClaim
	// Leases, as they were (a migration is done with the bots stopped, so
	// they are expired or released; they keep their epochs).
	Leases []actions.Lease
	// Sequence is the last request number taken (the next id is
	// Sequence+1).
	Sequence uint64
}

// EnvelopeClaim is one claimed Slack envelope.
type EnvelopeClaim struct {
	// Request is the request a slash command's envelope created.
	Request string
	// At is when it was claimed (zero when unknown).
	At time.Time
}

// Export reads the whole store, in one read transaction.
func (s *Store) Export() (*Contents, error) {
	c := &Contents{
		Events: map[string][]actions.Event{}, EventSeqs: map[string]uint64{}, Cursors: map[string]actions.Cursor{},
		Checkpoints: map[string]map[string]json.RawMessage{}, Locks: map[string]string{}, Envelopes: map[string]EnvelopeClaim{},
	}
	err := s.db.View(func(tx *bbolt.Tx) error {
		rb := tx.Bucket(bRequests)
		c.Sequence = rb.Sequence()
		err := rb.ForEach(func(k, v []byte) error {
			var r actions.Request
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decoding request under key %x: %w", k, err)
			}
			c.Requests = append(c.Requests, &r)
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(bEvents).ForEachBucket(func(id []byte) error {
			evs, err := readEvents(tx, string(id), 0)
			if err != nil {
				return err
			}
			c.Events[string(id)] = evs
			c.EventSeqs[string(id)] = tx.Bucket(bEvents).Bucket(id).Sequence()
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(bCursors).ForEach(func(k, _ []byte) error {
			cur, err := getCursor(tx, string(k))
			c.Cursors[string(k)] = cur
			return err
		})
		if err != nil {
			return err
		}
		_ = tx.Bucket(bOutbox).ForEach(func(k, _ []byte) error {
			c.Outbox = append(c.Outbox, string(k))
			return nil
		})
		err = tx.Bucket(bCheckpoints).ForEachBucket(func(id []byte) error {
			m := map[string]json.RawMessage{}
			c.Checkpoints[string(id)] = m
			return tx.Bucket(bCheckpoints).Bucket(id).ForEach(func(k, v []byte) error {
				m[string(k)] = slices.Clone(v)
				return nil
			})
		})
		if err != nil {
			return err
		}
		_ = tx.Bucket(bLocks).ForEach(func(k, v []byte) error {
			c.Locks[string(k)] = string(v)
			return nil
		})
		_ = tx.Bucket(bMeta).Bucket(bClaims).ForEach(func(k, v []byte) error {
			at, key, ok := splitTimeKey(k)
			if !ok {
				return nil
			}
			claim := EnvelopeClaim{At: at}
			if len(key) > 6 && string(key[:6]) == "slash:" {
				claim.Request = string(v)
			}
			c.Envelopes[string(key)] = claim
			return nil
		})
		return tx.Bucket(bLeases).ForEach(func(k, _ []byte) error {
			l, _, err := getLease(tx, string(k))
			c.Leases = append(c.Leases, l)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("exporting store %s: %w", s.Path(), err)
	}
	slices.SortFunc(c.Outbox, compareIDs)
	return c, nil
}
