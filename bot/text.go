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

// ackPayload is a slash command's ack: the ephemeral receipt. It is
// handed to slack-go as it is, and encoded once, by slack-go's
// json.Marshal of the response around it: Blocks are the reply's own,
// except that an actions block goes as an actionsWire.
type ackPayload struct {
	ResponseType string `json:"response_type"`
	Text         string `json:"text"`
	Blocks       []any  `json:"blocks,omitempty"`
}

// actionsWire is an actions block as Slack reads it. slack-go's own
// (slack.ActionBlock) holds its elements in a type whose MarshalJSON
// encodes them apart, for the encoder around it to scan again; and any
// json.Marshaler in a payload has its output re-scanned. Without it the
// ack of every command is encoded in one pass, by slack-go
// (BenchmarkAckEncoding, fitAck and slack-go's marshal of a receipt:
// 21.6 us before, with fitAck's marshal to measure it and slack-go's
// re-scan of the pre-encoded payload; 4.2 us after).
type actionsWire struct {
	Type     slack.MessageBlockType `json:"type"`
	BlockID  string                 `json:"block_id,omitempty"`
	Elements []slack.BlockElement   `json:"elements"`
}

func wireBlock(b slack.Block) any {
	if a, ok := b.(*slack.ActionBlock); ok {
		w := actionsWire{Type: a.Type, BlockID: a.BlockID}
		if a.Elements != nil {
			w.Elements = a.Elements.ElementSet
		}
		return w
	}
	return b
}

// ackEnvelope is what slack-go wraps an ack's payload in; the envelope
// id is at most this long.
const ackEnvelope = len(`{"envelope_id":"","payload":}`) + 64

// fitAck renders reply as an ack that fits Slack's limits: at most
// maxBlocks blocks (the last, the buttons, kept), section texts within
// maxSection, and the whole within maxAck, clipping the texts further
// until it does. Replies are built to fit; this is the guard, and it
// encodes the ack to measure it only when ackBound cannot tell that it
// fits.
func fitAck(reply Reply) ackPayload {
	blocks := reply.Blocks
	if len(blocks) > maxBlocks {
		blocks = append(append([]slack.Block(nil), blocks[:maxBlocks-1]...), blocks[len(blocks)-1])
	}
	limit := maxSection
	for {
		p := ackPayload{ResponseType: "ephemeral", Text: clip(reply.Text, max(limit, 200))}
		for _, b := range blocks {
			if s, ok := b.(*slack.SectionBlock); ok && s.Text != nil && mrkdwn.Len(s.Text.Text) > limit {
				c := *s // the reply's own block is not changed
				t := *s.Text
				t.Text = clip(t.Text, limit)
				c.Text = &t
				b = &c
			}
			p.Blocks = append(p.Blocks, wireBlock(b))
		}
		if bound, ok := ackBound(p); ok && bound+ackEnvelope < maxAck {
			return p
		}
		js, err := json.Marshal(p)
		if err == nil && (len(js)+ackEnvelope < maxAck || limit <= 200) {
			return p
		}
		if err != nil && limit <= 200 {
			// Blocks that cannot be encoded: the text alone.
			return ackPayload{ResponseType: p.ResponseType, Text: p.Text}
		}
		limit /= 2
	}
}

// ackBound is at least the size of p encoded, for the blocks whose text it
// can count (false for others): each character of text may take 6 bytes
// (\u003c for <), and each block and element some hundreds besides.
func ackBound(p ackPayload) (int, bool) {
	n := 6*len(p.Text) + 100
	text := func(t *slack.TextBlockObject) {
		if t != nil {
			n += 6*len(t.Text) + 64
		}
	}
	for _, b := range p.Blocks {
		n += 256
		switch b := b.(type) {
		case *slack.SectionBlock:
			if b.Accessory != nil {
				return 0, false
			}
			text(b.Text)
			for _, f := range b.Fields {
				text(f)
			}
		case *slack.HeaderBlock:
			text(b.Text)
		case *slack.DividerBlock:
		case actionsWire:
			for _, e := range b.Elements {
				bt, ok := e.(*slack.ButtonBlockElement)
				if !ok {
					return 0, false
				}
				n += 256 + 6*(len(bt.ActionID)+len(bt.Value)+len(bt.URL))
				text(bt.Text)
				if c := bt.Confirm; c != nil {
					n += 256
					text(c.Title)
					text(c.Text)
					text(c.Confirm)
					text(c.Deny)
				}
			}
		default:
			return 0, false
		}
	}
	return n, true
}
