package store

import (
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/osio/osio-bot/actions"
)

// AcquireLease takes the lease name for owner for ttl. A lease that is
// free (never taken, released or expired) is taken with the next epoch;
// one that owner holds already is renewed (same epoch); one that another
// owner holds, unexpired, is refused with *actions.LeaseHeld naming it.
func (s *Store) AcquireLease(name, owner string, ttl time.Duration) (actions.Lease, error) {
	if name == "" || owner == "" {
		return actions.Lease{}, fmt.Errorf("acquiring lease %q for %q: name and owner are required", name, owner)
	}
	var out actions.Lease
	err := s.w.do(func(tx *bbolt.Tx) error {
		now := s.now().UTC()
		cur, _, err := getLease(tx, name)
		if err != nil {
			return err
		}
		switch {
		case cur.Owner == owner && cur.Held(now):
			// Renewed: same epoch.
		case cur.Held(now):
			return &actions.LeaseHeld{Current: cur}
		default:
			cur.Epoch++
			cur.Owner = owner
		}
		cur.Name, cur.Expires = name, now.Add(ttl)
		out = cur
		return putLease(tx, cur)
	})
	if err != nil {
		return actions.Lease{}, fmt.Errorf("acquiring lease %s: %w", name, err)
	}
	return out, nil
}

// RenewLease extends l to now+ttl when it is still current (owner and
// epoch unchanged, not expired); otherwise it returns an error wrapping
// actions.ErrLeaseLost and changes nothing.
func (s *Store) RenewLease(l actions.Lease, ttl time.Duration) (actions.Lease, error) {
	var out actions.Lease
	err := s.w.do(func(tx *bbolt.Tx) error {
		now := s.now().UTC()
		if err := checkFence(tx, &l, now); err != nil {
			return err
		}
		out = l
		out.Expires = now.Add(ttl)
		return putLease(tx, out)
	})
	if err != nil {
		return actions.Lease{}, fmt.Errorf("renewing lease %s: %w", l.Name, err)
	}
	return out, nil
}

// ReleaseLease frees l at once (a graceful stop), keeping its epoch so the
// next owner gets a later one. Releasing a lease already released is
// nothing; one that another owner has taken since is actions.ErrLeaseLost.
func (s *Store) ReleaseLease(l actions.Lease) error {
	err := s.w.do(func(tx *bbolt.Tx) error {
		cur, found, err := getLease(tx, l.Name)
		if err != nil {
			return err
		}
		if !found || cur.Epoch != l.Epoch || (cur.Owner != l.Owner && cur.Owner != "") {
			return actions.LostLease(l, fmt.Sprintf("now %q, epoch %d", cur.Owner, cur.Epoch))
		}
		cur.Owner, cur.Expires = "", time.Time{}
		return putLease(tx, cur)
	})
	if err != nil {
		return fmt.Errorf("releasing lease %s: %w", l.Name, err)
	}
	return nil
}

// checkFence fails with actions.ErrLeaseLost unless fence (when not nil)
// is the current lease at now.
func checkFence(tx *bbolt.Tx, fence *actions.Lease, now time.Time) error {
	if fence == nil {
		return nil
	}
	cur, found, err := getLease(tx, fence.Name)
	if err != nil {
		return err
	}
	switch {
	case !found:
		return actions.LostLease(*fence, "no such lease")
	case cur.Owner != fence.Owner || cur.Epoch != fence.Epoch:
		return actions.LostLease(*fence, fmt.Sprintf("now held by %q at epoch %d", cur.Owner, cur.Epoch))
	case !now.Before(cur.Expires):
		return actions.LostLease(*fence, "expired at "+cur.Expires.Format(time.RFC3339Nano))
	}
	return nil
}

func getLease(tx *bbolt.Tx, name string) (actions.Lease, bool, error) {
	v := tx.Bucket(bLeases).Get([]byte(name))
	if v == nil {
		return actions.Lease{Name: name}, false, nil
	}
	var l actions.Lease
	if err := json.Unmarshal(v, &l); err != nil {
		return l, false, fmt.Errorf("decoding lease %s: %w", name, err)
	}
	return l, true, nil
}

func putLease(tx *bbolt.Tx, l actions.Lease) error {
	data, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("encoding lease %s: %w", l.Name, err)
	}
	return tx.Bucket(bLeases).Put([]byte(l.Name), data)
}
