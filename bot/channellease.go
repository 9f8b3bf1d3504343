package bot

import (
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions"
)

// ChannelLeases is what the reporter needs to share delivery with other
// replicas on one store: one replica at a time posts to a channel, so its
// threads stay in order and its rate stays under one post per
// MinInterval across replicas.
type ChannelLeases interface {
	AcquireLease(name, owner string, ttl time.Duration) (actions.Lease, error)
	ReleaseLease(l actions.Lease) error
}

// skewMargin widens "older than the channel's lease" for the replicas'
// clocks: an event about that old may have been posted by the replica
// that held the channel before, so it is looked for before it is posted.
const skewMargin = 2 * time.Second

// channelHolds are the channel leases a reporter holds.
type channelHolds struct {
	ls    ChannelLeases
	owner string
	ttl   time.Duration
	log   *zap.Logger

	mu   sync.Mutex
	held map[string]*channelHold
}

type channelHold struct {
	l     actions.Lease
	since time.Time // held without a break since
	used  time.Time // last hold for a delivery
}

// hold makes sure this replica holds channel's lease for a while yet. ok
// false: another replica holds it until the returned time (it delivers
// the channel meanwhile). since is when this replica's hold began: events
// older than it may have been posted by the previous holder.
func (c *channelHolds) hold(channel string, now time.Time) (ok bool, since, until time.Time, err error) {
	c.mu.Lock()
	h := c.held[channel]
	c.mu.Unlock()
	if h != nil && h.l.Expires.Sub(now) > 2*c.ttl/3 {
		c.mu.Lock()
		h.used = now
		c.mu.Unlock()
		return true, h.since, time.Time{}, nil
	}
	l, err := c.ls.AcquireLease(actions.DeliverLease(channel), c.owner, c.ttl)
	if held, ok := errors.AsType[*actions.LeaseHeld](err); ok {
		c.mu.Lock()
		delete(c.held, channel)
		c.mu.Unlock()
		return false, time.Time{}, held.Current.Expires, nil
	}
	if err != nil {
		return false, time.Time{}, time.Time{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if h = c.held[channel]; h == nil || h.l.Epoch != l.Epoch {
		h = &channelHold{since: now}
		c.held[channel] = h
		c.log.Debug("delivering the channel's threads", zap.String("channel", channel), zap.Uint64("epoch", l.Epoch))
	}
	h.l, h.used = l, now
	return true, h.since, time.Time{}, nil
}

// release lets go of the channels not used for a delivery since idle
// for which keep is false (all, when keep is nil), so that another
// replica, woken by its own events, delivers them at once.
func (c *channelHolds) release(idle time.Time, keep func(channel string) bool) {
	c.mu.Lock()
	var drop []actions.Lease
	for ch, h := range c.held {
		if keep == nil || h.used.Before(idle) && !keep(ch) {
			drop = append(drop, h.l)
			delete(c.held, ch)
		}
	}
	c.mu.Unlock()
	for _, l := range drop {
		if err := c.ls.ReleaseLease(l); err != nil && !actions.LeaseLost(err) {
			c.log.Warn("releasing a channel's delivery lease; another replica delivers it once the lease expires", zap.String("lease", l.Name), zap.Error(err))
		}
	}
}
