package slackserver

import (
	"context"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// A delayed Web API answers late (a method's own delay over "*"), while
// acks and response_url posts are not delayed; every ack reaches SetOnAck.
func TestDelayAndOnAck(t *testing.T) {
	srv := newTestServer(t)
	ctx := testCtx(t)
	acks := make(chan Ack, 10)
	srv.SetOnAck(func(a Ack) { acks <- a })
	b := startBot(t, srv, time.Second)
	if err := srv.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	const d = 300 * time.Millisecond
	srv.SetDelay("*", d)
	srv.SetDelay("users.info", 2*d)

	took := func(f func() error) time.Duration {
		t.Helper()
		start := time.Now()
		if err := f(); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	if el := took(func() error { _, err := b.api.AuthTestContext(ctx); return err }); el < d {
		t.Errorf("auth.test answered after %v, want at least %v", el, d)
	}
	if el := took(func() error { _, err := b.api.GetUserInfoContext(ctx, "U1"); return err }); el < 2*d {
		t.Errorf("users.info answered after %v, want at least %v", el, 2*d)
	}

	// The ack and the response_url post ("replace") are not delayed.
	start := time.Now()
	ack, err := srv.SlashCommand(ctx, SlashCommand{Command: "/osio", Text: "replace", UserID: "U1", ChannelID: "C1"})
	if err != nil {
		t.Fatal(err)
	}
	b.next(t, socketmode.EventTypeSlashCommand)
	if err := srv.WaitFor(ctx, func() bool { r := srv.Receipts("U1"); return len(r) == 1 && r[0].Replaced == 1 }); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el >= d {
		t.Errorf("ack and response_url took %v: delayed", el)
	}
	select {
	case a := <-acks:
		if a.EnvelopeID != ack.EnvelopeID || a.Latency != ack.Latency || a.Latency <= 0 {
			t.Errorf("OnAck got %+v, WaitAck %+v", a, ack)
		}
	case <-time.After(time.Second):
		t.Fatal("OnAck was not called")
	}

	// A client giving up during the delay: the call is not carried out.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, _, err := b.api.PostMessageContext(short, "C1", slack.MsgOptionText("late", false)); err == nil {
		t.Fatal("posted before the delay ended")
	}
	time.Sleep(d + 100*time.Millisecond)
	if n := len(srv.Messages("C1")); n != 0 {
		t.Errorf("%d messages posted by a call whose client gave up", n)
	}

	srv.ClearDelays()
	if el := took(func() error { _, err := b.api.AuthTestContext(ctx); return err }); el >= d {
		t.Errorf("auth.test took %v after ClearDelays", el)
	}
}
