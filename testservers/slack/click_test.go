package slackserver

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// A slash command's ack payload is the user's receipt, an ephemeral
// message with a ts of its own; clicking its button gives a container with
// is_ephemeral true and, as Slack does, no "message". A click on a channel
// message gives is_ephemeral false with the message.
func TestReceiptAndClickContainers(t *testing.T) {
	srv, err := New(Options{PingInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.AddChannel("C1", "general")
	srv.AddUser(User{ID: "U1", Name: "u1"})
	api := slack.New("xoxb-t", slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken("xapp-t"))
	sock := socketmode.New(api)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() { _ = sock.RunContext(ctx) }()
	payloads := make(chan slack.InteractionCallback, 4)
	go func() {
		for evt := range sock.Events {
			switch evt.Type {
			case socketmode.EventTypeSlashCommand:
				btn := slack.NewButtonBlockElement("cancel", "R-1", slack.NewTextBlockObject(slack.PlainTextType, "Cancel", false, false))
				_ = sock.Ack(*evt.Request, map[string]any{"response_type": "ephemeral", "text": "receipt",
					"blocks": []slack.Block{slack.NewActionBlock("requester", btn)}})
			case socketmode.EventTypeInteractive:
				_ = sock.Ack(*evt.Request)
				payloads <- evt.Data.(slack.InteractionCallback)
			}
		}
	}()
	if err := srv.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.SlashCommand(ctx, SlashCommand{Command: "/x", UserID: "U1", ChannelID: "C1"}); err != nil {
		t.Fatal(err)
	}
	rs := srv.Receipts("U1")
	if len(rs) != 1 || rs[0].Text != "receipt" || rs[0].Channel != "C1" || rs[0].TS == "" || rs[0].Source != "ack" {
		t.Fatalf("receipts = %+v", rs)
	}
	if _, err := srv.ClickButton(ctx, Click{UserID: "U1", ChannelID: "C1", MessageTS: rs[0].TS, ActionID: "cancel"}); err != nil {
		t.Fatal(err)
	}
	cb := <-payloads
	if c := cb.Container; c.Type != "message" || !c.IsEphemeral || c.ChannelID != "C1" || c.MessageTs != rs[0].TS {
		t.Errorf("receipt click container = %+v", c)
	}
	if cb.Message.Timestamp != "" || cb.Channel.ID != "C1" || cb.ActionCallback.BlockActions[0].Value != "R-1" || cb.ActionCallback.BlockActions[0].BlockID != "requester" {
		t.Errorf("receipt click: message ts %q channel %q action %+v", cb.Message.Timestamp, cb.Channel.ID, cb.ActionCallback.BlockActions[0])
	}

	// Another user cannot see the receipt: their click is on an unknown
	// message, delivered as a channel message.
	srv.AddUser(User{ID: "U2", Name: "u2"})
	if _, err := srv.ClickButton(ctx, Click{UserID: "U2", ChannelID: "C1", MessageTS: rs[0].TS, ActionID: "cancel", Value: "R-1"}); err != nil {
		t.Fatal(err)
	}
	if cb := <-payloads; cb.Container.IsEphemeral {
		t.Errorf("another user's click on the receipt is ephemeral: %+v", cb.Container)
	}

	_, ts, err := api.PostMessage("C1", slack.MsgOptionText("card", false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.ClickButton(ctx, Click{UserID: "U1", ChannelID: "C1", MessageTS: ts, ActionID: "approve", Value: "R-1"}); err != nil {
		t.Fatal(err)
	}
	cb = <-payloads
	if c := cb.Container; c.IsEphemeral || c.ChannelID != "C1" || c.MessageTs != ts || cb.Message.Timestamp != ts {
		b, _ := json.Marshal(cb.Container)
		t.Errorf("card click container = %s, message ts %q", b, cb.Message.Timestamp)
	}
}
