package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/osio/osio-bot/app"
	"github.com/osio/osio-bot/testservers/testenv"
)

// Issue 9, part 2: a click is acked at once, whatever Slack's Web API is
// doing. usergroups.users.list (authorization) hangs until the bot's own
// deadline (10 s); the click's ack must not wait for it, and the click
// still takes effect once the listing answers on the bot's next try.
func TestClickAckedBeforeStalledAuthorization(t *testing.T) {
	w := newWorld(t, testenv.Options{})
	w.table("prod_ack", 2)
	w.start(app.Options{})
	_, id := w.request(testenv.Requester, "prod_ack")
	if id == "" {
		t.Fatal("no request id")
	}
	if _, err := w.Card(w.ctx, id); err != nil {
		t.Fatal(err)
	}

	// An outsider's click while the listing hangs: acked at once, and once
	// the listing gives up the clicker is told why nothing changed.
	w.Slack.HangNext("usergroups.users.list", 1)
	ack, err := w.Click(w.ctx, testenv.Outsider, "approve", id)
	if err != nil {
		t.Fatal(err)
	}
	if ack.Latency > time.Second {
		t.Errorf("the click was acked %v after it was sent, while usergroups.users.list hung; want an ack at once (< 1s)", ack.Latency)
	}
	t.Logf("click ack latency with a hung usergroups.users.list: %v", ack.Latency)
	if err := w.Slack.WaitFor(w.ctx, func() bool {
		return strings.Contains(lastEphemeral(w, testenv.Outsider), "could not check who may approve")
	}); err != nil {
		t.Fatalf("the outsider was never told that the check failed: %v (last: %q)", err, lastEphemeral(w, testenv.Outsider))
	}

	// The approver's click, with Slack answering again, approves.
	ack, err = w.Click(w.ctx, testenv.Approver, "approve", id)
	if err != nil {
		t.Fatal(err)
	}
	if ack.Latency > time.Second {
		t.Errorf("approve acked after %v", ack.Latency)
	}
	w.waitThread(id, "Approved by <@"+testenv.Approver+">")
	w.waitThread(id, "Request finished")
}
