package bot

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/store"
)

// recorder is a fake Poster that records when each call came and what it
// carried. It does not model Slack's formatting or errors.
type recorder struct {
	mu      sync.Mutex
	calls   []call
	n       int
	history []slack.Message
}

type call struct {
	method, text, ts string
	at               time.Time
}

func (r *recorder) add(method string, opts []slack.MsgOption, ts string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	if ts == "" {
		ts = time.Unix(1700000000, int64(r.n)*1000).Format("1.000000")
	}
	_, vals, _ := slack.UnsafeApplyMsgOptions("", "C", "", opts...)
	r.calls = append(r.calls, call{method: method, text: vals.Get("text"), ts: ts, at: time.Now()})
	return ts
}

func (r *recorder) PostMessageContext(_ context.Context, ch string, opts ...slack.MsgOption) (string, string, error) {
	return ch, r.add("post", opts, ""), nil
}

func (r *recorder) UpdateMessageContext(_ context.Context, ch, ts string, opts ...slack.MsgOption) (string, string, string, error) {
	r.add("update", opts, ts)
	return ch, ts, "", nil
}

func (r *recorder) PostEphemeralContext(_ context.Context, ch, _ string, opts ...slack.MsgOption) (string, error) {
	return r.add("ephemeral", opts, ""), nil
}

func (r *recorder) GetPermalinkContext(context.Context, *slack.PermalinkParameters) (string, error) {
	return "https://slack.example/archives/C/p1", nil
}

func (r *recorder) GetConversationRepliesContext(context.Context, *slack.GetConversationRepliesParameters) ([]slack.Message, bool, string, error) {
	return nil, false, "", nil
}

func (r *recorder) GetConversationHistoryContext(context.Context, *slack.GetConversationHistoryParameters) (*slack.GetConversationHistoryResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &slack.GetConversationHistoryResponse{Messages: r.history}, nil
}

func (r *recorder) snapshot() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

// The reporter keeps MinInterval between calls to one channel, delivers in
// order, and folds a run of progress events into one edit.
func TestReporterPacingOrderAndFolding(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "r.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err := st.Create(&actions.Request{Kind: "k", Requester: "U1", Thread: actions.Thread{Channel: "C"}, ExpiresAt: time.Now().Add(time.Hour)}, "",
		actions.Event{Kind: actions.Card},
		actions.Event{Kind: actions.Message, Text: "one"},
		actions.Event{Kind: actions.Progress, Text: "p1"},
		actions.Event{Kind: actions.Progress, Text: "p2"},
		actions.Event{Kind: actions.Progress, Text: "p3"},
		actions.Event{Kind: actions.Message, Text: "two"},
		actions.Event{Kind: actions.Message, Text: "three"})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	const gap = 100 * time.Millisecond
	rep := NewReporter(rec, st, ReporterOptions{MinInterval: gap, ProgressInterval: time.Second, Log: zap.NewNop(),
		Render: func(r *actions.Request) (string, []slack.Block) { return "card " + r.ID, nil }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rep.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(rec.snapshot()) < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	calls := rec.snapshot()
	var got []string
	for _, c := range calls {
		got = append(got, c.method+":"+c.text)
	}
	want := []string{"post:card " + res.Request.ID, "post:one", "post::hourglass_flowing_sand: p3", "post:two", "post:three"}
	if len(got) != len(want) {
		t.Fatalf("calls = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("calls = %q, want %q", got, want)
		}
	}
	for i := 1; i < len(calls); i++ {
		if d := calls[i].at.Sub(calls[i-1].at); d < gap-5*time.Millisecond {
			t.Errorf("call %d came %v after the previous one, under the %v minimum", i, d, gap)
		}
	}
	if evs, _, _ := st.Undelivered(res.Request.ID); len(evs) != 0 {
		t.Errorf("%d events left undelivered", len(evs))
	}
	if ids, _ := st.Outbox(); len(ids) != 0 {
		t.Errorf("outbox still holds %v", ids)
	}
}

// A card posted before a crash whose ts was never recorded is found in the
// channel and adopted, not posted a second time.
func TestReporterAdoptsLostCard(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "r.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err := st.Create(&actions.Request{Kind: "k", Requester: "U1", Thread: actions.Thread{Channel: "C"}, ExpiresAt: time.Now().Add(time.Hour)}, "",
		actions.Event{Kind: actions.Card}, actions.Event{Kind: actions.Message, Text: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	id := res.Request.ID
	rec := &recorder{}
	lost := slack.Message{}
	lost.Timestamp, lost.BotID, lost.Text = "1700000000.000042", "B1", "k request "+id+" by <@U1>: pending"
	other := slack.Message{}
	other.Timestamp, other.BotID, other.Text = "1700000000.000041", "B1", "k request R-999999 by <@U1>: pending"
	rec.history = []slack.Message{lost, other}
	rep := NewReporter(rec, st, ReporterOptions{MinInterval: time.Millisecond, ProgressInterval: time.Second, Log: zap.NewNop(),
		Now: func() time.Time { return time.Now().Add(time.Minute) }, // started after the request was made
		Render: func(r *actions.Request) (string, []slack.Block) {
			return "k request " + r.ID + " by <@U1>: pending", nil
		}})
	if _, err := rep.deliver(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	calls := rec.snapshot()
	if len(calls) != 1 || calls[0].method != "post" || calls[0].text != "hello" {
		t.Fatalf("calls = %+v, want only the reply", calls)
	}
	r, _ := st.Get(id)
	if r.Thread.TS != lost.Timestamp {
		t.Errorf("thread ts = %q, want the adopted %q", r.Thread.TS, lost.Timestamp)
	}
}
