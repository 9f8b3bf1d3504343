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

// ackEnvelope is what slack-go wraps an ack's payload in; the envelope
// id is at most this long.
const ackEnvelope = len(`{"envelope_id":"","payload":}`) + 64

// fitAck renders reply as an ack that fits Slack's limits: at most
// maxBlocks blocks (the last, the buttons, kept), section texts within
// maxSection, and the whole within maxAck, clipping the texts further
// until it does. Replies are built to fit; this is the guard. The ack is
// returned encoded, so that it is encoded once: slack-go sends a
// json.RawMessage payload as it is. (Measuring it with a marshal of its
// own, and then slack-go's, was a tenth of the bot's CPU per command in
// BenchmarkExportAck.)
func fitAck(reply Reply) json.RawMessage {
	p := ackPayload{ResponseType: "ephemeral", Text: reply.Text, Blocks: reply.Blocks}
	copied := false // reply's own blocks are not changed
	if len(reply.Blocks) > maxBlocks {
		p.Blocks = append(append([]slack.Block(nil), reply.Blocks[:maxBlocks-1]...), reply.Blocks[len(reply.Blocks)-1])
		copied = true
	}
	limit := maxSection
	for {
		p.Text = clip(p.Text, max(limit, 200))
		for i, b := range p.Blocks {
			if s, ok := b.(*slack.SectionBlock); ok && s.Text != nil && mrkdwn.Len(s.Text.Text) > limit {
				if !copied {
					p.Blocks, copied = append([]slack.Block(nil), p.Blocks...), true
				}
				c := *s
				t := *s.Text
				t.Text = clip(t.Text, limit)
				c.Text = &t
				p.Blocks[i] = &c
			}
		}
		js, err := json.Marshal(p)
		if err == nil && (len(js)+ackEnvelope < maxAck || limit <= 200) {
			return js
		}
		if err != nil && limit <= 200 {
			// Blocks that cannot be encoded: the text alone.
			js, _ = json.Marshal(ackPayload{ResponseType: p.ResponseType, Text: p.Text})
			return js
		}
		limit /= 2
	}
}
