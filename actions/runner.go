package actions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/osio/osio-bot/bot/mrkdwn"
)

// The runner's texts in the thread (the jobs' own are at the top of
// their packages' job files). Style as bot/messages.go: a sentence, what
// happened, to what, and what to do next.
const finishedText = ":white_check_mark: Request finished."

// failedText ends a failed request r: what failed, on what, what to do
// next (press retry, the card's button, when the job allows it), then the
// technical detail in a code span, clipped. summary is the first part,
// for the card's state line.
func failedText(r *Request, err error, retry string) (text, summary string) {
	summary, next, detail := "its job did not complete", "", err
	if r.What != "" {
		summary = "the " + r.What + " did not complete"
	}
	if f, ok := errors.AsType[*Failure](err); ok {
		summary, next, detail = f.Text, f.Next, f.Err
	}
	switch {
	case retry != "":
		next = fmt.Sprintf("An approver can press %s on its card to try again.", retry)
	case next == "":
		next = "Nothing more runs. Ask again once the cause is fixed; the bot's on-call can help."
	}
	text = fmt.Sprintf(":x: *%s* failed: %s. %s", r.ID, summary, next)
	if detail != nil {
		text += " Detail: " + mrkdwn.Code(strings.Join(strings.Fields(detail.Error()), " "), maxDetail)
	}
	return text, summary
}

// maxDetail bounds a failure's technical detail in the thread.
const maxDetail = 400

// Failure is a job's error worded for people. Text says what failed, on
// what, as a sentence without its capital or full stop ("the mail to
// d***@example.com failed; the encrypted copy is kept"); Next, when set,
// says what to do next instead of the runner's default; Err is the
// technical detail (nil: none).
type Failure struct {
	Text, Next string
	Err        error
}

func (f *Failure) Error() string {
	if f.Err == nil {
		return f.Text
	}
	return f.Text + ": " + f.Err.Error()
}

func (f *Failure) Unwrap() error { return f.Err }

// endProgressText is the status message's last progress (the reporter
// shows it in its finished form).
func endProgressText(to State) string { return "Finished: " + string(to) }

func resumedText(owner, was string) string {
	return fmt.Sprintf(":arrows_counterclockwise: Resumed by replica `%s`: replica `%s`, which ran the job, stopped. Going on from its last checkpoint.", owner, was)
}

// Store is what the runner needs from the durable store.
type Store interface {
	Get(id string) (*Request, error)
	Transition(id string, from []State, to State, mutate func(*Request), events ...Event) (*Request, error)
	List(keep func(*Request) bool) ([]*Request, error)
	AppendEvents(id string, events ...Event) error
	SaveCheckpoint(id, key string, v any) error
	// SaveCheckpointEvents saves a checkpoint and appends events (as
	// AppendEvents) in one durable write: both or neither.
	SaveCheckpointEvents(id, key string, v any, events ...Event) error
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
	// last are the job's closing replies (SayLast), written with the
	// request's end.
	last []Event
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

// SaveSay durably records a checkpoint under key together with a new
// thread message, in one write: a step whose checkpoint is saved has its
// message in the audit trail even when the process dies right after, and
// a resumed job, which skips the step, need not say it again.
func (jc *JobContext) SaveSay(key string, v any, format string, args ...any) error {
	return jc.Record(key, v, Event{Kind: Message, Text: fmt.Sprintf(format, args...)})
}

// Record durably records a checkpoint under key together with events (a
// step's messages), in one write; see SaveSay.
func (jc *JobContext) Record(key string, v any, events ...Event) error {
	if err := jc.store.SaveCheckpointEvents(jc.Request.ID, key, v, events...); err != nil {
		return fmt.Errorf("saving checkpoint %s: %w", key, err)
	}
	if len(events) > 0 {
		jc.notify.Notify(jc.Request.ID)
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

// SayLast records the job's closing reply (the follow-up, "Done: ...").
// It is not written now: the runner writes it together with the request's
// end, in one store write, so a crash between the two can neither lose it
// nor, on resume, post it a second time.
func (jc *JobContext) SayLast(format string, args ...any) error {
	jc.last = append(jc.last, Event{Kind: Message, Text: fmt.Sprintf(format, args...)})
	return nil
}

// Last returns the closing replies recorded by SayLast.
func (jc *JobContext) Last() []Event { return jc.last }

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

// Runner runs approved requests' jobs, one goroutine each. It resumes
// the unfinished ones at Start, and then every ResumeInterval takes up any
// approved or running request that no job of this process holds (a lost
// Run, a failed write at a job's start or end).
type Runner struct {
	store  Store
	notify Notifier
	jobs   map[string]Job
	log    *zap.Logger
	// Failpoint, when set, is given to every job (see FailpointEnv).
	Failpoint Failpoint
	// ResumeInterval is how often unheld requests are looked for; 30s
	// when zero.
	ResumeInterval time.Duration
	// FinishBackoff paces retries of a failed write of a job's end; 100ms
	// doubling to 10s when zero.
	FinishBackoff Backoff
	// Leases, on a store that several replicas share, makes each job run
	// on one replica at a time: it holds the job's lease (Owner, renewed
	// every LeaseTTL/3) and every write of the job is fenced by it. A job
	// whose lease another replica holds is tried again when that lease
	// expires. Nil on a store one process uses alone.
	Leases Leases
	// Owner names this replica in leases and in the thread (e.g. the pod
	// name).
	Owner string
	// LeaseTTL is how long a lease lasts unrenewed; 30s when zero.
	LeaseTTL time.Duration
	// Now is the clock of lease expiries; time.Now when nil.
	Now func() time.Time

	mu       sync.Mutex
	running  map[string]context.CancelFunc // the jobs this process holds
	retrying map[string]bool               // jobs waiting for another replica's lease to expire
	draining bool
	wg       sync.WaitGroup
	ctx      context.Context
	stop     context.CancelFunc // ends the resumer
}

// NewRunner builds a runner for the given job kinds.
func NewRunner(s Store, n Notifier, jobs map[string]Job, log *zap.Logger) *Runner {
	return &Runner{store: s, notify: n, jobs: jobs, log: log, running: map[string]context.CancelFunc{}, retrying: map[string]bool{}}
}

// Start makes the runner accept work until ctx ends or Drain, resumes
// every request left approved or running, and starts the periodic
// resumer. Wait drains in-flight jobs.
func (r *Runner) Start(ctx context.Context) error {
	rctx, stop := context.WithCancel(ctx)
	r.mu.Lock()
	r.ctx, r.stop = ctx, stop
	r.mu.Unlock()
	if err := r.resume(true); err != nil {
		return err
	}
	interval := r.ResumeInterval
	if interval <= 0 {
		interval = 30 * time.Second
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
			}
			if err := r.resume(false); err != nil {
				r.log.Error("looking for requests to resume", zap.Error(err))
			}
		}
	}()
	return nil
}

// resume runs every approved or running request that no job holds,
// oldest first.
func (r *Runner) resume(atStart bool) error {
	open, err := ListActive(r.store, func(q *Request) bool { return q.State == Approved || q.State == Running })
	if err != nil {
		return fmt.Errorf("listing unfinished requests: %w", err)
	}
	for i := len(open) - 1; i >= 0; i-- { // oldest first
		id := open[i].ID
		r.mu.Lock()
		held := r.running[id] != nil
		r.mu.Unlock()
		if held {
			continue
		}
		msg := "resuming request no job holds"
		if atStart {
			msg = "resuming request"
		}
		r.log.Info(msg, zap.String("request_id", id), zap.String("state", string(open[i].State)))
		r.Run(id)
	}
	return nil
}

// Run starts the job of an approved (or resumed running) request, unless
// it is running in this process already, or the runner is draining.
func (r *Runner) Run(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx == nil || r.ctx.Err() != nil || r.draining || r.running[id] != nil {
		return
	}
	ctx, cancel := context.WithCancel(r.ctx)
	r.running[id] = cancel
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.running, id)
			r.mu.Unlock()
			cancel()
		}()
		r.run(ctx, id, cancel)
	}()
}

// Wait blocks until every job goroutine has returned.
func (r *Runner) Wait() { r.wg.Wait() }

// Drain stops taking new work, lets each running job go on to its next
// checkpoint and stops it there (it resumes on the next start), and stops
// whatever still runs when grace has passed. It returns when every job
// has returned. Used when the process must stop on its own (a fatal Slack
// error); a signal ends Start's context instead.
func (r *Runner) Drain(grace time.Duration) {
	r.mu.Lock()
	r.draining = true
	if r.stop != nil {
		r.stop()
	}
	n := len(r.running)
	r.mu.Unlock()
	r.log.Info("draining: no new jobs; running jobs stop at their next checkpoint", zap.Int("jobs", n), zap.Duration("grace", grace))
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	r.mu.Lock()
	for id, cancel := range r.running {
		r.log.Warn("grace over: stopping job before its next checkpoint; it resumes on restart", zap.String("request_id", id))
		cancel()
	}
	r.mu.Unlock()
	<-done
}

// checkpointStore tells the runner each time a job saved a checkpoint.
type checkpointStore struct {
	Store
	saved func()
}

func (s checkpointStore) SaveCheckpoint(id, key string, v any) error {
	if err := s.Store.SaveCheckpoint(id, key, v); err != nil {
		return err
	}
	s.saved()
	return nil
}

func (s checkpointStore) SaveCheckpointEvents(id, key string, v any, events ...Event) error {
	if err := s.Store.SaveCheckpointEvents(id, key, v, events...); err != nil {
		return err
	}
	s.saved()
	return nil
}

func (r *Runner) run(ctx context.Context, id string, cancel context.CancelFunc) {
	log := r.log.With(zap.String("request_id", id))
	st, held, ok := r.lease(ctx, log, id, cancel)
	if !ok {
		return
	}
	if held != nil {
		defer func() {
			if held.lostErr() != nil {
				return
			}
			if err := r.Leases.ReleaseLease(held.get()); err != nil && !LeaseLost(err) {
				log.Warn("releasing the job's lease; another replica takes the job over when it expires", zap.Error(err))
			}
		}()
		hctx, stopBeat := context.WithCancel(ctx)
		defer stopBeat()
		r.wg.Add(1)
		go func() { defer r.wg.Done(); held.heartbeat(hctx, r.Leases, r.leaseTTL(), r.now, log, cancel) }()
	}
	var events []Event
	mutate := func(*Request) {}
	if held != nil {
		pre, err := r.store.Get(id)
		if err != nil {
			log.Error("reading the request at its job's start; the resumer tries again", zap.Error(err))
			return
		}
		if pre.State == Running && pre.Runner != "" && pre.Runner != r.Owner {
			events = append(events, Event{Kind: Message, Text: resumedText(r.Owner, pre.Runner)})
		}
		mutate = func(q *Request) { q.Runner = r.Owner }
	}
	req, err := st.Transition(id, []State{Approved, Running}, Running, mutate, events...)
	if len(events) > 0 && err == nil {
		log.Info("took over the job from another replica")
		r.notify.Notify(id)
	}
	var conflict *StateConflict
	if errors.As(err, &conflict) {
		log.Debug("not starting job: the request has moved on", zap.String("state", conflictState(conflict)))
		return
	}
	if err != nil {
		log.Error("starting job; the resumer tries again", zap.Error(err))
		return
	}
	job, ok := r.jobs[req.Kind]
	if !ok {
		r.finish(ctx, log, st, req, fmt.Errorf("no job for request kind %q", req.Kind))
		return
	}
	cst := checkpointStore{Store: st, saved: func() {
		r.mu.Lock()
		draining := r.draining
		r.mu.Unlock()
		if draining {
			log.Info("draining: job stopped at its checkpoint; it resumes on restart")
			cancel()
		}
	}}
	jc := NewJobContext(req, cst, r.notify, log)
	jc.failpoint = r.Failpoint
	err = runSafely(ctx, job, jc)
	if held != nil && (held.lostErr() != nil || LeaseLost(err)) {
		log.Warn("the job lost its lease: its end is not recorded here; the replica holding the lease goes on with it", zap.Error(err))
		return
	}
	r.mu.Lock()
	draining := r.draining
	r.mu.Unlock()
	// A job stopped by a drain is resumed whatever it returned: the error
	// may be the stop itself, wrapped without its cause.
	if ctx.Err() != nil && (err == nil || draining || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		log.Info("job interrupted by shutdown; it resumes on restart")
		return
	}
	r.finish(ctx, log, st, req, err, jc.Last()...)
}

// lease takes the job's lease when jobs are leased, and gives the store
// the job writes through: fenced by the lease, or the runner's own. ok is
// false when the job must not run here now (another replica holds it: it
// is tried again when that lease expires).
func (r *Runner) lease(ctx context.Context, log *zap.Logger, id string, cancel context.CancelFunc) (Store, *heldLease, bool) {
	if r.Leases == nil {
		return r.store, nil, true
	}
	l, err := r.Leases.AcquireLease(JobLease(id), r.Owner, r.leaseTTL())
	if until, held := isLeaseHeld(err); held {
		log.Debug("another replica holds the job; trying again when its lease expires", zap.Time("until", until))
		r.retryAt(id, until)
		return nil, nil, false
	}
	if err != nil {
		log.Error("taking the job's lease; the resumer tries again", zap.Error(err))
		return nil, nil, false
	}
	held := &heldLease{l: l}
	return fencedStore{Store: r.store, ls: r.Leases, held: held}, held, true
}

// retryAt runs the job again just after until (another replica's lease
// on it expires then), once per job however many times it is asked.
func (r *Runner) retryAt(id string, until time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx := r.ctx
	if r.retrying[id] || ctx == nil || r.draining {
		return
	}
	r.retrying[id] = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTimer(until.Sub(r.now()) + 50*time.Millisecond)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		r.mu.Lock()
		delete(r.retrying, id)
		r.mu.Unlock()
		if ctx.Err() == nil {
			r.Run(id)
		}
	}()
}

func (r *Runner) leaseTTL() time.Duration {
	if r.LeaseTTL <= 0 {
		return 30 * time.Second
	}
	return r.LeaseTTL
}

func (r *Runner) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}

func runSafely(ctx context.Context, job Job, jc *JobContext) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error: %v", p)
		}
	}()
	return job.Run(ctx, jc)
}

// finish records the job's end, retrying a failed write with backoff
// until it takes or ctx ends (then the request stays running and is
// resumed: its job is resumable).
func (r *Runner) finish(ctx context.Context, log *zap.Logger, st Store, req *Request, jobErr error, last ...Event) {
	id := req.ID
	var rt *Retryable
	retry := ""
	if errors.As(jobErr, &rt) {
		retry = rt.Label
	}
	to, ev, summary := Succeeded, Event{Kind: Message, Text: finishedText}, ""
	if jobErr != nil {
		to = Failed
		ev.Text, summary = failedText(req, jobErr, retry)
	}
	b := r.FinishBackoff
	if b.Next <= 0 {
		b = Backoff{Next: 100 * time.Millisecond, Max: 10 * time.Second, Factor: 2}
	}
	for attempt := 1; ; attempt++ {
		_, err := st.Transition(id, []State{Running}, to, func(q *Request) {
			q.Error, q.Failure, q.Retry = "", summary, retry
			if jobErr != nil {
				q.Error = jobErr.Error()
			}
		}, slices.Concat([]Event{{Kind: Progress, Text: endProgressText(to)}}, last, []Event{ev, {Kind: Card}})...)
		if err == nil {
			break
		}
		if c, ok := errors.AsType[*StateConflict](err); ok {
			log.Warn("not recording job end: the request has moved on", zap.String("state", conflictState(c)), zap.String("end", string(to)))
			return
		}
		if LeaseLost(err) {
			log.Warn("not recording job end: the job's lease was lost; the replica holding it goes on with the job", zap.Error(err), zap.String("end", string(to)))
			return
		}
		log.Error("recording job end; retrying", zap.Error(err), zap.Int("attempt", attempt), zap.Duration("next_in", b.Next))
		if b.Wait(ctx) != nil {
			log.Warn("stopped retrying the job's end at shutdown; the job is resumed on the next start", zap.String("end", string(to)))
			return
		}
	}
	if jobErr != nil {
		log.Warn("job failed", zap.Error(jobErr))
	} else {
		log.Info("job succeeded")
	}
	r.notify.Notify(id)
}

func conflictState(c *StateConflict) string {
	if c.Current == nil {
		return "unknown"
	}
	return string(c.Current.State)
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
