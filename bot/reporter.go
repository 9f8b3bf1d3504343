package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/store"
)

// Poster is the Slack calls the reporter makes.
type Poster interface {
	PostMessageContext(ctx context.Context, channelID string, options ...slack.MsgOption) (string, string, error)
	UpdateMessageContext(ctx context.Context, channelID, timestamp string, options ...slack.MsgOption) (string, string, string, error)
	GetPermalinkContext(ctx context.Context, params *slack.PermalinkParameters) (string, error)
	GetConversationRepliesContext(ctx context.Context, params *slack.GetConversationRepliesParameters) ([]slack.Message, bool, string, error)
	GetConversationHistoryContext(ctx context.Context, params *slack.GetConversationHistoryParameters) (*slack.GetConversationHistoryResponse, error)
}

// OutboxStore is what the reporter needs from the store.
type OutboxStore interface {
	Get(id string) (*actions.Request, error)
	Update(id string, from []actions.State, mutate func(*actions.Request) error, events ...actions.Event) (*actions.Request, error)
	Outbox() ([]string, error)
	Undelivered(id string) ([]actions.Event, store.Cursor, error)
	MarkDelivered(id string, cur store.Cursor) error
}

// Reporter delivers stored events to their request's thread, in order: the
// approval card (posted, then edited), thread messages, and one status
// message that progress events edit. It keeps to MinInterval between two
// calls per channel, waits out 429 Retry-After, and retries anything else
// with backoff, so events are never lost while Slack is away; delivery is
// at least once (a crash between a post and its cursor write re-posts).
type Reporter struct {
	api              Poster
	store            OutboxStore
	render           func(*actions.Request) (string, []slack.Block)
	minInterval      time.Duration
	progressInterval time.Duration
	log              *zap.Logger
	now              func() time.Time

	wake     chan struct{}
	mu       sync.Mutex
	checked  map[string]bool      // requests whose thread was compared since start
	started  time.Time            // events older than this may have been posted by an earlier process
	lastCall map[string]time.Time // channel -> last Slack call
	lastEdit map[string]time.Time // request -> last status edit
}

// ReporterOptions configure a Reporter.
type ReporterOptions struct {
	MinInterval, ProgressInterval time.Duration
	Render                        func(*actions.Request) (string, []slack.Block)
	Log                           *zap.Logger
	Now                           func() time.Time
}

// NewReporter builds a reporter.
func NewReporter(api Poster, s OutboxStore, o ReporterOptions) *Reporter {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Reporter{api: api, store: s, render: o.Render, minInterval: o.MinInterval, progressInterval: o.ProgressInterval,
		log: o.Log, now: o.Now, wake: make(chan struct{}, 1), checked: map[string]bool{}, started: o.Now(), lastCall: map[string]time.Time{}, lastEdit: map[string]time.Time{}}
}

// Notify wakes the reporter; it never blocks.
func (r *Reporter) Notify(string) {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends.
func (r *Reporter) Run(ctx context.Context) {
	backoff := time.Second
	for {
		next, err := r.deliverAll(ctx)
		wait := next
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("thread delivery failed; retrying", zap.Error(err), zap.Duration("retry_in", backoff))
			wait = backoff
			backoff = min(backoff*2, 30*time.Second)
		} else {
			backoff = time.Second
		}
		if wait <= 0 {
			wait = 5 * time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// deliverAll delivers every request in the outbox; it returns how soon a
// deferred status edit is due.
func (r *Reporter) deliverAll(ctx context.Context) (time.Duration, error) {
	ids, err := r.store.Outbox()
	if err != nil {
		return 0, fmt.Errorf("reading outbox: %w", err)
	}
	var firstErr error
	var due time.Duration
	for _, id := range ids {
		d, err := r.deliver(ctx, id)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("delivering %s: %w", id, err)
		}
		if d > 0 && (due == 0 || d < due) {
			due = d
		}
	}
	return due, firstErr
}

func (r *Reporter) deliver(ctx context.Context, id string) (time.Duration, error) {
	evs, cur, err := r.store.Undelivered(id)
	if err != nil || len(evs) == 0 {
		if err == nil {
			err = r.store.MarkDelivered(id, cur)
		}
		return 0, err
	}
	req, err := r.store.Get(id)
	if err != nil {
		return 0, err
	}
	for i := 0; i < len(evs); i++ {
		e := evs[i]
		// Fold runs of the same foldable kind into their last event.
		if e.Kind == actions.Card || e.Kind == actions.Progress {
			for i+1 < len(evs) && evs[i+1].Kind == e.Kind {
				i++
				e = evs[i]
			}
		}
		if req.Thread.TS == "" && e.Kind != actions.Card {
			// The card opens the thread; it must exist before any reply.
			if req, err = r.postCard(ctx, req); err != nil {
				return 0, err
			}
		}
		switch e.Kind {
		case actions.Card:
			if req.Thread.TS == "" {
				req, err = r.postCard(ctx, req)
			} else {
				text, blocks := r.render(req)
				err = r.call(ctx, req.Thread.Channel, func() error {
					_, _, _, err := r.api.UpdateMessageContext(ctx, req.Thread.Channel, req.Thread.TS, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
					return err
				})
			}
		case actions.Progress:
			last := i == len(evs)-1
			if wait := r.progressInterval - r.now().Sub(r.lastEditAt(id)); last && cur.StatusTS != "" && wait > 0 {
				return wait, nil // fold further progress into one later edit
			}
			err = r.call(ctx, req.Thread.Channel, func() error {
				if cur.StatusTS == "" {
					_, ts, err := r.api.PostMessageContext(ctx, req.Thread.Channel, slack.MsgOptionText(":hourglass_flowing_sand: "+e.Text, false), slack.MsgOptionTS(req.Thread.TS))
					cur.StatusTS = ts
					return err
				}
				_, _, _, err := r.api.UpdateMessageContext(ctx, req.Thread.Channel, cur.StatusTS, slack.MsgOptionText(":hourglass_flowing_sand: "+e.Text, false))
				return err
			})
			if err == nil {
				r.mu.Lock()
				r.lastEdit[id] = r.now()
				r.mu.Unlock()
			}
		default:
			if ts, found := r.alreadyPosted(ctx, req, cur, e); found {
				cur.LastTS = ts
				break
			}
			err = r.call(ctx, req.Thread.Channel, func() error {
				_, ts, err := r.api.PostMessageContext(ctx, req.Thread.Channel, slack.MsgOptionText(e.Text, false), slack.MsgOptionTS(req.Thread.TS))
				cur.LastTS = ts
				return err
			})
		}
		if err != nil {
			return 0, err
		}
		cur.Delivered = e.Seq
		if err := r.store.MarkDelivered(id, cur); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

// postedCard finds, once per request after a start, a card this bot
// posted for req whose ts was never recorded (a crash or a lost answer
// between the post and the store write), so the card is not posted twice.
func (r *Reporter) postedCard(ctx context.Context, req *actions.Request) string {
	if !req.CreatedAt.Before(r.started) {
		return "" // created by this process: nothing can have been lost
	}
	r.mu.Lock()
	done := r.checked["card:"+req.ID]
	r.checked["card:"+req.ID] = true
	r.mu.Unlock()
	if done {
		return ""
	}
	// The newest 200 top-level messages: a card lost this way was posted
	// moments before the crash.
	h, err := r.api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: req.Thread.Channel, Limit: 200})
	if err != nil {
		r.log.Warn("cannot read the channel to avoid a second card; posting", zap.String("request_id", req.ID), zap.Error(err))
		return ""
	}
	for _, m := range h.Messages {
		if m.BotID != "" && strings.Contains(m.Text, " "+req.ID+" by ") {
			r.log.Info("card was posted before; adopting it", zap.String("request_id", req.ID), zap.String("ts", m.Timestamp))
			return m.Timestamp
		}
	}
	return ""
}

// alreadyPosted looks, once per request after a start, at the thread's
// replies since the last one recorded: a crash between a post and its
// cursor write leaves that message there, and it must not be posted twice.
func (r *Reporter) alreadyPosted(ctx context.Context, req *actions.Request, cur store.Cursor, e actions.Event) (string, bool) {
	if !e.At.Before(r.started) {
		return "", false // recorded by this process: not posted before
	}
	r.mu.Lock()
	done := r.checked[req.ID]
	r.checked[req.ID] = true
	r.mu.Unlock()
	if done {
		return "", false
	}
	oldest := cur.LastTS
	if oldest == "" {
		oldest = req.Thread.TS
	}
	msgs, _, _, err := r.api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{ChannelID: req.Thread.Channel, Timestamp: req.Thread.TS, Oldest: oldest, Limit: 100})
	if err != nil {
		r.log.Warn("cannot read the thread to avoid a repost; posting", zap.String("request_id", req.ID), zap.Error(err))
		return "", false
	}
	for _, m := range msgs {
		if m.Timestamp != req.Thread.TS && m.Timestamp != cur.StatusTS && m.BotID != "" && m.Text == e.Text {
			r.log.Info("event was posted before a restart; not posting it again", zap.String("request_id", req.ID), zap.Uint64("seq", e.Seq))
			return m.Timestamp, true
		}
	}
	return "", false
}

func (r *Reporter) lastEditAt(id string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastEdit[id]
}

// postCard posts the approval card as a new top-level message; its ts
// becomes the request's thread.
func (r *Reporter) postCard(ctx context.Context, req *actions.Request) (*actions.Request, error) {
	text, blocks := r.render(req)
	ts := r.postedCard(ctx, req)
	if ts == "" {
		err := r.call(ctx, req.Thread.Channel, func() error {
			var err error
			_, ts, err = r.api.PostMessageContext(ctx, req.Thread.Channel, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("posting approval message: %w", err)
		}
	}
	link, err := r.api.GetPermalinkContext(ctx, &slack.PermalinkParameters{Channel: req.Thread.Channel, Ts: ts})
	if err != nil {
		r.log.Warn("no permalink for approval message", zap.String("request_id", req.ID), zap.Error(err))
	}
	return r.store.Update(req.ID, nil, func(q *actions.Request) error {
		q.Thread.TS, q.Thread.Permalink = ts, link
		return nil
	})
}

// call spaces calls per channel and waits out 429s.
func (r *Reporter) call(ctx context.Context, channel string, f func() error) error {
	for {
		r.mu.Lock()
		wait := r.minInterval - r.now().Sub(r.lastCall[channel])
		r.mu.Unlock()
		if wait > 0 {
			if err := sleep(ctx, wait); err != nil {
				return err
			}
		}
		err := f()
		r.mu.Lock()
		r.lastCall[channel] = r.now()
		r.mu.Unlock()
		var rl *slack.RateLimitedError
		if errors.As(err, &rl) {
			r.log.Info("slack rate limited; waiting", zap.String("channel", channel), zap.Duration("retry_after", rl.RetryAfter))
			if err := sleep(ctx, rl.RetryAfter); err != nil {
				return err
			}
			continue
		}
		return err
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
