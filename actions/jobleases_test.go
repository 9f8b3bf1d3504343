package actions_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/store"
)

// Two runners with leases on one store stand for two replicas on a shared
// store (the bbolt store has the same lease API as the DynamoDB one).
func leasedRunner(t *testing.T, s actions.Store, ls actions.Leases, owner string, ttl time.Duration, job actions.Job, log ...*zap.Logger) *actions.Runner {
	t.Helper()
	l := zaptest.NewLogger(t).Named(owner)
	if len(log) > 0 {
		l = log[0]
	}
	r := actions.NewRunner(s, nopNotifier{}, map[string]actions.Job{"test": job}, l)
	r.Leases, r.Owner, r.LeaseTTL = ls, owner, ttl
	r.ResumeInterval = time.Hour // the tests call Run, or rely on the lease retry
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(func() { cancel(); r.Wait() })
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return r
}

func threadTexts(t *testing.T, s *store.Store, id string) []string {
	t.Helper()
	evs, err := s.Events(id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Text)
	}
	return out
}

func countContaining(texts []string, sub string) int {
	n := 0
	for _, x := range texts {
		if strings.Contains(x, sub) {
			n++
		}
	}
	return n
}

// Both replicas are told to run the same approved request at once: the
// job runs once.
func TestLeasedJobRunsOnOneReplica(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	var runs atomic.Int32
	job := jobFunc(func(ctx context.Context, jc *actions.JobContext) error {
		runs.Add(1)
		time.Sleep(100 * time.Millisecond)
		return jc.Save("done", true)
	})
	a := leasedRunner(t, s, s.Store, "replica-a", 2*time.Second, job)
	b := leasedRunner(t, s, s.Store, "replica-b", 2*time.Second, job)
	for i := 0; i < 5; i++ {
		id := create(t, s, actions.Approved)
		a.Run(id)
		b.Run(id)
		waitState(t, s, id, actions.Succeeded, 5*time.Second)
		if n := runs.Swap(0); n != 1 {
			t.Errorf("%s: %d runs, want 1", id, n)
		}
		if got := countContaining(threadTexts(t, s.Store, id), "Resumed by replica"); got != 0 {
			t.Errorf("%s: a takeover line without a takeover", id)
		}
	}
}

// A replica died holding a job (its lease is left, unrenewed): another
// takes the job over when the lease expires, resumes from the last
// checkpoint, and the thread says so once.
func TestTakeoverWhenTheLeaseExpires(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	id := create(t, s, actions.Approved)
	ttl := 600 * time.Millisecond
	dead, err := s.AcquireLease(actions.JobLease(id), "replica-dead", ttl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.TransitionFenced(dead, id, []actions.State{actions.Approved}, actions.Running, func(q *actions.Request) { q.Runner = "replica-dead" }); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCheckpointFenced(dead, id, "step", 1); err != nil {
		t.Fatal(err)
	}
	var resumedAt atomic.Int32
	job := jobFunc(func(ctx context.Context, jc *actions.JobContext) error {
		var step int
		if _, err := jc.Load("step", &step); err != nil {
			return err
		}
		resumedAt.Store(int32(step))
		return jc.Save("step", 2)
	})
	start := time.Now()
	b := leasedRunner(t, s, s.Store, "replica-b", ttl, job)
	b.Run(id) // held by the dead replica: tried again at its expiry
	waitState(t, s, id, actions.Succeeded, 5*time.Second)
	took := time.Since(start)
	if took < dead.Expires.Sub(start)-50*time.Millisecond {
		t.Errorf("taken over after %v, before the lease expired (%v)", took, dead.Expires.Sub(start))
	}
	if took > ttl+time.Second {
		t.Errorf("taken over after %v, want soon after the lease's %v", took, ttl)
	}
	if resumedAt.Load() != 1 {
		t.Errorf("resumed at step %d, want 1 (the dead replica's checkpoint)", resumedAt.Load())
	}
	texts := threadTexts(t, s.Store, id)
	if n := countContaining(texts, "Resumed by replica `replica-b`: replica `replica-dead`"); n != 1 {
		t.Errorf("%d takeover lines, want 1: %q", n, texts)
	}
	t.Logf("takeover %v after start; lease ttl %v", took.Round(time.Millisecond), ttl)
}

// pausable wraps the store's leases so that a test can stop one replica's
// renewals, as SIGSTOP or a partition would.
type pausable struct {
	*store.Store
	mu     sync.Mutex
	paused chan struct{}
}

func (p *pausable) RenewLease(l actions.Lease, ttl time.Duration) (actions.Lease, error) {
	p.mu.Lock()
	ch := p.paused
	p.mu.Unlock()
	if ch != nil {
		<-ch
	}
	return p.Store.RenewLease(l, ttl)
}

// A replica is paused past its lease's expiry; another takes the job over
// and finishes it. When the first wakes, its renewal and its next write
// are refused by the fence: it makes no side effect, and records nothing.
func TestPausedReplicaIsFenced(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	ttl := 600 * time.Millisecond
	pa := &pausable{Store: s.Store}
	var sideEffects sync.Map // owner -> count
	wake := make(chan struct{})
	job := func(owner string) actions.Job {
		return jobFunc(func(ctx context.Context, jc *actions.JobContext) error {
			if owner == "replica-a" {
				// Paused right after its first checkpoint.
				if err := jc.Save("intent", owner); err != nil {
					return err
				}
				pa.mu.Lock()
				pa.paused = make(chan struct{})
				ch := pa.paused
				pa.mu.Unlock()
				go func() { <-wake; close(ch) }()
				select {
				case <-wake:
				case <-ctx.Done():
				}
				time.Sleep(50 * time.Millisecond) // the renewal goes first
			}
			// The side effect comes after an intent checkpoint under the
			// current lease.
			if err := jc.Save("intent", owner); err != nil {
				return err
			}
			n, _ := sideEffects.LoadOrStore(owner, new(atomic.Int32))
			n.(*atomic.Int32).Add(1)
			return nil
		})
	}
	core, logs := observer.New(zap.InfoLevel)
	a := leasedRunner(t, s, pa, "replica-a", ttl, job("replica-a"), zap.New(core))
	b := leasedRunner(t, s, s.Store, "replica-b", ttl, job("replica-b"))
	id := create(t, s, actions.Approved) // after both started: neither resumes it by itself
	a.Run(id)
	deadline := time.Now().Add(5 * time.Second)
	for { // a holds the job and is paused
		pa.mu.Lock()
		p := pa.paused
		pa.mu.Unlock()
		if p != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replica-a never started the job")
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Run(id) // held: tried at expiry, while a is paused
	waitState(t, s, id, actions.Succeeded, 5*time.Second)
	close(wake)
	time.Sleep(300 * time.Millisecond)
	if v, ok := sideEffects.Load("replica-a"); ok && v.(*atomic.Int32).Load() != 0 {
		t.Errorf("the paused replica made %d side effects after waking", v.(*atomic.Int32).Load())
	}
	if v, ok := sideEffects.Load("replica-b"); !ok || v.(*atomic.Int32).Load() != 1 {
		t.Errorf("replica-b made %v side effects, want 1", v)
	}
	var intent string
	if _, err := s.LoadCheckpoint(id, "intent", &intent); err != nil || intent != "replica-b" {
		t.Errorf("intent checkpoint = %q, %v: want replica-b's (a's later write refused)", intent, err)
	}
	q, _ := s.Get(id)
	if q.State != actions.Succeeded {
		t.Errorf("state %s after the paused replica woke", q.State)
	}
	if n := logs.FilterMessageSnippet("lost the job's lease").Len(); n != 1 {
		t.Errorf("the paused replica logged %d lost-lease errors, want 1: %v", n, logs.All())
	}
}

// A replica that shuts down releases its jobs' leases: another takes the
// job over at once, not after the lease's time.
func TestShutdownReleasesTheLease(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	ttl := 10 * time.Second
	started := make(chan struct{}, 1)
	job := jobFunc(func(ctx context.Context, jc *actions.JobContext) error {
		var step int
		if _, err := jc.Load("step", &step); err != nil {
			return err
		}
		if step == 0 {
			if err := jc.Save("step", 1); err != nil {
				return err
			}
			started <- struct{}{}
			<-ctx.Done() // a long wait, cut by the shutdown
			return ctx.Err()
		}
		return nil
	})
	id := create(t, s, actions.Approved)
	a := actions.NewRunner(s, nopNotifier{}, map[string]actions.Job{"test": job}, zaptest.NewLogger(t).Named("a"))
	a.Leases, a.Owner, a.LeaseTTL, a.ResumeInterval = s.Store, "replica-a", ttl, time.Hour
	actx, stopA := context.WithCancel(t.Context())
	if err := a.Start(actx); err != nil {
		t.Fatal(err)
	}
	a.Run(id)
	<-started
	stopA()
	a.Wait()
	t0 := time.Now()
	b := leasedRunner(t, s, s.Store, "replica-b", ttl, job)
	b.Run(id)
	waitState(t, s, id, actions.Succeeded, 3*time.Second)
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("taken over after %v: the lease (%v) was not released", d, ttl)
	}
	if n := countContaining(threadTexts(t, s.Store, id), "Resumed by replica `replica-b`: replica `replica-a`"); n != 1 {
		t.Errorf("%d takeover lines, want 1", n)
	}
}
