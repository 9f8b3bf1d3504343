package bot

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	slackserver "github.com/osio/osio-bot/testservers/slack"
)

var requestIDInText = regexp.MustCompile(`R-[0-9]{6,}`)

// webhookResponder posts to a response_url as app.responseURL does.
type webhookResponder struct{}

func (webhookResponder) Respond(ctx context.Context, u string, msg *slack.WebhookMessage) error {
	return slack.PostWebhookCustomHTTPContext(ctx, u, &http.Client{Timeout: 5 * time.Second}, msg)
}

// Issue 12 part 4, item 8: the requester who cancels from their receipt is
// answered: the receipt is replaced (through the click's response_url) by
// "R-… cancelled; nothing ran.", without its Cancel button.
func TestRequesterCancelIsAnswered(t *testing.T) {
	w := newSocketWorldWith(t, func(d *Deps) { d.Responder = webhookResponder{} })
	ack := w.slash("UDEV", "prod_txlog")
	id := requestIDInText.FindString(string(ack.Payload))
	if id == "" {
		t.Fatalf("no request id in the receipt %s", ack.Payload)
	}
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	var receipt slackserver.Message
	if err := w.srv.WaitFor(ctx, func() bool {
		for _, r := range w.srv.Receipts("UDEV") {
			if strings.Contains(r.Text, "created") && strings.Contains(r.Text, id) {
				receipt = r
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("%s was never sent for approval: %v", id, err)
	}
	n := len(w.srv.Ephemerals("UDEV"))
	if _, err := w.srv.ClickButton(ctx, slackserver.Click{UserID: "UDEV", ChannelID: receipt.Channel, MessageTS: receipt.TS,
		ActionID: ActionCancel, BlockID: "requester", Value: id}); err != nil {
		t.Fatal(err)
	}
	want := id + " cancelled; nothing ran."
	var told []slackserver.Message
	if err := w.srv.WaitFor(ctx, func() bool {
		es := w.srv.Ephemerals("UDEV")
		told = es[min(n, len(es)):]
		return len(told) > 0
	}); err != nil {
		t.Fatalf("the requester was told nothing after Cancel: %v", err)
	}
	time.Sleep(200 * time.Millisecond) // room for a second reply
	told = w.srv.Ephemerals("UDEV")[n:]
	if len(told) != 1 || !strings.Contains(told[0].Text, want) {
		t.Fatalf("after Cancel the requester was told %d messages %+v; want one saying %q", len(told), told, want)
	}
	if told[0].Source != "response_url" || !told[0].ReplaceOriginal {
		t.Errorf("the reply does not replace the receipt (source %s, replace_original %t)", told[0].Source, told[0].ReplaceOriginal)
	}
	if strings.Contains(string(told[0].Blocks), ActionCancel) {
		t.Errorf("the replaced receipt keeps its Cancel button: %s", told[0].Blocks)
	}
}
