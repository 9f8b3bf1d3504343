package bot

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/store"
	slackserver "github.com/osio/osio-bot/testservers/slack"
)

// Channels and users of the reporter's Slack world.
const (
	approvals = "CAPPROVALS"
	origin    = "CORIGIN"
	requester = "UREQ"
)

// slackWorld is a reporter's peers: the local Slack server reached with
// the real slack-go client, and a real store.
type slackWorld struct {
	t   *testing.T
	srv *slackserver.Server
	api *slack.Client
	st  *store.Store
}

func newSlackWorld(t *testing.T) *slackWorld {
	t.Helper()
	srv, err := slackserver.New(slackserver.Options{PingInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	srv.AddChannel(approvals, "approvals")
	srv.AddChannel(origin, "dev")
	srv.AddUser(slackserver.User{ID: requester, Name: "dev"})
	st, err := store.Open(filepath.Join(t.TempDir(), "r.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &slackWorld{t: t, srv: srv, api: slack.New("xoxb-test", slack.OptionAPIURL(srv.APIURL())), st: st}
}

func cardText(r *actions.Request) (string, []slack.Block) {
	text := fmt.Sprintf("k request %s by <@%s>: %s", r.ID, r.Requester, r.State)
	return text, []slack.Block{slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, text, false, false), nil, nil)}
}

func (w *slackWorld) reporter(o ReporterOptions) *Reporter {
	if o.Render == nil {
		o.Render = cardText
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	o.MinInterval = time.Millisecond
	if o.ProgressInterval == 0 {
		o.ProgressInterval = time.Hour
	}
	return NewReporter(w.api, w.st, o)
}

func (w *slackWorld) request(channel string, expires time.Time, events ...actions.Event) string {
	w.t.Helper()
	res, err := w.st.Create(&actions.Request{Kind: "k", Requester: requester, Origin: origin, Thread: actions.Thread{Channel: channel}, ExpiresAt: expires}, "", events...)
	if err != nil {
		w.t.Fatal(err)
	}
	return res.Request.ID
}

func (w *slackWorld) add(id string, events ...actions.Event) {
	w.t.Helper()
	if _, err := w.st.Update(id, nil, func(*actions.Request) error { return nil }, events...); err != nil {
		w.t.Fatal(err)
	}
}

func (w *slackWorld) thread(id string) []slackserver.Message {
	r, err := w.st.Get(id)
	if err != nil || r.Thread.TS == "" {
		return nil
	}
	return w.srv.Thread(r.Thread.Channel, r.Thread.TS)
}

func (w *slackWorld) run(rep *Reporter) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rep.Run(ctx); close(done) }()
	w.t.Cleanup(func() { cancel(); <-done })
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func texts(ms []slackserver.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Text)
	}
	return out
}

// Item 10: a call that never answers must not stop delivery. The first
// post hangs; the reporter gives up on it at its deadline and delivers
// both requests.
func TestReporterHungCallDoesNotStopDelivery(t *testing.T) {
	w := newSlackWorld(t)
	a := w.request(approvals, time.Now().Add(time.Hour), actions.Event{Kind: actions.Card})
	b := w.request(approvals, time.Now().Add(time.Hour), actions.Event{Kind: actions.Card})
	w.srv.HangNext("chat.postMessage", 1)
	w.run(w.reporter(ReporterOptions{CallTimeout: 300 * time.Millisecond}))
	eventually(t, 5*time.Second, "both cards posted after a hung call", func() bool {
		ra, _ := w.st.Get(a)
		rb, _ := w.st.Get(b)
		return ra.Thread.TS != "" && rb.Thread.TS != ""
	})
	if n := len(w.srv.Messages(approvals)); n != 2 {
		t.Errorf("channel holds %d messages; want the two cards", n)
	}
}

// Item 10: during an outage, new events must not wake the reporter out of
// its backoff (1 s, 2 s, 4 s...).
func TestReporterOutageBackoffIgnoresNotify(t *testing.T) {
	w := newSlackWorld(t)
	w.request(approvals, time.Now().Add(time.Hour), actions.Event{Kind: actions.Card})
	w.srv.SetDown(true)
	rep := w.reporter(ReporterOptions{})
	w.run(rep)
	const window = 3500 * time.Millisecond
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		rep.Notify("x")
	}
	// Attempts at 0, 1 s and 3 s. The request is older than the reporter,
	// so an attempt reads the channel (for a card posted before) first.
	n := w.srv.Calls("chat.postMessage") + w.srv.Calls("conversations.history")
	t.Logf("%d Slack calls in %v of outage", n, window)
	if n < 2 || n > 4 {
		t.Fatalf("%d Slack calls in %v of outage with a Notify every 20ms; the backoff allows 3", n, window)
	}
}

// deliverLost delivers id's next post with Slack's answer to it lost,
// then delivers again (up to three times) until a round succeeds.
func (w *slackWorld) deliverLost(rep *Reporter, id string) {
	w.t.Helper()
	w.srv.LoseNext("chat.postMessage", 1)
	if _, err := rep.deliver(context.Background(), id); err == nil {
		w.t.Fatal("deliver after a lost answer: want an error")
	}
	for i := 0; i < 3; i++ {
		if _, err := rep.deliver(context.Background(), id); err == nil {
			break
		}
	}
}

// Item 15: Slack took the reply but its answer was lost. The thread must
// hold the reply once, both when the same process retries and after a
// restart; Slack's escaping (&amp;) must not defeat the check.
func TestReporterLostReplyAnswerPostsOnce(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			w := newSlackWorld(t)
			id := w.request(approvals, time.Now().Add(time.Hour), actions.Event{Kind: actions.Card})
			rep := w.reporter(ReporterOptions{})
			ctx := context.Background()
			if _, err := rep.deliver(ctx, id); err != nil {
				t.Fatal(err)
			}
			const text = "Exported `a&b` to s3://bucket/backups/a&b <dev> & verified"
			w.add(id, actions.Event{Kind: actions.Message, Text: text})
			w.srv.LoseNext("chat.postMessage", 1)
			if _, err := rep.deliver(ctx, id); err == nil {
				t.Fatal("deliver after a lost answer: want an error")
			}
			if restart {
				rep = w.reporter(ReporterOptions{Now: func() time.Time { return time.Now().Add(time.Minute) }})
			}
			for i := 0; i < 3; i++ {
				if _, err := rep.deliver(ctx, id); err == nil {
					break
				}
			}
			if th := w.thread(id); len(th) != 1 {
				t.Fatalf("thread holds %q; want the reply once", texts(th))
			}
		})
	}
}

// Slack took a card but its answer was lost, and by the retry twenty
// other messages came into the channel: Slack answers conversations.history
// a page at a time (15 here), so the card is on the second page. It must
// be found there and adopted, not posted again.
func TestReporterLostCardAnswerBusyChannel(t *testing.T) {
	w := newSlackWorld(t)
	id := w.request(approvals, time.Now().Add(time.Hour), actions.Event{Kind: actions.Card})
	rep := w.reporter(ReporterOptions{})
	ctx := context.Background()
	w.srv.LoseNext("chat.postMessage", 1)
	if _, err := rep.deliver(ctx, id); err == nil {
		t.Fatal("deliver after a lost answer: want an error")
	}
	for i := range 20 {
		if _, _, err := w.api.PostMessageContext(ctx, approvals, slack.MsgOptionText(fmt.Sprintf("other card %d", i), false)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		if _, err := rep.deliver(ctx, id); err == nil {
			break
		}
	}
	cards := 0
	for _, m := range w.srv.Messages(approvals) {
		if m.ThreadTS == "" && strings.Contains(m.Text, id) {
			cards++
		}
	}
	if cards != 1 {
		t.Errorf("%d cards of %s in the channel; want the lost one adopted", cards, id)
	}
}

// People talked in the thread (twenty replies) before the bot's next
// reply, whose answer was lost: the reply is on the second page of
// conversations.replies, and must be found there, not posted again.
func TestReporterLostReplyAnswerLongThread(t *testing.T) {
	w := newSlackWorld(t)
	id := w.request(approvals, time.Now().Add(time.Hour), actions.Event{Kind: actions.Card})
	rep := w.reporter(ReporterOptions{})
	ctx := context.Background()
	if _, err := rep.deliver(ctx, id); err != nil {
		t.Fatal(err)
	}
	r, _ := w.st.Get(id)
	people := slack.New("xoxb-people", slack.OptionAPIURL(w.srv.APIURL()))
	for i := range 20 {
		if _, _, err := people.PostMessageContext(ctx, approvals, slack.MsgOptionText(fmt.Sprintf("a question %d", i), false), slack.MsgOptionTS(r.Thread.TS)); err != nil {
			t.Fatal(err)
		}
	}
	w.add(id, actions.Event{Kind: actions.Message, Text: "Approved by <@UCATCHER>."})
	w.deliverLost(rep, id)
	n := 0
	for _, m := range w.thread(id) {
		if strings.Contains(m.Text, "Approved by") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the thread holds the reply %d times; want once", n)
	}
}

// Item 15: the status message's answer was lost; progress must still edit
// one status message, not post a second.
func TestReporterLostStatusAnswerPostsOnce(t *testing.T) {
	w := newSlackWorld(t)
	id := w.request(approvals, time.Now().Add(time.Hour), actions.Event{Kind: actions.Card})
	rep := w.reporter(ReporterOptions{ProgressInterval: time.Millisecond})
	ctx := context.Background()
	if _, err := rep.deliver(ctx, id); err != nil {
		t.Fatal(err)
	}
	w.add(id, actions.Event{Kind: actions.Progress, Text: "step 1 of 3 & counting"})
	w.deliverLost(rep, id)
	w.add(id, actions.Event{Kind: actions.Progress, Text: "step 2 of 3"})
	time.Sleep(5 * time.Millisecond)
	if _, err := rep.deliver(ctx, id); err != nil {
		t.Fatal(err)
	}
	th := w.thread(id)
	if len(th) != 1 || !strings.Contains(th[0].Text, "step 2 of 3") {
		t.Fatalf("thread holds %q; want one status message saying step 2", texts(th))
	}
}

// Item 9: a channel the bot cannot post to is not retried every backoff
// round; the requester is told once, in the channel they asked from.
func TestReporterUnreachableChannel(t *testing.T) {
	for _, code := range []string{"not_in_channel", "is_archived", "channel_not_found"} {
		t.Run(code, func(t *testing.T) {
			w := newSlackWorld(t)
			id := w.request(approvals, time.Now().Add(time.Hour), actions.Event{Kind: actions.Card},
				actions.Event{Kind: actions.Message, Text: "Requested by someone."})
			w.srv.SetChannelError(approvals, code)
			var mu sync.Mutex
			var counted []string
			clock := &fakeClock{t: time.Now()}
			rep := w.reporter(ReporterOptions{Now: clock.Now, OnError: func(class, code string) {
				mu.Lock()
				counted = append(counted, class+":"+code)
				mu.Unlock()
			}})
			w.run(rep)
			eventually(t, 5*time.Second, "the requester is told", func() bool { return len(w.srv.Ephemerals(requester)) > 0 })
			time.Sleep(1500 * time.Millisecond)
			if n := w.srv.Calls("chat.postMessage"); n > 1 {
				t.Errorf("%d chat.postMessage calls to a channel that answered %s; want 1", n, code)
			}
			e := w.srv.Ephemerals(requester)
			if len(e) != 1 || e[0].Channel != origin || !strings.Contains(e[0].Text, id) || !strings.Contains(e[0].Text, approvals) {
				t.Errorf("requester was told %+v; want one message in %s naming %s and the channel", texts(e), origin, id)
			}
			if err := rep.Health(); err == nil || !strings.Contains(err.Error(), approvals) || !strings.Contains(err.Error(), code) {
				t.Errorf("Health() = %v; want the channel and %s", err, code)
			}
			mu.Lock()
			if len(counted) != 1 || counted[0] != "channel:"+code {
				t.Errorf("counted %v; want [channel:%s]", counted, code)
			}
			mu.Unlock()

			// Someone fixes the channel: the next probe, 5 minutes
			// later, delivers, and the reporter is healthy again.
			w.srv.SetChannelError(approvals, "")
			clock.Add(5 * time.Minute)
			rep.Notify("")
			eventually(t, 5*time.Second, "card and reply posted after the channel was fixed", func() bool { return len(w.thread(id)) == 1 })
			if err := rep.Health(); err != nil {
				t.Errorf("Health() after recovery = %v", err)
			}
			if n := len(w.srv.Ephemerals(requester)); n != 1 {
				t.Errorf("requester told %d times; want once", n)
			}
		})
	}
}

// Item 9: when a request expires, its requester is told, not only the card.
func TestReporterExpiryTellsRequester(t *testing.T) {
	w := newSlackWorld(t)
	id := w.request(approvals, time.Now().Add(time.Hour), actions.Event{Kind: actions.Card})
	rep := w.reporter(ReporterOptions{})
	ctx := context.Background()
	if _, err := rep.deliver(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := actions.ExpireDue(w.st, time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // a second round must not tell again
		if _, err := rep.deliver(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	e := w.srv.Ephemerals(requester)
	if len(e) != 1 || !strings.Contains(e[0].Text, id) || !strings.Contains(e[0].Text, "expired") {
		t.Fatalf("requester was told %q; want one message that %s expired", texts(e), id)
	}
}

// Item 9: invalid_blocks and msg_too_long fall back to a plain-text
// rendering that fits, instead of being retried forever.
func TestReporterContentErrorsFallBack(t *testing.T) {
	w := newSlackWorld(t)
	big := func(r *actions.Request) (string, []slack.Block) {
		text, _ := cardText(r)
		var bl []slack.Block
		for i := 0; i < 60; i++ {
			bl = append(bl, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, fmt.Sprintf("line %d", i), false, false), nil, nil))
		}
		bl = append(bl, slack.NewActionBlock("act", slack.NewButtonBlockElement(ActionApprove, r.ID, slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false))))
		return text, bl
	}
	id := w.request(approvals, time.Now().Add(time.Hour), actions.Event{Kind: actions.Card},
		actions.Event{Kind: actions.Message, Text: strings.Repeat("long line of output\n", 3000)},
		actions.Event{Kind: actions.Message, Text: "after"})
	rep := w.reporter(ReporterOptions{Render: big})
	w.run(rep)
	eventually(t, 5*time.Second, "card and both replies posted", func() bool { return len(w.thread(id)) == 2 })
	card := w.srv.Messages(approvals)
	if len(card) != 1 || !strings.Contains(card[0].Text, id) {
		t.Fatalf("channel holds %q; want the card once", texts(card))
	}
	if !strings.Contains(string(card[0].Blocks), ActionApprove) {
		t.Errorf("fallback card lost its Approve button: %s", card[0].Blocks)
	}
	th := w.thread(id)
	if len([]rune(th[0].Text)) > slackserver.MaxTextChars || !strings.HasPrefix(th[0].Text, "long line of output") || th[1].Text != "after" {
		t.Errorf("thread = %d chars, %q", len(th[0].Text), th[1].Text)
	}
}

// Item 13: the reporter forgets a request once it has ended and its events
// are delivered.
func TestReporterForgetsEndedRequests(t *testing.T) {
	w := newSlackWorld(t)
	id := w.request(approvals, time.Now().Add(time.Hour), actions.Event{Kind: actions.Card},
		actions.Event{Kind: actions.Message, Text: "hello"}, actions.Event{Kind: actions.Progress, Text: "p"})
	rep := w.reporter(ReporterOptions{ProgressInterval: time.Millisecond, Now: func() time.Time { return time.Now().Add(time.Minute) }})
	ctx := context.Background()
	if _, err := rep.deliver(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := w.st.Transition(id, []actions.State{actions.Pending}, actions.Denied, func(*actions.Request) {},
		actions.Event{Kind: actions.Card}, actions.Event{Kind: actions.Message, Text: "Denied."}); err != nil {
		t.Fatal(err)
	}
	if _, err := rep.deliver(ctx, id); err != nil {
		t.Fatal(err)
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if len(rep.reqs) != 0 {
		t.Fatalf("after %s ended the reporter still keeps %v", id, rep.reqs)
	}
	rep.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	rep.deliverAll(ctx)
	rep.mu.Lock()
	if len(rep.lastCall) != 0 {
		t.Errorf("the reporter still keeps the last call times %v", rep.lastCall)
	}
}

// Item 9: a token Slack refuses stops delivery (no retry every backoff
// round) and makes the reporter unhealthy.
func TestReporterRefusedToken(t *testing.T) {
	for _, code := range []string{"token_revoked", "invalid_auth", "account_inactive", "missing_scope"} {
		t.Run(code, func(t *testing.T) {
			w := newSlackWorld(t)
			w.request(approvals, time.Now().Add(time.Hour), actions.Event{Kind: actions.Card})
			w.srv.FailNext("chat.postMessage", code, 1000)
			rep := w.reporter(ReporterOptions{})
			w.run(rep)
			eventually(t, 5*time.Second, "unhealthy", func() bool { return rep.Health() != nil })
			time.Sleep(1500 * time.Millisecond)
			if n := w.srv.Calls("chat.postMessage"); n != 1 {
				t.Errorf("%d chat.postMessage calls after %s; want 1", n, code)
			}
			if err := rep.Health(); !strings.Contains(err.Error(), code) {
				t.Errorf("Health() = %v", err)
			}
		})
	}
}

// fakeClock is a reporter's clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
