package bot

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"golang.org/x/sync/singleflight"

	"github.com/osio/osio-bot/actions"
)

// GroupLister is the one Slack call authorization needs.
type GroupLister interface {
	GetUserGroupMembersContext(ctx context.Context, userGroup string, options ...slack.GetUserGroupMembersOption) ([]string, error)
}

// Approvers answers who may decide on a request: members of the approver
// user groups, looked up live (usergroups.users.list) and cached briefly,
// and never the requester.
type Approvers struct {
	api    GroupLister
	groups []string
	ttl    time.Duration
	now    func() time.Time

	// mu guards the cache only; it is never held across a network call.
	mu      sync.Mutex
	members map[string]bool
	fetched time.Time
	// fetch shares one usergroups.users.list round among concurrent
	// clicks.
	fetch singleflight.Group
}

// NewApprovers builds the authorizer.
func NewApprovers(api GroupLister, groups []string, ttl time.Duration, now func() time.Time) *Approvers {
	return &Approvers{api: api, groups: groups, ttl: ttl, now: now}
}

// Verdict is an authorization answer; Reason explains a refusal to the
// person who clicked. It is not an error: being refused is not a failure.
type Verdict struct {
	Allowed bool
	Reason  string
}

// IsApprover reports whether user is in one of the approver groups. The
// member list is cached for ttl; a stale or missing list is fetched once
// for all concurrent callers (singleflight), and each caller waits for it
// only as long as its own ctx allows. No lock is held while Slack is
// asked, so one slow answer never queues unrelated clicks behind a mutex.
func (a *Approvers) IsApprover(ctx context.Context, user string) (bool, error) {
	a.mu.Lock()
	members, fresh := a.members, a.members != nil && a.now().Sub(a.fetched) <= a.ttl
	a.mu.Unlock()
	if fresh {
		return members[user], nil
	}
	ch := a.fetch.DoChan("members", func() (any, error) {
		// Detached from the first caller's ctx: its cancellation must not
		// fail the others sharing this fetch. Each call has a deadline.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), slackCallTimeout)
		defer cancel()
		m := map[string]bool{}
		for _, g := range a.groups {
			users, err := a.api.GetUserGroupMembersContext(fctx, g)
			if err != nil {
				return nil, fmt.Errorf("listing members of user group %s: %w", g, err)
			}
			for _, u := range users {
				m[u] = true
			}
		}
		a.mu.Lock()
		a.members, a.fetched = m, a.now()
		a.mu.Unlock()
		return m, nil
	})
	select {
	case <-ctx.Done():
		return false, fmt.Errorf("waiting for the approver groups' members: %w", ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return false, res.Err
		}
		return res.Val.(map[string]bool)[user], nil
	}
}

// Authorize decides whether user may take action (approve, deny, cancel,
// or another approver action) on r.
func (a *Approvers) Authorize(ctx context.Context, user, action string, r *actions.Request) (Verdict, error) {
	if action == "cancel" {
		if user != r.Requester {
			return Verdict{Reason: onlyRequesterCancelsText(r.Requester, r.ID)}, nil
		}
		return Verdict{Allowed: true}, nil
	}
	if user == r.Requester {
		return Verdict{Reason: ownRequestText(r.ID, action)}, nil
	}
	ok, err := a.IsApprover(ctx, user)
	if err != nil {
		return Verdict{}, err
	}
	if !ok {
		return Verdict{Reason: notApproverText(groupMentions(a.groups), action, r.ID)}, nil
	}
	return Verdict{Allowed: true}, nil
}

func groupMentions(groups []string) string {
	out := make([]string, len(groups))
	for i, g := range groups {
		out[i] = "<!subteam^" + g + ">"
	}
	return joinOr(out)
}

func joinOr(xs []string) string {
	switch len(xs) {
	case 0:
		return "(no group)"
	case 1:
		return xs[0]
	}
	return fmt.Sprintf("%s or %s", strings.Join(xs[:len(xs)-1], ", "), xs[len(xs)-1])
}
