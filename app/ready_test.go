package app

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

type fakeConn bool

func (c fakeConn) Connected() (bool, time.Time) { return bool(c), time.Now().Add(-time.Minute) }

type fakePing struct{ err error }

func (p fakePing) Ping(context.Context) error { return p.err }

type fakeReporter []string

func (r fakeReporter) Unreachable() []string { return r }

func TestReadiness(t *testing.T) {
	tests := []struct {
		name string
		conn bool
		ping error
		rep  any
		want []string
	}{
		{"ready", true, nil, fakeReporter(nil), nil},
		{"reporter without Unreachable", true, nil, struct{}{}, nil},
		{"disconnected", false, nil, nil, []string{"not connected to Slack (for 1m0s)"}},
		{"store read-only", true, errors.New("writing to the store: database is in read-only mode"), nil, []string{"store not writable: writing to the store: database is in read-only mode"}},
		{"channel unreachable", true, nil, fakeReporter{"C0APPROVE", "C0GONE"}, []string{"cannot post to Slack channel(s) C0APPROVE, C0GONE"}},
		{"all", false, errors.New("x"), fakeReporter{"C1"}, []string{"not connected", "store not writable", "C1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readiness(t.Context(), fakeConn(tt.conn), fakePing{tt.ping}, tt.rep)
			if len(got) != len(tt.want) {
				t.Fatalf("readiness = %q, want %d problem(s) %q", got, len(tt.want), tt.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("problem %d = %q, want it to say %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}
