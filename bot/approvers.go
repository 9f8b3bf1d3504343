package bot

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

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

	mu      sync.Mutex
	members map[string]bool
	fetched time.Time
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

// IsApprover reports whether user is in one of the approver groups.
func (a *Approvers) IsApprover(ctx context.Context, user string) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.members == nil || a.now().Sub(a.fetched) > a.ttl {
		m := map[string]bool{}
		for _, g := range a.groups {
			cctx, cancel := context.WithTimeout(ctx, slackCallTimeout)
			users, err := a.api.GetUserGroupMembersContext(cctx, g)
			cancel()
			if err != nil {
				return false, fmt.Errorf("listing members of user group %s: %w", g, err)
			}
			for _, u := range users {
				m[u] = true
			}
		}
		a.members, a.fetched = m, a.now()
	}
	return a.members[user], nil
}

// Authorize decides whether user may take action (approve, deny, cancel,
// or another approver action) on r.
func (a *Approvers) Authorize(ctx context.Context, user, action string, r *actions.Request) (Verdict, error) {
	if action == "cancel" {
		if user != r.Requester {
			return Verdict{Reason: fmt.Sprintf("Only the requester, <@%s>, can cancel %s. Approvers use Deny.", r.Requester, r.ID)}, nil
		}
		return Verdict{Allowed: true}, nil
	}
	if user == r.Requester {
		return Verdict{Reason: fmt.Sprintf("You asked for %s, so you cannot %s it: another interrupt catcher must.", r.ID, action)}, nil
	}
	ok, err := a.IsApprover(ctx, user)
	if err != nil {
		return Verdict{}, err
	}
	if !ok {
		return Verdict{Reason: fmt.Sprintf("Only members of %s can %s requests; %s is unchanged.", groupMentions(a.groups), action, r.ID)}, nil
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
