package mail

import (
	"context"
	"fmt"
	"time"
)

// Backoff says how SendWithRetry waits between attempts: Initial, then
// doubling up to Max, for at most Attempts attempts in all.
type Backoff struct {
	Initial  time.Duration // <= 0 means 1s
	Max      time.Duration // <= 0 means 1m
	Attempts int           // <= 0 means 1 (no retry)
	// OnRetry, if set, is called before each wait (for the audit trail),
	// with the attempt that failed (1-based), its error and the wait.
	OnRetry func(attempt int, err error, wait time.Duration)
}

// SendWithRetry sends m, retrying temporary failures (IsTemporary) with
// backoff. A permanent failure is returned at once. The returned error
// wraps the last attempt's *Error, or ctx's error if ctx ended while waiting.
func SendWithRetry(ctx context.Context, s Mailer, m Message, b Backoff) error {
	attempts := max(b.Attempts, 1)
	wait := b.Initial
	if wait <= 0 {
		wait = time.Second
	}
	limit := b.Max
	if limit <= 0 {
		limit = time.Minute
	}
	for attempt := 1; ; attempt++ {
		err := s.Send(ctx, m)
		if err == nil {
			return nil
		}
		if !IsTemporary(err) || attempt >= attempts || ctx.Err() != nil {
			if attempt == 1 {
				return err
			}
			return fmt.Errorf("mail: giving up after %d attempts: %w", attempt, err)
		}
		wait = min(wait, limit)
		if b.OnRetry != nil {
			b.OnRetry(attempt, err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("mail: stopped waiting to retry (attempt %d failed: %v): %w", attempt, err, ctx.Err())
		case <-t.C:
		}
		wait *= 2
	}
}
