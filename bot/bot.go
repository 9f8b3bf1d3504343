// Package bot is osio-bot's Slack side: Socket Mode, the declarative
// command table and its help, approval cards, authorization of clicks, and
// the thread reporter. The work itself is in package actions.
package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/store"
)

// Slack is every Web API call the bot makes.
type Slack interface {
	Poster
	GroupLister
	PostEphemeralContext(ctx context.Context, channelID, userID string, options ...slack.MsgOption) (string, error)
}

// Store is what the bot needs from the durable store.
type Store interface {
	actions.Store
	OutboxStore
	Create(r *actions.Request, envelopeID string, events ...actions.Event) (actions.Created, error)
	Events(id string) ([]actions.Event, error)
	ClaimEnvelope(envelopeID string) (bool, error)
	PruneEnvelopes(before time.Time) (int, error)
}

// Runner starts approved requests' jobs.
type Runner interface{ Run(id string) }

// Kind is one request kind as the bot presents it.
type Kind struct {
	Describe Describer
	// Plan computes the approval card's plan after the ack.
	Plan func(ctx context.Context, r *actions.Request) []string
	// AutoApprove starts requests of this kind without an approver.
	AutoApprove bool
	// Options, when set, replace the single Approve button: the
	// approver's click chooses one and approves in one step.
	Options func(r *actions.Request) []Option
	// RefuseRetry, when set, is asked before an approver's retry of a
	// failed request (e.g. Resend) is recorded; a non-empty reason refuses
	// it, is told to the approver, and nothing changes. s reads other
	// requests.
	RefuseRetry func(s actions.Store, r *actions.Request) (string, error)
}

// Option is one way an approver can approve a request.
type Option struct {
	Value, Label string
	Recommended  bool
}

// Settings are the bot's knobs from config.
type Settings struct {
	ApprovalsChannel string
	ApproverGroups   []string
	Expiry           time.Duration
	SweepInterval    time.Duration
	// CheckTimeout bounds the AWS checks done before the ack.
	CheckTimeout time.Duration
}

// Deps is everything the bot is built from; main wires it.
type Deps struct {
	Settings  Settings
	API       Slack
	Socket    *socketmode.Client
	Store     Store
	Runner    Runner
	Reporter  *Reporter
	Approvers *Approvers
	Kinds     map[string]Kind
	Log       *zap.Logger
	Now       func() time.Time
	// AckObserved, if set, is told how long each slash command took from
	// envelope received to ack sent.
	AckObserved func(command string, d time.Duration)
}

// Bot handles Socket Mode events.
type Bot struct {
	Deps
	commands []Command
	wg       sync.WaitGroup
	conn     connState
}

// New builds the bot. Commands are added with AddCommand.
func New(d Deps) *Bot {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Settings.CheckTimeout == 0 {
		d.Settings.CheckTimeout = 2 * time.Second
	}
	return &Bot{Deps: d}
}

// AddCommand registers a slash command.
func (b *Bot) AddCommand(c Command) { b.commands = append(b.commands, c) }

// RenderCard renders a request's approval card (for the reporter).
func RenderCard(kinds map[string]Kind, groups []string) func(*actions.Request) (string, []slack.Block) {
	return cardRenderer{kinds: kinds, groups: groups}.render
}

// Run serves Socket Mode until ctx ends, then drains in-flight handlers.
// A fatal Socket Mode error (a revoked or invalid app token: slack-go
// stops reconnecting) ends Run too: it stops taking events, drains the
// handlers and background loops, and returns the error, so that the
// process can stop its jobs and exit for a restart instead of staying up
// deaf.
func (b *Bot) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b.background(ctx, func(ctx context.Context) { b.Reporter.Run(ctx) })
	b.background(ctx, b.sweep)
	b.background(ctx, b.replan)
	b.Reporter.Notify("")

	errc := make(chan error, 1)
	go func() { errc <- b.Socket.RunContext(ctx) }()
	for {
		select {
		case <-ctx.Done():
			b.wg.Wait()
			return nil
		case err := <-errc:
			if ctx.Err() != nil {
				b.wg.Wait()
				return nil
			}
			err = fmt.Errorf("socket mode stopped: %w", err)
			b.conn.die(err)
			b.Log.Error("fatal Slack Socket Mode error: no more events will arrive; stopping", zap.Error(err))
			cancel()
			if !waitTimeout(&b.wg, 10*time.Second) {
				// A handler stuck (e.g. on an ack nobody will send) must
				// not keep the process up: it exits and Slack redelivers.
				b.Log.Warn("handlers still running 10s after the fatal error; stopping without them")
			}
			return err
		case evt := <-b.Socket.Events:
			if ctx.Err() != nil {
				// Shutting down: leave the envelope unacked so that Slack
				// redelivers it to the next connection.
				continue
			}
			b.handle(ctx, evt)
		}
	}
}

func (b *Bot) background(ctx context.Context, f func(context.Context)) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f(ctx)
	}()
}

func (b *Bot) handle(ctx context.Context, evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeConnecting:
		b.conn.set(false)
		b.Log.Info("connecting to Slack")
	case socketmode.EventTypeConnected:
		b.conn.set(true)
		b.Log.Info("connected to Slack")
	case socketmode.EventTypeHello:
		b.conn.set(true)
		b.Log.Debug("slack hello")
	case socketmode.EventTypeDisconnect:
		b.conn.set(false)
		b.Log.Info("slack asked to reconnect")
	case socketmode.EventTypeConnectionError:
		b.conn.set(false)
		b.Log.Warn("slack connection error", zap.Any("detail", evt.Data))
	case socketmode.EventTypeInvalidAuth:
		b.conn.set(false)
		b.Log.Error("slack refused the app token (invalid_auth)")
	case socketmode.EventTypeSlashCommand:
		start := time.Now()
		b.background(ctx, func(ctx context.Context) { b.onSlash(ctx, evt, start) })
	case socketmode.EventTypeInteractive:
		b.background(ctx, func(ctx context.Context) { b.onInteractive(ctx, evt) })
	default:
		if evt.Request != nil {
			b.ack(evt.Request, nil)
		}
	}
}

func (b *Bot) ack(req *socketmode.Request, payload any) {
	var err error
	if payload == nil {
		err = b.Socket.Ack(*req)
	} else {
		err = b.Socket.Ack(*req, payload)
	}
	if err != nil {
		b.Log.Warn("ack failed", zap.String("envelope_id", req.EnvelopeID), zap.Error(err))
	}
}

func (b *Bot) onSlash(ctx context.Context, evt socketmode.Event, start time.Time) {
	cmd, ok := evt.Data.(slack.SlashCommand)
	if !ok || evt.Request == nil {
		return
	}
	log := b.Log.With(zap.String("command", cmd.Command), zap.String("user", cmd.UserID), zap.String("envelope_id", evt.Request.EnvelopeID))
	var reply Reply
	if c, found := lookup(b.commands, cmd.Command); found {
		reply = c.Dispatch(ctx, Invocation{Cmd: cmd, Args: strings.Fields(cmd.Text), EnvelopeID: evt.Request.EnvelopeID})
	} else {
		reply = Reply{Text: fmt.Sprintf("I do not know `%s`. I know: %s.", cmd.Command, b.commandNames())}
	}
	payload := map[string]any{"response_type": "ephemeral", "text": reply.Text}
	if len(reply.Blocks) > 0 {
		payload["blocks"] = reply.Blocks
	}
	b.ack(evt.Request, payload)
	if b.AckObserved != nil {
		b.AckObserved(cmd.Command, time.Since(start))
	}
	log.Info("slash command answered", zap.Duration("ack_latency", time.Since(start)))
	if reply.After != nil {
		reply.After(ctx)
	}
}

func (b *Bot) commandNames() string {
	var out []string
	for _, c := range b.commands {
		out = append(out, "`"+c.Name+"`")
	}
	return strings.Join(out, ", ")
}

// NewRequest stores a new pending request of kind for the invocation, or
// returns the requester's message explaining why not. It is shared by
// every request-making command.
func (b *Bot) NewRequest(inv Invocation, kind string, args any, locks []string, what string) Reply {
	data, err := json.Marshal(args)
	if err != nil {
		return b.failure(inv, "encoding the request", err)
	}
	now := b.Now().UTC()
	res, err := b.Store.Create(&actions.Request{
		Kind: kind, Requester: inv.Cmd.UserID, Origin: inv.Cmd.ChannelID, Args: data,
		Thread: actions.Thread{Channel: b.Settings.ApprovalsChannel}, ExpiresAt: now.Add(b.Settings.Expiry), Locks: locks,
	}, inv.EnvelopeID)
	if err != nil {
		return b.failure(inv, "saving the request", err)
	}
	if len(res.LockedBy) > 0 {
		var lines []string
		for lock, holder := range res.LockedBy {
			lines = append(lines, fmt.Sprintf("• `%s` is held by %s (%s, requested by <@%s>): %s",
				strings.TrimPrefix(lock, kind+":"), holder.ID, holder.State, holder.Requester, threadLink(holder)))
		}
		return Reply{Text: ":no_entry: Already in progress, so nothing new was requested:\n" + strings.Join(lines, "\n")}
	}
	r := res.Request
	text := fmt.Sprintf(":inbox_tray: Request *%s* created: %s. It waits for approval in <#%s>; progress and the follow-up go to its thread.", r.ID, what, b.Settings.ApprovalsChannel)
	if res.Duplicate {
		text = fmt.Sprintf(":inbox_tray: Request *%s* (already received): %s.", r.ID, what)
	}
	return Reply{Text: text, Blocks: cancelBlocks(text, r.ID), After: func(ctx context.Context) { b.plan(ctx, r.ID) }}
}

func (b *Bot) failure(inv Invocation, doing string, err error) Reply {
	b.Log.Error("command failed", zap.String("doing", doing), zap.String("user", inv.Cmd.UserID), zap.Error(err))
	return Reply{Text: fmt.Sprintf(":boom: Something broke while %s, so nothing was requested. The on-call can find it in the bot's logs (envelope %s).", doing, inv.EnvelopeID)}
}

func threadLink(r *actions.Request) string {
	if r.Thread.Permalink != "" {
		return fmt.Sprintf("<%s|thread>", r.Thread.Permalink)
	}
	return "(thread not posted yet)"
}

// plan fills the card's plan and posts the card.
func (b *Bot) plan(ctx context.Context, id string) {
	r, err := b.Store.Get(id)
	if err != nil || r.State != actions.Pending {
		return
	}
	k := b.Kinds[r.Kind]
	waiting := " Waiting for an approver."
	if k.AutoApprove {
		waiting = ""
	}
	if !r.Planned {
		var lines []string
		if k.Plan != nil {
			lines = k.Plan(ctx, r)
		}
		if ctx.Err() != nil {
			return
		}
		_, err = b.Store.Update(id, []actions.State{actions.Pending}, func(q *actions.Request) error {
			q.Plan, q.Planned = lines, true
			return nil
		}, actions.Event{Kind: actions.Card}, actions.Event{Kind: actions.Message, Text: fmt.Sprintf("Requested by <@%s> in <#%s>.%s", r.Requester, r.Origin, waiting)})
		if _, conflict := store.IsConflict(err); conflict {
			return
		}
		if err != nil {
			b.Log.Error("saving plan", zap.String("request_id", id), zap.Error(err))
			return
		}
		b.Reporter.Notify(id)
	}
	if k.AutoApprove {
		now := b.Now().UTC()
		_, err := b.Store.Transition(id, []actions.State{actions.Pending}, actions.Approved, func(q *actions.Request) {
			q.Decision = &actions.Decision{Action: "approved", At: now}
		}, actions.Event{Kind: actions.Card}, actions.Event{Kind: actions.Message, Text: "Approved automatically: this kind of request needs no approver (config)."})
		if _, conflict := store.IsConflict(err); conflict {
			return
		}
		if err != nil {
			b.Log.Error("auto-approving", zap.String("request_id", id), zap.Error(err))
			return
		}
		b.Reporter.Notify(id)
		b.Runner.Run(id)
	}
}

// replan plans requests a crash left unplanned, and approves those of
// kinds that need no approver.
func (b *Bot) replan(ctx context.Context) {
	todo, err := b.Store.List(func(r *actions.Request) bool {
		return r.State == actions.Pending && (!r.Planned || b.Kinds[r.Kind].AutoApprove)
	})
	if err != nil {
		b.Log.Error("listing unplanned requests", zap.Error(err))
		return
	}
	for _, r := range todo {
		b.plan(ctx, r.ID)
	}
}

// sweep expires pending requests and forgets old envelope ids.
func (b *Bot) sweep(ctx context.Context) {
	t := time.NewTicker(b.Settings.SweepInterval)
	defer t.Stop()
	for {
		ids, err := actions.ExpireDue(b.Store, b.Now())
		if err != nil {
			b.Log.Error("expiring requests", zap.Error(err))
		}
		for _, id := range ids {
			b.Log.Info("request expired", zap.String("request_id", id))
			b.Reporter.Notify(id)
		}
		if _, err := b.Store.PruneEnvelopes(b.Now().Add(-24 * time.Hour)); err != nil {
			b.Log.Error("pruning envelopes", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (b *Bot) onInteractive(ctx context.Context, evt socketmode.Event) {
	defer b.ack(evt.Request, nil)
	cb, ok := evt.Data.(slack.InteractionCallback)
	if !ok || cb.Type != slack.InteractionTypeBlockActions || len(cb.ActionCallback.BlockActions) == 0 {
		return
	}
	first, err := b.Store.ClaimEnvelope(evt.Request.EnvelopeID)
	if err != nil {
		b.Log.Error("claiming envelope", zap.Error(err))
		return
	}
	if !first {
		b.Log.Info("duplicate envelope ignored", zap.String("envelope_id", evt.Request.EnvelopeID))
		return
	}
	act := cb.ActionCallback.BlockActions[0]
	user, channel := cb.User.ID, cb.Channel.ID
	if channel == "" {
		channel = cb.Container.ChannelID
	}
	id, choice, _ := strings.Cut(act.Value, "/")
	log := b.Log.With(zap.String("request_id", id), zap.String("user", user), zap.String("action", act.ActionID), zap.String("choice", choice))
	req, err := b.Store.Get(id)
	if err != nil {
		b.tell(ctx, channel, user, fmt.Sprintf("I cannot find request `%s`.", clip(id, 40)))
		if !errors.Is(err, actions.ErrNotFound) {
			log.Error("reading request", zap.Error(err))
		}
		return
	}
	switch act.ActionID {
	case ActionApprove, ActionDeny, ActionCancel:
		b.decide(ctx, log, channel, user, act.ActionID, choice, req)
	case ActionRetry:
		b.retry(ctx, log, channel, user, req)
	default:
		log.Warn("unknown action")
	}
}

// tell sends an ephemeral message to user; it is not part of the audit.
func (b *Bot) tell(ctx context.Context, channel, user, text string) {
	if _, err := b.API.PostEphemeralContext(ctx, channel, user, slack.MsgOptionText(text, false)); err != nil {
		b.Log.Warn("ephemeral message failed", zap.String("user", user), zap.Error(err))
	}
}

var decisions = map[string]struct {
	to   actions.State
	word string
}{
	ActionApprove: {actions.Approved, "approved"},
	ActionDeny:    {actions.Denied, "denied"},
	ActionCancel:  {actions.Cancelled, "cancelled"},
}

func (b *Bot) decide(ctx context.Context, log *zap.Logger, channel, user, action, choice string, req *actions.Request) {
	verdict, err := b.Approvers.Authorize(ctx, user, action, req)
	if err != nil {
		log.Error("authorizing", zap.Error(err))
		b.tell(ctx, channel, user, fmt.Sprintf("I could not check who may %s right now, so %s is unchanged. Try again in a minute.", action, req.ID))
		return
	}
	if !verdict.Allowed {
		log.Info("click refused", zap.String("reason", verdict.Reason))
		b.tell(ctx, channel, user, ":no_entry: "+verdict.Reason)
		return
	}
	now := b.Now().UTC()
	if req.State == actions.Pending && !now.Before(req.ExpiresAt) {
		if _, err := actions.ExpireDue(b.Store, now); err != nil {
			log.Error("expiring", zap.Error(err))
		}
		b.Reporter.Notify(req.ID)
		b.tell(ctx, channel, user, fmt.Sprintf("%s expired at %s; nothing ran. Ask for a new request.", req.ID, req.ExpiresAt.Format(time.RFC3339)))
		return
	}
	d := decisions[action]
	note := ""
	if action == ActionApprove {
		opt, ok := b.option(req, choice)
		if !ok {
			b.tell(ctx, channel, user, fmt.Sprintf("`%s` is not an option of %s; it is unchanged.", clip(choice, 40), req.ID))
			return
		}
		choice = opt.Value
		if opt.Label != "" {
			note = fmt.Sprintf(" Method: *%s*.", opt.Label)
		}
	} else {
		choice = ""
	}
	_, err = b.Store.Transition(req.ID, []actions.State{actions.Pending}, d.to, func(q *actions.Request) {
		q.Decision = &actions.Decision{Action: d.word, By: user, At: now}
		q.Choice = choice
	}, actions.Event{Kind: actions.Card}, actions.Event{Kind: actions.Message, Text: fmt.Sprintf("%s by <@%s> at %s.%s", decisionWord(d.word), user, now.Format("2006-01-02 15:04:05 UTC"), note)})
	if c, conflict := store.IsConflict(err); conflict {
		by := ""
		if c.Current.Decision != nil && c.Current.Decision.By != "" {
			by = fmt.Sprintf(" (by <@%s>)", c.Current.Decision.By)
		}
		b.tell(ctx, channel, user, fmt.Sprintf("%s is already %s%s; nothing changed.", req.ID, c.Current.State, by))
		return
	}
	if err != nil {
		log.Error("recording decision", zap.Error(err))
		b.tell(ctx, channel, user, fmt.Sprintf("I could not record your decision on %s; it is unchanged. Try again.", req.ID))
		return
	}
	log.Info("request decided", zap.String("state", string(d.to)))
	b.Reporter.Notify(req.ID)
	if d.to == actions.Approved {
		b.Runner.Run(req.ID)
	}
}

// option finds the approve option choice of req ("" for kinds without
// options).
func (b *Bot) option(req *actions.Request, choice string) (Option, bool) {
	k := b.Kinds[req.Kind]
	if k.Options == nil {
		return Option{}, choice == ""
	}
	for _, o := range k.Options(req) {
		if o.Value == choice {
			return o, true
		}
	}
	return Option{}, false
}

// retry resumes a failed request whose job marked it retryable (Resend).
func (b *Bot) retry(ctx context.Context, log *zap.Logger, channel, user string, req *actions.Request) {
	label := req.Retry
	if label == "" {
		label = "retry"
	}
	verdict, err := b.Approvers.Authorize(ctx, user, strings.ToLower(label), req)
	if err != nil {
		log.Error("authorizing", zap.Error(err))
		b.tell(ctx, channel, user, fmt.Sprintf("I could not check who may %s right now; %s is unchanged.", strings.ToLower(label), req.ID))
		return
	}
	if !verdict.Allowed {
		b.tell(ctx, channel, user, ":no_entry: "+verdict.Reason)
		return
	}
	if k := b.Kinds[req.Kind]; k.RefuseRetry != nil && req.State == actions.Failed && req.Retry != "" {
		reason, err := k.RefuseRetry(b.Store, req)
		if err != nil {
			log.Error("checking retry", zap.Error(err))
			b.tell(ctx, channel, user, fmt.Sprintf("I could not check whether %s can be retried (%s) right now; it is unchanged. Try again in a minute.", req.ID, label))
			return
		}
		if reason != "" {
			log.Info("retry refused", zap.String("reason", reason))
			b.tell(ctx, channel, user, ":no_entry: "+reason)
			return
		}
	}
	_, err = b.Store.Update(req.ID, []actions.State{actions.Failed}, func(q *actions.Request) error {
		if q.Retry == "" {
			return &actions.StateConflict{ID: q.ID, Current: q}
		}
		q.State, q.Retry, q.Error = actions.Approved, "", ""
		return nil
	}, actions.Event{Kind: actions.Card}, actions.Event{Kind: actions.Message, Text: fmt.Sprintf("%s requested by <@%s>.", label, user)})
	if c, conflict := store.IsConflict(err); conflict {
		b.tell(ctx, channel, user, fmt.Sprintf("%s is %s; there is nothing to %s.", req.ID, c.Current.State, strings.ToLower(label)))
		return
	}
	var lc *actions.LockConflict
	if errors.As(err, &lc) {
		var lines []string
		for lock, holder := range lc.LockedBy {
			lines = append(lines, fmt.Sprintf("• `%s` is held by %s (%s, requested by <@%s>): %s", lock, holder.ID, holder.State, holder.Requester, threadLink(holder)))
		}
		sort.Strings(lines)
		log.Info("retry refused: locks held", zap.Error(err))
		b.tell(ctx, channel, user, fmt.Sprintf(":no_entry: I cannot %s %s: a newer request holds what it works on, so %s is unchanged.\n%s", strings.ToLower(label), req.ID, req.ID, strings.Join(lines, "\n")))
		return
	}
	if err != nil {
		log.Error("recording retry", zap.Error(err))
		b.tell(ctx, channel, user, fmt.Sprintf("I could not record that; %s is unchanged.", req.ID))
		return
	}
	log.Info("request retried")
	b.Reporter.Notify(req.ID)
	b.Runner.Run(req.ID)
}

// Status answers "status [REQUEST-ID]" for requests of kind.
func (b *Bot) Status(kind string, args []string) Reply {
	if len(args) > 0 {
		r, err := b.Store.Get(args[0])
		if err != nil || r.Kind != kind {
			return Reply{Text: fmt.Sprintf("No %s request `%s`. `status` without an id lists recent ones.", kind, args[0])}
		}
		evs, _ := b.Store.Events(r.ID)
		var last []string
		for _, e := range evs[max(0, len(evs)-5):] {
			last = append(last, fmt.Sprintf("> %s %s", e.At.UTC().Format("15:04:05"), clip(strings.ReplaceAll(e.Text, "\n", " "), 200)))
		}
		title, facts := r.Kind, []string(nil)
		if k, ok := b.Kinds[r.Kind]; ok {
			title, facts = k.Describe(r)
		}
		return Reply{Text: fmt.Sprintf("*%s %s*: %s\n%s\n%s\nThread: %s\n%s", title, r.ID, r.State,
			strings.Join(facts, "\n"), stateLine(r, b.Settings.ApproverGroups), threadLink(r), strings.Join(last, "\n"))}
	}
	cutoff := b.Now().Add(-7 * 24 * time.Hour)
	rs, err := b.Store.List(func(r *actions.Request) bool {
		return r.Kind == kind && (!r.State.Terminal() || r.CreatedAt.After(cutoff))
	})
	if err != nil {
		b.Log.Error("listing requests", zap.Error(err))
		return Reply{Text: "I could not read the requests right now."}
	}
	if len(rs) == 0 {
		return Reply{Text: fmt.Sprintf("No %s requests are running or were made in the last 7 days.", kind)}
	}
	var lines []string
	for _, r := range rs[:min(len(rs), 15)] {
		_, facts := "", []string(nil)
		if k, ok := b.Kinds[r.Kind]; ok {
			_, facts = k.Describe(r)
		}
		summary := ""
		if len(facts) > 0 {
			summary = " · " + facts[0]
		}
		lines = append(lines, fmt.Sprintf("• *%s* %s%s · <@%s> · %s · %s", r.ID, r.State, summary, r.Requester, r.CreatedAt.UTC().Format("Jan 2 15:04 UTC"), threadLink(r)))
	}
	return Reply{Text: fmt.Sprintf("Running and recent %s requests (newest first):\n%s", kind, strings.Join(lines, "\n"))}
}
