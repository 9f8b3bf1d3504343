package store

import (
	"fmt"
	"sync"
	"sync/atomic"

	"go.etcd.io/bbolt"
)

// maxGroup bounds the writes one transaction takes.
const maxGroup = 1000

// committer is a group commit: concurrent writes share one bbolt
// transaction, and so one pair of fsyncs. A write arriving while a
// transaction commits waits for it and then goes, with every write that
// arrived meanwhile, into the next one. So a lone write commits at once (no
// batch window), and under load each write waits for at most the
// transaction in flight and its own.
//
// bbolt's DB.Batch is not used for this: each of its batches waits for
// the write lock on its own, so batches that form (every MaxBatchDelay)
// faster than a commit ends queue one behind the other, each paying its
// own fsyncs, and the wait grows with the load instead of the batches.
//
// As with DB.Batch, a write's fn may run more than once, and must change
// nothing outside tx: when one fn fails, the transaction is rolled back,
// the others are run again without it, and it runs alone, in a
// transaction of its own, for its error.
type committer struct {
	db *bbolt.DB
	// begin is called before each transaction's writes run, and
	// committed once it is on disk (not after a rollback nor a failed
	// commit): state kept beside the file (Store.claims) follows them.
	// Either may be nil.
	begin, committed func()

	mu      sync.Mutex
	queue   []*write
	running bool

	commits atomic.Int64 // transactions run, for tests
}

type write struct {
	fn  func(*bbolt.Tx) error
	err chan error
}

// do runs fn in a write transaction shared with concurrent writes and
// returns once that transaction is committed (or fn's own error).
func (c *committer) do(fn func(*bbolt.Tx) error) error {
	w := &write{fn: fn, err: make(chan error, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, w)
	if !c.running {
		c.running = true
		go c.loop()
	}
	c.mu.Unlock()
	return <-w.err
}

func (c *committer) loop() {
	for {
		c.mu.Lock()
		n := min(len(c.queue), maxGroup)
		if n == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		group := c.queue[:n:n]
		c.queue = c.queue[n:]
		if len(c.queue) == 0 {
			c.queue = nil
		}
		c.mu.Unlock()
		c.run(group)
	}
}

// run commits group in one transaction; a failing write is taken out and
// run alone.
func (c *committer) run(group []*write) {
	for len(group) > 0 {
		failed := -1
		err := c.update(func(tx *bbolt.Tx) error {
			for i, w := range group {
				if err := call(w.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		c.commits.Add(1)
		if failed < 0 {
			for _, w := range group {
				w.err <- err // nil, or the commit's error for all
			}
			return
		}
		bad := group[failed]
		group = append(group[:failed:failed], group[failed+1:]...)
		c.commits.Add(1)
		bad.err <- c.update(func(tx *bbolt.Tx) error { return call(bad.fn, tx) })
	}
}

// update is db.Update between the begin and committed hooks.
func (c *committer) update(fn func(*bbolt.Tx) error) error {
	if c.begin != nil {
		c.begin()
	}
	err := c.db.Update(fn)
	if err == nil && c.committed != nil {
		c.committed()
	}
	return err
}

// call runs fn, turning a panic into an error, so that one write cannot
// take the others' down with the committing goroutine.
func call(fn func(*bbolt.Tx) error, tx *bbolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store: write panicked: %v", p)
		}
	}()
	return fn(tx)
}
