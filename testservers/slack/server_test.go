package slackserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
)

func newTestServer(t *testing.T) *Server {
	t.Helper()
	var mu sync.Mutex
	done := false
	t.Cleanup(func() { mu.Lock(); done = true; mu.Unlock() }) // runs after srv.Close
	srv, err := New(Options{PingInterval: 20 * time.Millisecond, Logf: func(f string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			t.Logf(f, a...)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	srv.AddChannel("C1", "general")
	srv.AddUser(User{ID: "U1", Name: "alice", RealName: "Alice A", Email: "alice@example.com"})
	srv.AddUser(User{ID: "U2", Name: "bob", RealName: "Bob B", Email: "bob@example.com"})
	srv.AddUserGroup("S1", "U1", "U2")
	return srv
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newAPI(srv *Server) *slack.Client {
	return slack.New("xoxb-test", slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken("xapp-test"))
}

// testBot is a minimal Socket Mode bot built on the real slack-go client.
type testBot struct {
	api  *slack.Client
	smc  *socketmode.Client
	seen chan socketmode.Event
}

func startBot(t *testing.T, srv *Server, pingTimeout time.Duration) *testBot {
	t.Helper()
	api := newAPI(srv)
	b := &testBot{api: api, smc: socketmode.New(api, socketmode.OptionPingInterval(pingTimeout)),
		seen: make(chan socketmode.Event, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	runDone, loopDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(runDone); _ = b.smc.RunContext(ctx) }()
	go func() {
		defer close(loopDone)
		for {
			select {
			case <-ctx.Done():
				return
			case evt := <-b.smc.Events:
				b.handle(ctx, t, evt)
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-runDone; <-loopDone })
	return b
}

func (b *testBot) handle(ctx context.Context, t *testing.T, evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeSlashCommand:
		cmd := evt.Data.(slack.SlashCommand)
		if err := b.smc.Ack(*evt.Request, map[string]any{"text": "got " + cmd.Text}); err != nil {
			t.Errorf("ack: %v", err)
		}
		if cmd.Text == "replace" {
			_, _, _, err := b.api.SendMessageContext(ctx, cmd.ChannelID, slack.MsgOptionText("the outcome", false),
				slack.MsgOptionReplaceOriginal(cmd.ResponseURL))
			if err != nil {
				t.Errorf("response_url: %v", err)
			}
		}
		if cmd.Text == "respond" {
			_, _, _, err := b.api.SendMessageContext(ctx, cmd.ChannelID, slack.MsgOptionText("via response_url", false),
				slack.MsgOptionResponseURL(cmd.ResponseURL, slack.ResponseTypeEphemeral))
			if err != nil {
				t.Errorf("response_url: %v", err)
			}
		}
	case socketmode.EventTypeInteractive:
		cb := evt.Data.(slack.InteractionCallback)
		if err := b.smc.Ack(*evt.Request); err != nil {
			t.Errorf("ack: %v", err)
		}
		_, _, _, err := b.api.SendMessageContext(ctx, cb.Channel.ID, slack.MsgOptionText("clicked", false),
			slack.MsgOptionReplaceOriginal(cb.ResponseURL))
		if err != nil {
			t.Errorf("response_url: %v", err)
		}
	case socketmode.EventTypeEventsAPI:
		if err := b.smc.Ack(*evt.Request); err != nil {
			t.Errorf("ack: %v", err)
		}
	case socketmode.EventTypeHello:
	default:
		return
	}
	b.seen <- evt
}

func (b *testBot) next(t *testing.T, typ socketmode.EventType) socketmode.Event {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case evt := <-b.seen:
			if evt.Type == typ {
				return evt
			}
		case <-timeout:
			t.Fatalf("no %s event", typ)
		}
	}
}

func TestSocketModeRoundTrip(t *testing.T) {
	srv := newTestServer(t)
	ctx := testCtx(t)
	// The client drops the connection if it sees no ping for 250ms.
	b := startBot(t, srv, 250*time.Millisecond)
	if err := srv.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	hello := b.next(t, socketmode.EventTypeHello)
	if hello.Request.ConnectionInfo.AppID != AppID || hello.Request.NumConnections != 1 {
		t.Errorf("hello = %+v", hello.Request)
	}

	// Slash command with an ack payload.
	ack, err := srv.SlashCommand(ctx, SlashCommand{Command: "/osio", Text: "status", UserID: "U1", ChannelID: "C1"})
	if err != nil {
		t.Fatal(err)
	}
	if string(ack.Payload) != `{"text":"got status"}` || ack.Latency <= 0 || ack.Received.IsZero() {
		t.Errorf("ack = %+v (payload %s)", ack, ack.Payload)
	}
	evt := b.next(t, socketmode.EventTypeSlashCommand)
	cmd := evt.Data.(slack.SlashCommand)
	if cmd.Command != "/osio" || cmd.Text != "status" || cmd.UserID != "U1" || cmd.UserName != "alice" ||
		cmd.ChannelID != "C1" || cmd.ChannelName != "general" || cmd.TeamID != TeamID || cmd.APIAppID != AppID ||
		!strings.HasPrefix(cmd.ResponseURL, srv.URL()+"/response/") || cmd.TriggerID == "" {
		t.Errorf("slash command = %+v", cmd)
	}
	if evt.Request.EnvelopeID != ack.EnvelopeID || !evt.Request.AcceptsResponsePayload || evt.Request.RetryAttempt != 0 {
		t.Errorf("request = %+v", evt.Request)
	}
	if acks := srv.Acks(); len(acks) != 1 || acks[0].EnvelopeID != ack.EnvelopeID {
		t.Errorf("acks = %+v", acks)
	}
	if !strings.Contains(srv.AllText(), "got status") {
		t.Errorf("AllText lacks the ack payload: %q", srv.AllText())
	}

	// response_url post from a slash command.
	if _, err := srv.SlashCommand(ctx, SlashCommand{Command: "/osio", Text: "respond", UserID: "U1", ChannelID: "C1"}); err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitFor(ctx, func() bool { return len(srv.Ephemerals("U1")) == 1 }); err != nil {
		t.Fatal(err)
	}
	if e := srv.Ephemerals("U1")[0]; e.Text != "via response_url" || e.Source != "response_url" ||
		e.ResponseType != "ephemeral" || e.Channel != "C1" {
		t.Errorf("ephemeral = %+v", e)
	}

	// Button click on a message with blocks; block_id and value come from the blocks.
	btn := slack.NewButtonBlockElement("approve", "yes", slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false))
	_, ts, err := b.api.PostMessage("C1", slack.MsgOptionText("pick", false),
		slack.MsgOptionBlocks(slack.NewActionBlock("blk1", btn)))
	if err != nil {
		t.Fatal(err)
	}
	cack, err := srv.ClickButton(ctx, Click{UserID: "U1", ChannelID: "C1", MessageTS: ts, ActionID: "approve"})
	if err != nil {
		t.Fatal(err)
	}
	if cack.Payload != nil {
		t.Errorf("click ack payload = %s", cack.Payload)
	}
	cb := b.next(t, socketmode.EventTypeInteractive).Data.(slack.InteractionCallback)
	if cb.Type != slack.InteractionTypeBlockActions || cb.User.ID != "U1" || cb.User.Name != "alice" ||
		cb.Team.ID != TeamID || cb.Channel.ID != "C1" || cb.Channel.Name != "general" ||
		cb.Container.Type != "message" || cb.Container.MessageTs != ts || cb.Container.ChannelID != "C1" ||
		cb.Message.Timestamp != ts || cb.Message.Text != "pick" || len(cb.Message.Blocks.BlockSet) != 1 ||
		cb.ResponseURL == "" || cb.TriggerID == "" || cb.APIAppID != AppID {
		t.Errorf("callback = %+v", cb)
	}
	if acts := cb.ActionCallback.BlockActions; len(acts) != 1 || acts[0].ActionID != "approve" ||
		acts[0].BlockID != "blk1" || acts[0].Value != "yes" || acts[0].Type != "button" ||
		acts[0].Text.Text != "Approve" || acts[0].ActionTs == "" {
		t.Errorf("actions = %+v", cb.ActionCallback)
	}
	if err := srv.WaitFor(ctx, func() bool { return len(srv.Ephemerals("U1")) == 2 }); err != nil {
		t.Fatal(err)
	}
	if e := srv.Ephemerals("U1")[1]; e.Text != "clicked" || !e.ReplaceOriginal {
		t.Errorf("replace_original post = %+v", e)
	}

	// Events API envelope.
	eid, err := srv.SendEvent(map[string]any{"type": "app_mention", "user": "U1", "text": "<@UBOT> hi",
		"channel": "C1", "ts": "1764180000.999900", "event_ts": "1764180000.999900"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.WaitAck(ctx, eid); err != nil {
		t.Fatal(err)
	}
	ev := b.next(t, socketmode.EventTypeEventsAPI).Data.(slackevents.EventsAPIEvent)
	if m, ok := ev.InnerEvent.Data.(*slackevents.AppMentionEvent); ev.Type != slackevents.CallbackEvent || ev.TeamID != TeamID ||
		!ok || m.User != "U1" || m.Channel != "C1" || m.Text != "<@UBOT> hi" {
		t.Errorf("event = %+v inner %+v", ev, ev.InnerEvent.Data)
	}

	// Pings keep the connection alive well past the client's 250ms ping timeout.
	time.Sleep(700 * time.Millisecond)
	if srv.Connections() != 1 || srv.LiveConnections() != 1 || srv.PingsSent() < 10 || srv.PongsReceived() < 5 {
		t.Errorf("connections=%d live=%d pings=%d pongs=%d", srv.Connections(), srv.LiveConnections(),
			srv.PingsSent(), srv.PongsReceived())
	}
	if _, err := srv.SlashCommand(ctx, SlashCommand{Command: "/osio", Text: "still there", UserID: "U2", ChannelID: "C1"}); err != nil {
		t.Fatal(err)
	}
}

func TestDisconnectReconnectAndRedeliver(t *testing.T) {
	srv := newTestServer(t)
	ctx := testCtx(t)
	b := startBot(t, srv, 5*time.Second)
	if err := srv.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	b.next(t, socketmode.EventTypeHello)

	// An envelope sent right after the disconnect is queued until the reconnect.
	srv.Disconnect("refresh_requested")
	id, err := srv.SendSlashCommand(SlashCommand{Command: "/osio", Text: "after refresh", UserID: "U1", ChannelID: "C1"})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := srv.WaitAck(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if string(ack.Payload) != `{"text":"got after refresh"}` {
		t.Errorf("ack payload = %s", ack.Payload)
	}
	if srv.Connections() != 2 || srv.Calls("apps.connections.open") != 2 {
		t.Errorf("connections=%d opens=%d", srv.Connections(), srv.Calls("apps.connections.open"))
	}
	b.next(t, socketmode.EventTypeHello)
	if err := srv.WaitFor(ctx, func() bool { return srv.LiveConnections() == 1 }); err != nil {
		t.Fatal(err)
	}

	// Redelivery: same envelope ID, retry_attempt 1, retry_reason timeout.
	first := b.next(t, socketmode.EventTypeSlashCommand)
	ack2, err := srv.Redeliver(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	retry := b.next(t, socketmode.EventTypeSlashCommand)
	if retry.Request.EnvelopeID != id || first.Request.RetryAttempt != 0 ||
		retry.Request.RetryAttempt != 1 || retry.Request.RetryReason != "timeout" {
		t.Errorf("first=%+v retry=%+v", first.Request, retry.Request)
	}
	if !ack2.Received.After(ack.Received) || ack2.EnvelopeID != id {
		t.Errorf("ack=%+v ack2=%+v", ack, ack2)
	}

	// While Slack is down the client keeps retrying apps.connections.open.
	srv.SetDown(true)
	srv.Disconnect("refresh_requested")
	if err := srv.WaitFor(ctx, func() bool { return srv.Calls("apps.connections.open") >= 4 }); err != nil {
		t.Fatal(err)
	}
	srv.SetDown(false)
	if err := srv.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.SlashCommand(ctx, SlashCommand{Command: "/osio", Text: "back", UserID: "U1", ChannelID: "C1"}); err != nil {
		t.Fatal(err)
	}
	if srv.Connections() != 3 {
		t.Errorf("connections = %d", srv.Connections())
	}
}

func TestWireFormatAndTickets(t *testing.T) {
	srv := newTestServer(t)
	ctx := testCtx(t)
	api := newAPI(srv)
	_, wsURL, err := api.StartSocketModeContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(wsURL, "ws://127.0.0.1:") || !strings.Contains(wsURL, "/link/?ticket=") {
		t.Errorf("url = %s", wsURL)
	}
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, resp, err := websocket.DefaultDialer.DialContext(ctx, wsURL, nil); err == nil ||
		resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("second dial with the same ticket: err=%v", err)
	}
	var hello map[string]any
	if err := conn.ReadJSON(&hello); err != nil {
		t.Fatal(err)
	}
	if hello["type"] != "hello" || hello["connection_info"].(map[string]any)["app_id"] != AppID {
		t.Errorf("hello = %v", hello)
	}
	id, err := srv.SendSlashCommand(SlashCommand{Command: "/x", Text: "y", UserID: "U1", ChannelID: "C1"})
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		EnvelopeID string          `json:"envelope_id"`
		Type       string          `json:"type"`
		Payload    json.RawMessage `json:"payload"`
		Accepts    bool            `json:"accepts_response_payload"`
	}
	if err := conn.ReadJSON(&env); err != nil {
		t.Fatal(err)
	}
	if env.EnvelopeID != id || env.Type != "slash_commands" || env.Payload[0] != '{' || !env.Accepts {
		t.Errorf("envelope = %+v %s", env, env.Payload)
	}
	if err := conn.WriteJSON(map[string]any{"envelope_id": id, "payload": map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	ack, err := srv.WaitAck(ctx, id)
	if err != nil || string(ack.Payload) != `{"k":"v"}` {
		t.Errorf("ack = %+v, %v", ack, err)
	}
	if srv.Connections() != 1 {
		t.Errorf("connections = %d", srv.Connections())
	}

	// apps.connections.open needs an xapp- token.
	bad := slack.New("xoxb-test", slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken("xoxb-nope"))
	if _, _, err := bad.StartSocketModeContext(ctx); err == nil || err.Error() != "invalid_auth" {
		t.Errorf("open with a bot token: %v", err)
	}
}

func wantSlackErr(t *testing.T, err error, code string) {
	t.Helper()
	if err == nil || err.Error() != code {
		t.Errorf("err = %v, want %s", err, code)
	}
}

func TestWebAPI(t *testing.T) {
	srv := newTestServer(t)
	ctx := testCtx(t)
	api := newAPI(srv)

	auth, err := api.AuthTestContext(ctx)
	if err != nil || auth.UserID != BotUserID || auth.BotID != BotID || auth.TeamID != TeamID || auth.URL != WorkspaceURL {
		t.Fatalf("auth.test = %+v, %v", auth, err)
	}
	_, err = slack.New("xoxp-user", slack.OptionAPIURL(srv.APIURL())).AuthTestContext(ctx)
	wantSlackErr(t, err, "invalid_auth")

	ch, ts, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("hello", false),
		slack.MsgOptionBlocks(slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "*hello*", false, false), nil, nil)))
	if err != nil || ch != "C1" || ts != "1764180000.000100" {
		t.Fatalf("postMessage = %s %s %v", ch, ts, err)
	}
	_, rts, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("reply", false), slack.MsgOptionTS(ts))
	if err != nil || rts <= ts {
		t.Fatalf("reply = %s %v", rts, err)
	}
	_, _, err = api.PostMessageContext(ctx, "CNOPE", slack.MsgOptionText("x", false))
	wantSlackErr(t, err, "channel_not_found")

	_, _, text, err := api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionText("hello v2", false))
	if err != nil || text != "hello v2" {
		t.Fatalf("update = %q %v", text, err)
	}
	msgs := srv.Messages("C1")
	if len(msgs) != 1 || msgs[0].Text != "hello v2" || msgs[0].Edits != 1 || len(msgs[0].History) != 1 ||
		msgs[0].History[0] != "hello" || !strings.Contains(string(msgs[0].Blocks), "*hello*") || msgs[0].Updated.IsZero() {
		t.Errorf("messages = %+v", msgs)
	}
	if th := srv.Thread("C1", ts); len(th) != 1 || th[0].Text != "reply" || th[0].ThreadTS != ts {
		t.Errorf("thread = %+v", th)
	}
	uts := srv.PostUserMessage("C1", "U1", "hi bot")
	_, _, _, err = api.UpdateMessageContext(ctx, "C1", uts, slack.MsgOptionText("hijack", false))
	wantSlackErr(t, err, "cant_update_message")
	_, _, _, err = api.UpdateMessageContext(ctx, "C1", "1.000000", slack.MsgOptionText("x", false))
	wantSlackErr(t, err, "message_not_found")

	ets, err := api.PostEphemeralContext(ctx, "C1", "U2", slack.MsgOptionText("psst", false))
	if err != nil || ets == "" {
		t.Fatalf("postEphemeral = %q %v", ets, err)
	}
	if e := srv.Ephemerals("U2"); len(e) != 1 || e[0].Text != "psst" || e[0].Source != "chat.postEphemeral" {
		t.Errorf("ephemerals = %+v", e)
	}

	link, err := api.GetPermalinkContext(ctx, &slack.PermalinkParameters{Channel: "C1", Ts: ts})
	if err != nil || link != "http://slack.local/archives/C1/p1764180000000100" {
		t.Errorf("permalink = %q %v", link, err)
	}
	members, err := api.GetUserGroupMembersContext(ctx, "S1")
	if err != nil || strings.Join(members, ",") != "U1,U2" {
		t.Errorf("usergroup = %v %v", members, err)
	}
	_, err = api.GetUserGroupMembersContext(ctx, "SNOPE")
	wantSlackErr(t, err, "no_such_subteam")
	u, err := api.GetUserInfoContext(ctx, "U1")
	if err != nil || u.ID != "U1" || u.Name != "alice" || u.RealName != "Alice A" ||
		u.Profile.Email != "alice@example.com" || u.Profile.DisplayName != "alice" || u.Profile.RealName != "Alice A" {
		t.Errorf("users.info = %+v %v", u, err)
	}
	_, err = api.GetUserInfoContext(ctx, "UNOPE")
	wantSlackErr(t, err, "user_not_found")

	resp, err := http.PostForm(srv.APIURL()+"foo.bar", url.Values{"token": {"xoxb-test"}})
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if body["error"] != "unknown_method" || strings.Join(srv.UnknownMethods(), ",") != "foo.bar" {
		t.Errorf("unknown method: %v %v", body, srv.UnknownMethods())
	}
	if srv.Calls("chat.postMessage") != 3 || srv.Calls("chat.update") != 3 || srv.Calls("auth.test") != 2 {
		t.Errorf("calls: post=%d update=%d auth=%d", srv.Calls("chat.postMessage"), srv.Calls("chat.update"), srv.Calls("auth.test"))
	}
	if all := srv.AllText(); !strings.Contains(all, "hello v2") || !strings.Contains(all, "psst") ||
		!strings.Contains(all, "*hello*") || strings.Contains(all, "xoxb-test") {
		t.Errorf("AllText = %q", all)
	}
}

func TestRateLimitAndDown(t *testing.T) {
	srv := newTestServer(t)
	ctx := testCtx(t)
	api := newAPI(srv)

	srv.RateLimitNext("auth.test", 1, 1500*time.Millisecond)
	_, err := api.AuthTestContext(ctx)
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != 2*time.Second {
		t.Fatalf("err = %v", err)
	}

	srv.RateLimitNext("chat.postMessage", 1, 10*time.Millisecond) // rounds up to 1s
	_, _, err = api.PostMessageContext(ctx, "C1", slack.MsgOptionText("first try", false))
	if !errors.As(err, &rl) || rl.RetryAfter != time.Second {
		t.Fatalf("err = %v", err)
	}
	time.Sleep(rl.RetryAfter)
	if _, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("second try", false)); err != nil {
		t.Fatal(err)
	}
	times := srv.CallTimes("chat.postMessage")
	if len(times) != 2 || times[1].Sub(times[0]) < time.Second {
		t.Errorf("call times = %v", times)
	}
	if msgs := srv.Messages("C1"); len(msgs) != 1 || msgs[0].Text != "second try" {
		t.Errorf("messages = %+v", msgs)
	}

	srv.SetDown(true)
	_, err = api.AuthTestContext(ctx)
	var sc slack.StatusCodeError
	if !errors.As(err, &sc) || sc.Code != http.StatusServiceUnavailable {
		t.Errorf("down: err = %v", err)
	}
	srv.SetDown(false)
	if _, err := api.AuthTestContext(ctx); err != nil {
		t.Errorf("up again: %v", err)
	}
	if srv.Calls("auth.test") != 3 {
		t.Errorf("auth.test calls = %d", srv.Calls("auth.test"))
	}
}

// TestRevokeAppToken: the connection is closed, apps.connections.open
// answers invalid_auth, slack-go's Socket Mode loop stops with it, and
// bot-token methods still work.
func TestRevokeAppToken(t *testing.T) {
	srv := newTestServer(t)
	ctx := testCtx(t)
	api := newAPI(srv)
	smc := socketmode.New(api)
	runErr := make(chan error, 1)
	go func() { runErr <- smc.RunContext(ctx) }()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-smc.Events:
			}
		}
	}()
	if err := srv.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	srv.RevokeAppToken("xapp-test")
	select {
	case err := <-runErr:
		if err == nil || err.Error() != "invalid_auth" {
			t.Errorf("RunContext ended with %v, want invalid_auth", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Socket Mode loop still running 5s after the app token was revoked")
	}
	if n := srv.LiveConnections(); n != 0 {
		t.Errorf("%d live connections after revocation", n)
	}
	if _, _, err := api.StartSocketModeContext(ctx); err == nil || err.Error() != "invalid_auth" {
		t.Errorf("apps.connections.open after revocation: %v, want invalid_auth", err)
	}
	if _, err := api.AuthTestContext(ctx); err != nil {
		t.Errorf("auth.test with the bot token after the app token's revocation: %v", err)
	}
	fresh := slack.New("xoxb-test", slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken("xapp-fresh"))
	if _, _, err := fresh.StartSocketModeContext(ctx); err != nil {
		t.Errorf("apps.connections.open with a new app token: %v", err)
	}
}

// A slash command's response_url with replace_original replaces the
// command's receipt in place, as Slack does: no new message for the user.
func TestResponseURLReplacesTheReceipt(t *testing.T) {
	srv := newTestServer(t)
	ctx := testCtx(t)
	b := startBot(t, srv, time.Second)
	if err := srv.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.SlashCommand(ctx, SlashCommand{Command: "/osio", Text: "replace", UserID: "U1", ChannelID: "C1"}); err != nil {
		t.Fatal(err)
	}
	b.next(t, socketmode.EventTypeSlashCommand)
	if err := srv.WaitFor(ctx, func() bool { r := srv.Receipts("U1"); return len(r) == 1 && r[0].Replaced == 1 }); err != nil {
		t.Fatalf("receipt never replaced: %+v", srv.Receipts("U1"))
	}
	r := srv.Receipts("U1")[0]
	if r.Text != "the outcome" || len(r.History) != 1 || r.History[0] != "got replace" || r.Channel != "C1" {
		t.Errorf("replaced receipt = %+v", r)
	}
	if e := srv.Ephemerals("U1"); len(e) != 0 {
		t.Errorf("a replacement was also shown as a new message: %+v", e)
	}
}

// A response_url takes five posts within 30 minutes, as on Slack: the
// sixth is refused (404, used_url), and so is any post once the URL is
// past its 30 minutes (404, expired_url); a later command's URL is fresh.
func TestResponseURLLimits(t *testing.T) {
	srv := newTestServer(t)
	ctx := testCtx(t)
	b := startBot(t, srv, time.Second)
	if err := srv.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	urlOf := func(text string) string {
		t.Helper()
		if _, err := srv.SlashCommand(ctx, SlashCommand{Command: "/osio", Text: text, UserID: "U1", ChannelID: "C1"}); err != nil {
			t.Fatal(err)
		}
		return b.next(t, socketmode.EventTypeSlashCommand).Data.(slack.SlashCommand).ResponseURL
	}
	post := func(u, text string) (int, string) {
		t.Helper()
		resp, err := http.Post(u, "application/json", strings.NewReader(`{"text":"`+text+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	u := urlOf("first")
	for i := 1; i <= 5; i++ {
		if code, body := post(u, fmt.Sprintf("post %d", i)); code != http.StatusOK {
			t.Fatalf("post %d of 5: %d %s", i, code, body)
		}
	}
	if code, body := post(u, "post 6"); code != http.StatusNotFound || !strings.Contains(body, `"error":"used_url"`) {
		t.Errorf("the sixth post: %d %s; want 404 used_url", code, body)
	}
	if n := len(srv.Ephemerals("U1")); n != 5 {
		t.Errorf("%d ephemerals shown; want the five accepted posts", n)
	}

	u2 := urlOf("second")
	srv.ExpireResponseURLs()
	if code, body := post(u2, "late"); code != http.StatusNotFound || !strings.Contains(body, `"error":"expired_url"`) {
		t.Errorf("a post past 30 minutes: %d %s; want 404 expired_url", code, body)
	}
	if code, body := post(urlOf("third"), "fresh"); code != http.StatusOK {
		t.Errorf("a later command's response_url: %d %s", code, body)
	}
}

// conversations.history and .replies answer a page at a time, as Slack
// does: at most PageSize messages whatever limit asks, has_more and a
// cursor to the next page; a message posted between two pages neither
// repeats nor hides one.
func TestConversationPages(t *testing.T) {
	srv := newTestServer(t)
	ctx := testCtx(t)
	api := newAPI(srv)
	post := func(opts ...slack.MsgOption) string {
		t.Helper()
		_, ts, err := api.PostMessageContext(ctx, "C1", opts...)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	parent := post(slack.MsgOptionText("parent", false))
	var top, replies []string
	for i := range 20 {
		top = append(top, post(slack.MsgOptionText(fmt.Sprintf("top %d", i), false)))
		replies = append(replies, post(slack.MsgOptionText(fmt.Sprintf("reply %d", i), false), slack.MsgOptionTS(parent)))
	}
	var got []string
	cursor, pages := "", 0
	for {
		h, err := api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: "C1", Limit: 200, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(h.Messages) > 15 {
			t.Errorf("page %d holds %d messages; want at most 15", pages, len(h.Messages))
		}
		for _, m := range h.Messages {
			got = append(got, m.Timestamp)
		}
		if pages == 1 {
			post(slack.MsgOptionText("posted between pages", false))
		}
		if !h.HasMore {
			if h.ResponseMetaData.NextCursor != "" {
				t.Errorf("the last page has a next_cursor %q", h.ResponseMetaData.NextCursor)
			}
			break
		}
		cursor = h.ResponseMetaData.NextCursor
	}
	want := append([]string{}, top...)
	slices.Reverse(want)
	want = append(want, parent)
	if pages != 2 || !slices.Equal(got, want) {
		t.Errorf("history in %d pages: %v; want 2 pages: %v", pages, got, want)
	}

	got, cursor, pages = nil, "", 0
	for {
		msgs, more, next, err := api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{ChannelID: "C1", Timestamp: parent, Limit: 200, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, m := range msgs {
			got = append(got, m.Timestamp)
		}
		if !more {
			break
		}
		cursor = next
	}
	if want := append([]string{parent}, replies...); pages != 2 || !slices.Equal(got, want) {
		t.Errorf("replies in %d pages: %v; want 2 pages: %v", pages, got, want)
	}

	if _, err := api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: "C1", Cursor: "bm90LWEtY3Vyc29y"}); err == nil || !strings.Contains(err.Error(), "invalid_cursor") {
		t.Errorf("a cursor not from the server: %v; want invalid_cursor", err)
	}
}
