package playground

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	slackserver "github.com/osio/osio-bot/testservers/slack"
)

func TestMrkdwn(t *testing.T) {
	n := worldNames()
	for _, c := range []struct{ in, want string }{
		{"*Requester:* <@UDEV>", `<b>Requester:</b> <span class="mention">@Dana Developer</span>`},
		{"_Planning…_", `<i>Planning…</i>`},
		{"~gone~ and `code *not bold*`", `<s>gone</s> and <code>code *not bold*</code>`},
		{"a\nb", "a<br>b"},
		{"see <https://example.com/a?b=1&amp;c=2|the docs>", `see <a href="https://example.com/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer">the docs</a>`},
		{"<mailto:dana@example.com>", `<a href="mailto:dana@example.com" target="_blank" rel="noopener noreferrer">dana@example.com</a>`},
		{"in <#CAPPROVALS>", `in <span class="mention">#osio-approvals</span>`},
		{"<!subteam^SINTERRUPT>", `<span class="mention">@interrupt-catchers</span>`},
		{"<!subteam^SX|@oncall> <!here>", `<span class="mention">@oncall</span> <span class="mention">@here</span>`},
		{":white_check_mark: done :unknown:", "✅ done :unknown:"},
		{"```line 1\n*x*\n```", `<pre class="mk-pre">line 1` + "\n" + `*x*</pre>`},
		// What the bot escaped is shown as typed; nothing becomes markup.
		{"&lt;b&gt;x&lt;/b&gt; &amp;amp;", "&lt;b&gt;x&lt;/b&gt; &amp;amp;"},
		// Not escaped by the sender, and not a Slack sequence: still text.
		{"<b>x</b>", "&lt;b&gt;x&lt;/b&gt;"},
		{`<img src=x onerror="alert(1)">`, "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;"},
		{"<javascript:alert(1)|click>", "&lt;javascript:alert(1)|click&gt;"},
		{`<https://x.test/"onmouseover="a|"q">`, `<a href="https://x.test/%22onmouseover=%22a" target="_blank" rel="noopener noreferrer">&#34;q&#34;</a>`},
		{"\uE0000\uE001 stays out", "0 stays out"},
		{"a * b * c and 2*3", "a * b * c and 2*3"},
		{"manual: https://docs.aws.amazon.com/x.html.", `manual: <a href="https://docs.aws.amazon.com/x.html" target="_blank" rel="noopener noreferrer">https://docs.aws.amazon.com/x.html</a>.`},
	} {
		if got := n.mrkdwn(c.in); got != c.want {
			t.Errorf("mrkdwn(%q)\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}

// TestBlocks renders a card as the bot builds it: header, sections,
// context, buttons with styles and confirm dialogs, each text escaped.
func TestBlocks(t *testing.T) {
	card := `[
	 {"type":"header","text":{"type":"plain_text","text":"<b>Export</b> · R-000001"}},
	 {"type":"section","text":{"type":"mrkdwn","text":"*Tables:* ` + "`<b>`" + ` &lt;i&gt;"},"fields":[{"type":"plain_text","text":"f1"},{"type":"mrkdwn","text":"_f2_"}]},
	 {"type":"context","block_id":"state","elements":[{"type":"mrkdwn","text":":hourglass: Waiting for <!subteam^SINTERRUPT>"},{"type":"image","image_url":"https://x","alt_text":"<icon>"}]},
	 {"type":"divider"},
	 {"type":"actions","block_id":"decide","elements":[
	   {"type":"button","action_id":"approve","value":"R-000001","style":"primary","text":{"type":"plain_text","text":"Approve"},
	    "confirm":{"title":{"type":"plain_text","text":"Approve R-000001?"},"text":{"type":"mrkdwn","text":"The bot will run it for <@UDEV>."},
	               "confirm":{"type":"plain_text","text":"Approve"},"deny":{"type":"plain_text","text":"Back"}}},
	   {"type":"button","action_id":"deny","value":"R-\"1","style":"danger","text":{"type":"plain_text","text":"Deny"}},
	   {"type":"static_select","action_id":"pick"}]},
	 {"type":"video"}
	]`
	got, ok := worldNames().blocks(json.RawMessage(card), where{"CAPPROVALS", "1764180000.000100"})
	if !ok {
		t.Fatal("the card did not render")
	}
	for _, want := range []string{
		`<div class="bk-header">&lt;b&gt;Export&lt;/b&gt; · R-000001</div>`,
		`<b>Tables:</b> <code>&lt;b&gt;</code> &lt;i&gt;`,
		`<div>f1</div><div><i>f2</i></div>`,
		`⌛ Waiting for <span class="mention">@interrupt-catchers</span>`,
		`<span class="bk-image" title="image">&lt;icon&gt;</span>`,
		`<hr class="bk-divider">`,
		`<button type="button" class="bk-btn primary" data-channel="CAPPROVALS" data-ts="1764180000.000100" data-action-id="approve" data-block-id="decide" data-value="R-000001">Approve</button>`,
		`<template class="bk-confirm"><h3>Approve R-000001?</h3><div class="bk-confirm-text">The bot will run it for <span class="mention">@Dana Developer</span>.</div>`,
		`<button type="button" class="bk-btn" value="deny">Back</button><button type="button" class="bk-btn primary" value="ok">Approve</button>`,
		`class="bk-btn danger"`, `data-value="R-&#34;1"`,
		`[static_select]`, `[video block]`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the card lacks %s\n%s", want, got)
		}
	}
	if _, ok := worldNames().blocks(json.RawMessage(`{"not":"a list"}`), where{}); ok {
		t.Error("blocks that are no list rendered")
	}
}

type fakeSlack struct {
	msgs, eph, receipts map[string][]slackserver.Message
	thread              []slackserver.Message
}

func (f fakeSlack) Messages(ch string) []slackserver.Message { return f.msgs[ch] }
func (f fakeSlack) Thread(ch, ts string) []slackserver.Message {
	var out []slackserver.Message
	for _, m := range f.thread {
		if m.Channel == ch && m.ThreadTS == ts {
			out = append(out, m)
		}
	}
	return out
}
func (f fakeSlack) Receipts(u string) []slackserver.Message   { return f.receipts[u] }
func (f fakeSlack) Ephemerals(u string) []slackserver.Message { return f.eph[u] }

// TestRenderSlack: an ephemeral message is in its user's view only, at its
// place by ts, threaded when it names a thread; a thread's replies are
// under their parent.
func TestRenderSlack(t *testing.T) {
	now := time.Now()
	src := fakeSlack{
		msgs: map[string][]slackserver.Message{
			"CAPPROVALS": {{Channel: "CAPPROVALS", TS: "1.000100", User: "UBOT", Text: "the card", Source: "chat.postMessage", Posted: now}},
		},
		thread: []slackserver.Message{
			{Channel: "CAPPROVALS", TS: "1.000300", ThreadTS: "1.000100", User: "UBOT", Text: "second reply", Source: "chat.postMessage", Posted: now},
			{Channel: "CAPPROVALS", TS: "1.000200", ThreadTS: "1.000100", User: "UBOT", Text: "first reply", Source: "chat.postMessage", Posted: now, Edits: 1},
		},
		receipts: map[string][]slackserver.Message{
			"UDEV": {{Channel: "CDEV", TS: "1.000050", User: "UDEV", Text: "your receipt", Source: "ack", Posted: now}},
		},
		eph: map[string][]slackserver.Message{
			"UCATCHER": {{Channel: "CAPPROVALS", TS: "1.000250", ThreadTS: "1.000100", User: "UCATCHER", Text: "only the catcher", Source: "chat.postEphemeral", Posted: now}},
		},
	}
	n := worldNames()
	dev, catcher := renderSlack(src, n, "UDEV"), renderSlack(src, n, "UCATCHER")
	if !strings.Contains(dev, "your receipt") || strings.Contains(catcher, "your receipt") {
		t.Error("the receipt is not the developer's alone")
	}
	if strings.Contains(dev, "only the catcher") || !strings.Contains(catcher, "only the catcher") {
		t.Error("the catcher's ephemeral is not theirs alone")
	}
	first, eph, second := strings.Index(catcher, "first reply"), strings.Index(catcher, "only the catcher"), strings.Index(catcher, "second reply")
	if !(strings.Index(catcher, "the card") < first && first < eph && eph < second) {
		t.Errorf("thread out of order:\n%s", catcher)
	}
	if !strings.Contains(catcher, "3 replies") || !strings.Contains(dev, "2 replies") {
		t.Errorf("reply counts wrong:\n%s\n%s", dev, catcher)
	}
	if !strings.Contains(dev, `Only visible to you`) || !strings.Contains(dev, "(edited)") {
		t.Errorf("no ephemeral or edited mark:\n%s", dev)
	}
}
