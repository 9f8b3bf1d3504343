package bot

import (
	"testing"
	"time"
)

// Issue 9: checks yield to acks. While an envelope is being acked, or
// one arrived within quiet, a check waits for its turn (at most the
// queue's yield after it arrived); with nothing being acked it starts at
// once; a deadline that passes while
// it yields refuses it, as one that passes while it waits for a turn.
func TestChecksYieldToAcks(t *testing.T) {
	const yield = 300 * time.Millisecond
	q := newCheckQueue(2, yield)
	turn := func(deadline time.Duration) (*checkTurn, chan bool) {
		got := make(chan bool, 1)
		return &checkTurn{deadline: time.Now().Add(deadline), got: func(ok bool) { got <- ok }}, got
	}
	gotWithin := func(what string, got chan bool, d time.Duration) bool {
		t.Helper()
		select {
		case ok := <-got:
			return ok
		case <-time.After(d):
			t.Fatalf("%s: no turn within %v", what, d)
			return false
		}
	}
	notYet := func(what string, got chan bool) {
		t.Helper()
		select {
		case ok := <-got:
			t.Fatalf("%s: got %v while an ack is in flight", what, ok)
		default:
		}
	}

	// Nothing being acked: a turn at once.
	t1, got1 := turn(time.Second)
	q.request(t1)
	if !gotWithin("no ack in flight", got1, 10*time.Millisecond) {
		t.Fatal("refused")
	}
	q.done()

	// An ack in flight: the check waits for it, and starts when it is sent.
	q.ackBegins()
	t2, got2 := turn(time.Second)
	q.request(t2)
	time.Sleep(50 * time.Millisecond)
	notYet("ack in flight", got2)
	q.ackEnds()
	if !gotWithin("ack sent", got2, 10*time.Millisecond) {
		t.Fatal("refused")
	}
	q.done()

	// An envelope acked a moment ago (in a burst, the next is on its way):
	// the check waits until the bot has been quiet for a moment.
	q.ackBegins()
	q.ackEnds()
	start := time.Now()
	tq, gotq := turn(time.Second)
	q.request(tq)
	notYet("just after an ack", gotq)
	if !gotWithin("quiet", gotq, 2*time.Second) {
		t.Fatal("refused")
	}
	// Well before its yield (timers may fire late on a loaded machine).
	if waited := time.Since(start); waited > yield-50*time.Millisecond {
		t.Errorf("started %v after the last ack, want about %v", waited, quiet)
	}
	q.done()

	// Acks in flight without end (a burst): the check starts after yield.
	q.ackBegins()
	start = time.Now()
	t3, got3 := turn(time.Second)
	q.request(t3)
	if !gotWithin("burst", got3, 2*time.Second) {
		t.Fatal("refused")
	}
	if waited := time.Since(start); waited < yield {
		t.Errorf("started after %v, want after its yield of %v", waited, yield)
	}
	// Its turn is held: the next one, arriving now, also yields first.
	t4, got4 := turn(time.Second)
	q.request(t4)
	notYet("second in a burst", got4)
	if !gotWithin("second in a burst", got4, 2*time.Second) {
		t.Fatal("refused")
	}
	q.done()
	q.done()

	// A deadline shorter than the yield: refused at the deadline.
	t5, got5 := turn(100 * time.Millisecond)
	start = time.Now()
	q.request(t5)
	if gotWithin("deadline while yielding", got5, 2*time.Second) {
		t.Error("got a turn; want its deadline")
	}
	if waited := time.Since(start); waited < 90*time.Millisecond {
		t.Errorf("refused after %v, want at its deadline (100ms)", waited)
	}
	q.ackEnds()
	if q.waitingLen() != 0 || q.running != 0 {
		t.Errorf("left %d waiting, %d running", q.waitingLen(), q.running)
	}

	// A queue that does not yield (yield 0) ignores acks.
	q0 := newCheckQueue(1, 0)
	q0.ackBegins()
	t6, got6 := turn(time.Second)
	q0.request(t6)
	if !gotWithin("yield 0", got6, 10*time.Millisecond) {
		t.Fatal("refused")
	}
}
