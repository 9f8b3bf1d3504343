package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	slackserver "github.com/osio/osio-bot/testservers/slack"
	"github.com/osio/osio-bot/testservers/testenv"
)

// PrintThreadOf writes request id's approval card, as its blocks render,
// and every reply in its thread, for a person to read.
func (w *World) PrintThreadOf(out io.Writer, id string) {
	for _, m := range w.Slack.Messages(testenv.Channel) {
		if !strings.Contains(string(m.Blocks), id) {
			continue
		}
		fmt.Fprintf(out, "┌ #osio-approvals %s (the card; notification text: %q)\n", m.TS, m.Text)
		for _, l := range RenderBlocks(m.Blocks, m.Text) {
			fmt.Fprintf(out, "│ %s\n", l)
		}
		for _, r := range w.Slack.Thread(testenv.Channel, m.TS) {
			fmt.Fprintf(out, "├─ %s\n│  %s\n", r.TS, strings.ReplaceAll(r.Text, "\n", "\n│  "))
			for _, l := range RenderBlocks(r.Blocks, r.Text) {
				fmt.Fprintf(out, "│  %s\n", l)
			}
		}
		fmt.Fprintln(out, "└")
		return
	}
	fmt.Fprintf(out, "(no card for %s in #osio-approvals)\n", id)
}

// ephemeralMark is how many receipts and ephemeral messages a user had.
type ephemeralMark struct {
	user                 string
	receipts, ephemerals int
}

func (w *World) mark(user string) ephemeralMark {
	return ephemeralMark{user, len(w.Slack.Receipts(user)), len(w.Slack.Ephemerals(user))}
}

// printEphemerals writes what only the user saw since the mark: each
// receipt of a slash command (its versions, oldest first) and each other
// ephemeral message.
func (w *World) printEphemerals(out io.Writer, m ephemeralMark) {
	rs := w.Slack.Receipts(m.user)
	es := w.Slack.Ephemerals(m.user)
	if len(rs) == m.receipts && len(es) == m.ephemerals {
		return
	}
	fmt.Fprintf(out, "┌ only <@%s> sees (ephemeral, in <#%s>)\n", m.user, testenv.DevChannel)
	for _, r := range rs[min(m.receipts, len(rs)):] {
		for _, h := range r.History {
			fmt.Fprintf(out, "├─ receipt, later replaced:\n│  %s\n", strings.ReplaceAll(h, "\n", "\n│  "))
		}
		fmt.Fprintf(out, "├─ receipt:\n│  %s\n", strings.ReplaceAll(r.Text, "\n", "\n│  "))
		for _, l := range RenderBlocks(r.Blocks, r.Text) {
			fmt.Fprintf(out, "│  %s\n", l)
		}
	}
	for _, e := range es[min(m.ephemerals, len(es)):] {
		if replacesReceipt(e) {
			continue // shown as the receipt's version above
		}
		fmt.Fprintf(out, "├─ %s:\n│  %s\n", e.Source, strings.ReplaceAll(e.Text, "\n", "\n│  "))
		for _, l := range RenderBlocks(e.Blocks, e.Text) {
			fmt.Fprintf(out, "│  %s\n", l)
		}
	}
	fmt.Fprintln(out, "└")
}

func replacesReceipt(e slackserver.Message) bool {
	return e.Source == "response_url" && e.ReplaceOriginal
}

// block is the part of a Block Kit block the transcript shows.
type block struct {
	Type     string      `json:"type"`
	Text     *textObject `json:"text"`
	Fields   []textObject
	Elements []element `json:"elements"`
}

type textObject struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type element struct {
	Type    string          `json:"type"`
	Text    json.RawMessage `json:"text"`
	Value   string          `json:"value"`
	Style   string          `json:"style"`
	Confirm *struct {
		Title   textObject `json:"title"`
		Text    textObject `json:"text"`
		Confirm textObject `json:"confirm"`
		Deny    textObject `json:"deny"`
	} `json:"confirm"`
}

// RenderBlocks renders Block Kit blocks as text lines: a header as
// "# …", sections and context as their text, buttons as "[Label]" with
// their confirm dialogs. Unknown blocks are named.
//
// A section whose text is the message's own text (given as dup) is left
// out: Slack shows it once.
func RenderBlocks(raw json.RawMessage, dup string) []string {
	if len(raw) == 0 {
		return nil
	}
	var bs []block
	if err := json.Unmarshal(raw, &bs); err != nil {
		return []string{"(blocks that do not parse: " + err.Error() + ")"}
	}
	var out []string
	add := func(s string) { out = append(out, strings.Split(s, "\n")...) }
	for _, b := range bs {
		switch b.Type {
		case "header":
			if b.Text != nil {
				add("# " + b.Text.Text)
			}
		case "section":
			if b.Text != nil && b.Text.Text != dup {
				add(b.Text.Text)
			}
			for _, f := range b.Fields {
				add(f.Text)
			}
		case "context":
			var parts []string
			for _, e := range b.Elements {
				var s string
				if json.Unmarshal(e.Text, &s) == nil {
					parts = append(parts, s)
				}
			}
			add("(context) " + strings.Join(parts, " · "))
		case "actions":
			var parts []string
			var confirms []string
			for _, e := range b.Elements {
				var t textObject
				_ = json.Unmarshal(e.Text, &t)
				label := "[" + t.Text + "]"
				if e.Style != "" {
					label = "[" + t.Text + " (" + e.Style + ")]"
				}
				parts = append(parts, label)
				if e.Confirm != nil {
					confirms = append(confirms, fmt.Sprintf("  [%s] asks %q: %s [%s] [%s]", t.Text, e.Confirm.Title.Text, e.Confirm.Text.Text, e.Confirm.Confirm.Text, e.Confirm.Deny.Text))
				}
			}
			add("(buttons) " + strings.Join(parts, " "))
			for _, c := range confirms {
				add(c)
			}
		case "divider":
			add("---")
		default:
			add("(" + b.Type + " block)")
		}
	}
	return out
}
