package e2e

import (
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/osio/osio-bot/app"
	"github.com/osio/osio-bot/config"
	"github.com/osio/osio-bot/testservers/faultproxy"
	slackserver "github.com/osio/osio-bot/testservers/slack"
	"github.com/osio/osio-bot/testservers/testenv"
)

// Issue 9, part 1: a command is acked with its receipt before any check
// talks to a peer; the checks run after the ack, and their outcome
// replaces the receipt.

// receipt types /osio-export text as the requester and returns the ack's
// text and the request id its receipt names.
func (w *world) receipt(text string) (string, string) {
	w.t.Helper()
	ack, err := w.Slack.SlashCommand(w.ctx, slackserver.SlashCommand{Command: "/osio-export", Text: text, UserID: testenv.Requester, ChannelID: testenv.DevChannel})
	if err != nil {
		w.t.Fatal(err)
	}
	got := testenv.AckText(ack)
	m := receiptRe.FindStringSubmatch(got)
	if m == nil {
		w.t.Fatalf("/osio-export %s: the ack is not a receipt: %q", text, got)
	}
	return got, m[1]
}

// shown counts the messages user can see that name id: receipts and
// ephemeral messages (a receipt replaced in place is one message).
func (w *world) shown(user, id string) (n int, texts []string) {
	named := regexp.MustCompile(`\b` + regexp.QuoteMeta(id) + `\b`)
	for _, m := range append(w.Slack.Receipts(user), w.Slack.Ephemerals(user)...) {
		if named.MatchString(m.Text) {
			n++
			texts = append(texts, m.Text)
		}
	}
	return n, texts
}

// cards counts the approval cards of request id in the approvals channel.
func (w *world) cards(id string) int {
	n := 0
	for _, m := range w.Slack.Messages(testenv.Channel) {
		if m.ThreadTS == "" && strings.Contains(string(m.Blocks), id) {
			n++
		}
	}
	return n
}

// AWS stalls: the ack is the receipt all the same; within the check
// deadline the requester is told the check could not finish; the request
// ends refused with that reason, and nothing else is created: no card, no
// thread.
func TestStalledCheckIsToldWithinItsDeadline(t *testing.T) {
	w := newWorld(t, testenv.Options{Proxies: testenv.Proxies{AWS: true}, ProxyHoldMax: time.Minute,
		Tweak: func(c *config.Config) { c.Approval.CheckTimeout = config.Duration(700 * time.Millisecond) }})
	w.table("prod_txlog", 2)
	w.start(app.Options{})
	// One stalled call: the SDK does not retry a call its context ended.
	w.AWSProxy.Arm(faultproxy.Rule{Op: "DescribeTable", Fault: faultproxy.Timeout, Times: 1})

	start := time.Now()
	ack, id := w.receipt("prod_txlog")
	if !strings.Contains(ack, "checking the export of `prod_txlog`") {
		t.Errorf("receipt = %q", ack)
	}
	out, err := w.Outcome(w.ctx, testenv.Requester, id)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("outcome after %v: %s", took, out)
	if !strings.Contains(out, "could not check the tables in AWS: no answer within 700ms") || !strings.Contains(out, "nothing was requested") {
		t.Errorf("outcome = %q", out)
	}
	if took > 10*time.Second {
		t.Errorf("told after %v; the check deadline is 700ms (and a Slack call's 10s)", took)
	}
	if n := w.AWSProxy.Count("DescribeTable"); n == 0 {
		t.Errorf("DescribeTable never reached the proxy: the stall was not exercised")
	}
	// The outcome replaced the receipt: one message.
	if n, texts := w.shown(testenv.Requester, id); n != 1 {
		t.Errorf("the requester sees %d messages about %s, want 1: %q", n, id, texts)
	}
	status := w.slash(testenv.Requester, "/osio-export", "status "+id)
	if !strings.Contains(status, "refused") || !strings.Contains(status, "no answer within 700ms") || !strings.Contains(status, "/osio-export prod_txlog") {
		t.Errorf("status of the refused request = %q", status)
	}
	time.Sleep(300 * time.Millisecond) // a card would have been posted by now
	if n := w.cards(id); n != 0 {
		t.Errorf("%d cards for a refused request", n)
	}
	if n := len(w.Slack.Messages(testenv.Channel)); n != 0 {
		t.Errorf("%d messages in the approvals channel, want none", n)
	}
	// The refusal released the lock: once AWS answers, the same export can
	// be asked for.
	if _, id2 := w.request(testenv.Requester, "prod_txlog"); id2 == "" {
		t.Errorf("the table stayed locked after the refusal")
	}
}

// The requester cancels from the receipt while the checks run: the
// request ends cancelled, and the checks' outcome is dropped.
func TestCancelWhileChecking(t *testing.T) {
	w := newWorld(t, testenv.Options{Proxies: testenv.Proxies{AWS: true}, ProxyHoldMax: time.Minute,
		Tweak: func(c *config.Config) { c.Approval.CheckTimeout = config.Duration(1500 * time.Millisecond) }})
	w.table("prod_txlog", 2)
	w.start(app.Options{})
	w.AWSProxy.Arm(faultproxy.Rule{Op: "DescribeTable", Fault: faultproxy.Timeout, Times: 100})
	_, id := w.receipt("prod_txlog")
	w.click(testenv.Requester, "cancel", id)
	if err := w.Slack.WaitFor(w.ctx, func() bool {
		_, texts := w.shown(testenv.Requester, id)
		return strings.Contains(strings.Join(texts, "\n"), "cancelled before its checks ended")
	}); err != nil {
		_, texts := w.shown(testenv.Requester, id)
		t.Fatalf("never told of the cancel: %v %q", err, texts)
	}
	time.Sleep(2 * time.Second) // past the check deadline
	_, texts := w.shown(testenv.Requester, id)
	if all := strings.Join(texts, "\n"); strings.Contains(all, "no answer within") || strings.Contains(all, "created") {
		t.Errorf("the dropped check's outcome was told: %q", texts)
	}
	if n := w.cards(id); n != 0 {
		t.Errorf("%d cards for a request cancelled before its checks ended", n)
	}
	if st := w.slash(testenv.Requester, "/osio-export", "status "+id); !strings.Contains(st, "cancelled") {
		t.Errorf("status = %q", st)
	}
}

// Acceptance 3: the process is SIGKILLed right after the ack, before the
// checks end. After a restart the requester is told the outcome exactly
// once, and there is one card.
func TestKillAfterAckBeforeChecks(t *testing.T) {
	w := newWorld(t, testenv.Options{})
	w.table("prod_txlog", 2)
	bin := buildBot(t)
	w.Vars["OSIO_BOT_FAILPOINT"] = "intake.checking"
	p1 := startProc(t, w, bin, 1)
	ack, id := w.receipt("prod_txlog")
	t.Logf("receipt: %s", ack)
	killAtFailpoint(t, w, p1)
	if n, _ := w.shown(testenv.Requester, id); n != 1 || w.cards(id) != 0 {
		t.Fatalf("before the restart: %d messages, %d cards; want the receipt only", n, w.cards(id))
	}
	delete(w.Vars, "OSIO_BOT_FAILPOINT")
	p2 := startProc(t, w, bin, 2)
	out, err := w.Outcome(w.ctx, testenv.Requester, id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Request *"+id+"* created") || !strings.Contains(out, "Sent for approval") {
		t.Errorf("outcome after the restart = %q", out)
	}
	if _, err := w.Card(w.ctx, id); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // room for a second outcome or card
	if n, texts := w.shown(testenv.Requester, id); n != 2 {
		// The receipt (its response_url died with the first process) and
		// one outcome.
		t.Errorf("the requester sees %d messages about %s, want the receipt and one outcome: %q", n, id, texts)
	}
	if n := w.cards(id); n != 1 {
		t.Errorf("%d cards, want 1", n)
	}
	logs, _ := os.ReadFile(p2.log)
	if !strings.Contains(string(logs), "checking a request left unchecked or untold") {
		t.Errorf("the second process did not say it checked %s:\n%s", id, logs)
	}
	// It goes on as any request.
	w.click(testenv.Approver, "approve", id)
	w.waitThread(id, "Good luck!")
	_ = p2.cmd.Process.Signal(syscall.SIGTERM)
}
