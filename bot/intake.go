package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions"
)

// A request-making slash command is taken in two steps, so that its ack
// never waits on a peer (Slack allows 3 s):
//
//  1. Intake, before the ack: the words are parsed (Kind.Parse: local, no
//     network), and the request is stored "received" in one write that
//     claims the envelope and the locks the words already name. The ack is
//     the receipt ("R-000123 received: checking …") with a Cancel button.
//     Words that do not parse are stored "refused" with the reason, and
//     the ack says why.
//  2. Check, after the ack (Kind.Check, within Settings.CheckTimeout):
//     AWS, the directory, users.info. The request moves to pending, taking
//     the locks the check named, or to refused with the reason, and the
//     outcome replaces the receipt through the command's response_url
//     (chat.postEphemeral when that fails). Only then is the card planned
//     and posted.
//
// A crash between the two leaves a "received" request, checked again when
// the bot starts; an outcome stored but not yet told (Request.Told false:
// the process died first, or Slack failed) is told then, or by a sweep
// once the request is abandoned (Bot.recheck), refused or not. One that
// Slack says can never be told there (an archived channel, a user gone:
// Request.Untellable) is not tried again. The response_url is never
// stored (it is a credential to post as the app), so an outcome told
// after a restart goes by chat.postEphemeral.

// Parsed is what a kind reads from a command's words.
type Parsed struct {
	// Args are stored with the intake and handed to Check.
	Args any
	// Locks are the resources the words already name (e.g. the tables to
	// export); taken at intake, so a second request for them is refused
	// at once.
	Locks []string
	// What names the request on the receipt, e.g. "export of `prod_txlog`".
	What string
}

// Checked is the outcome of a kind's checks.
type Checked struct {
	// Refusal, when set, is the reason for the requester; nothing is
	// requested.
	Refusal string
	// Args replace the intake's; Locks are all the request holds (the
	// intake's and any the check learnt); What names it on the outcome.
	Args  any
	Locks []string
	What  string
}

// Responder posts to a command's response_url.
type Responder interface {
	Respond(ctx context.Context, url string, msg *slack.WebhookMessage) error
}

// Intake takes a request-making command of kind: see the comment at the
// top of this file. It is the Run of each command's default form.
func (b *Bot) Intake(ctx context.Context, inv Invocation, kind string) Reply {
	k := b.Kinds[kind]
	now := b.Now().UTC()
	req := &actions.Request{
		Kind: kind, Requester: inv.Cmd.UserID, Origin: inv.Cmd.ChannelID,
		Thread: actions.Thread{Channel: b.Settings.ApprovalsChannel}, ExpiresAt: now.Add(b.Settings.Expiry),
		Input: clip(strings.TrimSpace(inv.Cmd.Command+" "+strings.Join(inv.Args, " ")), maxInput),
	}
	p, msg := k.Parse(inv.Args)
	if msg != "" {
		return b.refuseAtIntake(inv, req, msg)
	}
	data, err := json.Marshal(p.Args)
	if err != nil {
		return b.failure(inv, "encoding the request", err)
	}
	req.State, req.Args, req.Locks, req.What = actions.Received, data, p.Locks, p.What
	res, err := b.Store.Create(req, inv.EnvelopeID)
	if err != nil {
		return b.failure(inv, "saving the request", err)
	}
	if len(res.LockedBy) > 0 {
		return b.refuseAtIntake(inv, req, alreadyInProgress(kind, res.LockedBy))
	}
	r := res.Request
	if res.Duplicate && r.State != actions.Received {
		// A redelivered envelope whose outcome is known: say it again.
		text, blocks := b.outcome(r)
		return Reply{Text: text, Blocks: blocks}
	}
	text := receivedText(r.ID, r.What)
	url := inv.Cmd.ResponseURL
	return Reply{Text: text, Blocks: cancelBlocks(text, r.ID), After: func(ctx context.Context) { b.checkLater(ctx, r, url) }}
}

// FailpointChecking is the failpoint between a command's ack and its
// checks (see actions.FailpointEnv).
const FailpointChecking = "intake.checking"

// maxInput bounds the words of a command kept with its request.
const maxInput = 500

// refuseAtIntake stores a command refused before any check (words that do
// not parse, or locks held) as a refused request, so the audit holds every
// command typed, and answers with the reason.
func (b *Bot) refuseAtIntake(inv Invocation, req *actions.Request, reason string) Reply {
	req.State, req.Error, req.Told, req.Locks, req.Args = actions.Refused, reason, true, nil, nil
	res, err := b.Store.Create(req, inv.EnvelopeID)
	if err != nil {
		return b.failure(inv, "saving the request", err)
	}
	if res.Duplicate && res.Request.State != actions.Refused {
		text, blocks := b.outcome(res.Request)
		return Reply{Text: text, Blocks: blocks}
	}
	return Reply{Text: refusalText(reason)}
}

func alreadyInProgress(kind string, held map[string]*actions.Request) string {
	var lines []string
	for lock, holder := range held {
		lines = append(lines, heldLine(strings.TrimPrefix(lock, kind+":"), holder))
	}
	sort.Strings(lines)
	return inProgressText(lines)
}

// check runs the checks of received request id, stores the outcome, tells
// the requester (through url when set) and plans the card of a request
// that passed. It returns when all that is done (recheck, at start).
func (b *Bot) check(ctx context.Context, id, url string) {
	r, err := b.Store.Get(id)
	if err != nil {
		b.Log.Error("reading a received request", zap.String("request_id", id), zap.Error(err))
		return
	}
	if r.State == actions.Received {
		if b.Failpoint != nil {
			b.Failpoint(ctx, FailpointChecking)
		}
		r = b.runCheck(ctx, r)
		if r == nil {
			return
		}
	}
	b.afterCheck(ctx, r, url)
}

// checkLater is check for a command just acked (r as its intake stored
// it): the same steps, but nothing waits for a turn to check (see
// checkQueue). The check, once it
// has a turn or its deadline has passed, runs on one of b.handlers; the
// caller returns at once.
func (b *Bot) checkLater(ctx context.Context, r *actions.Request, url string) {
	if r.State != actions.Received {
		b.afterCheck(ctx, r, url)
		return
	}
	if b.Failpoint != nil {
		b.Failpoint(ctx, FailpointChecking)
	}
	t := &checkTurn{deadline: time.Now().Add(b.Settings.CheckTimeout)}
	t.got = func(ok bool) {
		// The queue's lock is held: start the work, do not do it here.
		if !ok {
			// Its deadline passed while it waited: refused, among the
			// others that came due at once, by a few goroutines.
			b.refusals.push(func() {
				if r := b.checked(ctx, r, Checked{}, fmt.Errorf("waiting for a turn to check: %w", context.DeadlineExceeded), true); r != nil {
					b.afterCheck(ctx, r, url)
				}
			})
			return
		}
		b.handlers.run(func() {
			cctx, cancel := context.WithDeadline(ctx, t.deadline)
			c, err := b.Kinds[r.Kind].Check(cctx, r)
			timedOut := cctx.Err() != nil
			cancel()
			b.checkq.done()
			r = b.checked(ctx, r, c, err, timedOut)
			if r != nil {
				b.afterCheck(ctx, r, url)
			}
		})
	}
	b.checkq.request(t) // false: shutting down; checked again at the next start
}

// afterCheck tells r's requester its outcome if not yet told and plans
// the card of a request that passed.
func (b *Bot) afterCheck(ctx context.Context, r *actions.Request, url string) {
	if !r.Told {
		b.tellOutcome(ctx, r, url)
	}
	if r.State == actions.Pending {
		b.plan(ctx, r.ID)
	}
}

// runCheck runs r's checks and stores their outcome; it returns the
// request as stored, or nil when there is nothing more to do here (shut
// down, or decided elsewhere).
func (b *Bot) runCheck(ctx context.Context, r *actions.Request) *actions.Request {
	cctx, cancel := context.WithTimeout(ctx, b.Settings.CheckTimeout)
	defer cancel()
	deadline, _ := cctx.Deadline()
	got := make(chan bool, 1)
	t := &checkTurn{deadline: deadline, got: func(ok bool) { got <- ok }}
	if !b.checkq.request(t) {
		return nil // shutting down: checked again at the next start
	}
	var c Checked
	var err error
	timedOut := false
	// A turn among Settings.MaxChecks; the wait counts in the deadline.
	select {
	case ok := <-got:
		if ok {
			c, err = b.Kinds[r.Kind].Check(cctx, r)
			timedOut = cctx.Err() != nil
			b.checkq.done()
		} else {
			err, timedOut = fmt.Errorf("waiting for a turn to check: %w", context.DeadlineExceeded), true
		}
	case <-cctx.Done():
		if !b.checkq.withdraw(t) && <-got {
			b.checkq.done() // a turn came as the deadline passed
		}
		err, timedOut = fmt.Errorf("waiting for a turn to check: %w", cctx.Err()), true
	}
	return b.checked(ctx, r, c, err, timedOut)
}

// checked stores the outcome of r's checks (c, or err: the check could
// not finish, timedOut telling whether by its deadline); it returns the
// request as stored, or nil when there is nothing more to do here (shut
// down, or decided elsewhere).
func (b *Bot) checked(ctx context.Context, r *actions.Request, c Checked, err error, timedOut bool) *actions.Request {
	k := b.Kinds[r.Kind]
	log := b.Log.With(zap.String("request_id", r.ID), zap.String("kind", r.Kind))
	if ctx.Err() != nil {
		return nil // shutting down: checked again at the next start
	}
	if err != nil {
		log.Warn("checking a request", zap.Bool("deadline", timedOut), zap.Error(err))
		c = Checked{Refusal: uncheckedText(k, timedOut, b.Settings.CheckTimeout)}
	}
	var out *actions.Request
	if c.Refusal == "" {
		data, err := json.Marshal(c.Args)
		if err != nil {
			c.Refusal = "I could not record that request (the bot could not encode it), so nothing was requested. The on-call can find it in the bot's logs."
			log.Error("encoding checked args", zap.Error(err))
		} else {
			out, err = b.Store.Update(r.ID, []actions.State{actions.Received}, func(q *actions.Request) error {
				q.State, q.Args, q.Locks, q.Told = actions.Pending, data, c.Locks, false
				if c.What != "" {
					q.What = c.What
				}
				return nil
			})
			var lc *actions.LockConflict
			if errors.As(err, &lc) {
				c.Refusal = alreadyInProgress(r.Kind, lc.LockedBy)
			} else if b.stored(log, err) {
				log.Info("request checked: pending")
				return out
			} else {
				return nil
			}
		}
	}
	out, err = b.Store.Transition(r.ID, []actions.State{actions.Received}, actions.Refused, func(q *actions.Request) {
		q.Error, q.Told = c.Refusal, false
	})
	if !b.stored(log, err) {
		return nil
	}
	log.Info("request checked: refused")
	return out
}

// stored reports whether a check's outcome was stored; a conflict (the
// requester cancelled meanwhile, or another handler stored it) is not an
// error.
func (b *Bot) stored(log *zap.Logger, err error) bool {
	if _, conflict := actions.IsConflict(err); conflict {
		log.Info("request changed while it was checked; leaving it")
		return false
	}
	if err != nil {
		log.Error("storing a check's outcome", zap.Error(err))
		return false
	}
	return true
}

// uncheckedText is the refusal when a check could not finish.
func uncheckedText(k Kind, timedOut bool, limit time.Duration) string {
	return uncheckedReason(k.Unchecked, timedOut, limit)
}

// outcome is what the requester is told once r's checks have ended.
func (b *Bot) outcome(r *actions.Request) (string, []slack.Block) {
	switch r.State {
	case actions.Received:
		text := stillCheckingText(r.ID, r.What)
		return text, cancelBlocks(text, r.ID)
	case actions.Refused:
		return refusedText(r.Error, r.ID), nil
	case actions.Pending:
		text := createdText(r.ID, r.What, r.Thread.Channel)
		return text, cancelBlocks(text, r.ID)
	}
	return stateText(r.ID, r.What, r.State, threadLink(r)), nil
}

// tellOutcome tells r's requester the outcome of its checks: replacing the
// receipt through url, else by chat.postEphemeral in the channel the
// command was typed in; then records that it was told.
func (b *Bot) tellOutcome(ctx context.Context, r *actions.Request, url string) {
	text, blocks := b.outcome(r)
	log := b.Log.With(zap.String("request_id", r.ID))
	err := b.replace(ctx, log, url, r.Origin, r.Requester, text, blocks)
	if code := untellable(err); code != "" {
		log.Error("the requester cannot be told a check's outcome; not trying again", zap.Error(err))
		if _, err := b.Store.Update(r.ID, nil, func(q *actions.Request) error { q.Untellable = code; return nil }); err != nil {
			log.Error("recording that the requester cannot be told", zap.Error(err))
		}
		return
	}
	if err != nil {
		log.Error("telling the requester a check's outcome", zap.Error(err))
		return // told by a later sweep (recheck), or at the next start
	}
	if _, err := b.Store.Update(r.ID, nil, func(q *actions.Request) error { q.Told = true; return nil }); err != nil {
		log.Error("recording that the requester was told", zap.Error(err))
	}
}

// replace puts text and blocks in place of the message url came from (a
// command's receipt, a clicked ephemeral), or, when there is no url or
// posting to it fails, shows them to user in channel by
// chat.postEphemeral, whose error it returns.
func (b *Bot) replace(ctx context.Context, log *zap.Logger, url, channel, user, text string, blocks []slack.Block) error {
	if url != "" && b.Responder != nil {
		msg := &slack.WebhookMessage{Text: text, ResponseType: slack.ResponseTypeEphemeral, ReplaceOriginal: true}
		if len(blocks) > 0 {
			msg.Blocks = &slack.Blocks{BlockSet: blocks}
		}
		cctx, cancel := context.WithTimeout(ctx, slackCallTimeout)
		err := b.respond(cctx, url, msg)
		cancel()
		if err == nil {
			return nil
		}
		log.Warn("response_url failed; telling by chat.postEphemeral", zap.Error(err))
	}
	cctx, cancel := context.WithTimeout(ctx, slackCallTimeout)
	defer cancel()
	opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
	if len(blocks) > 0 {
		opts = append(opts, slack.MsgOptionBlocks(blocks...))
	}
	_, err := b.API.PostEphemeralContext(cctx, channel, user, opts...)
	return err
}

// respond posts msg to a response_url. A post whose answer did not come
// (a dropped connection, a timeout, a 5xx) may have been carried out, so
// it is posted once more rather than told another way: msg replaces the
// message the URL came from, which is the same whether done once or
// twice, where a chat.postEphemeral after a post that did land would show
// the person the same news twice. Slack's definite refusals (404
// expired_url or used_url, 4xx) are not tried again.
func (b *Bot) respond(ctx context.Context, url string, msg *slack.WebhookMessage) error {
	err := b.Responder.Respond(ctx, url, msg)
	var sc slack.StatusCodeError
	if err == nil || ctx.Err() != nil || errors.As(err, &sc) && sc.Code < 500 {
		return err
	}
	if _, limited := errors.AsType[*slack.RateLimitedError](err); limited {
		return err
	}
	if again := b.Responder.Respond(ctx, url, msg); again != nil {
		return fmt.Errorf("%w; posting again: %w", err, again)
	}
	return nil
}

// untellable is the Slack error code of err when no retry of the same
// chat.postEphemeral can succeed: the channel cannot be posted to, the
// message is refused, or the user is gone from it. "" otherwise (a
// timeout, a 5xx, a rate limit, or a token problem that is fixed for every
// call at once).
func untellable(err error) string {
	switch class, code := classify(err); {
	case class == errChannel, class == errContent:
		return code
	case code == "user_not_found", code == "user_not_in_channel":
		return code
	}
	return ""
}

// abandoned is how long after its last change a request still being
// checked, or whose outcome was not told, is taken as left behind (its
// replica died, or its process stopped): its checks' deadline and the
// tells' Slack calls have all run out by then.
func (b *Bot) abandoned() time.Duration {
	if b.Settings.AbandonAfter > 0 {
		return b.Settings.AbandonAfter
	}
	return b.Settings.CheckTimeout + 3*slackCallTimeout
}

// recheck checks the requests taken in but not checked, and tells the
// outcomes stored but not told, among those last changed before cutoff:
// at start, those a previous run left (on a shared store, only those
// abandoned, since other replicas may be checking theirs); then, every
// sweep, those abandoned by any replica. all reads terminal requests too
// (an untold refusal), at start. A replica claims each request's recheck
// in the store first, so that only one tells its outcome.
func (b *Bot) recheck(ctx context.Context, cutoff time.Time, all bool) {
	keep := func(r *actions.Request) bool {
		return r.Input != "" && r.UpdatedAt.Before(cutoff) && (r.State == actions.Received || r.Untold())
	}
	list := b.Store.List
	if !all {
		list = func(keep func(*actions.Request) bool) ([]*actions.Request, error) {
			return actions.ListActive(b.Store, keep)
		}
	}
	todo, err := list(keep)
	if err != nil {
		b.Log.Error("listing unchecked requests", zap.Error(err))
		return
	}
	for i := len(todo) - 1; i >= 0; i-- { // oldest first
		if ctx.Err() != nil {
			return
		}
		r := todo[i]
		// One claim per version of the request and per abandon period:
		// a tell that failed is tried again in a later period.
		claim := fmt.Sprintf("recheck:%s:%d:%d", r.ID, r.Version, b.Now().UnixNano()/int64(b.abandoned()))
		if ok, err := b.Store.ClaimEnvelope(claim); err != nil || !ok {
			if err != nil {
				b.Log.Error("claiming a request's recheck", zap.String("request_id", r.ID), zap.Error(err))
			}
			continue // another replica has it
		}
		b.Log.Info("checking a request left unchecked or untold", zap.String("request_id", r.ID), zap.String("state", string(r.State)))
		b.check(ctx, r.ID, "")
	}
}

// cancelIntake is the requester's Cancel on a receipt whose checks have
// not ended: the request ends cancelled, with no card and no thread, and
// the check's outcome is dropped.
func (b *Bot) cancelIntake(ctx context.Context, log *zap.Logger, c click, req *actions.Request, now time.Time) {
	_, err := b.Store.Transition(req.ID, []actions.State{actions.Received}, actions.Cancelled, func(q *actions.Request) {
		q.Decision = &actions.Decision{Action: "cancelled", By: c.User, At: now}
		q.Told = true
	})
	if cur, conflict := actions.IsConflict(err); conflict {
		// Checked meanwhile: the card may be out; cancel as any pending one.
		if cur.Current.State == actions.Pending {
			b.decide(ctx, log, c, cur.Current)
			return
		}
		b.tell(ctx, c.Channel, c.User, alreadyText(cur.Current, c.User))
		return
	}
	if err != nil {
		log.Error("cancelling a received request", zap.Error(err))
		b.tell(ctx, c.Channel, c.User, recordFailedText(req.ID))
		return
	}
	log.Info("request cancelled before its checks ended")
	b.replaceReceipt(ctx, log, c, cancelledAtIntakeText(req.ID))
}
