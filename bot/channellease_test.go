package bot

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/store"
)

// Two replicas' reporters on one store deliver one channel's threads: one
// at a time holds the channel, so every thread is complete and in order,
// nothing is posted twice, and the channel sees at most one call per
// MinInterval across both. A replica that stops hands the channel over at
// once.
func TestTwoReportersShareAChannel(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "r.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec := &recorder{}
	const gap = 60 * time.Millisecond
	opts := func(owner string) ReporterOptions {
		return ReporterOptions{MinInterval: gap, ProgressInterval: time.Second, Log: zap.NewNop(),
			Render: func(r *actions.Request) (string, []slack.Block) { return "card " + r.ID, nil },
			Leases: st, Owner: owner, LeaseTTL: 3 * time.Second}
	}
	a, b := NewReporter(rec, st, opts("replica-a")), NewReporter(rec, st, opts("replica-b"))
	actx, stopA := context.WithCancel(t.Context())
	bctx, stopB := context.WithCancel(t.Context())
	aDone, bDone := make(chan struct{}), make(chan struct{})
	go func() { a.Run(actx); close(aDone) }()
	go func() { b.Run(bctx); close(bDone) }()
	defer func() { stopA(); stopB(); <-aDone; <-bDone }()

	var ids []string
	for i := 0; i < 10; i++ {
		res, err := st.Create(&actions.Request{Kind: "k", Requester: "U1", Thread: actions.Thread{Channel: "C"}, ExpiresAt: time.Now().Add(time.Hour)}, "",
			actions.Event{Kind: actions.Card},
			actions.Event{Kind: actions.Message, Text: fmt.Sprintf("first %d", i)},
			actions.Event{Kind: actions.Message, Text: fmt.Sprintf("second %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Request.ID)
		a.Notify(res.Request.ID)
		b.Notify(res.Request.ID)
	}
	waitOutbox := func() {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			out, err := st.Outbox()
			if err != nil {
				t.Fatal(err)
			}
			if len(out) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("outbox still holds %v", out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitOutbox()
	calls := rec.snapshot()
	if len(calls) != 30 {
		t.Errorf("%d posts, want 30 (10 threads of 3, none twice)", len(calls))
	}
	seen := map[string]int{}
	for _, c := range calls {
		seen[c.text]++
	}
	for i, id := range ids {
		for _, want := range []string{"card " + id, fmt.Sprintf("first %d", i), fmt.Sprintf("second %d", i)} {
			if seen[want] != 1 {
				t.Errorf("%q posted %d times", want, seen[want])
			}
		}
	}
	order := map[string]int{}
	for k, c := range calls {
		order[c.text] = k
	}
	for i, id := range ids {
		if !(order["card "+id] < order[fmt.Sprintf("first %d", i)] && order[fmt.Sprintf("first %d", i)] < order[fmt.Sprintf("second %d", i)]) {
			t.Errorf("thread of %s out of order", id)
		}
	}
	for i := 1; i < len(calls); i++ {
		if d := calls[i].at.Sub(calls[i-1].at); d < gap-5*time.Millisecond {
			t.Errorf("call %d came %v after the previous one, under the %v minimum across replicas", i, d, gap)
		}
	}

	// One replica stops; the other delivers new events at once, without
	// waiting for the stopped one's lease to expire.
	stopA()
	<-aDone
	if _, err := st.Create(&actions.Request{Kind: "k", Requester: "U1", Thread: actions.Thread{Channel: "C"}, ExpiresAt: time.Now().Add(time.Hour)}, "",
		actions.Event{Kind: actions.Card}, actions.Event{Kind: actions.Message, Text: "after a stopped"}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	b.Notify("")
	waitOutbox()
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("delivered %v after the other replica stopped: its channel lease (3s) was not released", d)
	}
	n := 0
	for _, c := range rec.snapshot() {
		if strings.Contains(c.text, "after a stopped") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the message after the stop was posted %d times", n)
	}
}
