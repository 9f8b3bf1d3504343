package slackserver

import (
	"context"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

// TestWatch: each kind of change to the recorded messages gives a notice;
// a call that changes nothing gives none; notices are coalesced for a slow
// reader; the channel closes with its context.
func TestWatch(t *testing.T) {
	srv := newTestServer(t)
	ctx := testCtx(t)
	wctx, cancel := context.WithCancel(ctx)
	notes := srv.Watch(wctx)
	api := newAPI(srv)

	expect := func(what string) {
		t.Helper()
		select {
		case <-notes:
		case <-time.After(2 * time.Second):
			t.Fatalf("no notice after %s", what)
		}
	}
	quiet := func(what string) {
		t.Helper()
		select {
		case <-notes:
			t.Fatalf("a notice after %s, which changed nothing", what)
		case <-time.After(50 * time.Millisecond):
		}
	}

	_, ts, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("hello", false))
	if err != nil {
		t.Fatal(err)
	}
	expect("chat.postMessage")
	if _, _, _, err := api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionText("hello again", false)); err != nil {
		t.Fatal(err)
	}
	expect("chat.update")
	if _, err := api.PostEphemeralContext(ctx, "C1", "U1", slack.MsgOptionText("just you", false)); err != nil {
		t.Fatal(err)
	}
	expect("chat.postEphemeral")
	srv.PostUserMessage("C1", "U2", "hi bot")
	expect("a user's message")
	if _, err := api.AuthTestContext(ctx); err != nil {
		t.Fatal(err)
	}
	quiet("auth.test")
	if _, _, err := api.PostMessageContext(ctx, "CNOPE", slack.MsgOptionText("lost", false)); err == nil {
		t.Fatal("a post to an unknown channel was accepted")
	}
	quiet("a rejected chat.postMessage")

	// Three changes unread: one notice, then quiet.
	for range 3 {
		srv.PostUserMessage("C1", "U2", "again")
	}
	expect("three messages")
	quiet("the coalesced notice")

	cancel()
	select {
	case _, ok := <-notes:
		if ok {
			t.Fatal("a notice after the watch's context ended")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the channel was not closed when the context ended")
	}
}

// TestWatchReceipt: a slash command's receipt, and its replacement through
// the response_url, each give a notice.
func TestWatchReceipt(t *testing.T) {
	srv := newTestServer(t)
	ctx := testCtx(t)
	notes := srv.Watch(ctx)
	startBot(t, srv, time.Second)
	if err := srv.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.SlashCommand(ctx, SlashCommand{Command: "/osio", Text: "replace", UserID: "U1", ChannelID: "C1"}); err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitFor(ctx, func() bool { r := srv.Receipts("U1"); return len(r) == 1 && r[0].Replaced == 1 }); err != nil {
		t.Fatalf("receipt never replaced: %+v", srv.Receipts("U1"))
	}
	// Both changes have happened; a notice is pending for them.
	select {
	case <-notes:
	case <-time.After(2 * time.Second):
		t.Fatal("no notice for the receipt and its replacement")
	}
}
