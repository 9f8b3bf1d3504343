package dynamo

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/store/storetest"
)

// loser loses the answer of the next call of one operation, once.
type loser struct {
	mu   sync.Mutex
	op   string
	lost int
}

func (l *loser) arm(op string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.op = op
}

func (l *loser) lose(op string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if op != l.op {
		return false
	}
	l.op = ""
	l.lost++
	return true
}

func (l *loser) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// TestLostAnswers: a write that DynamoDB applied but whose answer was lost
// is retried by the SDK; the retry must neither apply it twice nor report
// it as failed. (moto ignores ClientRequestToken, so here the store's own
// token on the item is what recognises the write.)
func TestLostAnswers(t *testing.T) {
	l := &loser{}
	c := client(t, nil, proxy(t, l.lose))
	clock := &storetest.Clock{}
	clock.Set(storetest.T0)
	s, err := New(c, Options{Table: newTable(t, c), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	step := func(name, op string, f func() error) {
		t.Helper()
		before := l.count()
		l.arm(op)
		if err := f(); err != nil {
			t.Fatalf("%s with its answer lost: %v", name, err)
		}
		if l.count() != before+1 {
			t.Fatalf("%s: no %s answer was lost", name, op)
		}
	}
	var r *actions.Request
	step("Create", "TransactWriteItems", func() error {
		res, err := s.Create(storetest.NewRequest("export:a"), "env-1", actions.Event{Kind: actions.Card})
		r = res.Request
		if err == nil && (res.Request == nil || res.Duplicate) {
			t.Fatalf("Create = %+v, want the new request", res)
		}
		return err
	})
	step("Transition", "TransactWriteItems", func() error {
		_, err := s.Transition(r.ID, []actions.State{actions.Pending}, actions.Approved, nil, actions.Event{Kind: actions.Message, Text: "approved"})
		return err
	})
	step("AppendEvents", "TransactWriteItems", func() error {
		return s.AppendEvents(r.ID, actions.Event{Kind: actions.Progress, Text: "50%"})
	})
	step("SaveCheckpointEvents", "TransactWriteItems", func() error {
		return s.SaveCheckpointEvents(r.ID, "step", 1, actions.Event{Kind: actions.Message, Text: "step 1"})
	})
	step("MarkDelivered", "TransactWriteItems", func() error {
		return s.MarkDelivered(r.ID, actions.Cursor{Delivered: 2})
	})
	step("ClaimEnvelope", "PutItem", func() error {
		ok, err := s.ClaimEnvelope("click-1")
		if err == nil && !ok {
			t.Fatal("ClaimEnvelope whose answer was lost = false: the click would be dropped")
		}
		return err
	})
	var lease actions.Lease
	step("AcquireLease", "PutItem", func() error {
		var err error
		lease, err = s.AcquireLease(actions.JobLease(r.ID), "replica-a", 30*time.Second)
		return err
	})
	step("RenewLease", "UpdateItem", func() error {
		var err error
		lease, err = s.RenewLease(lease, 30*time.Second)
		return err
	})
	step("TransitionFenced", "TransactWriteItems", func() error {
		_, err := s.TransitionFenced(lease, r.ID, []actions.State{actions.Approved}, actions.Running, nil, actions.Event{Kind: actions.Message, Text: "running"})
		return err
	})
	step("ReleaseLease", "UpdateItem", func() error { return s.ReleaseLease(lease) })

	got, err := s.Get(r.ID)
	if err != nil || got.State != actions.Running || got.Version != 3 {
		t.Errorf("request = %+v, %v; want running, version 3", got, err)
	}
	evs, _ := s.Events(r.ID)
	var texts []string
	for _, e := range evs {
		texts = append(texts, e.Text)
	}
	if want := []string{"", "approved", "50%", "step 1", "running"}; !slices.Equal(texts, want) {
		t.Errorf("events = %q, want each once: %q", texts, want)
	}
	if ok, _ := s.ClaimEnvelope("click-1"); ok {
		t.Error("the envelope can be claimed again")
	}
	if l2, err := s.AcquireLease(lease.Name, "replica-b", time.Second); err != nil || l2.Epoch != 2 {
		t.Errorf("after the release: %+v, %v; want epoch 2", l2, err)
	}
	if n, _ := s.List(nil); len(n) != 1 {
		t.Errorf("%d requests, want 1", len(n))
	}
}

// TestCreateTableIdempotent: init on an existing table changes nothing.
func TestCreateTableIdempotent(t *testing.T) {
	c := client(t, nil, "")
	name := newTable(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 {
		if err := CreateTable(ctx, c, name); err != nil {
			t.Fatalf("CreateTable on an existing table: %v", err)
		}
	}
	if _, err := New(c, Options{}); err == nil {
		t.Error("New without a table succeeded")
	}
}

// TestCallDeadline: a DynamoDB that does not answer fails each call at
// Options.CallTimeout, not never.
func TestCallDeadline(t *testing.T) {
	c := client(t, nil, "")
	table := newTable(t, c)
	stall := make(chan struct{})
	defer close(stall)
	stalled := httptestServer(t, stall)
	s, err := New(client(t, nil, stalled), Options{Table: table, CallTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func() error{
		"Get":           func() error { _, err := s.Get("R-000001"); return err },
		"Create":        func() error { _, err := s.Create(storetest.NewRequest(), "e"); return err },
		"ClaimEnvelope": func() error { _, err := s.ClaimEnvelope("e"); return err },
		"Ping":          func() error { return s.Ping(t.Context()) },
	} {
		start := time.Now()
		err := f()
		if took := time.Since(start); err == nil || took > 2*time.Second {
			t.Errorf("%s against a stalled DynamoDB: %v after %v; want an error after about 200ms", name, err, took)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %v, want the deadline named", name, err)
		}
	}
}

// httptestServer answers nothing until stall is closed.
func httptestServer(t *testing.T, stall chan struct{}) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
