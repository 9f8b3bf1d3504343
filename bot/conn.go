package bot

import (
	"sync"
	"time"
)

// connState is the Socket Mode connection's health, for the liveness and
// readiness probes.
type connState struct {
	mu        sync.Mutex
	connected bool
	dead      error // why the Socket Mode loop ended; nil while it runs
	since     time.Time
	connects  int // connections made, for the reconnects counter
}

func (c *connState) set(connected bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.connected != connected {
		c.since = time.Now()
		if connected {
			c.connects++
		}
	}
	c.connected = connected
}

func (c *connState) die(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.connected, c.dead, c.since = false, err, time.Now()
}

// SocketDead returns why the Socket Mode loop ended (a fatal error such
// as a revoked app token); nil while it runs. Liveness fails on it.
func (b *Bot) SocketDead() error {
	b.conn.mu.Lock()
	defer b.conn.mu.Unlock()
	return b.conn.dead
}

// Connected tells whether a Socket Mode connection is up, and since when
// it has been in that state. Readiness needs it.
func (b *Bot) Connected() (bool, time.Time) {
	b.conn.mu.Lock()
	defer b.conn.mu.Unlock()
	return b.conn.connected, b.conn.since
}

// Connects is how many Socket Mode connections were made since the start:
// every one after the first is a reconnect.
func (b *Bot) Connects() int {
	b.conn.mu.Lock()
	defer b.conn.mu.Unlock()
	return b.conn.connects
}

// waitTimeout waits for wg up to d; false when d passed first.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
