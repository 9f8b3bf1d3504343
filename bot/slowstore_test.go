package bot

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/osio/osio-bot/actions"
)

// slowStore is a store whose Create answers after delay (a DynamoDB store
// whose calls stall and retry, say), with fail's error when set.
type slowStore struct {
	Store
	delay time.Duration
	fail  error
}

func (s slowStore) Create(r *actions.Request, envelopeID string, events ...actions.Event) (actions.Created, error) {
	time.Sleep(s.delay)
	if s.fail != nil {
		return actions.Created{}, s.fail
	}
	return s.Store.Create(r, envelopeID, events...)
}

// slowIntake types "/osio-export prod_txlog" as UDEV to a bot on slow (its
// Store set to the world's) with a 300 ms ack budget, checking with gate,
// and checks that the ack came within a second, saying it is still being
// worked on.
func slowIntake(t *testing.T, slow slowStore, gate gatedChecker) *socketWorld {
	t.Helper()
	w := newSocketWorldChecked(t, gate, func(d *Deps) {
		slow.Store = d.Store
		d.Store = slow
		d.Responder = webhookResponder{}
		d.Settings.AckBudget = 300 * time.Millisecond
		d.Log = zaptest.NewLogger(t)
	})
	ack := w.slash("UDEV", "prod_txlog")
	if ack.Latency > time.Second || !strings.Contains(string(ack.Payload), "Still working") {
		t.Fatalf("acked after %v with %s; want within the 300 ms budget, saying it is still working", ack.Latency, ack.Payload)
	}
	return w
}

// The store answers a command's intake write after 1.5 s (Slack gives an
// ack 3 s): the command is acked within the bot's ack budget all the same,
// saying it is still being worked on; the receipt then replaces that
// answer, and the check's outcome the receipt, as usual.
func TestSlowStoreIsAckedWithinTheBudget(t *testing.T) {
	gate := gatedChecker{open: make(chan struct{})}
	w := slowIntake(t, slowStore{delay: 1500 * time.Millisecond}, gate)
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	// The receipt, with its Cancel button, replaces the late ack.
	if err := w.srv.WaitFor(ctx, func() bool {
		r := w.srv.Receipts("UDEV")
		return len(r) == 1 && strings.Contains(r[0].Text, "received")
	}); err != nil {
		t.Fatalf("the receipt never replaced the late ack: %+v", w.srv.Receipts("UDEV"))
	}
	if r := w.srv.Receipts("UDEV")[0]; !strings.Contains(string(r.Blocks), `"action_id":"`+ActionCancel+`"`) {
		t.Errorf("the receipt lost its Cancel button: %s", r.Blocks)
	}
	close(gate.open)
	if err := w.srv.WaitFor(ctx, func() bool {
		r := w.srv.Receipts("UDEV")
		return len(r) == 1 && strings.Contains(r[0].Text, "Sent for approval")
	}); err != nil {
		t.Fatalf("the receipt never told the outcome: %+v", w.srv.Receipts("UDEV"))
	}
	r := w.srv.Receipts("UDEV")[0]
	if len(r.History) != 2 || !strings.Contains(r.History[0], "Still working") || !strings.Contains(r.History[1], "received") {
		t.Errorf("the receipt went through %q; want the slow answer, then the receipt, then the outcome", r.History)
	}
	if e := w.srv.Ephemerals("UDEV"); len(e) != 0 {
		t.Errorf("%d more messages to the requester: %q", len(e), e[0].Text)
	}
	if rs, _ := w.st.List(nil); len(rs) != 1 {
		t.Errorf("%d requests stored; want 1", len(rs))
	}
}

// The store fails the intake write after the ack budget: the slow answer
// is replaced by the failure, which says nothing was requested.
func TestSlowStoreFailureIsTold(t *testing.T) {
	w := slowIntake(t, slowStore{delay: 800 * time.Millisecond, fail: errors.New("dynamodb: request timeout")}, gatedChecker{open: make(chan struct{})})
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	if err := w.srv.WaitFor(ctx, func() bool {
		r := w.srv.Receipts("UDEV")
		return len(r) == 1 && r[0].Replaced > 0
	}); err != nil {
		t.Fatalf("the slow answer was never replaced: %+v", w.srv.Receipts("UDEV"))
	}
	if r := w.srv.Receipts("UDEV")[0]; !strings.Contains(r.Text, failureText("saving the request", "")[:20]) {
		t.Errorf("the receipt says %q; want the failure", r.Text)
	}
}
