package bot

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestHandlersReuseIdleGoroutines: work that comes one after the other
// runs on one goroutine; work that comes together gets a goroutine each,
// and none waits for another.
func TestHandlersReuseIdleGoroutines(t *testing.T) {
	var wg sync.WaitGroup
	h := newHandlers(&wg, time.Minute)
	defer func() { h.close(); wg.Wait() }()
	var ids sync.Map // goroutine stack ids seen
	var seen atomic.Int32
	goroutineID := func() string {
		buf := make([]byte, 64)
		buf = buf[:runtime.Stack(buf, false)]
		return string(buf[:20]) // "goroutine NNN [running]"
	}
	for range 20 {
		done := make(chan struct{})
		h.run(func() {
			if _, loaded := ids.LoadOrStore(goroutineID(), true); !loaded {
				seen.Add(1)
			}
			close(done)
		})
		<-done
		// The goroutine is back waiting for work a moment after its
		// work ends; work given before that gets a goroutine of its own.
		time.Sleep(5 * time.Millisecond)
	}
	if n := seen.Load(); n > 5 {
		t.Errorf("20 pieces of work one after the other ran on %d goroutines; want them reused", n)
	}

	const together = 10
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(together)
	for range together {
		h.run(func() { started.Done(); <-release })
	}
	within(t, 5*time.Second, "10 pieces of work given together did not all start: one waited for another", started.Wait)
	close(release)
}

// TestHandlersEndOnClose: idle goroutines end when the handlers are
// closed, busy ones when their work ends; work given after close still
// runs.
func TestHandlersEndOnClose(t *testing.T) {
	var wg sync.WaitGroup
	h := newHandlers(&wg, time.Hour)
	h.run(func() {})
	busy := make(chan struct{})
	h.run(func() { <-busy })
	h.close()
	ran := make(chan struct{})
	h.run(func() { close(ran) })
	<-ran
	close(busy)
	within(t, 5*time.Second, "the handlers' goroutines did not end after close (idle wait is an hour)", wg.Wait)
}

// TestHandlersIdleEnd: an idle goroutine ends after its idle time.
func TestHandlersIdleEnd(t *testing.T) {
	var wg sync.WaitGroup
	h := newHandlers(&wg, 20*time.Millisecond)
	h.run(func() {})
	within(t, 5*time.Second, "an idle goroutine did not end after its idle time", wg.Wait)
	h.close()
}

// within fails t with msg unless f returns within d.
func within(t *testing.T, d time.Duration, msg string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatal(msg)
	}
}
