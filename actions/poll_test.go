package actions

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	fast := Backoff{Next: time.Millisecond, Max: 2 * time.Millisecond, Factor: 2}
	boom := errors.New("boom")
	tests := []struct {
		name      string
		waitFirst bool
		doneAt    int // call number that reports done; 0 = never
		failAt    int
		limit     time.Duration
		want      error
		calls     int
	}{
		{name: "done on the first call", doneAt: 1, limit: time.Second, calls: 1},
		{name: "done on the third call", doneAt: 3, limit: time.Second, calls: 3},
		{name: "wait first still checks", waitFirst: true, doneAt: 1, limit: time.Second, calls: 1},
		{name: "error stops", failAt: 2, limit: time.Second, want: boom, calls: 2},
		{name: "times out", limit: 20 * time.Millisecond, want: ErrTimedOut},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := Poll(context.Background(), fast, tc.limit, tc.waitFirst, func() (bool, error) {
				calls++
				if calls == tc.failAt {
					return false, boom
				}
				return calls == tc.doneAt, nil
			})
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.calls != 0 && calls != tc.calls {
				t.Errorf("calls = %d, want %d", calls, tc.calls)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Poll(ctx, fast, time.Second, true, func() (bool, error) { return false, nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled poll = %v, want context.Canceled", err)
	}
}

func TestBackoffGrowsToMax(t *testing.T) {
	b := Backoff{Next: time.Millisecond, Max: 3 * time.Millisecond, Factor: 2}
	var seen []time.Duration
	for i := 0; i < 4; i++ {
		if err := b.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		seen = append(seen, b.Next)
	}
	want := []time.Duration{2 * time.Millisecond, 3 * time.Millisecond, 3 * time.Millisecond, 3 * time.Millisecond}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("next waits = %v, want %v", seen, want)
		}
	}
}

func TestIdempotencyToken(t *testing.T) {
	a, b := IdempotencyToken("R-000001", "t"), IdempotencyToken("R-000001", "t")
	if a != b || len(a) != 36 || a[8] != '-' || a[13] != '-' {
		t.Errorf("token %q / %q is not stable and UUID-shaped", a, b)
	}
	if IdempotencyToken("R-000001", "u") == a || IdempotencyToken("R-000002", "t") == a {
		t.Error("different parts give the same token")
	}
}
