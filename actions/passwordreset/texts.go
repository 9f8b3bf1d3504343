package passwordreset

import (
	"fmt"
	"strings"
	"time"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/actions/appinterface"
)

// The reset job's texts in the thread, in one place (the checks' refusals
// are in check.go). Style as bot/messages.go: a sentence, what happened,
// to what (IAM user, account, MR), and what to do next. A job failure is
// an actions.Failure: what failed, on what; the runner adds what to do
// next (Resend, when offered) and the detail.

// ---- in place ----

const resumedNewPasswordText = "Resuming: the password generated before the restart was not confirmed set, so it is discarded and a new one is generated."

// passwordSetText: the console password was set; mustChange says the user
// chooses a new one at first sign-in.
func passwordSetText(user, account, accountID string, created, mustChange bool) string {
	how := "updated the console password (login profile)"
	if created {
		how = "created a console password (login profile)"
	}
	text := fmt.Sprintf("`%s` in %s (%s): %s.", user, account, accountID, how)
	if mustChange {
		text = strings.TrimSuffix(text, ".") + "; they must choose a new one at first sign-in."
	}
	return text
}

func mailRetryText(to string, attempt int, err error, wait time.Duration) string {
	return fmt.Sprintf("Mail to %s failed for now (attempt %d: %v); retrying in %s.", to, attempt, err, wait.Round(time.Second))
}

func inPlaceDoneText(requester, user, account, to, fingerprint string) string {
	return fmt.Sprintf(":white_check_mark: <@%s> Done: the console password of `%s` in %s was reset and mailed to %s, encrypted to GPG key `%s`. Decrypt it with `gpg -d`.",
		requester, user, account, to, fingerprint)
}

// mailFailed: the password is set, its mail failed; Resend mails the kept
// ciphertext.
func mailFailed(user, to string, err error) error {
	return &actions.Retryable{Label: "Resend", Err: &actions.Failure{
		Text: fmt.Sprintf("the password of `%s` is set, but the mail to %s failed; the encrypted copy is kept", user, to), Err: err}}
}

// notRecorded: the password was set but that could not be recorded;
// Resend sets a new one and mails it.
func notRecorded(user string, err error) error {
	return &actions.Retryable{Label: "Resend", Err: &actions.Failure{
		Text: fmt.Sprintf("the password of `%s` was set, but recording that failed, so it was not mailed; Resend sets a new password and mails it", user), Err: err}}
}

// stoppedBeforeMail: the password is set and recorded, the job stopped
// before the mail was recorded as sent; Resend mails the kept ciphertext.
func stoppedBeforeMail(user string, err error) error {
	return &actions.Retryable{Label: "Resend", Err: &actions.Failure{
		Text: fmt.Sprintf("the password of `%s` is set, but the job stopped before it was mailed and recorded as mailed; the encrypted copy is kept", user), Err: err}}
}

// ---- app-interface: recreate and resetPasswords ----

// foundNote follows an MR's "opened" line when the MR was found, opened
// before a restart.
func foundNote(found bool, mr *appinterface.MR) string {
	if !found {
		return ""
	}
	return fmt.Sprintf(" (opened before a restart; now %s)", mr.State)
}

func skippedNote(skipped []string) string {
	return fmt.Sprintf(" (already there, skipped: `%s`)", strings.Join(skipped, "`, `"))
}

func mr1OpenedText(mr *appinterface.MR, refs []string, userFile, note string) string {
	return fmt.Sprintf("MR 1 opened: <%s|!%d> removes `%s` from `%s`%s.", mr.WebURL, mr.IID, strings.Join(refs, "`, `"), userFile, note)
}

func mr2OpenedText(mr *appinterface.MR, userFile, note string) string {
	return fmt.Sprintf("MR 2 opened: <%s|!%d> restores the roles in `%s`%s.", mr.WebURL, mr.IID, userFile, note)
}

func resetPasswordsOpenedText(mr *appinterface.MR, userFile, id, accountFile, note string) string {
	return fmt.Sprintf("MR opened: <%s|!%d> adds `{user: {$ref: %s}, requestId: %s}` to resetPasswords in `%s`%s.", mr.WebURL, mr.IID, userFile, id, accountFile, note)
}

// mergedText says an MR (name: "MR", "MR 1", "MR 2") merged.
func mergedText(name string, mr *appinterface.MR) string {
	return fmt.Sprintf("%s <%s|!%d> merged.", name, mr.WebURL, mr.IID)
}

func mrStatusText(name string, mr *appinterface.MR, state, at string) string {
	return fmt.Sprintf("%s <%s|!%d> is %s (checked %s UTC)", name, mr.WebURL, mr.IID, state, at)
}

// mrClosed: an MR was closed unmerged; the job stops.
func mrClosed(name string, mr *appinterface.MR) error {
	return &actions.Failure{Text: fmt.Sprintf("%s <%s|!%d> was closed without being merged, so the reset stopped and nothing more was changed", name, mr.WebURL, mr.IID),
		Next: "Reopen and merge it, or ask again."}
}

// mrNotMerged: nobody merged an MR in time.
func mrNotMerged(name string, mr *appinterface.MR, limit time.Duration, last string, labels []string) error {
	return &actions.Failure{Text: fmt.Sprintf("%s <%s|!%d> was not merged within %s (still %s)", name, mr.WebURL, mr.IID, limit, last),
		Next: fmt.Sprintf("I expected app-interface to merge it (label %s): ask its reviewers, then ask again.", strings.Join(labels, ", "))}
}

// userNotChanged: IAM did not delete or recreate the user in time after
// an MR merged (what: "deleted", "recreated").
func userNotChanged(user, what, account string, limit time.Duration, after *appinterface.MR, last string) error {
	return &actions.Failure{Text: fmt.Sprintf("`%s` was not %s in %s within %s after <%s|!%d> merged (it %s)", user, what, account, limit, after.WebURL, after.IID, last),
		Next: fmt.Sprintf("I expected app-interface's reconciler (terraform-users) to have %s it: check its last run, then ask again.", what)}
}

// profileNotRecreated: resetPasswords merged, but the login profile was
// not recreated in time.
func profileNotRecreated(user, account string, limit time.Duration, mr *appinterface.MR, last string) error {
	return &actions.Failure{Text: fmt.Sprintf("the login profile of `%s` in %s was not recreated within %s after <%s|!%d> merged (last: %s)", user, account, limit, mr.WebURL, mr.IID, last),
		Next: "I expected app-interface's reset integration and terraform-users to recreate it: check their last runs, then ask again."}
}

func userGoneText(user, account string) string {
	return fmt.Sprintf("`%s` is gone from %s (IAM GetUser: NoSuchEntity).", user, account)
}

func waitingUserText(user, what, account, state, at string) string {
	return fmt.Sprintf("Waiting for `%s` to be %s in %s: it %s (checked %s UTC)", user, what, account, state, at)
}

func recreatedDoneText(requester, user, account string, mr1, mr2 *appinterface.MR) string {
	return fmt.Sprintf(":white_check_mark: <@%s> `%s` was recreated in %s (MRs <%s|!%d> and <%s|!%d> merged). app-interface sends the invitation mail with the new password, encrypted to their GPG key.",
		requester, user, account, mr1.WebURL, mr1.IID, mr2.WebURL, mr2.IID)
}

func resetPasswordsDoneText(requester, user, account string, at time.Time) string {
	return fmt.Sprintf(":white_check_mark: <@%s> The console password of `%s` in %s was reset by app-interface (login profile recreated at %s). app-interface mails the new password, encrypted to their GPG key.",
		requester, user, account, at.UTC().Format("2006-01-02 15:04:05 UTC"))
}
