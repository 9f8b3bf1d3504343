package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/osio/osio-bot/app"
	"github.com/osio/osio-bot/config"
	slackserver "github.com/osio/osio-bot/testservers/slack"
	"github.com/osio/osio-bot/testservers/testenv"
)

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scraping /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func ephemeralsWith(w *world, user string, substrs ...string) []slackserver.Message {
	var out []slackserver.Message
next:
	for _, m := range w.Slack.Ephemerals(user) {
		for _, s := range substrs {
			if !strings.Contains(m.Text, s) {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// Item 9: the bot is not a member of the approvals channel. The card is
// tried once, not every backoff round; the failure is an error log and a
// metric; the requester is told where they asked; and when the request
// expires the requester is told that too.
func TestDeliveryUnreachableApprovalsChannel(t *testing.T) {
	metrics := freeAddr(t)
	w := newWorld(t, testenv.Options{Tweak: func(c *config.Config) {
		c.Approval.Expiry = config.Duration(4 * time.Second)
		c.Metrics.Listen = metrics
	}})
	w.table("prod_txlog", 1)
	w.Slack.SetChannelError(testenv.Channel, "not_in_channel")
	w.start(app.Options{})

	_, id := w.request(testenv.Requester, "prod_txlog")
	if id == "" {
		t.Fatal("no request created")
	}
	if err := w.Slack.WaitFor(w.ctx, func() bool { return len(ephemeralsWith(w, testenv.Requester, id, "cannot reach")) > 0 }); err != nil {
		t.Fatal(err)
	}
	told := ephemeralsWith(w, testenv.Requester, id, "cannot reach")[0]
	if told.Channel != testenv.DevChannel || !strings.Contains(told.Text, "not_in_channel") || !strings.Contains(told.Text, testenv.Channel) {
		t.Errorf("requester was told %q in %s; want the channel and Slack's error, where they asked (%s)", told.Text, told.Channel, testenv.DevChannel)
	}
	if got := scrape(t, metrics); !strings.Contains(got, `osio_bot_slack_errors_total{class="channel",error="not_in_channel"} 1`) {
		t.Errorf("/metrics lacks the channel error:\n%s", grepLines(got, "osio_bot_slack"))
	}
	if n := w.logs.FilterLevelExact(zapcore.ErrorLevel).FilterMessageSnippet("cannot post to a channel").Len(); n != 1 {
		t.Errorf("%d error logs about the channel; want 1", n)
	}

	if err := w.Slack.WaitFor(w.ctx, func() bool { return len(ephemeralsWith(w, testenv.Requester, id, "expired")) > 0 }); err != nil {
		t.Fatalf("the requester was never told that %s expired: %v", id, err)
	}
	time.Sleep(1500 * time.Millisecond) // room for a second notice or a retry
	if n := len(ephemeralsWith(w, testenv.Requester, id, "cannot reach")); n != 1 {
		t.Errorf("requester told %d times that the channel is unreachable; want once", n)
	}
	if n := len(ephemeralsWith(w, testenv.Requester, id, "expired")); n != 1 {
		t.Errorf("requester told %d times that %s expired; want once", n, id)
	}
	if n := w.Slack.Calls("chat.postMessage"); n != 1 {
		t.Errorf("%d chat.postMessage calls to a channel that answered not_in_channel; want 1", n)
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Item 15: Slack takes posts and edits whose answers never arrive (the
// card, the first reply, later the status message and replies). The
// channel holds one card and the thread holds every reply once, in order,
// with one status message.
func TestDeliveryLostAnswers(t *testing.T) {
	w := newWorld(t, testenv.Options{})
	w.table("prod_txlog", 3)
	w.start(app.Options{})

	w.Slack.LoseNext("chat.postMessage", 2) // the card and "Requested by"
	_, id := w.request(testenv.Requester, "prod_txlog")
	w.waitThread(id, "Requested by")
	w.Slack.LoseNext("chat.postMessage", 2) // "Approved by" and the status message
	w.Slack.LoseNext("chat.update", 1)
	w.click(testenv.Approver, "approve", id)
	w.waitThread(id, "Request finished")

	if n := w.Slack.Lost("chat.postMessage"); n != 4 {
		t.Errorf("%d post answers lost; the test means 4", n)
	}
	var cards int
	for _, m := range w.Slack.Messages(testenv.Channel) {
		if strings.Contains(m.Text, id) {
			cards++
		}
	}
	if cards != 1 {
		t.Errorf("the channel holds %d cards of %s; want 1", cards, id)
	}
	th := w.Slack.Thread(testenv.Channel, mustCard(t, w, id).TS)
	seen, status := map[string]int{}, 0
	var texts []string
	for _, m := range th {
		texts = append(texts, m.Text)
		if isStatus(m) {
			status++
			continue
		}
		seen[m.Text]++
	}
	for text, n := range seen {
		if n > 1 {
			t.Errorf("reply posted %d times: %q", n, text)
		}
	}
	if status != 1 {
		t.Errorf("%d status messages; want 1:\n%s", status, strings.Join(texts, "\n"))
	}
	last := -1
	joined := strings.Join(texts, "\n")
	for _, want := range []string{"Requested by", "Approved by", "FINISHED.", "Good luck!", "Request finished"} {
		i := strings.Index(joined, want)
		if i <= last {
			t.Errorf("thread out of order or missing %q:\n%s", want, joined)
		}
		last = i
	}
}

// Item 10: a Slack call that never answers holds delivery up for one
// call deadline, not for good.
func TestDeliveryHungSlackCall(t *testing.T) {
	w := newWorld(t, testenv.Options{})
	w.table("prod_txlog", 1)
	w.start(app.Options{SlackCallTimeout: time.Second})

	w.Slack.HangNext("chat.postMessage", 1)
	start := time.Now()
	_, id := w.request(testenv.Requester, "prod_txlog")
	w.waitThread(id, "Requested by")
	took := time.Since(start)
	t.Logf("card and first reply delivered %v after a hung chat.postMessage", took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("delivery took %v after a hung call with a 1 s deadline", took)
	}
	if n := len(w.Slack.Messages(testenv.Channel)); n != 1 {
		t.Errorf("channel holds %d messages; want the card once", n)
	}
}
