package bot

import (
	"encoding/json"

	"github.com/slack-go/slack"

	"github.com/osio/osio-bot/bot/mrkdwn"
)

// Slack's limits that every reply and card keeps to.
const (
	// maxSection keeps under Block Kit's 3,000 characters per section text.
	maxSection = 2900
	// maxBlocks is Block Kit's limit of blocks per message.
	maxBlocks = 50
	// maxAck keeps a Socket Mode ack, envelope included, under the 20 KB
	// Slack silently drops (slack-go refuses 20,480 bytes or more), with
	// room for the envelope id.
	maxAck = 19 * 1024
)

// clip shortens s to at most n characters; see mrkdwn.Clip.
func clip(s string, n int) string { return mrkdwn.Clip(s, n) }

// code shows user-supplied text in a code span, clipped to n characters
// and escaped; every piece of user text the bot puts into a message goes
// through it (or mrkdwn.Escape).
func code(s string, n int) string { return mrkdwn.Code(s, n) }

// ackPayload is a slash command's ack: the ephemeral receipt.
type ackPayload struct {
	ResponseType string        `json:"response_type"`
	Text         string        `json:"text"`
	Blocks       []slack.Block `json:"blocks,omitempty"`
}

// ackSize is the payload's size on the wire inside its envelope.
func ackSize(p ackPayload) int {
	b, err := json.Marshal(struct {
		EnvelopeID string     `json:"envelope_id"`
		Payload    ackPayload `json:"payload"`
	}{"", p})
	if err != nil {
		return maxAck
	}
	return len(b) + 64 // the envelope id
}

// fitAck renders reply as an ack that fits Slack's limits: at most
// maxBlocks blocks (the last, the buttons, kept), section texts within
// maxSection, and the whole within maxAck, clipping the texts further
// until it does. Replies are built to fit; this is the guard.
func fitAck(reply Reply) ackPayload {
	p := ackPayload{ResponseType: "ephemeral", Text: reply.Text}
	if len(reply.Blocks) > maxBlocks {
		p.Blocks = append(append([]slack.Block(nil), reply.Blocks[:maxBlocks-1]...), reply.Blocks[len(reply.Blocks)-1])
	} else {
		p.Blocks = append([]slack.Block(nil), reply.Blocks...)
	}
	limit := maxSection
	for {
		p.Text = clip(p.Text, max(limit, 200))
		for i, b := range p.Blocks {
			if s, ok := b.(*slack.SectionBlock); ok && s.Text != nil && mrkdwn.Len(s.Text.Text) > limit {
				c := *s
				t := *s.Text
				t.Text = clip(t.Text, limit)
				c.Text = &t
				p.Blocks[i] = &c
			}
		}
		if ackSize(p) < maxAck || limit <= 200 {
			return p
		}
		limit /= 2
	}
}
