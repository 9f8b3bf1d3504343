package actions

import (
	"errors"
	"fmt"
	"time"
)

// ExpireDue moves every pending request whose ExpiresAt has passed to
// expired, saying so in its thread; it returns their ids.
func ExpireDue(s Store, now time.Time) ([]string, error) {
	due, err := ListActive(s, func(r *Request) bool { return r.State == Pending && !r.ExpiresAt.After(now) })
	if err != nil {
		return nil, fmt.Errorf("listing pending requests: %w", err)
	}
	var ids []string
	for _, r := range due {
		_, err := s.Transition(r.ID, []State{Pending}, Expired, func(q *Request) {
			q.Decision = &Decision{Action: "expired", At: now.UTC()}
		}, Event{Kind: Card}, Event{Kind: Message, Text: fmt.Sprintf(":alarm_clock: %s expired: no decision within the approval window. Nothing ran.", r.ID)})
		var c *StateConflict
		if errors.As(err, &c) {
			continue // decided meanwhile
		}
		if err != nil {
			return ids, fmt.Errorf("expiring %s: %w", r.ID, err)
		}
		ids = append(ids, r.ID)
	}
	return ids, nil
}

// activeLister is a store that reads the active requests (Request.Active)
// without reading every request ever made (the DynamoDB store keeps an
// index).
type activeLister interface {
	ListActive(keep func(*Request) bool) ([]*Request, error)
}

// ListActive lists the active requests (Request.Active: still going, or
// not yet told to their requester) keep accepts, newest first: through the
// store's own index when it has one, else with List. Periodic scans (the
// expiry sweep, the resumer, the recheck of untold outcomes) use it.
func ListActive(s Store, keep func(*Request) bool) ([]*Request, error) {
	if a, ok := s.(activeLister); ok {
		return a.ListActive(keep)
	}
	return s.List(func(r *Request) bool { return r.Active() && keep(r) })
}
