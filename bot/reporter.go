package bot

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"
	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions"
)

// Poster is the Slack calls the reporter makes.
type Poster interface {
	PostMessageContext(ctx context.Context, channelID string, options ...slack.MsgOption) (string, string, error)
	UpdateMessageContext(ctx context.Context, channelID, timestamp string, options ...slack.MsgOption) (string, string, string, error)
	PostEphemeralContext(ctx context.Context, channelID, userID string, options ...slack.MsgOption) (string, error)
	GetPermalinkContext(ctx context.Context, params *slack.PermalinkParameters) (string, error)
	GetConversationRepliesContext(ctx context.Context, params *slack.GetConversationRepliesParameters) ([]slack.Message, bool, string, error)
	GetConversationHistoryContext(ctx context.Context, params *slack.GetConversationHistoryParameters) (*slack.GetConversationHistoryResponse, error)
}

// OutboxStore is what the reporter needs from the store.
type OutboxStore interface {
	Get(id string) (*actions.Request, error)
	Update(id string, from []actions.State, mutate func(*actions.Request) error, events ...actions.Event) (*actions.Request, error)
	Outbox() ([]string, error)
	Undelivered(id string) ([]actions.Event, actions.Cursor, error)
	MarkDelivered(id string, cur actions.Cursor) error
}

// Reporter delivers stored events to their request's thread, in order: the
// approval card (posted, then edited), thread messages, and one status
// message that progress events edit.
//
// Every Slack call has a deadline (CallTimeout). It keeps MinInterval
// between two posts per channel and waits out 429 Retry-After. A request
// whose delivery fails for a passing reason (5xx, a timeout, a lost answer)
// is tried again after its own backoff, which Notify does not shorten.
// Errors no retry fixes are classified: a channel the bot cannot post to
// (channel_not_found, is_archived, not_in_channel) is logged as an error,
// counted (OnError), reported by Health and tried again only every
// ProbeInterval, and the requester is told directly; a message Slack
// refuses (invalid_blocks, msg_too_long) is posted again in a plain
// rendering that fits; a refused token (invalid_auth, token_revoked, ...)
// stops delivery until the next probe. Events are never lost while Slack
// is away.
//
// Delivery is at least once, and a post whose answer never came (a crash,
// a timeout, a dropped connection) is looked for in the thread before it
// is posted again: each post carries message metadata naming its request
// and event, and texts are compared as Slack escapes them.
type Reporter struct {
	api              Poster
	store            OutboxStore
	render           func(*actions.Request) (string, []slack.Block)
	minInterval      time.Duration
	progressInterval time.Duration
	callTimeout      time.Duration
	minBackoff       time.Duration
	maxBackoff       time.Duration
	probe            time.Duration
	onError          func(class, code string)
	onDelivery       func(result string)
	log              *zap.Logger
	now              func() time.Time
	started          time.Time // events older than this may have been posted by an earlier process

	wake chan struct{}
	// holds are the channels this replica delivers (nil: no leases).
	holds *channelHolds

	mu       sync.Mutex
	reqs     map[string]*reqState // requests seen since start; forgotten when they end
	lastCall map[string]time.Time // channel -> last post
	blocked  map[string]*blockage // channel -> why the bot cannot post there
	auth     *blockage            // Slack refuses the token
	storeErr int                  // consecutive outbox read failures
}

// reqState is what the reporter keeps about one request between rounds.
type reqState struct {
	// unsure: a post's outcome is unknown (a lost answer, or events
	// older than this process); look at Slack before the next post.
	unsure bool
	// sureSince: the channel hold whose older events were made unsure.
	sureSince time.Time
	lastEdit  time.Time // last status edit
	// statusText is the text the status message was last sent (posted
	// or edited): an edit with the same text is skipped.
	statusText string
	failures   int       // consecutive failed rounds
	retryAt    time.Time // not before this after a failure
}

// blockage is an error no retry fixes, left alone until retryAt.
type blockage struct {
	code           string
	since, retryAt time.Time
}

// ReporterOptions configure a Reporter.
type ReporterOptions struct {
	MinInterval, ProgressInterval time.Duration
	// CallTimeout bounds each Slack call (default 10 s).
	CallTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before a request whose
	// delivery failed is tried again (defaults 1 s and 30 s).
	MinBackoff, MaxBackoff time.Duration
	// ProbeInterval is how long a channel the bot cannot post to, or a
	// token Slack refuses, is left alone before one more try (default 5 min).
	ProbeInterval time.Duration
	// OnError, if set, is told each Slack error no retry fixes: class is
	// "channel", "content" or "auth", code is Slack's error string.
	OnError func(class, code string)
	// OnDelivery, if set, is told the result of each round of delivering
	// one request's events: "ok", or the class of the Slack error that
	// failed it ("transient", "throttled", "channel", "content", "auth",
	// "gone").
	OnDelivery func(result string)
	Render     func(*actions.Request) (string, []slack.Block)
	Log        *zap.Logger
	Now        func() time.Time
	// Leases, on a store several replicas share, makes one replica at a
	// time deliver a channel's threads: it holds the channel's lease
	// (Owner, LeaseTTL, 30s when zero) while it posts there, and lets go
	// once the channel is idle for MinInterval.
	Leases   ChannelLeases
	Owner    string
	LeaseTTL time.Duration
}

// NewReporter builds a reporter.
func NewReporter(api Poster, s OutboxStore, o ReporterOptions) *Reporter {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 10 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(o.MinBackoff, 30*time.Second)
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = 5 * time.Minute
	}
	if o.OnError == nil {
		o.OnError = func(string, string) {}
	}
	if o.OnDelivery == nil {
		o.OnDelivery = func(string) {}
	}
	r := &Reporter{api: api, store: s, render: o.Render, minInterval: o.MinInterval, progressInterval: o.ProgressInterval,
		callTimeout: o.CallTimeout, minBackoff: o.MinBackoff, maxBackoff: o.MaxBackoff, probe: o.ProbeInterval, onError: o.OnError, onDelivery: o.OnDelivery,
		log: o.Log, now: o.Now, started: o.Now(), wake: make(chan struct{}, 1),
		reqs: map[string]*reqState{}, lastCall: map[string]time.Time{}, blocked: map[string]*blockage{}}
	if o.Leases != nil {
		if o.LeaseTTL <= 0 {
			o.LeaseTTL = 30 * time.Second
		}
		r.holds = &channelHolds{ls: o.Leases, owner: o.Owner, ttl: o.LeaseTTL, log: o.Log, held: map[string]*channelHold{}}
	}
	return r
}

// Notify wakes the reporter; it never blocks. A request waiting out a
// backoff stays waiting.
func (r *Reporter) Notify(string) {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Health reports what stops delivery for good until someone acts: a
// channel the bot cannot post to, or a token Slack refuses. nil means
// delivery works or is only waiting out a passing failure. /readyz uses it.
func (r *Reporter) Health() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.auth != nil {
		return fmt.Errorf("slack refuses the bot token (%s) since %s", r.auth.code, r.auth.since.UTC().Format(time.RFC3339))
	}
	if len(r.blocked) == 0 {
		return nil
	}
	var chans []string
	for ch, b := range r.blocked {
		chans = append(chans, fmt.Sprintf("%s (%s since %s)", ch, b.code, b.since.UTC().Format(time.RFC3339)))
	}
	sort.Strings(chans)
	return fmt.Errorf("the bot cannot post to %s", strings.Join(chans, ", "))
}

// idlePoll is how often the outbox is read without a Notify.
const idlePoll = 5 * time.Second

// Run delivers until ctx ends.
func (r *Reporter) Run(ctx context.Context) {
	if r.holds != nil {
		defer r.holds.release(time.Time{}, nil) // hand the channels over at once
	}
	for {
		round := r.now()
		wait := r.deliverAll(ctx)
		if ctx.Err() != nil {
			return
		}
		if r.holds != nil {
			// Channels idle this round, and not posted to for
			// MinInterval, are let go (the next holder keeps the pace).
			r.mu.Lock()
			recent := maps.Clone(r.lastCall)
			r.mu.Unlock()
			r.holds.release(round, func(ch string) bool {
				at, ok := recent[ch]
				return ok && r.now().Sub(at) < r.minInterval
			})
			if len(recent) > 0 && (wait <= 0 || wait > r.minInterval) {
				wait = r.minInterval
			}
		}
		if wait <= 0 || wait > idlePoll {
			wait = idlePoll
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

// deliverAll delivers every request in the outbox that is not waiting out
// a backoff; it returns how soon something is due again (0: nothing).
func (r *Reporter) deliverAll(ctx context.Context) time.Duration {
	if w := r.authWait(); w > 0 {
		return w
	}
	ids, err := r.store.Outbox()
	if err != nil {
		r.mu.Lock()
		r.storeErr++
		w := backoff(r.minBackoff, r.maxBackoff, r.storeErr)
		r.mu.Unlock()
		r.log.Error("reading the outbox failed; retrying", zap.Error(err), zap.Duration("retry_in", w))
		return w
	}
	r.mu.Lock()
	r.storeErr = 0
	for ch, at := range r.lastCall {
		if r.now().Sub(at) >= r.minInterval {
			delete(r.lastCall, ch) // no longer holds a post back
		}
	}
	r.mu.Unlock()
	var next time.Duration
	soonest := func(d time.Duration) {
		if d > 0 && (next == 0 || d < next) {
			next = d
		}
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return 0
		}
		if w := r.backoffLeft(id); w > 0 {
			soonest(w)
			continue
		}
		d, err := r.deliver(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			r.onDelivery(deliveryResult(err))
			w := r.failed(id)
			r.log.Warn("thread delivery failed; retrying", zap.String("request_id", id), zap.Error(err), zap.Duration("retry_in", w))
			soonest(w)
			continue
		}
		r.onDelivery("ok")
		r.recovered(id)
		soonest(d)
		if w := r.authWait(); w > 0 {
			return w
		}
	}
	return next
}

func backoff(lo, hi time.Duration, failures int) time.Duration {
	d := lo
	for i := 1; i < failures && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

// state returns the request's state, creating it on first sight: events
// older than this process may have been posted by the one before.
func (r *Reporter) state(id string, first actions.Event) *reqState {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.reqs[id]
	if st == nil {
		st = &reqState{unsure: first.At.Before(r.started)}
		r.reqs[id] = st
	}
	return st
}

func (r *Reporter) backoffLeft(id string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st := r.reqs[id]; st != nil {
		return st.retryAt.Sub(r.now())
	}
	return 0
}

// failed records a failed round of id and returns its backoff.
func (r *Reporter) failed(id string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.reqs[id]
	if st == nil {
		st = &reqState{}
		r.reqs[id] = st
	}
	st.failures++
	w := backoff(r.minBackoff, r.maxBackoff, st.failures)
	st.retryAt = r.now().Add(w)
	return w
}

// recovered clears id's backoff after a round without error.
func (r *Reporter) recovered(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st := r.reqs[id]; st != nil {
		st.failures, st.retryAt = 0, time.Time{}
	}
}

// forget drops what the reporter kept about a request that has ended.
func (r *Reporter) forget(id string) {
	r.mu.Lock()
	delete(r.reqs, id)
	r.mu.Unlock()
}

func (r *Reporter) isUnsure(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.reqs[id]
	return st != nil && st.unsure
}

func (r *Reporter) setUnsure(id string, v bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st := r.reqs[id]; st != nil {
		st.unsure = v
	}
}

func (r *Reporter) deliver(ctx context.Context, id string) (time.Duration, error) {
	evs, cur, err := r.store.Undelivered(id)
	if err != nil {
		return 0, fmt.Errorf("reading events: %w", err)
	}
	req, err := r.store.Get(id)
	if err != nil {
		return 0, fmt.Errorf("reading request: %w", err)
	}
	if len(evs) == 0 {
		if err := r.store.MarkDelivered(id, cur); err != nil {
			return 0, err
		}
		if req.State.Terminal() {
			r.forget(id)
		}
		return 0, nil
	}
	st := r.state(id, evs[0])
	if r.holds != nil && req.Thread.Channel != "" {
		ok, since, until, err := r.holds.hold(req.Thread.Channel, r.now())
		if err != nil {
			return 0, fmt.Errorf("taking the channel's delivery lease: %w", err)
		}
		if !ok {
			return max(until.Sub(r.now()), time.Millisecond), nil // another replica delivers it
		}
		r.mu.Lock()
		if st.sureSince != since && evs[0].At.Before(since.Add(skewMargin)) {
			// The replica that held the channel before may have posted it.
			st.unsure, st.sureSince = true, since
		}
		r.mu.Unlock()
	}

	// What the requester must hear even when the thread cannot be reached.
	blocked, wait := r.channelBlocked(req.Thread.Channel)
	if req.State == actions.Expired && !cur.ToldExpired {
		if err = r.tellRequester(ctx, req, &cur, &cur.ToldExpired, expiredNotice(req, blocked)); err != nil {
			return r.stopTelling(err)
		}
	}
	if blocked != nil {
		if !cur.ToldUnreachable {
			if err = r.tellRequester(ctx, req, &cur, &cur.ToldUnreachable, unreachableNotice(req, blocked.code)); err != nil {
				return r.stopTelling(err)
			}
		}
		if wait > 0 {
			return wait, nil
		}
	}

	for i := 0; i < len(evs); i++ {
		if r.holds != nil && req.Thread.Channel != "" && i > 0 {
			// Still this replica's channel (a pause may have cost it the
			// lease since the round began)?
			if ok, _, until, err := r.holds.hold(req.Thread.Channel, r.now()); err != nil || !ok {
				return max(until.Sub(r.now()), time.Millisecond), err
			}
		}
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
			q, perr := r.postCard(ctx, req)
			if perr != nil {
				return r.stop(ctx, req, perr)
			}
			req = q
		}
		switch e.Kind {
		case actions.Card:
			if req.Thread.TS == "" {
				q, perr := r.postCard(ctx, req)
				if perr == nil {
					req = q
				}
				err = perr
			} else {
				err = r.editCard(ctx, req)
			}
		case actions.Progress:
			if req.State.Terminal() {
				err = r.closeStatus(ctx, req, &cur, endedAt(evs[i:]))
				break
			}
			r.mu.Lock()
			lastEdit := st.lastEdit
			r.mu.Unlock()
			if wait := r.progressInterval - r.now().Sub(lastEdit); i == len(evs)-1 && cur.StatusTS != "" && wait > 0 {
				return wait, nil // fold further progress into one later edit
			}
			if err = r.status(ctx, req, &cur, e.Text); err == nil {
				r.mu.Lock()
				st.lastEdit = r.now()
				r.mu.Unlock()
			}
		default:
			err = r.reply(ctx, req, &cur, e)
		}
		if err != nil {
			return r.stop(ctx, req, err)
		}
		cur.Delivered = e.Seq
		if err = r.store.MarkDelivered(id, cur); err != nil {
			return 0, fmt.Errorf("recording delivery: %w", err)
		}
	}
	if req.State.Terminal() {
		r.forget(id)
	}
	return 0, nil
}

// stop ends a round of req on err: an error no retry fixes blocks its
// channel (or all delivery, for the token) and is not returned; anything
// else is, for a backoff.
func (r *Reporter) stop(ctx context.Context, req *actions.Request, err error) (time.Duration, error) {
	switch class, code := classify(err); class {
	case errChannel:
		r.block(req.Thread.Channel, code, err)
		return r.deliver(ctx, req.ID) // tells the requester; the channel is now blocked
	case errAuth:
		r.blockAuth(code, err)
		return r.probe, nil
	}
	return 0, err
}

// stopTelling ends a round on a failed notice to the requester.
func (r *Reporter) stopTelling(err error) (time.Duration, error) {
	if class, code := classify(err); class == errAuth {
		r.blockAuth(code, err)
		return r.probe, nil
	}
	return 0, err
}

// ---- errors ----

type errClass int

const (
	errPassing errClass = iota // try again later
	errChannel                 // the bot cannot post to the channel
	errContent                 // Slack refuses this message
	errAuth                    // Slack refuses the token
	errGone                    // the message to edit is gone
)

var slackErrClasses = map[string]errClass{
	"channel_not_found": errChannel, "is_archived": errChannel, "not_in_channel": errChannel, "restricted_action": errChannel,
	"invalid_blocks": errContent, "invalid_blocks_format": errContent, "msg_too_long": errContent, "no_text": errContent,
	"invalid_attachments": errContent, "too_many_attachments": errContent, "invalid_metadata_format": errContent,
	"invalid_metadata_schema": errContent, "metadata_too_large": errContent,
	"invalid_auth": errAuth, "not_authed": errAuth, "account_inactive": errAuth, "token_revoked": errAuth,
	"token_expired": errAuth, "missing_scope": errAuth, "no_permission": errAuth, "not_allowed_token_type": errAuth,
	"ekm_access_denied": errAuth, "org_login_required": errAuth,
	"message_not_found": errGone, "cant_update_message": errGone, "edit_window_closed": errGone,
}

// classify says what kind of Slack error err is, with Slack's code.
func classify(err error) (errClass, string) {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		return slackErrClasses[se.Err], se.Err
	}
	return errPassing, ""
}

// deliveryResult names a failed delivery round's error for OnDelivery.
func deliveryResult(err error) string {
	if _, ok := errors.AsType[*slack.RateLimitedError](err); ok {
		return "throttled"
	}
	switch class, _ := classify(err); class {
	case errChannel:
		return "channel"
	case errContent:
		return "content"
	case errAuth:
		return "auth"
	case errGone:
		return "gone"
	}
	return "transient"
}

// maybeDone reports whether a failed call may still have been carried out
// by Slack: no answer came (a timeout, a dropped connection, a 5xx), or
// Slack said it failed partway.
func maybeDone(err error) bool {
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return false
	}
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err == "internal_error" || se.Err == "fatal_error" || se.Err == "request_timeout"
	}
	return true
}

func (r *Reporter) channelBlocked(channel string) (*blockage, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.blocked[channel]
	if b == nil {
		return nil, 0
	}
	if wait := b.retryAt.Sub(r.now()); wait > 0 {
		return b, wait
	}
	b.retryAt = r.now().Add(r.probe) // this round probes; the next waits
	return b, 0
}

func (r *Reporter) block(channel, code string, err error) {
	now := r.now()
	r.mu.Lock()
	b := r.blocked[channel]
	if b == nil {
		b = &blockage{code: code, since: now}
		r.blocked[channel] = b
	}
	b.code, b.retryAt = code, now.Add(r.probe)
	r.mu.Unlock()
	r.onError("channel", code)
	r.log.Error("the bot cannot post to a channel; requests there wait, and their requesters are told", zap.String("channel", channel),
		zap.String("slack_error", code), zap.Error(err), zap.Duration("next_try_in", r.probe))
}

func (r *Reporter) blockAuth(code string, err error) {
	now := r.now()
	r.mu.Lock()
	if r.auth == nil {
		r.auth = &blockage{code: code, since: now}
	}
	r.auth.code, r.auth.retryAt = code, now.Add(r.probe)
	r.mu.Unlock()
	r.onError("auth", code)
	r.log.Error("slack refuses the bot token; thread delivery stopped", zap.String("slack_error", code), zap.Error(err), zap.Duration("next_try_in", r.probe))
}

func (r *Reporter) authWait() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.auth == nil {
		return 0
	}
	return r.auth.retryAt.Sub(r.now())
}

// worked clears what a successful call to channel proves wrong.
func (r *Reporter) worked(channel string) {
	r.mu.Lock()
	b, a := r.blocked[channel], r.auth
	delete(r.blocked, channel)
	r.auth = nil
	r.mu.Unlock()
	if b != nil {
		r.log.Info("the bot can post to the channel again", zap.String("channel", channel), zap.String("was", b.code))
	}
	if a != nil {
		r.log.Info("slack accepts the bot token again", zap.String("was", a.code))
	}
}

// ---- posts ----

// metaType marks the bot's posts (message metadata), so that a post whose
// answer was lost is recognised in the thread.
const metaType = "osio_bot_post"

func postMeta(id, kind string, seq uint64) slack.MsgOption {
	return slack.MsgOptionMetadata(slack.SlackMetadata{EventType: metaType,
		EventPayload: map[string]any{"request_id": id, "kind": kind, "seq": seq}})
}

// metaIs reports whether m carries the metadata of request id's post of
// kind (and, for messages, event seq).
func metaIs(m slack.Message, id, kind string, seq uint64) bool {
	p := m.Metadata.EventPayload
	if m.Metadata.EventType != metaType || p["request_id"] != id || p["kind"] != kind {
		return false
	}
	n, ok := p["seq"].(float64)
	return kind != "message" || (ok && uint64(n) == seq)
}

var slackUnescaper = strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">")

// sameText compares a text read back from Slack with one the bot sent:
// Slack stores &, < and > escaped.
func sameText(fromSlack, sent string) bool {
	return slackUnescaper.Replace(fromSlack) == slackUnescaper.Replace(sent)
}

// maxPlain is the length of a fallback rendering: a section's limit, far
// under chat.postMessage's 40,000.
const maxPlain = 3000

// fit cuts s to at most n characters, on a character boundary, and says so.
func fit(s string, n int) string {
	total := utf8.RuneCountInString(s)
	if total <= n {
		return s
	}
	note := fmt.Sprintf("\n… (cut: %d characters in all)", total)
	rs := []rune(s)
	return string(rs[:n-utf8.RuneCountInString(note)]) + note
}

// blockText is the text of a card's blocks, for a plain rendering.
func blockText(summary string, blocks []slack.Block) string {
	lines := []string{summary}
	add := func(t *slack.TextBlockObject) {
		if t != nil && t.Text != "" {
			lines = append(lines, t.Text)
		}
	}
	for _, b := range blocks {
		switch b := b.(type) {
		case *slack.HeaderBlock:
			add(b.Text)
		case *slack.SectionBlock:
			add(b.Text)
			for _, f := range b.Fields {
				add(f)
			}
		case *slack.ContextBlock:
			for _, el := range b.ContextElements.Elements {
				if t, ok := el.(*slack.TextBlockObject); ok {
					add(t)
				}
			}
		}
	}
	return strings.Join(lines, "\n")
}

// cardRenderings are the card's renderings, best first: as rendered; one
// section of its text with its buttons; plain text.
func cardRenderings(text string, blocks []slack.Block) [][]slack.MsgOption {
	plain := fit(blockText(text, blocks), maxPlain)
	compact := []slack.Block{slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, plain, false, false), nil, nil)}
	for _, b := range blocks {
		if a, ok := b.(*slack.ActionBlock); ok {
			compact = append(compact, a)
		}
	}
	return [][]slack.MsgOption{
		{slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...)},
		{slack.MsgOptionText(fit(text, maxPlain), false), slack.MsgOptionBlocks(compact...)},
		{slack.MsgOptionText(plain, false), slack.MsgOptionBlocks()},
	}
}

// send makes one post or edit in channel, trying renderings in order while
// Slack refuses their content. It returns the ts, or "" with a nil error
// when Slack refused every rendering (logged and counted).
func (r *Reporter) send(ctx context.Context, req *actions.Request, channel, what string, renderings [][]slack.MsgOption,
	do func(ctx context.Context, opts []slack.MsgOption) (string, error)) (string, error) {
	for i, opts := range renderings {
		var ts string
		err := r.call(ctx, channel, func(ctx context.Context) error {
			var err error
			ts, err = do(ctx, opts)
			return err
		})
		if err == nil {
			if i > 0 {
				r.log.Warn("slack refused a message; posted a plain rendering instead", zap.String("request_id", req.ID), zap.String("what", what), zap.Int("rendering", i))
			}
			return ts, nil
		}
		class, code := classify(err)
		if class != errContent {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		r.onError("content", code)
		r.log.Error("slack refused a message", zap.String("request_id", req.ID), zap.String("what", what), zap.String("slack_error", code), zap.Int("rendering", i))
	}
	return "", nil
}

// post sends a new message (renderings in order); a post whose outcome is
// unknown makes the request unsure, so the next post looks first.
func (r *Reporter) post(ctx context.Context, req *actions.Request, channel, what string, renderings [][]slack.MsgOption) (string, error) {
	ts, err := r.send(ctx, req, channel, what, renderings, func(ctx context.Context, opts []slack.MsgOption) (string, error) {
		_, ts, err := r.api.PostMessageContext(ctx, channel, opts...)
		return ts, err
	})
	if err != nil && maybeDone(err) {
		r.setUnsure(req.ID, true)
	}
	return ts, err
}

func (r *Reporter) edit(ctx context.Context, req *actions.Request, channel, ts, what string, renderings [][]slack.MsgOption) error {
	_, err := r.send(ctx, req, channel, what, renderings, func(ctx context.Context, opts []slack.MsgOption) (string, error) {
		_, _, _, err := r.api.UpdateMessageContext(ctx, channel, ts, opts...)
		return ts, err
	})
	return err
}

// postCard posts the approval card as a new top-level message, unless one
// posted before is found; its ts becomes the request's thread.
func (r *Reporter) postCard(ctx context.Context, req *actions.Request) (*actions.Request, error) {
	text, blocks := r.render(req)
	ts, err := r.postedCard(ctx, req)
	if err != nil {
		return nil, err
	}
	if ts == "" {
		renderings := cardRenderings(text, blocks)
		for i := range renderings {
			renderings[i] = append(renderings[i], postMeta(req.ID, "card", 0))
		}
		renderings = append(renderings, []slack.MsgOption{slack.MsgOptionText(fmt.Sprintf("%s request %s", req.Kind, req.ID), false)})
		if ts, err = r.post(ctx, req, req.Thread.Channel, "posting approval message", renderings); err != nil {
			return nil, err
		}
		if ts == "" {
			return nil, fmt.Errorf("posting approval message: slack refused every rendering")
		}
	}
	var link string
	err = r.read(ctx, func(ctx context.Context) error {
		var err error
		link, err = r.api.GetPermalinkContext(ctx, &slack.PermalinkParameters{Channel: req.Thread.Channel, Ts: ts})
		return err
	})
	if err != nil {
		r.log.Warn("no permalink for approval message", zap.String("request_id", req.ID), zap.Error(err))
	}
	q, err := r.store.Update(req.ID, nil, func(q *actions.Request) error {
		q.Thread.TS, q.Thread.Permalink = ts, link
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recording the approval message: %w", err)
	}
	return q, nil
}

func (r *Reporter) editCard(ctx context.Context, req *actions.Request) error {
	text, blocks := r.render(req)
	err := r.edit(ctx, req, req.Thread.Channel, req.Thread.TS, "editing approval message", cardRenderings(text, blocks))
	if class, code := classify(err); class == errGone {
		r.log.Warn("approval message is gone; not editing it", zap.String("request_id", req.ID), zap.String("slack_error", code))
		return nil
	}
	return err
}

// The thread's status message. While the job runs it shows the job's
// latest progress, behind an hourglass (statusPrefix), edited in place.
// It was posted when the job first reported progress, so it sits above
// the replies that came after; when the request ends it is edited one last
// time to a short, past-tense line with the outcome's icon and the time
// ("✅ Succeeded at 04:03:25 UTC; the last steps follow."), which reads
// in order where it stands: the steps below it, ending with the outcome
// reply, say how it ended. (Deleting it instead would leave the outcome as
// the last reply, but chat.delete is one more scope and one more call
// whose answer can be lost; the card shows the final state either way.)
// A request that ended before its status was posted gets it posted in its
// finished form, at the same place (the first progress event), so that
// the thread reads the same however late delivery caught up.
//
// The reporter finds its status message again after a crash or a lost
// answer by the message's metadata (postMeta kind "status"), not by its
// text, which changes; the hourglass prefix is the fallback for a
// message Slack kept without metadata.
const statusPrefix = ":hourglass_flowing_sand: "

// endedAt is when an ended request's job ended, as far as evs tell: the
// time of their last progress event (the runner's "Finished" one, written
// with the end).
func endedAt(evs []actions.Event) time.Time {
	var at time.Time
	for _, e := range evs {
		if e.Kind == actions.Progress {
			at = e.At
		}
	}
	return at
}

// status posts or edits the thread's one status message.
func (r *Reporter) status(ctx context.Context, req *actions.Request, cur *actions.Cursor, text string) error {
	text = statusPrefix + text
	after := ""
	if cur.StatusClosed {
		// An earlier run's, finished: this run gets its own, below the
		// last reply, where a post of it whose answer was lost is looked
		// for. Until that post is recorded the cursor still says closed,
		// so a lost answer brings the next round back here.
		after = cur.LastTS
		cur.StatusTS, cur.StatusClosed = "", false
	}
	if err := r.adoptStatus(ctx, req, cur, after); err != nil {
		return err
	}
	if cur.StatusTS != "" {
		gone, err := r.editStatus(ctx, req, cur, text)
		if !gone {
			return err
		}
		cur.StatusTS = "" // deleted: post a new one
	}
	return r.postStatus(ctx, req, cur, text)
}

// postStatus posts the thread's status message, with the metadata that
// finds it again.
func (r *Reporter) postStatus(ctx context.Context, req *actions.Request, cur *actions.Cursor, text string) error {
	renderings := statusRenderings(text)
	for i := range renderings {
		renderings[i] = append(renderings[i], slack.MsgOptionTS(req.Thread.TS), postMeta(req.ID, "status", 0))
	}
	ts, err := r.post(ctx, req, req.Thread.Channel, "posting status message", renderings)
	cur.StatusTS = ts
	if ts != "" {
		r.sentStatus(req.ID, text)
	}
	return err
}

// closeStatus gives an ended request's status message its finished form
// (at is when the request ended), posting it where no status message was
// posted yet: the thread then reads the same however late the reporter
// caught up with the job.
func (r *Reporter) closeStatus(ctx context.Context, req *actions.Request, cur *actions.Cursor, at time.Time) error {
	text := statusFinished(req.State, at)
	if cur.StatusClosed {
		return nil // closed by an earlier progress event of this end
	}
	if err := r.adoptStatus(ctx, req, cur, ""); err != nil {
		return err
	}
	if cur.StatusTS != "" {
		gone, err := r.editStatus(ctx, req, cur, text)
		if !gone {
			if err == nil {
				cur.StatusClosed = true
			}
			return err
		}
		cur.StatusTS = ""
	}
	err := r.postStatus(ctx, req, cur, text)
	if err == nil {
		cur.StatusClosed = true
	}
	return err
}

// adoptStatus looks for a status message whose post's answer was lost
// (the request is unsure), after the reply at ts after ("" from the
// thread's start), and records its ts.
func (r *Reporter) adoptStatus(ctx context.Context, req *actions.Request, cur *actions.Cursor, after string) error {
	if cur.StatusTS != "" || !r.isUnsure(req.ID) {
		return nil
	}
	ts, err := r.findStatus(ctx, req, after)
	if err != nil {
		return err
	}
	r.setUnsure(req.ID, false)
	cur.StatusTS = ts
	return nil
}

// editStatus edits the status message to text, unless it was last sent
// that text (a wasted call against the rate limit); gone reports that the
// message no longer exists.
func (r *Reporter) editStatus(ctx context.Context, req *actions.Request, cur *actions.Cursor, text string) (gone bool, err error) {
	r.mu.Lock()
	same := false
	if st := r.reqs[req.ID]; st != nil {
		same = st.statusText == text
	}
	r.mu.Unlock()
	if same {
		return false, nil
	}
	err = r.edit(ctx, req, req.Thread.Channel, cur.StatusTS, "editing status message", statusRenderings(text))
	if class, _ := classify(err); class == errGone {
		return true, nil
	}
	if err == nil {
		r.sentStatus(req.ID, text)
	}
	return false, err
}

func statusRenderings(text string) [][]slack.MsgOption {
	return [][]slack.MsgOption{{slack.MsgOptionText(text, false)}, {slack.MsgOptionText(fit(text, maxPlain), false)}}
}

// sentStatus records the text the status message of id now shows.
func (r *Reporter) sentStatus(id, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st := r.reqs[id]; st != nil {
		st.statusText = text
	}
}

// reply posts event e in the thread, unless a post whose answer was lost
// already put it there.
func (r *Reporter) reply(ctx context.Context, req *actions.Request, cur *actions.Cursor, e actions.Event) error {
	if r.isUnsure(req.ID) {
		ts, err := r.findReply(ctx, req, *cur, e)
		if err != nil {
			return err
		}
		r.setUnsure(req.ID, false)
		if ts != "" {
			cur.LastTS = ts
			return nil
		}
	}
	ts, err := r.post(ctx, req, req.Thread.Channel, "posting thread reply", [][]slack.MsgOption{
		{slack.MsgOptionText(e.Text, false), slack.MsgOptionTS(req.Thread.TS), postMeta(req.ID, "message", e.Seq)},
		{slack.MsgOptionText(fit(e.Text, maxPlain), false), slack.MsgOptionTS(req.Thread.TS)},
	})
	if ts != "" {
		cur.LastTS = ts
	}
	return err
}

// ---- looking before posting again ----

// lookFailed decides what a failed read before a repost means: Slack's
// refusal (say, a missing history scope) is logged and the post goes
// ahead; no answer is returned, to try again later.
func (r *Reporter) lookFailed(req *actions.Request, what string, err error) error {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		r.log.Warn("cannot read "+what+" to avoid a second post; posting", zap.String("request_id", req.ID), zap.Error(err))
		return nil
	}
	return fmt.Errorf("reading %s to avoid a second post: %w", what, err)
}

// postedCard finds the card of req that an earlier post put in the channel
// without its ts being recorded (a crash or a lost answer), so that the
// card is not posted twice; "" when there is none or nothing is unsure.
func (r *Reporter) postedCard(ctx context.Context, req *actions.Request) (string, error) {
	if !r.isUnsure(req.ID) {
		return "", nil
	}
	// The newest cardLookback top-level messages, a page at a time (Slack
	// answers fewer than asked, 15 to some apps): a card lost this way was
	// posted moments before, but a busy channel may have had others since.
	cursor, seen := "", 0
	for range maxPages {
		var h *slack.GetConversationHistoryResponse
		err := r.read(ctx, func(ctx context.Context) error {
			var err error
			h, err = r.api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{
				ChannelID: req.Thread.Channel, Limit: cardLookback - seen, Cursor: cursor, IncludeAllMetadata: true})
			return err
		})
		if err != nil {
			return "", r.lookFailed(req, "the channel", err)
		}
		for _, m := range h.Messages {
			if m.BotID != "" && (metaIs(m, req.ID, "card", 0) || strings.Contains(m.Text, " "+req.ID+" by ")) {
				r.setUnsure(req.ID, false)
				r.log.Info("card was posted before; adopting it", zap.String("request_id", req.ID), zap.String("ts", m.Timestamp))
				return m.Timestamp, nil
			}
		}
		seen += len(h.Messages)
		if !h.HasMore || h.ResponseMetaData.NextCursor == "" || seen >= cardLookback {
			break
		}
		cursor = h.ResponseMetaData.NextCursor
	}
	r.setUnsure(req.ID, false)
	return "", nil
}

// cardLookback is how many of a channel's newest top-level messages are
// read for a card whose post's answer was lost.
const cardLookback = 200

// maxPages bounds the pages read for a card, or of a thread for a reply,
// whose post's answer was lost (a thread is read after the last reply
// recorded, so a page or two in practice). Slack may answer fewer messages
// than asked, even none, with more to come.
const maxPages = 20

// replies reads req's thread after oldest, following Slack's pages (at
// most maxPages of them).
func (r *Reporter) replies(ctx context.Context, req *actions.Request, oldest string) ([]slack.Message, error) {
	var all []slack.Message
	cursor := ""
	for range maxPages {
		var msgs []slack.Message
		var more bool
		err := r.read(ctx, func(ctx context.Context) error {
			var err error
			msgs, more, cursor, err = r.api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
				ChannelID: req.Thread.Channel, Timestamp: req.Thread.TS, Oldest: oldest, Limit: 200, Cursor: cursor, IncludeAllMetadata: true})
			return err
		})
		if err != nil {
			return nil, err
		}
		all = append(all, msgs...)
		if !more || cursor == "" {
			return all, nil
		}
	}
	r.log.Warn("thread longer than the pages read; looking at the first ones only", zap.String("request_id", req.ID), zap.Int("messages", len(all)))
	return all, nil
}

// findReply looks in the thread, after the last reply recorded, for e.
func (r *Reporter) findReply(ctx context.Context, req *actions.Request, cur actions.Cursor, e actions.Event) (string, error) {
	oldest := cur.LastTS
	if oldest == "" {
		oldest = req.Thread.TS
	}
	msgs, err := r.replies(ctx, req, oldest)
	if err != nil {
		return "", r.lookFailed(req, "the thread", err)
	}
	for _, m := range msgs {
		if m.Timestamp == req.Thread.TS || m.Timestamp == cur.StatusTS || m.BotID == "" {
			continue
		}
		if metaIs(m, req.ID, "message", e.Seq) || (m.Metadata.EventType == "" && sameText(m.Text, e.Text)) {
			r.log.Info("event was posted before; not posting it again", zap.String("request_id", req.ID), zap.Uint64("seq", e.Seq), zap.String("ts", m.Timestamp))
			return m.Timestamp, nil
		}
	}
	return "", nil
}

// findStatus looks in the thread, after the reply at ts after (the
// thread's start when empty), for a status message whose ts was never
// recorded: the latest, since a request run again has an earlier run's
// above.
func (r *Reporter) findStatus(ctx context.Context, req *actions.Request, after string) (string, error) {
	if after == "" {
		after = req.Thread.TS
	}
	msgs, err := r.replies(ctx, req, after)
	if err != nil {
		return "", r.lookFailed(req, "the thread", err)
	}
	found := ""
	for _, m := range msgs {
		if m.Timestamp != req.Thread.TS && m.Timestamp != after && m.BotID != "" &&
			(metaIs(m, req.ID, "status", 0) || (m.Metadata.EventType == "" && strings.HasPrefix(m.Text, statusPrefix))) {
			found = m.Timestamp
		}
	}
	if found != "" {
		r.log.Info("status message was posted before; adopting it", zap.String("request_id", req.ID), zap.String("ts", found))
	}
	return found, nil
}

// ---- the requester ----

// tellRequester sends req's requester a notice once (told, a flag of cur,
// records it): ephemeral in the channel they asked from, or a direct
// message when that channel cannot be used.
func (r *Reporter) tellRequester(ctx context.Context, req *actions.Request, cur *actions.Cursor, told *bool, text string) error {
	if err := r.tell(ctx, req, text); err != nil {
		return err
	}
	*told = true
	if err := r.store.MarkDelivered(req.ID, *cur); err != nil {
		return fmt.Errorf("recording a notice to the requester: %w", err)
	}
	return nil
}

func (r *Reporter) tell(ctx context.Context, req *actions.Request, text string) error {
	log := r.log.With(zap.String("request_id", req.ID), zap.String("user", req.Requester))
	if req.Origin != "" {
		err := r.call(ctx, req.Origin, func(ctx context.Context) error {
			_, err := r.api.PostEphemeralContext(ctx, req.Origin, req.Requester, slack.MsgOptionText(text, false))
			return err
		})
		if err == nil {
			return nil
		}
		if class, _ := classify(err); class == errPassing || class == errAuth {
			return fmt.Errorf("telling the requester: %w", err)
		}
		log.Warn("cannot tell the requester where they asked; sending a direct message", zap.String("channel", req.Origin), zap.Error(err))
	}
	err := r.call(ctx, req.Requester, func(ctx context.Context) error {
		_, _, err := r.api.PostMessageContext(ctx, req.Requester, slack.MsgOptionText(text, false))
		return err
	})
	if err == nil {
		return nil
	}
	if class, _ := classify(err); class == errPassing || class == errAuth {
		return fmt.Errorf("telling the requester: %w", err)
	}
	log.Error("cannot tell the requester at all", zap.Error(err))
	return nil
}

// ---- calls ----

// call makes one Slack post in channel: at least MinInterval after the
// previous one there, with a deadline, waiting out 429s.
func (r *Reporter) call(ctx context.Context, channel string, f func(context.Context) error) error {
	for {
		r.mu.Lock()
		wait := r.minInterval - r.now().Sub(r.lastCall[channel])
		r.mu.Unlock()
		if wait > 0 {
			if err := sleep(ctx, wait); err != nil {
				return err
			}
		}
		err := r.read(ctx, f)
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
		if err == nil {
			r.worked(channel)
		}
		return err
	}
}

// read makes one Slack call with a deadline.
func (r *Reporter) read(ctx context.Context, f func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, r.callTimeout)
	defer cancel()
	err := f(cctx)
	if err != nil && ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer from slack within %v: %w", r.callTimeout, err)
	}
	return err
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
