package bot

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"go.uber.org/zap/zaptest"

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

// gatedChecker is fakeChecker whose CheckTables waits for open, then
// passes, or refuses the first table when refuse is set.
type gatedChecker struct {
	fakeChecker
	open   chan struct{}
	refuse bool
}

func (g gatedChecker) CheckTables(ctx context.Context, t []string) (string, error) {
	select {
	case <-g.open:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	if g.refuse {
		return "`" + t[0] + "` does not exist in osio.", nil
	}
	return "", nil
}

// toldAfterExpiry types "/osio-export prod_txlog" as UDEV to a bot that
// sweeps every 50 ms (abandon after 300 ms), and lets its check end (a
// refusal when refuse is set) once the command's response_url has expired
// and fail (if any) has been applied to Slack; it returns the world and
// the request's id.
func toldAfterExpiry(t *testing.T, refuse bool, fail func(*slackserver.Server)) (*socketWorld, string) {
	t.Helper()
	gate := gatedChecker{open: make(chan struct{}), refuse: refuse}
	w := newSocketWorldChecked(t, gate, func(d *Deps) {
		d.Responder = webhookResponder{}
		d.Settings.SweepInterval, d.Settings.AbandonAfter = 50*time.Millisecond, 300*time.Millisecond
		d.Log = zaptest.NewLogger(t)
	})
	ack := w.slash("UDEV", "prod_txlog")
	id := requestIDInText.FindString(string(ack.Payload))
	if id == "" {
		t.Fatalf("no request id in the receipt %s", ack.Payload)
	}
	w.srv.ExpireResponseURLs()
	if fail != nil {
		fail(w.srv)
	}
	close(gate.open)
	return w, id
}

// A check that ends after the command's response_url expired (Slack: 30
// minutes, then HTTP 404 expired_url) still tells its requester, once,
// by chat.postEphemeral in the command's channel, and the request records
// that they were told.
func TestOutcomeToldWhenResponseURLExpired(t *testing.T) {
	w, id := toldAfterExpiry(t, false, nil)
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	if err := w.srv.WaitFor(ctx, func() bool { return len(w.srv.Ephemerals("UDEV")) > 0 }); err != nil {
		t.Fatalf("%s: the requester was never told the outcome: %v", id, err)
	}
	if err := w.srv.WaitFor(ctx, func() bool { r, err := w.st.Get(id); return err == nil && r.Told }); err != nil {
		t.Errorf("%s: not recorded as told: %v", id, err)
	}
	time.Sleep(200 * time.Millisecond) // room for a second message
	told := w.srv.Ephemerals("UDEV")
	if len(told) != 1 || told[0].Source != "chat.postEphemeral" || told[0].Channel != "CDEV" ||
		!strings.Contains(told[0].Text, id) || !strings.Contains(told[0].Text, "approval") {
		t.Fatalf("the requester was told %d messages %+v; want one chat.postEphemeral in CDEV sending %s for approval", len(told), told, id)
	}
	if r := w.srv.Receipts("UDEV"); len(r) != 1 || r[0].Replaced != 0 {
		t.Errorf("the expired receipt changed: %+v", r)
	}
}

// Slack replaced the receipt with the outcome but its answer was lost (the
// connection dropped): the bot cannot tell a lost answer from a lost post,
// so it posts to the response_url again (replace_original is idempotent),
// and the requester sees the outcome once, in the receipt, not also as a
// second message.
func TestOutcomeToldOnceWhenResponseURLAnswerLost(t *testing.T) {
	gate := gatedChecker{open: make(chan struct{})}
	w := newSocketWorldChecked(t, gate, func(d *Deps) { d.Responder = webhookResponder{}; d.Log = zaptest.NewLogger(t) })
	ack := w.slash("UDEV", "prod_txlog")
	id := requestIDInText.FindString(string(ack.Payload))
	w.srv.LoseNext("response_url", 1)
	close(gate.open)
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	if err := w.srv.WaitFor(ctx, func() bool { r, err := w.st.Get(id); return err == nil && r.Told }); err != nil {
		t.Fatalf("%s: not recorded as told: %v", id, err)
	}
	time.Sleep(200 * time.Millisecond) // room for a second message
	if e := w.srv.Ephemerals("UDEV"); len(e) != 0 {
		t.Errorf("the requester got %d more messages, the first by %s: %q; want the receipt replaced only", len(e), e[0].Source, e[0].Text)
	}
	if r := w.srv.Receipts("UDEV"); len(r) != 1 || r[0].Replaced == 0 || !strings.Contains(r[0].Text, "approval") {
		t.Errorf("the receipt: %+v; want it replaced with the outcome", r)
	}
	if n := w.srv.Lost("response_url"); n != 1 {
		t.Errorf("%d response_url answers lost; want 1", n)
	}
}
