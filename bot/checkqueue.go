package bot

import (
	"sync"
	"time"
)

// checkQueue hands out turns to check (Settings.MaxChecks at once). A
// check waiting for its turn is a small record in a queue, not a parked
// goroutine: a burst of 2,000 commands used to park as many goroutines,
// with the stacks they had grown taking the ack (about 32 MB of stacks,
// a third of the bot's peak RSS in BenchmarkExportAck). Turns are given
// in order of arrival; a check whose deadline passes while it waits is
// told so (got(false)) at its deadline, by one timer for the whole queue.
// The deadlines are each arrival plus the same CheckTimeout, so the
// queue is in deadline order and only its head needs a timer.
//
// Checks yield to acks: while an envelope is being acked (a command's
// intake write, a click's ack), a check waits for its turn, for at most
// yield after it arrived. The ack is the bot's promise to Slack (3 s, and
// a person looking at the command); the check has its own, longer,
// deadline. In a burst the checks of the first commands otherwise take
// the CPU (and moto's, AWS's client pool) from the acks of the next: in
// BenchmarkExportAck, c=50 with moto answering the checks, the acks' p99
// was about twice that of the same commands with AWS stalled (checks
// waiting). A burst is seen as envelopes in flight or one arrived within
// quiet: at 50 in flight the bot often has none in hand for a moment,
// between its ack and Slack's next envelope. One command at a time is
// delayed by quiet at most.
type checkQueue struct {
	mu      sync.Mutex
	max     int
	running int
	waiting []*checkTurn
	timer   *time.Timer
	closed  bool
	now     func() time.Time
	// acking counts envelopes between their arrival and their ack;
	// yield bounds how long a check waits for them (0: checks do not
	// yield).
	acking int
	yield  time.Duration
	// lastAck is when the last envelope arrived.
	lastAck time.Time
}

// quiet is how long after an envelope arrived the bot still counts as
// acking a burst.
const quiet = 20 * time.Millisecond

// checkTurn is one check waiting for a turn.
type checkTurn struct {
	deadline time.Time
	// arrived is set by request.
	arrived time.Time
	// got is called once, with the queue's lock held, so it must not
	// block nor call the queue: ok is a turn, to be given back with done;
	// !ok is the deadline passing first.
	got     func(ok bool)
	settled bool
}

func newCheckQueue(max int, yield time.Duration) *checkQueue {
	return &checkQueue{max: max, yield: yield, now: time.Now}
}

// request asks for a turn for t: got now if one is free, else when one
// is given back or at t's deadline. It returns false, and never calls
// got, once the queue is closed (shutting down).
func (q *checkQueue) request(t *checkTurn) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	t.arrived = q.now()
	q.waiting = append(q.waiting, t)
	q.dispatch()
	return true
}

// done gives a turn back: to the next check waiting whose deadline has
// not passed (those whose has are told so), or to the pool.
func (q *checkQueue) done() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.running--
	q.dispatch()
}

// ackBegins and ackEnds bracket an envelope's handling up to its ack
// (see yield).
func (q *checkQueue) ackBegins() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.acking++
	q.lastAck = q.now()
}

func (q *checkQueue) ackEnds() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.acking--
	q.dispatch()
}

// dispatch tells the checks whose deadline passed, gives free turns to
// the checks at the head that need not yield, and sets the timer for
// what comes next.
func (q *checkQueue) dispatch() {
	if q.closed {
		return
	}
	q.expire()
	for q.running < q.max && len(q.waiting) > 0 && !q.yielding(q.waiting[0]) {
		t := q.pop()
		q.running++
		t.settled = true
		t.got(true)
	}
	q.arm()
}

// yielding says t must still wait for acks in flight.
func (q *checkQueue) yielding(t *checkTurn) bool {
	now := q.now()
	return q.yield > 0 && (q.acking > 0 || now.Before(q.lastAck.Add(quiet))) && now.Before(t.arrived.Add(q.yield))
}

// withdraw takes t out of the queue (or finds it dropped by close); it
// returns false if t already got its answer (a turn to give back, or its
// deadline), which got has been or is being told.
func (q *checkQueue) withdraw(t *checkTurn) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if t.settled {
		return false
	}
	for i, w := range q.waiting {
		if w == t {
			q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
			break
		}
	}
	t.settled = true
	return true
}

// close drops the checks waiting (they are checked again at the next
// start; got is not called for them) and refuses new ones; turns held are
// given back as usual.
func (q *checkQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.waiting = nil
	if q.timer != nil {
		q.timer.Stop()
	}
}

// waitingLen is how many checks wait for a turn, for tests.
func (q *checkQueue) waitingLen() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiting)
}

func (q *checkQueue) pop() *checkTurn {
	t := q.waiting[0]
	q.waiting[0] = nil
	q.waiting = q.waiting[1:]
	if len(q.waiting) == 0 {
		q.waiting = nil // let the backing array go
	}
	return t
}

// expire tells the checks at the head whose deadline has passed.
func (q *checkQueue) expire() {
	now := q.now()
	for len(q.waiting) > 0 && !q.waiting[0].deadline.After(now) {
		t := q.pop()
		t.settled = true
		t.got(false)
	}
}

// arm sets the timer for the head's deadline, or, when it yields with a
// turn free, for the end of its yield.
func (q *checkQueue) arm() {
	if len(q.waiting) == 0 || q.closed {
		return
	}
	head := q.waiting[0]
	at := head.deadline
	if q.running < q.max && q.yielding(head) {
		end := head.arrived.Add(q.yield)
		if q.acking == 0 && q.lastAck.Add(quiet).Before(end) {
			end = q.lastAck.Add(quiet) // while acking, an ack's end wakes it
		}
		if end.Before(at) {
			at = end
		}
	}
	d := at.Sub(q.now())
	if q.timer == nil {
		q.timer = time.AfterFunc(d, q.fire)
		return
	}
	q.timer.Reset(d)
}

func (q *checkQueue) fire() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dispatch()
}

// workPool runs work with at most max goroutines, in order of arrival.
// The checks whose deadline passed while they waited all come due at
// once (2,000 in a burst); each is a store write and a post to the
// requester, and a goroutine each (with a connection each to Slack for
// the post) was the bot's peak memory.
type workPool struct {
	mu      sync.Mutex
	max     int
	running int
	queue   []func()
	// spawn starts a goroutine; it must not block.
	spawn func(func())
}

// push runs f in a free goroutine, or after the work queued before it.
func (p *workPool) push(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running < p.max {
		p.running++
		p.spawn(func() { p.work(f) })
		return
	}
	p.queue = append(p.queue, f)
}

func (p *workPool) work(f func()) {
	for f != nil {
		f()
		p.mu.Lock()
		f = nil
		if len(p.queue) > 0 {
			f = p.queue[0]
			p.queue[0] = nil
			p.queue = p.queue[1:]
			if len(p.queue) == 0 {
				p.queue = nil
			}
		} else {
			p.running--
		}
		p.mu.Unlock()
	}
}
