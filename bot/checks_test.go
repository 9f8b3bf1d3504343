package bot

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/osio/osio-bot/actions"
)

// Issue 9: at most Settings.MaxChecks commands are checked at once; the
// others wait for a turn within their own check deadline, and one whose
// deadline passes while waiting is refused as a check that could not
// finish.
func TestChecksAreBounded(t *testing.T) {
	var running, most atomic.Int32
	block := make(chan struct{})
	kinds := map[string]Kind{"k": {
		Describe: func(*actions.Request) (string, []string) { return "K", nil },
		Check: func(ctx context.Context, r *actions.Request) (Checked, error) {
			n := running.Add(1)
			defer running.Add(-1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			select {
			case <-block:
				return Checked{What: "k"}, nil
			case <-ctx.Done():
				return Checked{}, ctx.Err()
			}
		},
		Unchecked: "I could not check k",
	}}
	b, st := unitBot(t, kinds, Settings{MaxChecks: 2, CheckTimeout: 300 * time.Millisecond})
	received := func() *actions.Request { return receivedK(t, st) }

	// Six at once, none answering: two run, and all six are refused by
	// their deadline, those that never had a turn included.
	var wg sync.WaitGroup
	out := make([]*actions.Request, 6)
	start := time.Now()
	for i := range out {
		r := received()
		wg.Go(func() { out[i] = b.runCheck(context.Background(), r) })
	}
	wg.Wait()
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("six checks with a 300ms deadline took %v", took)
	}
	if m := most.Load(); m != 2 {
		t.Errorf("%d checks ran at once, want at most (and here exactly) 2", m)
	}
	for i, r := range out {
		if r == nil || r.State != actions.Refused || !strings.Contains(r.Error, "no answer within 300ms") {
			t.Errorf("request %d: %+v; want refused, no answer within the deadline", i, r)
		}
	}

	// Answering checks all pass, two at a time.
	close(block)
	most.Store(0)
	for i := range out {
		r := received()
		wg.Go(func() { out[i] = b.runCheck(context.Background(), r) })
	}
	wg.Wait()
	for i, r := range out {
		if r == nil || r.State != actions.Pending {
			t.Errorf("request %d: %+v; want pending", i, r)
		}
	}
	if m := most.Load(); m > 2 {
		t.Errorf("%d checks ran at once", m)
	}
}

// Issue 9: a command waiting for its turn to check is a record in a
// queue, not a goroutine: 300 commands acked while two checks hang leave
// only the two running checks' goroutines, not 300. Each waiting one is
// refused at its own deadline (as a check that could not finish) and
// its requester told; when the checks answer again, waiting ones pass.
func TestWaitingChecksHoldNoGoroutine(t *testing.T) {
	block := make(chan struct{})
	kinds := map[string]Kind{"k": {
		Describe: func(*actions.Request) (string, []string) { return "K", nil },
		Check: func(ctx context.Context, r *actions.Request) (Checked, error) {
			select {
			case <-block:
				return Checked{What: "k"}, nil
			case <-ctx.Done():
				return Checked{}, ctx.Err()
			}
		},
		Unchecked: "I could not check k",
	}}
	b, st := unitBot(t, kinds, Settings{MaxChecks: 2, CheckTimeout: 500 * time.Millisecond})
	api := b.API.(*fakeAPI)
	received := func() *actions.Request { return receivedK(t, st) }
	ctx := context.Background()
	before := runtime.NumGoroutine()
	var rs []*actions.Request
	for range 300 {
		rs = append(rs, received())
	}
	for _, r := range rs {
		b.checkLater(ctx, r, "") // returns at once
	}
	if n := b.checkq.waitingLen(); n != 298 {
		t.Errorf("%d checks wait for a turn, want 298", n)
	}
	if g := runtime.NumGoroutine() - before; g > 20 {
		t.Errorf("%d more goroutines with 300 checks queued, want about 2", g)
	}
	b.wg.Wait() // every one refused by its deadline, and told
	for _, q := range rs {
		r, err := st.Get(q.ID)
		if err != nil || r.State != actions.Refused || !r.Told || !strings.Contains(r.Error, "I could not check k: no answer within 500ms") {
			t.Fatalf("%s: %+v %v; want refused (no answer within the deadline) and told", q.ID, r, err)
		}
	}
	api.mu.Lock()
	told := len(api.told)
	api.mu.Unlock()
	if told != 300 {
		t.Errorf("%d requesters told, want 300", told)
	}

	// Answering again: the queue drains, each check in its turn.
	close(block)
	rs = rs[:0]
	for range 50 {
		rs = append(rs, received())
	}
	for _, r := range rs {
		b.checkLater(ctx, r, "")
	}
	b.wg.Wait()
	for _, q := range rs {
		if r, _ := st.Get(q.ID); r == nil || r.State != actions.Pending {
			t.Fatalf("%s: %+v; want pending", q.ID, r)
		}
	}
	if n := b.checkq.waitingLen(); n != 0 {
		t.Errorf("%d still waiting", n)
	}
}

// The refusals that come due at once are done by at most max
// goroutines; the others wait in a queue, and all are done.
func TestWorkPoolBoundsGoroutines(t *testing.T) {
	var running, most atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	p := &workPool{max: 4, spawn: func(f func()) { wg.Go(f) }}
	var mu sync.Mutex
	var order []int
	for i := range 100 {
		p.push(func() {
			n := running.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			<-release
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			running.Add(-1)
		})
	}
	p.mu.Lock()
	queued := len(p.queue)
	p.mu.Unlock()
	if queued != 96 {
		t.Errorf("%d queued, want 96 (4 running)", queued)
	}
	close(release)
	wg.Wait()
	if m := most.Load(); m > 4 {
		t.Errorf("%d ran at once, want at most 4", m)
	}
	if len(order) != 100 {
		t.Fatalf("%d ran, want 100", len(order))
	}
}

// A check waiting for its turn when the bot shuts down returns (nothing
// is stored: it is checked again at the next start), and checks asked
// for afterwards are not run.
func TestShutdownReleasesWaitingChecks(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	kinds := map[string]Kind{"k": {
		Describe: func(*actions.Request) (string, []string) { return "K", nil },
		Check: func(ctx context.Context, r *actions.Request) (Checked, error) {
			select {
			case <-block:
			case <-ctx.Done():
			}
			return Checked{}, ctx.Err()
		},
	}}
	b, st := unitBot(t, kinds, Settings{MaxChecks: 1, CheckTimeout: time.Hour})
	received := func() *actions.Request { return receivedK(t, st) }
	ctx, cancel := context.WithCancel(context.Background())
	first, second := received(), received()
	out := make(chan *actions.Request, 2)
	go func() { out <- b.runCheck(ctx, first) }() // takes the one turn
	for running := 0; running == 0; {
		time.Sleep(time.Millisecond)
		b.checkq.mu.Lock()
		running = b.checkq.running
		b.checkq.mu.Unlock()
	}
	go func() { out <- b.runCheck(ctx, second) }() // waits for it
	for b.checkq.waitingLen() == 0 {
		time.Sleep(time.Millisecond)
	}
	b.checkq.close() // as Run does when ctx ends
	cancel()
	for range 2 {
		select {
		case r := <-out:
			if r != nil {
				t.Errorf("a check at shutdown stored %+v", r)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a check waiting for its turn did not return at shutdown")
		}
	}
	if r := b.runCheck(context.Background(), received()); r != nil {
		t.Errorf("a check after shutdown ran: %+v", r)
	}
	for _, id := range []string{first.ID, second.ID} {
		if r, _ := st.Get(id); r.State != actions.Received {
			t.Errorf("%s is %s, want received (checked again at the next start)", id, r.State)
		}
	}
}

// receivedK stores a command of kind "k" taken in and not yet checked.
func receivedK(t *testing.T, st Store) *actions.Request {
	t.Helper()
	res, err := st.Create(&actions.Request{Kind: "k", State: actions.Received, Requester: "UDEV", Origin: "CDEV",
		Thread: actions.Thread{Channel: "CAPPROVALS"}, ExpiresAt: time.Now().Add(time.Hour)}, "")
	if err != nil {
		t.Fatal(err)
	}
	return res.Request
}
