package bot

import (
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/osio/osio-bot/actions"
)

// Action ids of the buttons.
const (
	ActionApprove = "approve"
	ActionDeny    = "deny"
	ActionCancel  = "cancel"
	ActionRetry   = "retry"
)

// Describer gives a request kind's title and its facts for the card.
type Describer func(r *actions.Request) (title string, facts []string)

// cardRenderer renders approval cards from the request kinds.
type cardRenderer struct {
	kinds  map[string]Kind
	groups []string
}

func (c cardRenderer) render(r *actions.Request) (string, []slack.Block) {
	title, facts := r.Kind, []string(nil)
	k, ok := c.kinds[r.Kind]
	if ok && k.Describe != nil {
		title, facts = k.Describe(r)
	}
	summary := fmt.Sprintf("%s request %s by <@%s>: %s", title, r.ID, r.Requester, r.State)
	lines := append([]string{fmt.Sprintf("*Requester:* <@%s>", r.Requester)}, facts...)
	blocks := []slack.Block{
		slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, clip(fmt.Sprintf("%s · %s", title, r.ID), 140), false, false)),
		slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, clip(strings.Join(lines, "\n"), maxSection), false, false), nil, nil),
	}
	if len(r.Plan) > 0 {
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType,
			clip("*Plan:*\n"+strings.Join(r.Plan, "\n"), maxSection), false, false), nil, nil))
	} else if !r.Planned {
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "_Planning…_", false, false), nil, nil))
	}
	blocks = append(blocks, slack.NewContextBlock("state", slack.NewTextBlockObject(slack.MarkdownType, clip(stateLine(r, c.groups), maxSection), false, false)))
	if r.State == actions.Pending {
		opts, named := []Option{{Label: "Approve"}}, false
		if ok && k.Options != nil {
			opts, named = k.Options(r), true
		}
		var buttons []slack.BlockElement
		for _, o := range opts {
			value, label := r.ID, o.Label
			if o.Value != "" {
				value = r.ID + "/" + o.Value
			}
			if o.Recommended {
				label += recommendedSuffix
			}
			approve := slack.NewButtonBlockElement(ActionApprove, value, slack.NewTextBlockObject(slack.PlainTextType, clip(label, 70), false, false))
			if o.Recommended || len(opts) == 1 {
				approve = approve.WithStyle(slack.StylePrimary)
			}
			method := ""
			if named {
				method = o.Label
			}
			approve.Confirm = approveDialog(r.ID, title, r.Requester, method, r.What).block()
			buttons = append(buttons, approve)
		}
		deny := slack.NewButtonBlockElement(ActionDeny, r.ID, slack.NewTextBlockObject(slack.PlainTextType, denyLabel, false, false)).WithStyle(slack.StyleDanger)
		deny.Confirm = denyDialog(r.ID).block()
		blocks = append(blocks, slack.NewActionBlock("decide", append(buttons, deny)...))
	}
	if r.State == actions.Failed && r.Retry != "" {
		retry := slack.NewButtonBlockElement(ActionRetry, r.ID, slack.NewTextBlockObject(slack.PlainTextType, clip(r.Retry, 70), false, false)).WithStyle(slack.StylePrimary)
		blocks = append(blocks, slack.NewActionBlock("retry", retry))
	}
	return summary, blocks
}

func stateLine(r *actions.Request, groups []string) string {
	at := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }
	var s string
	switch r.State {
	case actions.Pending:
		s = waitingLine(groupMentions(groups), at(r.ExpiresAt))
	case actions.Expired:
		s = expiredLine(at(r.ExpiresAt))
	default:
		if r.Choice != "" {
			s = "*" + r.Choice + "* · "
		}
		if d := r.Decision; d != nil && d.By == "" {
			s += fmt.Sprintf("%s automatically at %s", decisionWord(d.Action), at(d.At))
		} else if d != nil {
			s += fmt.Sprintf("%s by <@%s> at %s", decisionWord(d.Action), d.By, at(d.At))
		}
		switch r.State {
		case actions.Running, actions.Approved:
			s += " · :gear: running"
		case actions.Succeeded:
			s += " · :white_check_mark: succeeded"
		case actions.Failed:
			s += failedLine(r.Failure)
		}
	}
	return s
}

// cancelBlocks is the requester's ephemeral receipt with a Cancel button.
func cancelBlocks(text, id string) []slack.Block {
	cancel := slack.NewButtonBlockElement(ActionCancel, id, slack.NewTextBlockObject(slack.PlainTextType, cancelLabel, false, false))
	cancel.Confirm = cancelDialog(id).block()
	return []slack.Block{
		slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, clip(text, maxSection), false, false), nil, nil),
		slack.NewActionBlock("requester", cancel),
	}
}
