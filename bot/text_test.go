package bot

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/slack-go/slack"
)

// Issue 8, item 7: clip cuts on a character boundary and keeps within its
// bound in characters.
func TestClipKeepsWholeCharacters(t *testing.T) {
	s := "a" + strings.Repeat("é", 50)
	for n := 1; n < 60; n++ {
		if got := clip(s, n); !utf8.ValidString(got) {
			t.Fatalf("clip(%q, %d) = %q: splits a character", s, n, got)
		}
	}
	for n := 1; n < 60; n++ {
		if c := utf8.RuneCountInString(clip(s, n)); c > n {
			t.Fatalf("clip(…, %d) has %d characters", n, c)
		}
	}
}

// TestFitAckEncodesTheReceipt: the ack is the payload's JSON, encoded
// once, as Slack reads it; a reply past Slack's 20 KB is clipped under it.
func TestFitAckEncodesTheReceipt(t *testing.T) {
	text := receivedText("R-000123", "export of `prod_txlog`")
	js := fitAck(Reply{Text: text, Blocks: cancelBlocks(text, "R-000123")})
	var p struct {
		ResponseType string `json:"response_type"`
		Text         string `json:"text"`
		Blocks       []struct {
			Type     string `json:"type"`
			Elements []struct {
				ActionID string `json:"action_id"`
				Value    string `json:"value"`
			} `json:"elements"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(js, &p); err != nil {
		t.Fatalf("ack %s: %v", js, err)
	}
	if p.ResponseType != "ephemeral" || p.Text != text || len(p.Blocks) != 2 || p.Blocks[1].Type != "actions" ||
		len(p.Blocks[1].Elements) != 1 || p.Blocks[1].Elements[0].ActionID != ActionCancel || p.Blocks[1].Elements[0].Value != "R-000123" {
		t.Errorf("ack = %s", js)
	}
	long := strings.Repeat("word ", 1000)
	var blocks []slack.Block
	for range 20 {
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, long, false, false), nil, nil))
	}
	js = fitAck(Reply{Text: long, Blocks: blocks})
	if len(js)+ackEnvelope >= maxAck || !json.Valid(js) {
		t.Errorf("a long reply's ack is %d bytes (limit %d), valid %v", len(js), maxAck, json.Valid(js))
	}
	if got := blocks[0].(*slack.SectionBlock).Text.Text; got != long {
		t.Error("fitAck clipped the reply's own blocks")
	}
}

// BenchmarkFitAckReceipt is the receipt's encoding, once per command.
func BenchmarkFitAckReceipt(b *testing.B) {
	text := receivedText("R-000123", "export of `prod_txlog` by AWS Data Pipeline (runbook)")
	r := Reply{Text: text, Blocks: cancelBlocks(text, "R-000123")}
	b.ReportAllocs()
	for b.Loop() {
		_ = fitAck(r)
	}
}
