package bot

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

// slowGroups answers usergroups.users.list only when release is closed,
// counting the calls.
type slowGroups struct {
	calls   atomic.Int32
	release chan struct{}
	members []string
}

func (g *slowGroups) GetUserGroupMembersContext(ctx context.Context, _ string, _ ...slack.GetUserGroupMembersOption) ([]string, error) {
	g.calls.Add(1)
	select {
	case <-g.release:
		return g.members, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Issue 9: IsApprover never holds a lock across the network call, and
// concurrent clicks share one usergroups.users.list.
func TestIsApproverSharesOneSlowFetchAndHonoursEachDeadline(t *testing.T) {
	g := &slowGroups{release: make(chan struct{}), members: []string{"UCATCHER"}}
	a := NewApprovers(g, []string{"SGROUP"}, time.Minute, time.Now)

	// A first click starts the fetch and waits on it.
	first := make(chan error, 1)
	go func() {
		ok, err := a.IsApprover(context.Background(), "UCATCHER")
		if err == nil && !ok {
			err = errors.New("UCATCHER is not an approver")
		}
		first <- err
	}()
	for g.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}

	// A second caller with a short deadline gets its answer (an error) when
	// its own deadline passes, not when the slow fetch ends.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := a.IsApprover(ctx, "UOTHER")
	if took := time.Since(start); took > time.Second {
		t.Fatalf("a caller with a 100ms deadline waited %v behind the slow fetch", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the caller's deadline", err)
	}

	// Ten more callers share the one fetch in flight.
	var wg sync.WaitGroup
	results := make([]bool, 10)
	for i := range results {
		wg.Go(func() {
			ok, err := a.IsApprover(context.Background(), "UCATCHER")
			results[i] = ok && err == nil
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(g.release)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i, ok := range results {
		if !ok {
			t.Errorf("caller %d was not told UCATCHER is an approver", i)
		}
	}
	if n := g.calls.Load(); n != 1 {
		t.Errorf("usergroups.users.list called %d times, want 1 shared by every caller", n)
	}
	// The cache answers now without a call.
	if ok, err := a.IsApprover(context.Background(), "UCATCHER"); err != nil || !ok {
		t.Fatalf("cached answer = %v, %v", ok, err)
	}
	if n := g.calls.Load(); n != 1 {
		t.Errorf("usergroups.users.list called %d times after a cached answer, want 1", n)
	}
}
