package bot

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
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
	js, err := json.Marshal(fitAck(Reply{Text: text, Blocks: cancelBlocks(text, "R-000123")}))
	if err != nil {
		t.Fatal(err)
	}
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
	blocks = append(blocks, cancelBlocks("x", "R-000124")[1])
	js, err = json.Marshal(fitAck(Reply{Text: long, Blocks: blocks}))
	if err != nil || len(js)+ackEnvelope >= maxAck || !json.Valid(js) {
		t.Errorf("a long reply's ack is %d bytes (limit %d), valid %v", len(js), maxAck, json.Valid(js))
	}
	if got := blocks[0].(*slack.SectionBlock).Text.Text; got != long {
		t.Error("fitAck clipped the reply's own blocks")
	}
}

// TestAckActionsAsSlackGoEncodesThem: an actions block goes in an ack as
// the same JSON as slack-go's own encoding of it.
func TestAckActionsAsSlackGoEncodesThem(t *testing.T) {
	for _, b := range []slack.Block{cancelBlocks("x", "R-000123")[1], slack.NewActionBlock("")} {
		want, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(wireBlock(b))
		if err != nil {
			t.Fatal(err)
		}
		var w, g any
		_ = json.Unmarshal(want, &w)
		_ = json.Unmarshal(got, &g)
		if !reflect.DeepEqual(w, g) {
			t.Errorf("actions block in an ack:\n got %s\nwant %s", got, want)
		}
	}
}

// BenchmarkAckEncoding is a receipt's encoding for its ack, once per
// command: fitAck, then slack-go's json.Marshal of the response around it
// (socketmode.Client.SendCtx).
func BenchmarkAckEncoding(b *testing.B) {
	text := receivedText("R-000123", "export of `prod_txlog` by AWS Data Pipeline (runbook)")
	r := Reply{Text: text, Blocks: cancelBlocks(text, "R-000123")}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(socketmode.Response{EnvelopeID: "dbdd0ef3-1543-4f94-bfb4-133d0e6c1545", Payload: fitAck(r)}); err != nil {
			b.Fatal(err)
		}
	}
}
