package bot

import (
	"fmt"

	"github.com/osio/osio-bot/bot/mrkdwn"
	"github.com/slack-go/slack"
	"strings"
	"time"

	"github.com/osio/osio-bot/actions"
)

// Every text the bot posts in Slack, in one place, so that they can be
// read and reviewed together: short, exact and kind. Each says what
// happened, to what (request id, table, user) and what to do next.
// Style: a sentence with a capital and a full stop; an emoji first only
// where it carries the outcome (✅ done, ❌ failed, ⛔ refused, ⚠️ look
// at this); ids in bold, AWS names in code; times in UTC.
//
// User text that goes into a message is escaped (mrkdwn.Code/Escape) by
// the caller; these functions only put sentences around it.

// ---- the thread's status message (see statusPrefix) ----

// statusFinished is an ended request's status message: its outcome and
// when, in the past tense, above the last steps.
func statusFinished(s actions.State, at time.Time) string {
	return fmt.Sprintf("%s%s at %s UTC; the last steps follow.", outcomeIcon(s), stateWord(s), at.UTC().Format("15:04:05"))
}

// outcomeIcon is the icon of an ended request's outcome.
func outcomeIcon(s actions.State) string {
	switch s {
	case actions.Succeeded:
		return ":white_check_mark: "
	case actions.Failed:
		return ":x: "
	}
	return ":no_entry_sign: "
}

// stateWord is a state as the first word of a sentence.
func stateWord(s actions.State) string {
	return capitalize(string(s))
}

// ---- slash commands: receipts and refusals (ephemeral, to the requester) ----

func unknownCommandText(cmd, known string) string {
	return fmt.Sprintf("I do not know %s. My commands are %s.", cmd, known)
}

// failureText: a system failure while handling a command (logged with
// the envelope id, which the text gives to find it).
func failureText(doing, envelope string) string {
	return fmt.Sprintf(":boom: Something broke while %s, so nothing was requested. The bot's on-call can find it in the logs under envelope `%s`.", doing, envelope)
}

// stillWorkingText is a command's ack when its answer is not ready in
// time (the bot's store is slow): the answer replaces it.
func stillWorkingText(command, text string) string {
	return fmt.Sprintf(":hourglass_flowing_sand: Still working on %s: the bot's store is slow to answer. The answer will replace this message; nothing to do meanwhile.", code(strings.TrimSpace(command+" "+text), 100))
}

func receivedText(id, what string) string {
	return fmt.Sprintf(":hourglass_flowing_sand: Request *%s* received: checking the %s. I will tell you here in a moment.", id, what)
}

func stillCheckingText(id, what string) string {
	return fmt.Sprintf(":hourglass_flowing_sand: Request *%s* is still being checked: the %s.", id, what)
}

// createdText is the receipt of a request sent for approval. It stays on
// screen after the request has ended (its response_url is not kept), so
// it says nothing that stops being true.
func createdText(id, what, channel string) string {
	return fmt.Sprintf(":inbox_tray: Request *%s* created: %s. Sent for approval in <#%s>; its thread there has the progress and the follow-up.", id, what, channel)
}

func stateText(id, what string, s actions.State, thread string) string {
	return fmt.Sprintf("Request *%s* (%s) is %s: %s", id, what, s, thread)
}

// refusalText is a check's refusal; reasons that bring their own icon
// keep it.
func refusalText(reason string) string {
	if strings.HasPrefix(reason, ":") {
		return reason
	}
	return ":warning: " + reason
}

func refusedText(reason, id string) string {
	return refusalText(reason) + fmt.Sprintf(" _(%s)_", id)
}

// uncheckedReason: a check could not finish (what says which, e.g. "I
// could not list the tables").
func uncheckedReason(what string, timedOut bool, limit time.Duration) string {
	if what == "" {
		what = "I could not finish checking that request"
	}
	if timedOut {
		return fmt.Sprintf("%s: no answer within %s, so nothing was requested. Try again in a minute; if it persists, tell the bot's on-call.", what, limit)
	}
	return what + " just now, so nothing was requested. Try again in a minute; if it persists, tell the bot's on-call."
}

// heldLine names a request that holds what a new one would work on.
func heldLine(what string, holder *actions.Request) string {
	return fmt.Sprintf("• `%s` is held by %s (%s, requested by <@%s>): %s", what, holder.ID, holder.State, holder.Requester, threadLink(holder))
}

func inProgressText(lines []string) string {
	return ":no_entry: Already in progress, so nothing new was requested:\n" + strings.Join(lines, "\n")
}

func cancelledAtIntakeText(id string) string {
	return fmt.Sprintf(":wastebasket: %s cancelled before its checks ended; nothing was requested.", id)
}

// cancelledText replaces the receipt of a request its requester cancelled.
func cancelledText(id string) string {
	return fmt.Sprintf(":wastebasket: %s cancelled; nothing ran.", id)
}

func threadLink(r *actions.Request) string {
	if r.Thread.Permalink != "" {
		return fmt.Sprintf("<%s|thread>", r.Thread.Permalink)
	}
	return "(thread not posted yet)"
}

// ---- the thread: what the bot itself says there ----

// requestedText opens the thread.
func requestedText(requester, origin string, autoApprove bool) string {
	text := fmt.Sprintf("Requested by <@%s> in <#%s>.", requester, origin)
	if !autoApprove {
		text += " Waiting for an approver."
	}
	return text
}

const autoApprovedText = "Approved automatically: this kind of request needs no approver (config)."

func planTimeoutText(d time.Duration) string {
	return fmt.Sprintf("_The plan could not be computed within %s (AWS did not answer in time); the job checks everything again when it runs._", d)
}

// decisionText records a decision (word: approved, denied, cancelled) and,
// for an approval, the method chosen.
func decisionText(word, user string, at time.Time, method string) string {
	text := fmt.Sprintf("%s by <@%s> at %s.", decisionWord(word), user, at.UTC().Format("2006-01-02 15:04:05 UTC"))
	if method != "" {
		text += fmt.Sprintf(" Method: *%s*.", method)
	}
	return text
}

func retryRequestedText(label, user string) string {
	return fmt.Sprintf("%s requested by <@%s>.", label, user)
}

// ---- clicks: what the clicker is told (ephemeral) ----

// clickRefusedText: a click that is not a button of the bot's, or is
// malformed (why is escaped here).
func clickRefusedText(why string) string {
	return ":no_entry: I cannot act on that click: " + mrkdwn.Escape(why) + ". Nothing changed."
}

// refusedClickText: a click the clicker may not make (reason is a full
// sentence).
func refusedClickText(reason string) string {
	return ":no_entry: " + reason
}

func noSuchRequestText(id string) string {
	return fmt.Sprintf("I cannot find request %s; nothing changed.", id)
}

func notOnReceiptText(id string) string {
	return fmt.Sprintf("That Cancel button is not on %s's receipt, so nothing changed. Cancel it from the receipt I showed you when you asked.", id)
}

func notOnCardText(id, channel string) string {
	return fmt.Sprintf("That button is not on %s's card, so nothing changed. Use the buttons on its card in <#%s>.", id, channel)
}

func onlyRequesterCancelsText(requester, id string) string {
	return fmt.Sprintf("Only the requester, <@%s>, can cancel %s. Approvers use Deny.", requester, id)
}

func ownRequestText(id, action string) string {
	return fmt.Sprintf("You asked for %s, so you cannot %s it: another interrupt catcher must.", id, action)
}

func notApproverText(groups, action, id string) string {
	return fmt.Sprintf("Only members of %s can %s requests; %s is unchanged.", groups, action, id)
}

func authorizeFailedText(action, id string) string {
	return fmt.Sprintf("I could not check who may %s right now, so %s is unchanged. Try again in a minute.", action, id)
}

func expiredClickText(id string, at time.Time) string {
	return fmt.Sprintf("%s expired at %s with no decision, so nothing ran. Ask again if you still need it.", id, at.UTC().Format("2006-01-02 15:04 UTC"))
}

// notAnOptionText: an Approve click whose method is not one of the
// request's (choice is escaped by the caller; "" when it named none).
func notAnOptionText(choice, id string) string {
	if choice == "" || choice == "``" {
		return fmt.Sprintf("That Approve button names no method of %s, so nothing changed. Use one of the Approve buttons on its card.", id)
	}
	return fmt.Sprintf("%s is not a method of %s, so nothing changed. Use one of the Approve buttons on its card.", choice, id)
}

func recordFailedText(id string) string {
	return fmt.Sprintf("I could not record that, so %s is unchanged. Try again in a minute.", id)
}

func retryCheckFailedText(id, label string) string {
	return fmt.Sprintf("I could not check whether %s can be retried (%s) right now, so it is unchanged. Try again in a minute.", id, label)
}

func nothingToRetryText(id string, s actions.State, label string) string {
	return fmt.Sprintf("%s is %s, so there is nothing to %s.", id, s, label)
}

func retryLockedText(label, id string, lines []string) string {
	return fmt.Sprintf(":no_entry: I cannot %s %s: a newer request holds what it works on, so %s is unchanged.\n%s", label, id, id, strings.Join(lines, "\n"))
}

// alreadyText tells a clicker that a request was decided before their
// click: in English, and as "you" when they made that decision (a double
// click).
func alreadyText(r *actions.Request, user string) string {
	if r == nil {
		return "That request has moved on; nothing changed."
	}
	by := ""
	if d := r.Decision; d != nil && d.By != "" {
		if d.By == user {
			by = " by you"
		} else {
			by = fmt.Sprintf(" by <@%s>", d.By)
		}
	}
	var what string
	switch r.State {
	case actions.Approved:
		what = "was already approved" + by + " and is about to run"
	case actions.Running:
		what = "was already approved" + by + " and is running"
	case actions.Succeeded:
		what = "was already approved" + by + " and has finished"
	case actions.Failed:
		what = "was already approved" + by + " and has failed"
	case actions.Denied:
		what = "was already denied" + by
	case actions.Cancelled:
		what = "was already cancelled" + by
	case actions.Expired:
		what = "has already expired (nobody decided in time)"
	case actions.Refused:
		what = "was refused by its checks"
	default:
		what = "is " + string(r.State)
	}
	return fmt.Sprintf("%s %s; nothing changed.", r.ID, what)
}

// ---- status and pending lists (ephemeral) ----

const readFailedText = "I could not read the requests right now. Try again in a minute."

func noSuchStatusText(kind, id string) string {
	return fmt.Sprintf("No %s request %s. `status` without an id lists recent ones.", kind, id)
}

func statusPrivateText(title, id string, s actions.State) string {
	return fmt.Sprintf("*%s %s*: %s\nOnly its requester and the approvers see its details.", title, id, s)
}

func noRecentText(kind string) string {
	return fmt.Sprintf("No %s requests are running or were made in the last 7 days.", kind)
}

func recentHeadText(kind string) string {
	return fmt.Sprintf("Running and recent %s requests (newest first):", kind)
}

func recentMoreText(n int) string {
	return fmt.Sprintf("…and %d more. `status REQUEST-ID` shows one.", n)
}

const nonePendingText = "No request is waiting for a decision."

func noneOfYoursPendingText(hidden int) string {
	return fmt.Sprintf("None of your requests is waiting for a decision. %s", othersWaiting(hidden))
}

// othersWaiting counts the requests of other people that a non-approver
// is not shown.
func othersWaiting(n int) string {
	if n == 1 {
		return "1 request of someone else is waiting too; only approvers see it."
	}
	return fmt.Sprintf("%d requests of other people are waiting too; only approvers see them.", n)
}

func pendingHeadText(n int) string {
	return fmt.Sprintf("Waiting for a decision (%d, oldest first):", n)
}

func pendingLine(id, what, requester, age, card string) string {
	return fmt.Sprintf("• *%s* %s · <@%s> · waiting %s · %s", id, what, requester, age, card)
}

func pendingMoreText(n int) string {
	return fmt.Sprintf("…and %d more, newer.", n)
}

func pendingHiddenText(hidden int) string {
	return othersWaiting(hidden)
}

// ---- the requester, told directly by the reporter ----

func unreachableNotice(req *actions.Request, code string) string {
	seen := "so no approver has seen it yet"
	if req.Thread.TS != "" {
		seen = "so its thread there is not being updated"
	}
	return fmt.Sprintf(":warning: Your request *%s* cannot reach the approvals channel <#%s> (Slack answers `%s`), %s. "+
		"The bot's operators are alerted; it goes on as soon as the channel works again, and expires at %s without a decision.",
		req.ID, req.Thread.Channel, code, seen, req.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC"))
}

func expiredNotice(req *actions.Request, b *blockage) string {
	text := fmt.Sprintf(":alarm_clock: Your request *%s* expired: no approver decided within the approval window, so nothing ran. Ask again if you still need it.", req.ID)
	if b != nil {
		text += fmt.Sprintf(" The approvals channel <#%s> was unreachable (Slack answers `%s`).", req.Thread.Channel, b.code)
	} else if req.Thread.Permalink != "" {
		text += fmt.Sprintf(" <%s|Thread>", req.Thread.Permalink)
	}
	return text
}

// ---- the card: its state line, buttons and confirm dialogs ----

func waitingLine(groups, expires string) string {
	return fmt.Sprintf(":hourglass: Waiting for approval by %s · expires %s", groups, expires)
}

func expiredLine(at string) string {
	return fmt.Sprintf(":alarm_clock: Expired at %s with no decision; nothing ran. Ask again if you still need it.", at)
}

// failedLine ends a failed request's state line: what failed (the
// runner's summary; the thread has the detail).
func failedLine(summary string) string {
	if summary == "" {
		return " · :x: failed; its thread says why"
	}
	return " · :x: failed: " + summary
}

// decisionWord is a decision (approved, denied, cancelled) with its icon.
func decisionWord(a string) string {
	switch a {
	case "approved":
		return ":white_check_mark: Approved"
	case "denied":
		return ":no_entry: Denied"
	case "cancelled":
		return ":leftwards_arrow_with_hook: Cancelled"
	}
	return a
}

const (
	recommendedSuffix = " (recommended)"
	denyLabel         = "Deny"
	cancelLabel       = "Cancel request"
)

// dialog is a button's confirm dialog.
type dialog struct{ title, text, confirm, deny string }

func (d dialog) block() *slack.ConfirmationBlockObject {
	return slack.NewConfirmationBlockObject(
		slack.NewTextBlockObject(slack.PlainTextType, clip(d.title, 100), false, false),
		slack.NewTextBlockObject(slack.MarkdownType, clip(d.text, 300), false, false),
		slack.NewTextBlockObject(slack.PlainTextType, d.confirm, false, false),
		slack.NewTextBlockObject(slack.PlainTextType, d.deny, false, false))
}

// approveDialog says what will run once approved: the method an Approve
// option names (a reset's), or else the request itself (what, e.g.
// "export of `prod_txlog` by AWS Data Pipeline (runbook)").
func approveDialog(id, title, requester, method, what string) dialog {
	var text string
	switch {
	case method != "":
		text = fmt.Sprintf("%s for <@%s>: %s.", title, requester, method)
	case what != "":
		text = fmt.Sprintf("%s, for <@%s>.", capitalize(what), requester)
	default:
		text = fmt.Sprintf("%s for <@%s>.", title, requester)
	}
	return dialog{"Approve " + id + "?", clip(text+" It runs as soon as you approve.", 290), "Approve", "Back"}
}

// capitalize makes s begin a sentence.
func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func denyDialog(id string) dialog {
	return dialog{"Deny " + id + "?", "Nothing will run, and the requester is told in the thread.", "Deny", "Back"}
}

func cancelDialog(id string) dialog {
	return dialog{"Cancel " + id + "?", "The request ends and nothing runs.", "Cancel it", "Keep it"}
}
