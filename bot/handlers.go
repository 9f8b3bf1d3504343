package bot

import (
	"sync"
	"time"
)

// handlers runs the bot's short-lived work (an envelope's handler up to
// its ack, a check, a refusal, a click) on a goroutine kept from earlier
// work when one is idle, and on a new one when none is: nothing bounds
// how many run at once, as with a goroutine each (the pools that bound
// them, checkQueue and workPool, hand their work here). A goroutine kept
// keeps the stack it grew: a new goroutine for each envelope started
// small and copied its stack as it grew through the intake (JSON, the
// store's write, the ack), and a check's deeper still (the AWS SDK's
// middleware): 6-9% of the bot's CPU in BenchmarkExportAck's burst
// (runtime.copystack). An idle goroutine waits for work for idle, then
// ends; all end once close is called (the bot stopping), after the work
// they have.
type handlers struct {
	work chan func()
	idle time.Duration
	wg   *sync.WaitGroup
	quit chan struct{}
	stop sync.Once
}

func newHandlers(wg *sync.WaitGroup, idle time.Duration) *handlers {
	return &handlers{work: make(chan func()), idle: idle, wg: wg, quit: make(chan struct{})}
}

// run runs f on an idle goroutine, or on a new one. It does not block.
func (h *handlers) run(f func()) {
	select {
	case h.work <- f:
		return
	default:
	}
	h.wg.Add(1)
	go h.serve(f)
}

// close ends the idle goroutines, and each busy one when its work ends.
func (h *handlers) close() { h.stop.Do(func() { close(h.quit) }) }

func (h *handlers) serve(f func()) {
	defer h.wg.Done()
	idle := time.NewTimer(h.idle)
	defer idle.Stop()
	for {
		f()
		idle.Reset(h.idle)
		select {
		case f = <-h.work:
		case <-idle.C:
			return
		case <-h.quit:
			return
		}
	}
}
