package actions

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestLeaseErrors(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	l := Lease{Name: JobLease("R-000123"), Owner: "replica-a", Epoch: 3, Expires: t0}
	held := fmt.Errorf("acquiring: %w", &LeaseHeld{Current: l})
	lost := fmt.Errorf("saving checkpoint: %w", LostLease(l, "now held by \"replica-b\" at epoch 4"))
	tests := []struct {
		name       string
		err        error
		isHeld     bool
		isLost     bool
		mentioning []string
	}{
		{"held", held, true, false, []string{"job:R-000123", "replica-a", "epoch 3", "2025-03-01T12:00:00Z"}},
		{"lost", lost, false, true, []string{"lease lost", "job:R-000123", "replica-a", "epoch 3", "replica-b"}},
		{"other", errors.New("boom"), false, false, nil},
		{"nil", nil, false, false, nil},
	}
	for _, tt := range tests {
		if got := errors.Is(tt.err, ErrLeaseHeld); got != tt.isHeld {
			t.Errorf("%s: Is(ErrLeaseHeld) = %v", tt.name, got)
		}
		if got := LeaseLost(tt.err); got != tt.isLost {
			t.Errorf("%s: LeaseLost = %v", tt.name, got)
		}
		for _, m := range tt.mentioning {
			if !strings.Contains(tt.err.Error(), m) {
				t.Errorf("%s: %q does not mention %q", tt.name, tt.err, m)
			}
		}
	}
	var lh *LeaseHeld
	if !errors.As(held, &lh) || lh.Current != l {
		t.Errorf("errors.As(LeaseHeld) = %+v", lh)
	}
	if DeliverLease("C123") != "deliver:C123" {
		t.Errorf("DeliverLease = %q", DeliverLease("C123"))
	}
	for _, c := range []struct {
		l    Lease
		at   time.Time
		held bool
	}{
		{l, t0.Add(-time.Nanosecond), true},
		{l, t0, false},
		{Lease{Name: l.Name, Epoch: 3, Expires: t0}, t0.Add(-time.Second), false},
	} {
		if got := c.l.Held(c.at); got != c.held {
			t.Errorf("%+v.Held(%v) = %v, want %v", c.l, c.at, got, c.held)
		}
	}
}
