package store

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"go.etcd.io/bbolt"

	"github.com/osio/osio-bot/actions"
)

// pruneBatch bounds the requests one pruning transaction removes, so that
// a first prune of a large store does not hold the write lock for long.
const pruneBatch = 1000

// Prune removes the requests that ended (a terminal state) before cutoff,
// by their last change, with their events, delivery cursor, checkpoints
// and outbox entry (store.retention). may, when set, must agree to each
// removal: with audit.s3_uri, only a request whose record is written there
// may go. It returns how many requests it removed. The file does not
// shrink by itself: bbolt reuses the freed pages; `osio-bot store compact`
// gives them back.
func (s *Store) Prune(cutoff time.Time, may func(*actions.Request) bool) (int, error) {
	var ids []string
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bRequests).ForEach(func(k, v []byte) error {
			var r actions.Request
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decoding request under key %x: %w", k, err)
			}
			if r.State.Terminal() && r.UpdatedAt.Before(cutoff) && (may == nil || may(&r)) {
				ids = append(ids, r.ID)
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("pruning: %w", err)
	}
	removed := 0
	for len(ids) > 0 {
		n := min(len(ids), pruneBatch)
		batch := ids[:n]
		ids = ids[n:]
		err := s.w.do(func(tx *bbolt.Tx) error {
			for _, id := range batch {
				k, ok := reqKey(id)
				if !ok {
					continue
				}
				// Still ended (nothing resurrects an ended request today,
				// but a retry of a failed one would).
				r, err := getReq(tx, id)
				if err != nil || !r.State.Terminal() {
					continue
				}
				if err := tx.Bucket(bRequests).Delete(k); err != nil {
					return err
				}
				for _, b := range [][]byte{bEvents, bCheckpoints} {
					if tx.Bucket(b).Bucket([]byte(id)) != nil {
						if err := tx.Bucket(b).DeleteBucket([]byte(id)); err != nil {
							return err
						}
					}
				}
				for _, b := range [][]byte{bCursors, bOutbox} {
					if err := tx.Bucket(b).Delete([]byte(id)); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return removed, fmt.Errorf("pruning: %w", err)
		}
		removed += n
	}
	return removed, nil
}

// Compact copies the store file at path into a new, compact file (bbolt's
// compaction: live pages only, freed space given back) and puts it in
// place; the original is kept as path+".before-compact". The bot must be
// stopped (the open fails after 5 s while it holds the file). It returns
// the sizes before and after.
func Compact(path string) (before, after int64, err error) {
	src, err := openBolt(path, &bbolt.Options{Timeout: 5 * time.Second, ReadOnly: true})
	if err != nil {
		return 0, 0, err
	}
	defer src.Close()
	tmp := path + ".compacting"
	_ = os.Remove(tmp)
	dst, err := bbolt.Open(tmp, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return 0, 0, err
	}
	if err := bbolt.Compact(dst, src, 64<<20); err != nil {
		dst.Close()
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("compacting %s: %w", path, err)
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return 0, 0, err
	}
	check, err := openBolt(tmp, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		os.Remove(tmp)
		return 0, 0, err
	}
	problems := verify(check)
	check.Close()
	if len(problems) > 0 {
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("the compacted copy of %s does not check: %v", path, problems)
	}
	src.Close()
	if err := os.Rename(path, path+".before-compact"); err != nil {
		return 0, 0, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, 0, err
	}
	return fileSize(path + ".before-compact"), fileSize(path), nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
