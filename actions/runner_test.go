package actions_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/store"
)

// flakyStore is the real store whose writes of a request's end fail the
// first failEnds times, as a full disk or a lost fsync would.
type flakyStore struct {
	*store.Store
	failEnds atomic.Int32
	endTries atomic.Int32
}

func (f *flakyStore) Transition(id string, from []actions.State, to actions.State, mutate func(*actions.Request), events ...actions.Event) (*actions.Request, error) {
	if to.Terminal() {
		f.endTries.Add(1)
		if f.failEnds.Add(-1) >= 0 {
			return nil, errors.New("write /var/lib/osio-bot/osio-bot.db: no space left on device")
		}
	}
	return f.Store.Transition(id, from, to, mutate, events...)
}

type nopNotifier struct{}

func (nopNotifier) Notify(string) {}

// jobFunc adapts a function to actions.Job.
type jobFunc func(ctx context.Context, jc *actions.JobContext) error

func (f jobFunc) Run(ctx context.Context, jc *actions.JobContext) error { return f(ctx, jc) }

func openStore(t *testing.T, path string) *flakyStore {
	t.Helper()
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &flakyStore{Store: s}
}

func create(t *testing.T, s *flakyStore, state actions.State) string {
	t.Helper()
	res, err := s.Create(&actions.Request{Kind: "test", State: state}, "")
	if err != nil {
		t.Fatal(err)
	}
	return res.Request.ID
}

// waitState polls until the request is in want, or fails after limit.
func waitState(t *testing.T, s *flakyStore, id string, want actions.State, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		r, err := s.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if r.State == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s is %s after %v, want %s", id, r.State, limit, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFinishRetriesFailedStoreWrite(t *testing.T) {
	for _, tc := range []struct {
		name   string
		jobErr error
		want   actions.State
	}{
		{"succeeded", nil, actions.Succeeded},
		{"failed", errors.New("the table is gone"), actions.Failed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, filepath.Join(t.TempDir(), "s.db"))
			s.failEnds.Store(3)
			r := actions.NewRunner(s, nopNotifier{}, map[string]actions.Job{
				"test": jobFunc(func(context.Context, *actions.JobContext) error { return tc.jobErr }),
			}, zaptest.NewLogger(t))
			ctx, cancel := context.WithCancel(t.Context())
			defer func() { cancel(); r.Wait() }()
			if err := r.Start(ctx); err != nil {
				t.Fatal(err)
			}
			id := create(t, s, actions.Approved)
			r.Run(id)
			waitState(t, s, id, tc.want, 10*time.Second)
			if n := s.endTries.Load(); n != 4 {
				t.Errorf("%d tries to record the end, want 4 (3 failed, then 1 that took)", n)
			}
		})
	}
}

func TestResumerPicksUpUnheldRequests(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	var runs atomic.Int32
	r := actions.NewRunner(s, nopNotifier{}, map[string]actions.Job{
		"test": jobFunc(func(context.Context, *actions.JobContext) error { runs.Add(1); return nil }),
	}, zaptest.NewLogger(t))
	r.ResumeInterval = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	defer func() { cancel(); r.Wait() }()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Approved or running after Start, and nobody calls Run: as when the
	// approval's Run was lost, or the start of a job failed to write.
	approved := create(t, s, actions.Approved)
	running := create(t, s, actions.Running)
	pending := create(t, s, actions.Pending)
	waitState(t, s, approved, actions.Succeeded, 2*time.Second)
	waitState(t, s, running, actions.Succeeded, 2*time.Second)
	time.Sleep(200 * time.Millisecond)
	if n := runs.Load(); n != 2 {
		t.Errorf("%d job runs, want 2 (one per request)", n)
	}
	if q, _ := s.Get(pending); q.State != actions.Pending {
		t.Errorf("pending request is %s: the resumer must only take approved or running ones", q.State)
	}
}

// TestResumerLeavesHeldJobsAlone: a job running in this process is not
// started a second time by the resumer.
func TestResumerLeavesHeldJobsAlone(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	var runs atomic.Int32
	release := make(chan struct{})
	r := actions.NewRunner(s, nopNotifier{}, map[string]actions.Job{
		"test": jobFunc(func(ctx context.Context, _ *actions.JobContext) error {
			runs.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		}),
	}, zaptest.NewLogger(t))
	r.ResumeInterval = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	defer func() { cancel(); r.Wait() }()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	id := create(t, s, actions.Approved)
	r.Run(id)
	time.Sleep(300 * time.Millisecond)
	close(release)
	waitState(t, s, id, actions.Succeeded, 2*time.Second)
	if n := runs.Load(); n != 1 {
		t.Errorf("%d runs of one job, want 1", n)
	}
}

// TestDrainStopsJobsAtTheirNextCheckpoint: Drain takes no new work, lets a
// job run on to its next checkpoint, stops it there (still running, to be
// resumed), and another runner on the same store resumes it.
func TestDrainStopsJobsAtTheirNextCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := openStore(t, path)
	release := make(chan struct{})
	var steps sync.Map
	job := jobFunc(func(ctx context.Context, jc *actions.JobContext) error {
		var done int
		if _, err := jc.Load("step", &done); err != nil {
			return err
		}
		for step := done + 1; step <= 2; step++ {
			if step == 1 {
				<-release // a call that is not cut short by ctx
			} else {
				select { // a long wait
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Minute):
				}
			}
			if err := jc.Save("step", step); err != nil {
				return err
			}
			steps.Store(step, true)
		}
		return nil
	})
	r := actions.NewRunner(s, nopNotifier{}, map[string]actions.Job{"test": job}, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	id := create(t, s, actions.Approved)
	r.Run(id)
	waitState(t, s, id, actions.Running, 2*time.Second)

	drained := make(chan struct{})
	start := time.Now()
	go func() { r.Drain(30 * time.Second); close(drained) }()
	time.Sleep(100 * time.Millisecond)
	later := create(t, s, actions.Approved)
	r.Run(later) // no new work while draining
	close(release)
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		t.Fatal("Drain did not return after the job reached its checkpoint")
	}
	took := time.Since(start)
	if took > 5*time.Second {
		t.Errorf("Drain took %v, want well under its 30s grace", took)
	}
	if _, ok := steps.Load(1); !ok {
		t.Error("the job did not reach its next checkpoint")
	}
	if _, ok := steps.Load(2); ok {
		t.Error("the job went on past its next checkpoint")
	}
	for _, q := range []struct {
		id   string
		want actions.State
	}{{id, actions.Running}, {later, actions.Approved}} {
		if got, _ := s.Get(q.id); got.State != q.want {
			t.Errorf("request %s is %s after Drain, want %s", q.id, got.State, q.want)
		}
	}

	// A restart resumes both from where they stopped.
	r2 := actions.NewRunner(s, nopNotifier{}, map[string]actions.Job{"test": jobFunc(func(ctx context.Context, jc *actions.JobContext) error {
		var done int
		if _, err := jc.Load("step", &done); err != nil {
			return err
		}
		if jc.Request.ID == id && done != 1 {
			return errors.New("resumed without its checkpoint")
		}
		return nil
	})}, zap.NewNop())
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer func() { cancel2(); r2.Wait() }()
	if err := r2.Start(ctx2); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, id, actions.Succeeded, 2*time.Second)
	waitState(t, s, later, actions.Succeeded, 2*time.Second)
}

// TestDrainGraceIsBounded: a job that reaches no checkpoint is stopped
// when the grace ends.
func TestDrainGraceIsBounded(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	r := actions.NewRunner(s, nopNotifier{}, map[string]actions.Job{"test": jobFunc(func(ctx context.Context, _ *actions.JobContext) error {
		<-ctx.Done()
		return ctx.Err()
	})}, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	id := create(t, s, actions.Approved)
	r.Run(id)
	waitState(t, s, id, actions.Running, 2*time.Second)
	start := time.Now()
	r.Drain(300 * time.Millisecond)
	if took := time.Since(start); took < 250*time.Millisecond || took > 3*time.Second {
		t.Errorf("Drain took %v, want about its 300ms grace", took)
	}
	if got, _ := s.Get(id); got.State != actions.Running {
		t.Errorf("request is %s after Drain, want running (resumed on restart)", got.State)
	}
}

// TestClosingReplyOnceAfterCrashBeforeEnd: a job's closing reply (the
// follow-up) is written with the request's end, so a process that stops
// after the job returned and before its end was recorded neither loses the
// reply nor, when the job is resumed and says it again, posts it twice.
func TestClosingReplyOnceAfterCrashBeforeEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	job := jobFunc(func(_ context.Context, jc *actions.JobContext) error {
		if err := jc.Say("step done"); err != nil {
			return err
		}
		return jc.SayLast("Good luck!")
	})

	// First process: every write of the end fails until it is stopped.
	s := openStore(t, path)
	s.failEnds.Store(1 << 20)
	r := actions.NewRunner(s, nopNotifier{}, map[string]actions.Job{"test": job}, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(t.Context())
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	id := create(t, s, actions.Approved)
	r.Run(id)
	deadline := time.Now().Add(10 * time.Second)
	for s.endTries.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the job's end was never tried")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	r.Wait()
	s.Close()

	// Second process: the job is resumed and its end is recorded.
	s2 := openStore(t, path)
	r2 := actions.NewRunner(s2, nopNotifier{}, map[string]actions.Job{"test": job}, zaptest.NewLogger(t))
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer func() { cancel2(); r2.Wait() }()
	if err := r2.Start(ctx2); err != nil {
		t.Fatal(err)
	}
	waitState(t, s2, id, actions.Succeeded, 10*time.Second)
	evs, err := s2.Events(id)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	n := 0
	for _, e := range evs {
		if e.Kind == actions.Message {
			texts = append(texts, e.Text)
		}
		if e.Text == "Good luck!" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the closing reply is stored %d times, want 1: %q", n, texts)
	}
	if last := texts[len(texts)-1]; last != ":white_check_mark: Request finished." || texts[len(texts)-2] != "Good luck!" {
		t.Errorf("replies end %q, want the closing reply then \"Request finished\"", texts[len(texts)-2:])
	}
}
