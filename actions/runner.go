package actions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Store is what the runner needs from the durable store.
type Store interface {
	Get(id string) (*Request, error)
	Transition(id string, from []State, to State, mutate func(*Request), events ...Event) (*Request, error)
	List(keep func(*Request) bool) ([]*Request, error)
	AppendEvents(id string, events ...Event) error
	SaveCheckpoint(id, key string, v any) error
	LoadCheckpoint(id, key string, v any) (bool, error)
}

// Notifier is told that a request has new events to deliver.
type Notifier interface{ Notify(requestID string) }

// Job does one kind of request's work. Run must be resumable: it reads
// its checkpoints first and checks the world before repeating a side
// effect. An error ends the request failed; its text is shown in the
// thread, so it must carry no secret.
type Job interface {
	Run(ctx context.Context, jc *JobContext) error
}

// JobContext is a job's handle on its request: checkpoints and events.
type JobContext struct {
	Request   *Request
	Log       *zap.Logger
	store     Store
	notify    Notifier
	failpoint Failpoint
}

// NewJobContext builds a JobContext; the runner does this, tests may too.
func NewJobContext(r *Request, s Store, n Notifier, log *zap.Logger) *JobContext {
	return &JobContext{Request: r, Log: log, store: s, notify: n}
}

// Save durably records a checkpoint under key.
func (jc *JobContext) Save(key string, v any) error {
	if err := jc.store.SaveCheckpoint(jc.Request.ID, key, v); err != nil {
		return fmt.Errorf("saving checkpoint %s: %w", key, err)
	}
	return nil
}

// Load reads the checkpoint under key into v; false when there is none.
func (jc *JobContext) Load(key string, v any) (bool, error) {
	return jc.store.LoadCheckpoint(jc.Request.ID, key, v)
}

// Say posts a new message into the thread (stored first).
func (jc *JobContext) Say(format string, args ...any) error {
	return jc.emit(Event{Kind: Message, Text: fmt.Sprintf(format, args...)})
}

// Progress updates the thread's status message (stored first).
func (jc *JobContext) Progress(format string, args ...any) error {
	return jc.emit(Event{Kind: Progress, Text: fmt.Sprintf(format, args...)})
}

func (jc *JobContext) emit(e Event) error {
	if err := jc.store.AppendEvents(jc.Request.ID, e); err != nil {
		return fmt.Errorf("recording event: %w", err)
	}
	jc.notify.Notify(jc.Request.ID)
	return nil
}

// Runner runs approved requests' jobs, one goroutine each, and resumes
// the unfinished ones after a restart.
type Runner struct {
	store  Store
	notify Notifier
	jobs   map[string]Job
	log    *zap.Logger
	// Failpoint, when set, is given to every job (see FailpointEnv).
	Failpoint Failpoint

	mu      sync.Mutex
	running map[string]bool
	wg      sync.WaitGroup
	ctx     context.Context
}

// NewRunner builds a runner for the given job kinds.
func NewRunner(s Store, n Notifier, jobs map[string]Job, log *zap.Logger) *Runner {
	return &Runner{store: s, notify: n, jobs: jobs, log: log, running: map[string]bool{}}
}

// Start makes the runner accept work until ctx ends and resumes every
// request left approved or running. Wait drains in-flight jobs.
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	r.ctx = ctx
	r.mu.Unlock()
	open, err := r.store.List(func(q *Request) bool { return q.State == Approved || q.State == Running })
	if err != nil {
		return fmt.Errorf("listing unfinished requests: %w", err)
	}
	for i := len(open) - 1; i >= 0; i-- { // oldest first
		r.log.Info("resuming request", zap.String("request_id", open[i].ID), zap.String("state", string(open[i].State)))
		r.Run(open[i].ID)
	}
	return nil
}

// Run starts the job of an approved (or resumed running) request, unless
// it is running in this process already.
func (r *Runner) Run(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx == nil || r.ctx.Err() != nil || r.running[id] {
		return
	}
	r.running[id] = true
	r.wg.Add(1)
	go func(ctx context.Context) {
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.running, id)
			r.mu.Unlock()
		}()
		r.run(ctx, id)
	}(r.ctx)
}

// Wait blocks until every job goroutine has returned.
func (r *Runner) Wait() { r.wg.Wait() }

func (r *Runner) run(ctx context.Context, id string) {
	log := r.log.With(zap.String("request_id", id))
	req, err := r.store.Transition(id, []State{Approved, Running}, Running, nil)
	if err != nil {
		log.Error("starting job", zap.Error(err))
		return
	}
	job, ok := r.jobs[req.Kind]
	if !ok {
		r.finish(log, id, fmt.Errorf("no job for request kind %q", req.Kind))
		return
	}
	jc := NewJobContext(req, r.store, r.notify, log)
	jc.failpoint = r.Failpoint
	err = runSafely(ctx, job, jc)
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		log.Info("job interrupted by shutdown; it resumes on restart")
		return
	}
	r.finish(log, id, err)
}

func runSafely(ctx context.Context, job Job, jc *JobContext) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error: %v", p)
		}
	}()
	return job.Run(ctx, jc)
}

func (r *Runner) finish(log *zap.Logger, id string, jobErr error) {
	to, ev := Succeeded, Event{Kind: Message, Text: ":white_check_mark: Request finished."}
	if jobErr != nil {
		to = Failed
		ev = Event{Kind: Message, Text: ":x: Request failed: " + jobErr.Error()}
	}
	var rt *Retryable
	retry := ""
	if errors.As(jobErr, &rt) {
		retry = rt.Label
		ev.Text += fmt.Sprintf(" An approver can press %s on the request to try again.", rt.Label)
	}
	_, err := r.store.Transition(id, []State{Running}, to, func(q *Request) {
		q.Error, q.Retry = "", retry
		if jobErr != nil {
			q.Error = jobErr.Error()
		}
	}, Event{Kind: Progress, Text: "Finished: " + string(to)}, ev, Event{Kind: Card})
	if err != nil {
		log.Error("recording job end", zap.Error(err))
		return
	}
	if jobErr != nil {
		log.Warn("job failed", zap.Error(jobErr))
	} else {
		log.Info("job succeeded")
	}
	r.notify.Notify(id)
}

// Backoff yields growing waits: first, then times factor, capped at max.
type Backoff struct {
	Next, Max time.Duration
	Factor    float64
}

// Wait sleeps for the next interval or until ctx ends.
func (b *Backoff) Wait(ctx context.Context) error {
	t := time.NewTimer(b.Next)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	b.Next = time.Duration(float64(b.Next) * b.Factor)
	if b.Next > b.Max {
		b.Next = b.Max
	}
	return nil
}

// ErrTimedOut is returned by Poll when its limit passes.
var ErrTimedOut = errors.New("timed out")

// Poll calls check until it reports done or fails, waiting per b between
// calls (and before the first when waitFirst). After limit it returns
// ErrTimedOut; when ctx ends, ctx's error.
func Poll(ctx context.Context, b Backoff, limit time.Duration, waitFirst bool, check func() (bool, error)) error {
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for i := 0; ; i++ {
		if i > 0 || !waitFirst {
			done, err := check()
			if err != nil || done {
				return err
			}
		}
		if err := b.Wait(wctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return ErrTimedOut
		}
	}
}

// IdempotencyToken derives a stable, UUID-shaped client token from parts,
// so a resumed job repeating a call gets the same result back.
func IdempotencyToken(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "/")))
	x := hex.EncodeToString(h[:16])
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}
