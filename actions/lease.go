package actions

import (
	"errors"
	"fmt"
	"time"
)

// Lease says that one replica (Owner) may act on a resource (Name) until
// Expires: a job ("job:R-000123", JobLease) or a channel's thread delivery
// ("deliver:C123", DeliverLease). Epoch grows by one every time the lease
// changes hands, so that a write fenced by a lease is refused once another
// replica has taken it, even when the first one does not know yet.
type Lease struct {
	Name    string    `json:"name"`
	Owner   string    `json:"owner"`
	Epoch   uint64    `json:"epoch"`
	Expires time.Time `json:"expires"`
}

// Held reports whether the lease is held (by someone) at now.
func (l Lease) Held(now time.Time) bool { return l.Owner != "" && now.Before(l.Expires) }

// JobLease names the lease of a request's job.
func JobLease(requestID string) string { return "job:" + requestID }

// DeliverLease names the lease of a channel's thread delivery.
func DeliverLease(channel string) string { return "deliver:" + channel }

// ErrLeaseHeld is wrapped by *LeaseHeld.
var ErrLeaseHeld = errors.New("lease is held by another owner")

// LeaseHeld is returned by an acquire that finds the lease held, unexpired,
// by another owner; Current is that holder's lease.
type LeaseHeld struct{ Current Lease }

func (e *LeaseHeld) Error() string {
	return fmt.Sprintf("lease %s is held by %s (epoch %d) until %s", e.Current.Name, e.Current.Owner,
		e.Current.Epoch, e.Current.Expires.UTC().Format(time.RFC3339Nano))
}

// Is makes errors.Is(err, ErrLeaseHeld) true.
func (e *LeaseHeld) Is(target error) bool { return target == ErrLeaseHeld }

// ErrLeaseLost is wrapped by every error saying that a lease is no longer
// its holder's: it expired, or another owner took it (a later epoch). A
// renewal and every write fenced by the lease fail with it, and change
// nothing.
var ErrLeaseLost = errors.New("lease lost")

// LeaseLost reports whether err says a lease was lost.
func LeaseLost(err error) bool { return errors.Is(err, ErrLeaseLost) }

// LostLease is the error a store returns for a lease that is not current.
func LostLease(l Lease, why string) error {
	return fmt.Errorf("%w: %s (owner %s, epoch %d): %s", ErrLeaseLost, l.Name, l.Owner, l.Epoch, why)
}
