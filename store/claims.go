package store

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/bbolt"
)

// Envelope claims: a Slack envelope acted on is claimed, so that a
// redelivery of it is not acted on again ("slash:ID", whose value is the
// request the command made, and "click:ID", whose value is 1).
//
// On disk the claims are one bucket in time order, bClaims (in bMeta):
// each key is the claim's time (timeKey) followed by the claim's key, and
// the value is the claim's. A claim is looked up by its envelope id in
// memory (Store.claims), filled from bClaims when the store opens: the
// claims are a day's envelopes at most (PruneEnvelopes), a few hundred
// bytes each.
//
// Why not a bucket keyed by envelope id, as schema 2 had (bEnvelopes,
// with the times in a second bucket keyed the same way): Slack's envelope
// ids are random UUIDs, so each claim went into a page of its own in
// each bucket, and a commit of 25 intakes rewrote some 50 pages where the
// rest of an intake appends. In time order the claims of a commit go on
// the last page. BenchmarkIntakeWrite (2,000 intakes, 50 in flight,
// medians of 18 runs): 222 ms with schema 2's buckets, 153 ms with the
// claims in time order (docs/benchmarks.md).
var (
	bClaims = []byte("claims")
	// Schema 2's, migrated into bClaims on open (migrateClaims).
	bEnvelopes        = []byte("envelopes")
	bOldEnvelopeTimes = []byte("envelope_times")
)

// claimSet is the claims in memory, and what the transaction being built
// changes in them. Only the committer's goroutine uses it once the store
// is open (every claim is read and written in a write transaction), so
// it has no lock: begin and commit are the committer's hooks.
type claimSet struct {
	committed map[string][]byte
	// of the transaction being built: claims added, and claims removed.
	added   map[string][]byte
	removed map[string]bool
}

func (c *claimSet) begin() { c.added, c.removed = nil, nil }

// commit makes the transaction's changes the committed ones; called once
// it is on disk.
func (c *claimSet) commit() {
	for k := range c.removed {
		delete(c.committed, k)
	}
	for k, v := range c.added {
		c.committed[k] = v
	}
	c.added, c.removed = nil, nil
}

func (c *claimSet) get(key string) ([]byte, bool) {
	if v, ok := c.added[key]; ok {
		return v, true
	}
	if c.removed[key] {
		return nil, false
	}
	v, ok := c.committed[key]
	return v, ok
}

// put claims key at at in tx (the caller has looked it up: a key is
// claimed once).
func (c *claimSet) put(tx *bbolt.Tx, key string, value []byte, at time.Time) error {
	b := tx.Bucket(bMeta).Bucket(bClaims)
	b.FillPercent = 0.95 // appended to: full pages, not half ones
	if err := b.Put(timeKey(at, key), value); err != nil {
		return err
	}
	if c.added == nil {
		c.added = map[string][]byte{}
	}
	c.added[key] = slices.Clone(value)
	return nil
}

func (c *claimSet) remove(key string) {
	if c.removed == nil {
		c.removed = map[string]bool{}
	}
	c.removed[key] = true
	delete(c.added, key)
}

// load reads every claim from tx.
func loadClaims(tx *bbolt.Tx) *claimSet {
	c := &claimSet{committed: map[string][]byte{}}
	_ = tx.Bucket(bMeta).Bucket(bClaims).ForEach(func(k, v []byte) error {
		if _, key, ok := splitTimeKey(k); ok {
			c.committed[string(key)] = slices.Clone(v)
		}
		return nil
	})
	return c
}

// ClaimEnvelope records a Slack envelope id; it returns false when the id
// was claimed before, so a redelivered envelope is acted on once.
func (s *Store) ClaimEnvelope(envelopeID string) (bool, error) {
	var first bool
	err := s.w.do(func(tx *bbolt.Tx) error {
		key := "click:" + envelopeID
		if _, ok := s.claims.get(key); ok {
			first = false
			return nil
		}
		first = true
		return s.claims.put(tx, key, []byte{1}, s.now().UTC())
	})
	return first, err
}

// PruneEnvelopes forgets envelope ids claimed before t (Slack retries
// within minutes, so a day is plenty). The claims are read in time order,
// up to the first one at or after t.
func (s *Store) PruneEnvelopes(t time.Time) (int, error) {
	n := 0
	err := s.w.do(func(tx *bbolt.Tx) error {
		n = 0
		b := tx.Bucket(bMeta).Bucket(bClaims)
		var old [][]byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if at, _, ok := splitTimeKey(k); ok && !at.Before(t) {
				break
			}
			old = append(old, slices.Clone(k))
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
			if _, key, ok := splitTimeKey(k); ok {
				s.claims.remove(string(key))
			}
			n++
		}
		return nil
	})
	return n, err
}

// timeKey is at (Unix nanoseconds, 8 bytes big-endian: they sort as the
// times do; a time before 1970, or the zero time, as 0) followed by key.
func timeKey(at time.Time, key string) []byte {
	var ns uint64
	if at.After(time.Unix(0, 0)) {
		ns = uint64(at.UnixNano())
	}
	k := make([]byte, 8, 8+len(key))
	binary.BigEndian.PutUint64(k, ns)
	return append(k, key...)
}

// splitTimeKey is timeKey's inverse; the time is zero when it was not
// known.
func splitTimeKey(k []byte) (time.Time, []byte, bool) {
	if len(k) < 8 {
		return time.Time{}, nil, false
	}
	ns := binary.BigEndian.Uint64(k)
	if ns == 0 {
		return time.Time{}, k[8:], true
	}
	return time.Unix(0, int64(ns)).UTC(), k[8:], true
}

// migrateClaims moves schema 2's claims (bEnvelopes: key -> value, and
// bOldEnvelopeTimes in bMeta: key -> time.MarshalBinary) into bClaims,
// and empties the old buckets. A claim with no time, or one that does not
// decode, gets the zero time: it is pruned at the next pass, as a
// day-old one would be. It runs whatever the file's version says: a
// binary from before schema 3, run on a newer file, claims into the old
// buckets, and those claims are not lost. (Such a binary does not see the
// claims in bClaims: for the day they last, it would act on an envelope
// Slack redelivers again. Downgrading is that risk.)
func migrateClaims(tx *bbolt.Tx) error {
	meta := tx.Bucket(bMeta)
	claims, err := meta.CreateBucketIfNotExists(bClaims)
	if err != nil {
		return err
	}
	old := tx.Bucket(bEnvelopes)
	times := meta.Bucket(bOldEnvelopeTimes)
	if old == nil {
		return nil
	}
	var keys [][]byte
	err = old.ForEach(func(k, v []byte) error {
		var at time.Time
		if times != nil {
			if t := times.Get(k); t != nil {
				_ = at.UnmarshalBinary(t)
			}
		}
		keys = append(keys, slices.Clone(k))
		return claims.Put(timeKey(at, string(k)), slices.Clone(v))
	})
	if err != nil {
		return fmt.Errorf("migrating envelope claims: %w", err)
	}
	for _, k := range keys {
		if err := old.Delete(k); err != nil {
			return err
		}
	}
	if times != nil {
		return meta.DeleteBucket(bOldEnvelopeTimes)
	}
	return nil
}
