package bot

import (
	"context"
	"fmt"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/bot/mrkdwn"
)

// PendingCommand is /osio-pending: one place for the interrupt catcher to
// see every request waiting for a decision, whatever its kind.
func (b *Bot) PendingCommand() Command {
	return Command{
		Name:             "/osio-pending",
		Summary:          "lists every request waiting for a decision, of every kind, oldest first.",
		EmptyRunsDefault: true,
		Subs: []Sub{
			{Name: "help", Help: "shows this help."},
			{Help: "lists the requests waiting for an approver, oldest first, with their age, requester and card. Approvers see everyone's; others see their own.", Run: b.Pending},
		},
	}
}

// pendingMaxListed bounds the lines of /osio-pending.
const pendingMaxListed = 30

// Pending lists the requests waiting for a decision, oldest first. A user
// who is not an approver sees only their own, and is told how many others
// wait.
func (b *Bot) Pending(ctx context.Context, inv Invocation) Reply {
	rs, err := actions.ListActive(b.Store, func(r *actions.Request) bool { return r.State == actions.Pending })
	if err != nil {
		b.Log.Error("listing pending requests", zap.Error(err))
		return Reply{Text: readFailedText}
	}
	sort.SliceStable(rs, func(i, j int) bool { return newer(rs[j], rs[i]) }) // oldest first
	// Only approvers see other people's requests, whatever the kind.
	user := inv.Cmd.UserID
	approverOnly := b.viewer(ctx, user)
	mayView := func(k Kind, r *actions.Request) bool {
		k.Public = false
		return user != "" && r.Requester == user || approverOnly(k, r)
	}
	now := b.Now()
	var lines []string
	hidden := 0
	for _, r := range rs {
		k := b.Kinds[r.Kind]
		if !mayView(k, r) {
			hidden++
			continue
		}
		what := r.Kind
		if k.Describe != nil {
			if title, facts := k.Describe(r); len(facts) > 0 {
				what = clip(title+" · "+facts[0], statusMaxFact)
			}
		}
		lines = append(lines, clip(pendingLine(r.ID, what, r.Requester, age(now.Sub(r.CreatedAt)), cardLink(r)), statusMaxLine))
	}
	var text string
	switch {
	case len(lines) == 0 && hidden == 0:
		return Reply{Text: nonePendingText}
	case len(lines) == 0:
		return Reply{Text: noneOfYoursPendingText(hidden)}
	default:
		text = pendingHeadText(len(lines))
	}
	const moreRoom = 120
	listed := 0
	for _, l := range lines {
		if listed == pendingMaxListed || mrkdwn.Len(text)+1+mrkdwn.Len(l) > maxSection-moreRoom {
			break
		}
		text += "\n" + l
		listed++
	}
	if more := len(lines) - listed; more > 0 {
		text += "\n" + pendingMoreText(more)
	}
	if hidden > 0 {
		text += "\n" + pendingHiddenText(hidden)
	}
	return Reply{Text: text}
}

// cardLink links a request's approval card (its thread's first message).
func cardLink(r *actions.Request) string {
	if r.Thread.Permalink != "" {
		return fmt.Sprintf("<%s|card>", r.Thread.Permalink)
	}
	return "(card not posted yet)"
}

// age is a duration as a person reads a wait: "under a minute", "5m",
// "2h 5m", "3d 4h".
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "under a minute"
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	default:
		return fmt.Sprintf("%dd %dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
	}
}
