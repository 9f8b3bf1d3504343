// Package bot is osio-bot's Slack side: Socket Mode, the declarative
// command table and its help, approval cards, authorization of clicks, and
// the thread reporter. The work itself is in package actions.
package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/bot/mrkdwn"
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
	// Parse reads a request-making command's words (locally: no
	// network); a non-empty string is the requester's mistake. Check runs
	// after the ack, within Settings.CheckTimeout. See intake.go.
	Parse func(words []string) (Parsed, string)
	Check func(ctx context.Context, r *actions.Request) (Checked, error)
	// Unchecked begins the refusal when Check fails or runs out of time,
	// e.g. "I could not check the tables in AWS".
	Unchecked string
	// Public lets anyone in the workspace see this kind's details in
	// "status" (facts, thread, events). Otherwise only the requester and
	// the approvers do; anyone else sees a request's id, kind and state.
	Public bool
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
	// Shared says that other replicas use the same store: at start only
	// the requests they abandoned are checked again, not theirs in flight.
	Shared bool
	// AbandonAfter is how long after its last change a request still
	// being checked, or not yet told, is checked again by any replica
	// (default CheckTimeout plus three Slack call timeouts).
	AbandonAfter time.Duration
	// PlanTimeout bounds computing a card's plan (AWS calls) before the
	// card is posted.
	PlanTimeout time.Duration
	// AckTimeout bounds handing an ack to the Socket Mode connection.
	AckTimeout time.Duration
	// AckBudget is how long a command's answer may take before it is
	// acked anyway, saying it is still being worked on (default 2 s;
	// Slack's deadline is 3 s): the answer then replaces that message
	// through the command's response_url. Answers wait only on the store
	// (a DynamoDB store can stall); see Bot.onSlash.
	AckBudget time.Duration
	// MaxChecks bounds the commands checked at once (default 16). A burst
	// of commands waits for a turn within each one's CheckTimeout, instead
	// of opening a connection to AWS per command at once: hundreds of
	// those took the CPU and memory that acks need (issue 9).
	MaxChecks int
	// CheckYield is how long, at most, a check waits for the acks in
	// flight before it starts (default 1 s; negative: it does not wait):
	// see checkQueue. One command at a time never waits.
	CheckYield time.Duration
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
	// Responder posts a check's outcome to the command's response_url;
	// without it the outcome goes by chat.postEphemeral.
	Responder Responder
	// Failpoint, when set, is reached at "intake.checking", after a
	// command's ack and before its checks (see actions.FailpointEnv).
	Failpoint actions.Failpoint
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
	checkq   *checkQueue // turns to check (Settings.MaxChecks)
	refusals *workPool   // checks refused by their deadline while waiting
	clicks   *workPool   // acked clicks being handled (maxClicking)
	handlers *handlers   // the goroutines that run them, and each envelope's handler
}

// New builds the bot. Commands are added with AddCommand.
func New(d Deps) *Bot {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Settings.CheckTimeout == 0 {
		d.Settings.CheckTimeout = 4 * time.Second
	}
	if d.Settings.PlanTimeout == 0 {
		d.Settings.PlanTimeout = 20 * time.Second
	}
	if d.Settings.AckBudget <= 0 {
		d.Settings.AckBudget = 2 * time.Second
	}
	if d.Settings.AckTimeout == 0 {
		d.Settings.AckTimeout = 2 * time.Second
	}
	if d.Settings.MaxChecks <= 0 {
		d.Settings.MaxChecks = 16
	}
	if d.Settings.CheckYield == 0 {
		d.Settings.CheckYield = time.Second
	}
	b := &Bot{Deps: d, checkq: newCheckQueue(d.Settings.MaxChecks, max(d.Settings.CheckYield, 0))}
	b.handlers = newHandlers(&b.wg, handlerIdle)
	b.refusals = &workPool{max: maxRefusing, spawn: b.handlers.run}
	b.clicks = &workPool{max: maxClicking, spawn: b.handlers.run}
	return b
}

// handlerIdle is how long a goroutine of handlers waits for more work
// before it ends.
const handlerIdle = 10 * time.Second

// maxRefusing bounds the goroutines storing and telling the refusals of
// checks whose deadline passed while they waited for a turn. They come
// due together (a burst's checks share one deadline), and each requester
// is to be told at that deadline: in BenchmarkExportAck stalled, 2,000
// refusals through 64 goroutines are told 4.0-4.4 s after their acks
// (deadline 4 s; up to 4.9 s on a loaded machine).
const maxRefusing = 64

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
	started := b.Now()
	if b.Settings.Shared {
		started = started.Add(-b.abandoned())
	}
	b.background(ctx, func(ctx context.Context) { b.recheck(ctx, started, true) })
	b.Reporter.Notify("")

	errc := make(chan error, 1)
	go func() { errc <- b.Socket.RunContext(ctx) }()
	for {
		select {
		case <-ctx.Done():
			b.stopping()
			b.wg.Wait()
			return nil
		case err := <-errc:
			if ctx.Err() != nil {
				b.stopping()
				b.wg.Wait()
				return nil
			}
			err = fmt.Errorf("socket mode stopped: %w", err)
			b.conn.die(err)
			b.Log.Error("fatal Slack Socket Mode error: no more events will arrive; stopping", zap.Error(err))
			cancel()
			b.stopping()
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

// stopping drops the checks waiting for a turn (checked again at the next
// start) and lets the idle handler goroutines end, before Run waits for
// the rest.
func (b *Bot) stopping() {
	b.checkq.close()
	b.handlers.close()
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
		b.checkq.ackBegins()
		b.handlers.run(func() { b.onSlash(ctx, evt, start) })
	case socketmode.EventTypeInteractive:
		b.checkq.ackBegins()
		b.handlers.run(func() { b.onInteractive(ctx, evt) })
	default:
		if evt.Request != nil {
			b.ack(ctx, evt.Request, nil)
		}
	}
}

// ack answers an envelope. Handing the ack to the connection has a
// deadline (slack-go's Ack waits with context.TODO for room in its send
// queue); it is not cut short by shutdown, since an envelope being drained
// must still be answered.
func (b *Bot) ack(ctx context.Context, req *socketmode.Request, payload any) {
	if req == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.Settings.AckTimeout)
	defer cancel()
	if err := b.Socket.AckCtx(ctx, req.EnvelopeID, payload); err != nil {
		b.Log.Warn("ack failed", zap.String("envelope_id", req.EnvelopeID), zap.Error(err))
	}
}

// onSlash answers a slash command; handle counted it among the acks in
// flight (checkQueue.ackBegins), and onSlash ends that at its ack.
func (b *Bot) onSlash(ctx context.Context, evt socketmode.Event, start time.Time) {
	acked := sync.OnceFunc(b.checkq.ackEnds)
	defer acked()
	cmd, ok := evt.Data.(slack.SlashCommand)
	if !ok || evt.Request == nil {
		return
	}
	var reply Reply
	late := b.ackIfLate(ctx, evt.Request, cmd, start, acked)
	if c, found := lookup(b.commands, cmd.Command); found {
		reply = c.Dispatch(ctx, Invocation{Cmd: cmd, Args: strings.Fields(cmd.Text), EnvelopeID: evt.Request.EnvelopeID})
	} else {
		reply = Reply{Text: unknownCommandText(code(cmd.Command, 40), b.commandNames())}
	}
	if late.stop() {
		// Acked as still being worked on: the answer replaces that.
		b.replaceLateAck(ctx, cmd, reply)
		if reply.After != nil {
			reply.After(ctx)
		}
		return
	}
	b.ack(ctx, evt.Request, fitAck(reply))
	acked()
	if b.AckObserved != nil {
		b.AckObserved(cmd.Command, time.Since(start))
	}
	// One line, its fields given here: a child logger (Log.With) would
	// encode them into a buffer of its own, a kilobyte a command.
	b.Log.Info("slash command answered", zap.String("command", cmd.Command), zap.String("user", cmd.UserID),
		zap.String("envelope_id", evt.Request.EnvelopeID), zap.Duration("ack_latency", time.Since(start)))
	if reply.After != nil {
		reply.After(ctx)
	}
}

// lateAck acks a command whose answer is not ready within
// Settings.AckBudget (the store stalls), so that Slack does not show its
// user a timeout: a timer, not a goroutine, on the ack's path.
type lateAck struct {
	t    *time.Timer
	sent chan struct{} // closed once the late ack is handed to Slack
}

// ackIfLate arms the late ack of cmd's envelope req.
func (b *Bot) ackIfLate(ctx context.Context, req *socketmode.Request, cmd slack.SlashCommand, start time.Time, acked func()) *lateAck {
	l := &lateAck{sent: make(chan struct{})}
	l.t = time.AfterFunc(b.Settings.AckBudget, func() {
		defer close(l.sent)
		b.ack(ctx, req, fitAck(Reply{Text: stillWorkingText(cmd.Command, cmd.Text)}))
		acked()
		if b.AckObserved != nil {
			b.AckObserved(cmd.Command, time.Since(start))
		}
		b.Log.Warn("slash command acked before its answer was ready", zap.String("command", cmd.Command),
			zap.String("user", cmd.UserID), zap.String("envelope_id", req.EnvelopeID), zap.Duration("budget", b.Settings.AckBudget))
	})
	return l
}

// stop disarms the late ack; true when it went out (or is going out: stop
// waits until it is handed to Slack), so the answer must replace it. A
// Stop that finds the timer already expired means its func has started.
func (l *lateAck) stop() bool {
	if l.t.Stop() {
		return false
	}
	<-l.sent
	return true
}

// replaceLateAck puts reply in place of a command's late ack, through its
// response_url, or as a new ephemeral message when that fails.
func (b *Bot) replaceLateAck(ctx context.Context, cmd slack.SlashCommand, reply Reply) {
	// Fitted as the ack would have been (Block Kit's limits), and read
	// back into slack-go's blocks.
	p := fitAck(reply)
	var fitted slack.Blocks
	if len(p.Blocks) > 0 {
		if raw, err := json.Marshal(p.Blocks); err == nil {
			_ = json.Unmarshal(raw, &fitted) // on failure, the text alone
		}
	}
	log := b.Log.With(zap.String("user", cmd.UserID))
	if err := b.replace(ctx, log, cmd.ResponseURL, cmd.ChannelID, cmd.UserID, p.Text, fitted.BlockSet); err != nil {
		log.Error("answering a command acked late", zap.Error(err))
	}
}

func (b *Bot) commandNames() string {
	var out []string
	for _, c := range b.commands {
		out = append(out, "`"+c.Name+"`")
	}
	return strings.Join(out, ", ")
}

func (b *Bot) failure(inv Invocation, doing string, err error) Reply {
	b.Log.Error("command failed", zap.String("doing", doing), zap.String("user", inv.Cmd.UserID), zap.Error(err))
	return Reply{Text: failureText(doing, inv.EnvelopeID)}
}

// plan fills the card's plan and posts the card.
func (b *Bot) plan(ctx context.Context, id string) {
	r, err := b.Store.Get(id)
	if err != nil || r.State != actions.Pending {
		return
	}
	k := b.Kinds[r.Kind]
	if !r.Planned {
		lines := b.computePlan(ctx, k, r)
		if ctx.Err() != nil {
			return
		}
		// Planned is checked again inside the transaction: a replan after a
		// restart and the command's own plan may race, and only one may post
		// the card and "Requested by".
		_, err = b.Store.Update(id, []actions.State{actions.Pending}, func(q *actions.Request) error {
			if q.Planned {
				return &actions.StateConflict{ID: q.ID, Current: q}
			}
			q.Plan, q.Planned = lines, true
			return nil
		}, actions.Event{Kind: actions.Card}, actions.Event{Kind: actions.Message, Text: requestedText(r.Requester, r.Origin, k.AutoApprove)})
		if _, conflict := actions.IsConflict(err); conflict {
			return // decided meanwhile, or planned by the other (which approves what needs no approver)
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
		}, actions.Event{Kind: actions.Card}, actions.Event{Kind: actions.Message, Text: autoApprovedText})
		if _, conflict := actions.IsConflict(err); conflict {
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

// computePlan asks the kind for the card's plan, within PlanTimeout (the
// plan calls AWS, e.g. ListPipelines). A plan that ran out of time says so
// on the card.
func (b *Bot) computePlan(ctx context.Context, k Kind, r *actions.Request) []string {
	if k.Plan == nil {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, b.Settings.PlanTimeout)
	defer cancel()
	lines := k.Plan(pctx, r)
	if pctx.Err() != nil && ctx.Err() == nil {
		b.Log.Warn("planning ran out of time", zap.String("request_id", r.ID), zap.Duration("timeout", b.Settings.PlanTimeout))
		if len(lines) == 0 {
			lines = []string{planTimeoutText(b.Settings.PlanTimeout)}
		}
	}
	return lines
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
		b.recheck(ctx, b.Now().Add(-b.abandoned()), false)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// onInteractive handles a button click. The envelope is acked first, before anything that talks to the store
// or to Slack (authorization is usergroups.users.list, answers are
// chat.postEphemeral), so the ack never waits on a peer. Slack does not
// redeliver an acked click; a crash between the ack and the decision
// loses that click, and the card still shows its buttons, so the person
// clicks again. The envelope claim below still makes a redelivered
// envelope (an unacked one Slack sent again) act once.
//
// After the ack, at most maxClicking clicks are handled at once; the
// others wait their turn as records in a queue (workPool). When Slack's
// Web API stalls, each click waits on it for its deadline, twice
// (usergroups.users.list, chat.postEphemeral): a goroutine and a
// connection each for 1,000 clicks at once took the CPU and memory that
// the acks of the next clicks need (issue 9, BenchmarkExportAck stalled).
func (b *Bot) onInteractive(ctx context.Context, evt socketmode.Event) {
	b.ack(ctx, evt.Request, nil)
	b.checkq.ackEnds() // counted by handle
	cb, ok := evt.Data.(slack.InteractionCallback)
	if !ok || evt.Request == nil || cb.Type != slack.InteractionTypeBlockActions {
		return
	}
	// What waits for a turn is the decoded click (a few strings), not the
	// envelope: that holds the whole payload, the card's blocks included
	// (about 12 KB a click).
	c, why := decodeClick(cb)
	envelope := evt.Request.EnvelopeID
	b.clicks.push(func() { b.click(ctx, envelope, c, why) })
}

// maxClicking bounds the clicks handled at once, after their ack.
const maxClicking = 32

// click handles an acked button click c of envelope (see onInteractive);
// why is why c cannot be acted on, if it cannot.
func (b *Bot) click(ctx context.Context, envelope string, c click, why string) {
	first, err := b.Store.ClaimEnvelope(envelope)
	if err != nil {
		b.Log.Error("claiming envelope", zap.Error(err))
		return
	}
	if !first {
		b.Log.Info("duplicate envelope ignored", zap.String("envelope_id", envelope))
		return
	}
	log := b.Log.With(zap.String("request_id", c.ID), zap.String("user", c.User), zap.String("action", c.Action), zap.String("choice", c.Choice))
	if why != "" {
		log.Warn("click refused", append(c.fields(), zap.String("reason", why), zap.String("envelope_id", envelope))...)
		if c.User != "" && c.Channel != "" {
			b.tell(ctx, c.Channel, c.User, clickRefusedText(why))
		}
		return
	}
	req, err := b.Store.Get(c.ID)
	if err != nil {
		b.tell(ctx, c.Channel, c.User, noSuchRequestText(code(c.ID, 40)))
		if !errors.Is(err, actions.ErrNotFound) {
			log.Error("reading request", zap.Error(err))
		}
		return
	}
	switch c.Action {
	case ActionApprove, ActionDeny, ActionCancel:
		b.decide(ctx, log, c, req)
	case ActionRetry:
		if !b.fromItsMessage(ctx, log, c, req) {
			return
		}
		b.retry(ctx, log, c.Channel, c.User, req)
	}
}

// click is one button click, decoded from a block_actions payload.
type click struct {
	Action, ID, Choice string
	User               string
	// Channel and TS name the message the button is on (the payload's
	// container); Ephemeral is set for a message only its user sees.
	Channel, TS string
	Ephemeral   bool
	Value       string
	// ResponseURL replaces the message the button is on (the receipt,
	// for Cancel); kept in memory only, never stored or logged.
	ResponseURL string
}

func (c click) fields() []zap.Field {
	return []zap.Field{zap.String("container_channel", c.Channel), zap.String("container_ts", c.TS),
		zap.Bool("container_ephemeral", c.Ephemeral), zap.String("value", c.Value)}
}

var (
	requestIDRe = regexp.MustCompile(`^R-[0-9]{1,18}$`)
	choiceRe    = regexp.MustCompile(`^[a-z0-9_-]{1,40}$`)
)

// decodeClick reads the button click a block_actions payload carries. A
// payload that is not one well-formed click of one of the bot's buttons,
// on a message, is refused with the reason (for the log and the clicker;
// it quotes nothing from the payload).
func decodeClick(cb slack.InteractionCallback) (click, string) {
	c := click{User: cb.User.ID, Channel: cb.Container.ChannelID, TS: cb.Container.MessageTs, Ephemeral: cb.Container.IsEphemeral, ResponseURL: cb.ResponseURL}
	if cb.Type != slack.InteractionTypeBlockActions {
		return c, "it is not a button click"
	}
	if n := len(cb.ActionCallback.BlockActions); n != 1 {
		return c, fmt.Sprintf("it carries %d actions, not one button", n)
	}
	act := cb.ActionCallback.BlockActions[0]
	c.Action, c.Value = act.ActionID, act.Value
	if c.User == "" {
		return c, "it names no user"
	}
	switch act.ActionID {
	case ActionApprove, ActionDeny, ActionCancel, ActionRetry:
	default:
		return c, "it is not one of my buttons"
	}
	if cb.Container.Type != "message" || c.Channel == "" || c.TS == "" {
		return c, "it does not come from a message"
	}
	if cb.Channel.ID != "" && cb.Channel.ID != c.Channel {
		return c, "its channel and its message's channel differ"
	}
	if !c.Ephemeral && cb.Message.Timestamp != "" && cb.Message.Timestamp != c.TS {
		return c, "it names two different messages"
	}
	id, choice, hasChoice := strings.Cut(act.Value, "/")
	if !requestIDRe.MatchString(id) {
		return c, "its button names no request"
	}
	if hasChoice && (act.ActionID != ActionApprove || !choiceRe.MatchString(choice)) {
		return c, "its button names no option"
	}
	c.ID, c.Choice = id, choice
	return c, ""
}

// clickOrigin says why click c may not act on req, or "" if it may: its
// button must sit on req's card, or, for Cancel, on the requester's
// receipt (the ephemeral ack shown in the channel the command was typed
// in; Slack does not tell the bot that message's ts).
func clickOrigin(c click, req *actions.Request) string {
	if c.Action == ActionCancel {
		if c.Ephemeral && c.Channel == req.Origin {
			return ""
		}
		return notOnReceiptText(req.ID)
	}
	if !c.Ephemeral && req.Thread.TS != "" && c.Channel == req.Thread.Channel && c.TS == req.Thread.TS {
		return ""
	}
	return notOnCardText(req.ID, req.Thread.Channel)
}

// fromItsMessage refuses, says why and logs at warn a click whose button
// is not on req's own card (or receipt).
func (b *Bot) fromItsMessage(ctx context.Context, log *zap.Logger, c click, req *actions.Request) bool {
	why := clickOrigin(c, req)
	if why != "" && c.Action != ActionCancel && req.Thread.TS == "" {
		// The card may be posted and clicked before the reporter has
		// recorded its ts: wait briefly for it.
		if r := b.awaitCard(ctx, req.ID); r != nil {
			req = r
			why = clickOrigin(c, r)
		}
	}
	if why == "" {
		return true
	}
	log.Warn("click refused", append(c.fields(), zap.String("reason", "the button is not on the request's card or receipt"),
		zap.String("card_channel", req.Thread.Channel), zap.String("card_ts", req.Thread.TS), zap.String("origin", req.Origin))...)
	b.tell(ctx, c.Channel, c.User, ":no_entry: "+why)
	return false
}

// cardWait bounds how long a click waits for its card's ts to be recorded
// (the ack is sent after the click is handled, within Slack's 3 s).
const cardWait = 2 * time.Second

// awaitCard waits up to cardWait for request id's card ts to be recorded
// and returns the request then, or nil.
func (b *Bot) awaitCard(ctx context.Context, id string) *actions.Request {
	t := time.NewTicker(25 * time.Millisecond)
	defer t.Stop()
	deadline := time.After(cardWait)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-deadline:
			return nil
		case <-t.C:
		}
		r, err := b.Store.Get(id)
		if err != nil {
			return nil
		}
		if r.Thread.TS != "" {
			return r
		}
	}
}

// tell sends an ephemeral message to user; it is not part of the audit.
func (b *Bot) tell(ctx context.Context, channel, user, text string) {
	ctx, cancel := context.WithTimeout(ctx, slackCallTimeout)
	defer cancel()
	if _, err := b.API.PostEphemeralContext(ctx, channel, user, slack.MsgOptionText(text, false)); err != nil {
		b.Log.Warn("ephemeral message failed", zap.String("user", user), zap.Error(err))
	}
}

// replaceReceipt answers a click on the requester's receipt by replacing
// that receipt (through the click's response_url) with text, or, when
// that fails, by a new ephemeral message.
func (b *Bot) replaceReceipt(ctx context.Context, log *zap.Logger, c click, text string) {
	if err := b.replace(ctx, log, c.ResponseURL, c.Channel, c.User, text, nil); err != nil {
		log.Warn("ephemeral message failed", zap.String("user", c.User), zap.Error(err))
	}
}

// slackCallTimeout bounds each Slack Web API call a handler makes (the
// reporter has its own, ReporterOptions.CallTimeout).
const slackCallTimeout = 10 * time.Second

var decisions = map[string]struct {
	to   actions.State
	word string
}{
	ActionApprove: {actions.Approved, "approved"},
	ActionDeny:    {actions.Denied, "denied"},
	ActionCancel:  {actions.Cancelled, "cancelled"},
}

func (b *Bot) decide(ctx context.Context, log *zap.Logger, c click, req *actions.Request) {
	channel, user, action, choice := c.Channel, c.User, c.Action, c.Choice
	verdict, err := b.Approvers.Authorize(ctx, user, action, req)
	if err != nil {
		log.Error("authorizing", zap.Error(err))
		b.tell(ctx, channel, user, authorizeFailedText(action, req.ID))
		return
	}
	if !verdict.Allowed {
		log.Info("click refused", zap.String("reason", verdict.Reason))
		b.tell(ctx, channel, user, refusedClickText(verdict.Reason))
		return
	}
	if !b.fromItsMessage(ctx, log, c, req) {
		return
	}
	now := b.Now().UTC()
	if action == ActionCancel && req.State == actions.Received {
		b.cancelIntake(ctx, log, c, req, now)
		return
	}
	if req.State == actions.Pending && !now.Before(req.ExpiresAt) {
		if _, err := actions.ExpireDue(b.Store, now); err != nil {
			log.Error("expiring", zap.Error(err))
		}
		b.Reporter.Notify(req.ID)
		b.tell(ctx, channel, user, expiredClickText(req.ID, req.ExpiresAt))
		return
	}
	d := decisions[action]
	note := ""
	if action == ActionApprove {
		opt, ok := b.option(req, choice)
		if !ok {
			b.tell(ctx, channel, user, notAnOptionText(code(choice, 40), req.ID))
			return
		}
		choice = opt.Value
		note = opt.Label
	} else {
		choice = ""
	}
	_, err = b.Store.Transition(req.ID, []actions.State{actions.Pending}, d.to, func(q *actions.Request) {
		q.Decision = &actions.Decision{Action: d.word, By: user, At: now}
		q.Choice = choice
	}, actions.Event{Kind: actions.Card}, actions.Event{Kind: actions.Message, Text: decisionText(d.word, user, now, note)})
	if c, conflict := actions.IsConflict(err); conflict {
		b.tell(ctx, channel, user, alreadyText(c.Current, user))
		return
	}
	if err != nil {
		log.Error("recording decision", zap.Error(err))
		b.tell(ctx, channel, user, recordFailedText(req.ID))
		return
	}
	log.Info("request decided", zap.String("state", string(d.to)))
	b.Reporter.Notify(req.ID)
	if action == ActionCancel {
		b.replaceReceipt(ctx, log, c, cancelledText(req.ID))
	}
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
		b.tell(ctx, channel, user, authorizeFailedText(strings.ToLower(label), req.ID))
		return
	}
	if !verdict.Allowed {
		b.tell(ctx, channel, user, refusedClickText(verdict.Reason))
		return
	}
	if k := b.Kinds[req.Kind]; k.RefuseRetry != nil && req.State == actions.Failed && req.Retry != "" {
		reason, err := k.RefuseRetry(b.Store, req)
		if err != nil {
			log.Error("checking retry", zap.Error(err))
			b.tell(ctx, channel, user, retryCheckFailedText(req.ID, label))
			return
		}
		if reason != "" {
			log.Info("retry refused", zap.String("reason", reason))
			b.tell(ctx, channel, user, refusedClickText(reason))
			return
		}
	}
	_, err = b.Store.Update(req.ID, []actions.State{actions.Failed}, func(q *actions.Request) error {
		if q.Retry == "" {
			return &actions.StateConflict{ID: q.ID, Current: q}
		}
		q.State, q.Retry, q.Error, q.Failure = actions.Approved, "", "", ""
		return nil
	}, actions.Event{Kind: actions.Card}, actions.Event{Kind: actions.Message, Text: retryRequestedText(label, user)})
	if c, conflict := actions.IsConflict(err); conflict {
		b.tell(ctx, channel, user, nothingToRetryText(req.ID, c.Current.State, strings.ToLower(label)))
		return
	}
	var lc *actions.LockConflict
	if errors.As(err, &lc) {
		var lines []string
		for lock, holder := range lc.LockedBy {
			lines = append(lines, heldLine(lock, holder))
		}
		sort.Strings(lines)
		log.Info("retry refused: locks held", zap.Error(err))
		b.tell(ctx, channel, user, retryLockedText(strings.ToLower(label), req.ID, lines))
		return
	}
	if err != nil {
		log.Error("recording retry", zap.Error(err))
		b.tell(ctx, channel, user, recordFailedText(req.ID))
		return
	}
	log.Info("request retried")
	b.Reporter.Notify(req.ID)
	b.Runner.Run(req.ID)
}

// statusSteps are the last n of evs as the thread reads them: its replies,
// and the latest progress while the request has not ended; not the card's
// re-renderings (no text) nor progress that later steps replaced.
func statusSteps(evs []actions.Event, ended bool, n int) []actions.Event {
	var steps []actions.Event
	lastProgress := -1
	for i, e := range evs {
		if e.Kind == actions.Progress {
			lastProgress = i
		}
	}
	for i, e := range evs {
		if e.Text == "" || e.Kind == actions.Card || (e.Kind == actions.Progress && (ended || i != lastProgress)) {
			continue
		}
		steps = append(steps, e)
	}
	return steps[max(0, len(steps)-n):]
}

// Limits of a status reply, so that it fits one ack (see fitAck).
const (
	statusMaxListed = 15
	statusMaxLine   = 400
	statusMaxFact   = 160
)

// Status answers "status [REQUEST-ID]" for requests of kind. A private
// kind's details (facts, thread, events) are shown only to the requester
// and the approvers; anyone else sees the id, kind and state.
func (b *Bot) Status(ctx context.Context, kind string, inv Invocation) Reply {
	mayView := b.viewer(ctx, inv.Cmd.UserID)
	if len(inv.Args) > 0 {
		r, err := b.Store.Get(inv.Args[0])
		if err != nil || r.Kind != kind {
			return Reply{Text: noSuchStatusText(kind, code(inv.Args[0], 40))}
		}
		title, facts := r.Kind, []string(nil)
		k, ok := b.Kinds[r.Kind]
		if ok && k.Describe != nil {
			title, facts = k.Describe(r)
		}
		if r.State == actions.Received || r.State == actions.Refused {
			// Not checked (yet): its facts are only what was typed.
			facts = []string{"*Typed:* " + code(r.Input, 200)}
			if r.State == actions.Refused {
				facts = append(facts, "*Refused:* "+clip(r.Error, 600))
			}
		}
		if !mayView(k, r) {
			return Reply{Text: statusPrivateText(title, r.ID, r.State)}
		}
		evs, _ := b.Store.Events(r.ID)
		var last []string
		for _, e := range statusSteps(evs, r.State.Terminal(), 5) {
			last = append(last, fmt.Sprintf("> %s %s", e.At.UTC().Format("15:04:05"), clip(strings.ReplaceAll(e.Text, "\n", " "), 200)))
		}
		head := fmt.Sprintf("*%s %s*: %s\n", title, r.ID, r.State)
		tail := fmt.Sprintf("\n%s\nThread: %s\n%s", clip(stateLine(r, b.Settings.ApproverGroups), 600), threadLink(r), strings.Join(last, "\n"))
		return Reply{Text: head + clip(strings.Join(facts, "\n"), max(200, maxSection-mrkdwn.Len(head)-mrkdwn.Len(tail))) + tail}
	}
	cutoff := b.Now().Add(-7 * 24 * time.Hour)
	rs, err := b.Store.List(func(r *actions.Request) bool {
		// Refused commands stay out of the list (status ID shows one).
		return r.Kind == kind && r.State != actions.Refused && (!r.State.Terminal() || r.CreatedAt.After(cutoff))
	})
	if err != nil {
		b.Log.Error("listing requests", zap.Error(err))
		return Reply{Text: readFailedText}
	}
	if len(rs) == 0 {
		return Reply{Text: noRecentText(kind)}
	}
	sort.SliceStable(rs, func(i, j int) bool { return newer(rs[i], rs[j]) })
	text := recentHeadText(kind)
	const moreRoom = 80 // "…and N more" line
	listed := 0
	for _, r := range rs {
		if listed == statusMaxListed {
			break
		}
		k := b.Kinds[r.Kind]
		line := fmt.Sprintf("• *%s* %s", r.ID, r.State)
		if mayView(k, r) {
			summary := ""
			if k.Describe != nil {
				if _, facts := k.Describe(r); len(facts) > 0 {
					summary = " · " + clip(facts[0], statusMaxFact)
				}
			}
			line = clip(fmt.Sprintf("• *%s* %s%s · <@%s> · %s · %s", r.ID, r.State, summary, r.Requester, r.CreatedAt.UTC().Format("Jan 2 15:04 UTC"), threadLink(r)), statusMaxLine)
		}
		if mrkdwn.Len(text)+1+mrkdwn.Len(line) > maxSection-moreRoom {
			break
		}
		text += "\n" + line
		listed++
	}
	if more := len(rs) - listed; more > 0 {
		text += "\n" + recentMoreText(more)
	}
	return Reply{Text: text}
}

// newer orders requests newest first: by creation, then by id (numeric
// order, whatever the id's width).
func newer(a, b *actions.Request) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	if len(a.ID) != len(b.ID) {
		return len(a.ID) > len(b.ID)
	}
	return a.ID > b.ID
}

// viewer returns whether user may see a request's details: anyone for a
// public kind, else its requester and the approvers. Whether user is an
// approver is asked once, when first needed; when that cannot be told, the
// answer is no (and logged), so that details stay hidden.
func (b *Bot) viewer(ctx context.Context, user string) func(k Kind, r *actions.Request) bool {
	asked, approver := false, false
	return func(k Kind, r *actions.Request) bool {
		if k.Public || user != "" && user == r.Requester {
			return true
		}
		if !asked && b.Approvers != nil && user != "" {
			asked = true
			cctx, cancel := context.WithTimeout(ctx, b.Settings.CheckTimeout)
			defer cancel()
			ok, err := b.Approvers.IsApprover(cctx, user)
			if err != nil {
				b.Log.Warn("checking whether a user is an approver; showing no request details", zap.String("user", user), zap.Error(err))
			}
			approver = ok && err == nil
		}
		return approver
	}
}
