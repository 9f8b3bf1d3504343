package mail

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	smtpserver "github.com/osio/osio-bot/testservers/smtp"
)

type retryCall struct {
	attempt int
	code    int
	wait    time.Duration
}

func TestSendWithRetry(t *testing.T) {
	tests := []struct {
		name      string
		failCode  int
		failTimes int
		attempts  int
		wantErr   string // "" = delivered
		wantTemp  bool
		wantCalls []retryCall
	}{
		{name: "first try", attempts: 3},
		{name: "two 451s then delivered", failCode: 451, failTimes: 2, attempts: 3,
			wantCalls: []retryCall{{1, 451, time.Millisecond}, {2, 451, 2 * time.Millisecond}}},
		{name: "451 until attempts run out", failCode: 451, failTimes: 5, attempts: 3,
			wantErr: "giving up after 3 attempts", wantTemp: true,
			wantCalls: []retryCall{{1, 451, time.Millisecond}, {2, 451, 2 * time.Millisecond}}},
		{name: "550 is not retried", failCode: 550, failTimes: 1, attempts: 3, wantErr: "550"},
		{name: "no retries configured", failCode: 451, failTimes: 1, attempts: 0, wantErr: "451", wantTemp: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, smtpserver.Options{Username: user, Password: password, RequireTLS: true})
			if tt.failTimes > 0 {
				srv.FailNext(tt.failTimes, tt.failCode, "injected")
			}
			cfg := baseConfig(srv)
			cfg.Username, cfg.Password = user, password
			var calls []retryCall
			err := SendWithRetry(context.Background(), newSender(t, cfg), testMessage, Backoff{
				Initial: time.Millisecond, Max: time.Second, Attempts: tt.attempts,
				OnRetry: func(attempt int, err error, wait time.Duration) {
					var me *Error
					errors.As(err, &me)
					calls = append(calls, retryCall{attempt, me.Code, wait})
				},
			})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("SendWithRetry: %v", err)
				}
				if n := len(srv.Messages()); n != 1 {
					t.Fatalf("%d messages delivered, want 1", n)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || IsTemporary(err) != tt.wantTemp {
					t.Fatalf("SendWithRetry = %v (temporary %v), want %q (temporary %v)", err, IsTemporary(err), tt.wantErr, tt.wantTemp)
				}
				assertNoSecret(t, "error", err.Error())
				if n := len(srv.Messages()); n != 0 {
					t.Fatalf("%d messages delivered, want 0", n)
				}
			}
			if len(calls) != len(tt.wantCalls) {
				t.Fatalf("OnRetry calls %v, want %v", calls, tt.wantCalls)
			}
			for i := range calls {
				if calls[i] != tt.wantCalls[i] {
					t.Errorf("OnRetry call %d = %v, want %v", i, calls[i], tt.wantCalls[i])
				}
			}
		})
	}
}

// scripted is a Mailer that answers from a list of errors.
type scripted struct {
	errs  []error
	calls int
}

func (s *scripted) Send(context.Context, Message) error {
	s.calls++
	if len(s.errs) == 0 {
		return nil
	}
	err := s.errs[0]
	s.errs = s.errs[1:]
	return err
}

func TestBackoffCap(t *testing.T) {
	temp := &Error{Code: 451, Temporary: true, msg: "busy"}
	m := &scripted{errs: []error{temp, temp, temp, temp, temp}}
	var waits []time.Duration
	err := SendWithRetry(context.Background(), m, testMessage, Backoff{
		Initial: time.Millisecond, Max: 4 * time.Millisecond, Attempts: 10,
		OnRetry: func(_ int, _ error, wait time.Duration) { waits = append(waits, wait) },
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{1, 2, 4, 4, 4}
	if len(waits) != len(want) {
		t.Fatalf("waits %v", waits)
	}
	for i := range want {
		if waits[i] != want[i]*time.Millisecond {
			t.Fatalf("waits %v, want %v ms", waits, want)
		}
	}
	if m.calls != 6 {
		t.Fatalf("%d calls, want 6", m.calls)
	}
}

func TestSendWithRetryCancelledWhileWaiting(t *testing.T) {
	temp := &Error{Code: 451, Temporary: true, msg: "busy"}
	m := &scripted{errs: []error{temp, temp}}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	err := SendWithRetry(ctx, m, testMessage, Backoff{Initial: time.Hour, Attempts: 5})
	if !errors.Is(err, context.Canceled) || IsTemporary(err) {
		t.Fatalf("SendWithRetry = %v, want context.Canceled and not temporary", err)
	}
	if !strings.Contains(err.Error(), "busy") {
		t.Errorf("error %q does not say what failed", err)
	}
	if time.Since(start) > 5*time.Second || m.calls != 1 {
		t.Fatalf("took %s, %d calls", time.Since(start), m.calls)
	}
}
