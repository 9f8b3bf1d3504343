package slackserver

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

func TestInjectedErrorsAndChannelErrors(t *testing.T) {
	srv := newTestServer(t)
	ctx := testCtx(t)
	api := newAPI(srv)

	srv.FailNext("chat.postMessage", "token_revoked", 1)
	srv.FailNext("chat.postMessage", "missing_scope", 1)
	_, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("a", false))
	wantSlackErr(t, err, "token_revoked")
	_, _, err = api.PostMessageContext(ctx, "C1", slack.MsgOptionText("a", false))
	wantSlackErr(t, err, "missing_scope")
	if _, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("a", false)); err != nil {
		t.Fatalf("third post: %v", err)
	}

	srv.AddChannel("C2", "approvals")
	srv.SetChannelError("C2", "not_in_channel")
	_, _, err = api.PostMessageContext(ctx, "C2", slack.MsgOptionText("a", false))
	wantSlackErr(t, err, "not_in_channel")
	_, _, _, err = api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{ChannelID: "C2", Timestamp: "1.0"})
	wantSlackErr(t, err, "not_in_channel")
	_, _, err = api.PostMessageContext(ctx, "C1", slack.MsgOptionText("other channel", false))
	if err != nil {
		t.Fatalf("C1 while C2 fails: %v", err)
	}
	srv.SetChannelError("C2", "")
	if _, _, err := api.PostMessageContext(ctx, "C2", slack.MsgOptionText("a", false)); err != nil {
		t.Fatalf("C2 cleared: %v", err)
	}
	if n := len(srv.Messages("C2")); n != 1 {
		t.Errorf("C2 holds %d messages, want 1 (failed posts do nothing)", n)
	}
}

func TestLimitsAndEscaping(t *testing.T) {
	srv := newTestServer(t)
	ctx := testCtx(t)
	api := newAPI(srv)

	_, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText(strings.Repeat("é", MaxTextChars+1), false))
	wantSlackErr(t, err, "msg_too_long")
	if _, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText(strings.Repeat("é", MaxTextChars), false)); err != nil {
		t.Fatalf("text at the limit: %v", err)
	}
	long := slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, strings.Repeat("x", MaxSectionTextChars+1), false, false), nil, nil)
	_, _, err = api.PostMessageContext(ctx, "C1", slack.MsgOptionText("t", false), slack.MsgOptionBlocks(long))
	wantSlackErr(t, err, "invalid_blocks")
	var many []slack.Block
	for range MaxBlocks + 1 {
		many = append(many, slack.NewDividerBlock())
	}
	_, _, err = api.PostMessageContext(ctx, "C1", slack.MsgOptionText("t", false), slack.MsgOptionBlocks(many...))
	wantSlackErr(t, err, "invalid_blocks")

	in := "a & b <c> &amp; <@U1> <#C1> <!here> <https://x.example/?a=1&b=2|link> 1 > 0"
	want := "a &amp; b &lt;c&gt; &amp; <@U1> <#C1> <!here> <https://x.example/?a=1&b=2|link> 1 &gt; 0"
	_, ts, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText(in, false),
		slack.MsgOptionMetadata(slack.SlackMetadata{EventType: "e", EventPayload: map[string]any{"k": "v"}}))
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: "C1", Limit: 1})
	if err != nil || len(h.Messages) == 0 || h.Messages[0].Text != want || h.Messages[0].Metadata.EventType != "" {
		t.Fatalf("history = %+v %v; want text %q and no metadata", h, err, want)
	}
	h, err = api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: "C1", Limit: 1, IncludeAllMetadata: true})
	if err != nil || h.Messages[0].Timestamp != ts || h.Messages[0].Metadata.EventPayload["k"] != "v" {
		t.Fatalf("history with metadata = %+v %v", h.Messages[0].Metadata, err)
	}
}

func TestLostAnswerAndHang(t *testing.T) {
	srv := newTestServer(t)
	ctx := testCtx(t)
	api := newAPI(srv)

	srv.LoseNext("chat.postMessage", 1)
	_, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("lost", false))
	if err == nil {
		t.Fatal("lost answer: want an error")
	}
	var se slack.SlackErrorResponse
	if json.Valid([]byte(err.Error())) || strings.Contains(err.Error(), "channel_not_found") || asSlackErr(err, &se) {
		t.Errorf("lost answer gave a Slack error %v; want a transport error", err)
	}
	if msgs := srv.Messages("C1"); len(msgs) != 1 || msgs[0].Text != "lost" || srv.Lost("chat.postMessage") != 1 {
		t.Fatalf("after a lost answer: messages %+v lost %d; want the post recorded", msgs, srv.Lost("chat.postMessage"))
	}

	srv.HangNext("chat.update", 1)
	hctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, _, err = api.UpdateMessageContext(hctx, "C1", srv.Messages("C1")[0].TS, slack.MsgOptionText("never", false))
	if err == nil || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("hang: err %v after %v", err, time.Since(start))
	}
	if m := srv.Messages("C1")[0]; m.Edits != 0 {
		t.Errorf("a hung update changed the message: %+v", m)
	}
	if _, _, _, err := api.UpdateMessageContext(ctx, "C1", srv.Messages("C1")[0].TS, slack.MsgOptionText("now", false)); err != nil {
		t.Errorf("after the hang: %v", err)
	}
}

func asSlackErr(err error, se *slack.SlackErrorResponse) bool {
	e, ok := err.(slack.SlackErrorResponse)
	if ok {
		*se = e
	}
	return ok
}
