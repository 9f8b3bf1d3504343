package bot

import (
	"context"
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
	received := func() *actions.Request {
		res, err := st.Create(&actions.Request{Kind: "k", State: actions.Received, Requester: "UDEV", Origin: "CDEV",
			Thread: actions.Thread{Channel: "CAPPROVALS"}, ExpiresAt: time.Now().Add(time.Hour)}, "")
		if err != nil {
			t.Fatal(err)
		}
		return res.Request
	}

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
