package passwordreset

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/actions/appinterface"
	"github.com/osio/osio-bot/actions/reset"
	"github.com/osio/osio-bot/mail"
)

// Mailer sends one mail.
type Mailer = mail.Mailer

// Repo is what the app-interface methods need of the GitLab project.
type Repo interface {
	ReadFile(ctx context.Context, path string) ([]byte, error)
	Propose(ctx context.Context, c appinterface.Change) (*appinterface.MR, error)
	// FindMR finds the merge request from a branch in any state (nil
	// when there is none).
	FindMR(ctx context.Context, branch string) (*appinterface.MR, error)
	MRState(ctx context.Context, iid int) (*appinterface.MR, error)
}

// Run runs the method the approver chose.
func (r *Resetter) Run(ctx context.Context, jc *actions.JobContext) error {
	var a Args
	if err := jc.Request.DecodeArgs(&a); err != nil {
		return err
	}
	switch jc.Request.Choice {
	case InPlace, "":
		return r.inPlace(ctx, jc, a)
	case Recreate:
		return r.recreate(ctx, jc, a)
	case ResetPasswords:
		return r.resetPasswords(ctx, jc, a)
	}
	return fmt.Errorf("unknown reset method %q", jc.Request.Choice)
}

// inPlaceState is the in-place reset's checkpoint. Ciphertext is the
// password encrypted to the user's key; the plaintext is never stored.
type inPlaceState struct {
	Ciphertext string    `json:"ciphertext,omitempty"`
	Generation int       `json:"generation"`
	SetAt      time.Time `json:"set_at,omitempty"`
	Created    bool      `json:"created,omitempty"`
	MailedAt   time.Time `json:"mailed_at,omitempty"`
}

// Failpoint prefixes of the three methods (see actions.FailpointEnv).
// In place: encrypted, set, mailed. Recreate: removing, mr1, merged1,
// gone, mr2, merged2, back. resetPasswords: mr, merged, profile.
//
// Besides those, each merge request has a "lost answer" failpoint that
// sits between Propose returning and the MR's checkpoint being saved:
// recreate.mr1.opened, recreate.mr2.opened and resetpasswords.mr.opened.
// A process killed there has opened the MR but not recorded it, as if
// GitLab's answer had been lost; on resume the job finds its MR by branch.
const (
	FailpointInPlace        = "inplace"
	FailpointRecreate       = "recreate"
	FailpointResetPasswords = "resetpasswords"
)

// The in-place reset's checkpoints, also its failpoint names
// ("inplace.encrypted", ...).
const (
	CheckpointEncrypted = "encrypted"
	CheckpointSet       = "set"
	CheckpointMailed    = "mailed"
)

// inPlace generates a password, stores only its ciphertext, sets it, and
// mails the ciphertext. After a restart: if "set" is recorded the stored
// ciphertext is mailed; if only the ciphertext is, it is discarded and a
// new password is generated and set, so the user always ends up with the
// password that was set last, readable.
//
// Once the password is set, every failure ends with Resend (see
// afterSet), since the user's password changed and they have not got it.
func (r *Resetter) inPlace(ctx context.Context, jc *actions.JobContext, a Args) (err error) {
	var st inPlaceState
	// set: the password was set (this run, or "set" was recorded before);
	// recorded: "set" is in the store.
	set, recorded := false, false
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error: %v", p)
		}
		if set {
			err = afterSet(ctx, a, recorded, err)
		}
	}()
	if _, err := jc.Load("inplace", &st); err != nil {
		return err
	}
	set, recorded = !st.SetAt.IsZero(), !st.SetAt.IsZero()
	acct, _ := r.cfg.Account(a.Account)
	client := r.iam[a.Account]
	if st.SetAt.IsZero() {
		if st.Ciphertext != "" {
			jc.Log.Info("discarding a ciphertext whose password was never confirmed set")
			if err := jc.Say("%s", resumedNewPasswordText); err != nil {
				return err
			}
		}
		key, _, err := reset.ParseKey(a.PublicKey)
		if err != nil {
			return fmt.Errorf("reading the GPG key of %s: %w", a.User, err)
		}
		policy := reset.DefaultPolicy()
		pol, err := client.GetAccountPasswordPolicy(ctx, &iam.GetAccountPasswordPolicyInput{})
		var nse *iamtypes.NoSuchEntityException
		switch {
		case err == nil:
			policy = reset.PolicyFrom(pol)
		case !errors.As(err, &nse):
			return fmt.Errorf("reading the password policy of %s: %w", a.Account, err)
		}
		pw, err := reset.Generate(policy, r.cfg.Reset.MinLength)
		if err != nil {
			return fmt.Errorf("generating a password: %w", err)
		}
		defer reset.Zero(pw)
		ct, err := reset.Encrypt(key, pw)
		if err != nil {
			return fmt.Errorf("encrypting the password to key %s: %w", a.Fingerprint, err)
		}
		st.Ciphertext, st.Generation = ct, st.Generation+1
		if err := jc.Save("inplace", &st); err != nil {
			return err
		}
		jc.Failpoint(ctx, FailpointInPlace, CheckpointEncrypted)
		// The SDK takes a string; that copy cannot be zeroed and lives until
		// the garbage collector reclaims it.
		_, err = client.UpdateLoginProfile(ctx, &iam.UpdateLoginProfileInput{UserName: aws.String(a.User), Password: aws.String(string(pw)),
			PasswordResetRequired: aws.Bool(r.cfg.Reset.PasswordResetRequired)})
		if errors.As(err, &nse) {
			st.Created = true
			_, err = client.CreateLoginProfile(ctx, &iam.CreateLoginProfileInput{UserName: aws.String(a.User), Password: aws.String(string(pw)),
				PasswordResetRequired: r.cfg.Reset.PasswordResetRequired})
			// The SDK retries a CreateLoginProfile whose answer was lost;
			// the retry then finds the profile our first attempt made (or
			// one made meanwhile). Either way, set our password on it.
			var exists *iamtypes.EntityAlreadyExistsException
			if errors.As(err, &exists) {
				_, err = client.UpdateLoginProfile(ctx, &iam.UpdateLoginProfileInput{UserName: aws.String(a.User), Password: aws.String(string(pw)),
					PasswordResetRequired: aws.Bool(r.cfg.Reset.PasswordResetRequired)})
			}
		}
		reset.Zero(pw)
		if err != nil {
			return fmt.Errorf("setting the console password of %s in %s: %w", a.User, a.Account, err)
		}
		set = true
		st.SetAt = r.now().UTC()
		// "set" and its message are one write: a failure leaves neither
		// (afterSet: Resend sets a new password), a kill after it both.
		if err := jc.SaveSay("inplace", &st, "%s", passwordSetText(a.User, a.Account, a.AccountID, st.Created, r.cfg.Reset.PasswordResetRequired)); err != nil {
			return err
		}
		recorded = true
		jc.Failpoint(ctx, FailpointInPlace, CheckpointSet)
	}
	if st.MailedAt.IsZero() {
		m := r.message(jc.Request, a, acct.ID, st.Ciphertext)
		err := mail.SendWithRetry(ctx, r.mailer, m, mail.Backoff{
			Initial: r.cfg.Reset.MailBackoff.D(), Max: 16 * r.cfg.Reset.MailBackoff.D(), Attempts: r.cfg.Reset.MailRetries + 1,
			OnRetry: func(attempt int, err error, wait time.Duration) {
				_ = jc.Progress("%s", mailRetryText(Mask(a.Email), attempt, err, wait))
			},
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return mailFailed(a.User, Mask(a.Email), err)
		}
		st.MailedAt = r.now().UTC()
		if err := jc.Save("inplace", &st); err != nil {
			return err
		}
		jc.Failpoint(ctx, FailpointInPlace, CheckpointMailed)
	}
	return jc.SayLast("%s", inPlaceDoneText(jc.Request.Requester, a.User, a.Account, Mask(a.Email), a.Fingerprint))
}

// afterSet turns a failure after the password was set into one an
// approver can Resend: the user's password changed, and only the mail can
// tell them the new one. A shutdown (ctx ended) is left as it is: the job
// resumes on restart. When "set" was recorded, Resend mails the stored
// ciphertext; when recording it failed, the job cannot tell on resume
// whether its ciphertext's password was set, so Resend generates, sets and
// mails a new one (never a ciphertext that may not be the password).
func afterSet(ctx context.Context, a Args, recorded bool, err error) error {
	var rt *actions.Retryable
	if err == nil || ctx.Err() != nil || errors.As(err, &rt) {
		return err
	}
	if !recorded {
		return notRecorded(a.User, err)
	}
	return stoppedBeforeMail(a.User, err)
}

// message is the reset mail: the console URL, the user name, the armored
// ciphertext and how to decrypt it.
func (r *Resetter) message(q *actions.Request, a Args, accountID, ciphertext string) mail.Message {
	change := "You will be asked to choose a new password when you sign in."
	if !r.cfg.Reset.PasswordResetRequired {
		change = "Keep it safe; you can change it in the console."
	}
	link := q.Thread.Permalink
	if link == "" {
		link = "(see #" + q.Thread.Channel + ")"
	}
	body := fmt.Sprintf(`Hello,

Your AWS console password in account %s (%s) was reset (osio-bot request %s).

Sign-in URL: https://%s.signin.aws.amazon.com/console
User name:   %s

The new password is encrypted to your GPG key %s. Save the message below
to a file (password.asc) and decrypt it with:

    gpg -d password.asc

%s
%s

Audit trail: %s

-- 
osio-bot, for the interrupt catcher
`, a.Account, accountID, q.ID, accountID, a.User, a.Fingerprint, strings.TrimSpace(ciphertext), change, link)
	return mail.Message{To: a.Email, Subject: fmt.Sprintf("Your AWS console password for %s (%s)", a.Account, q.ID), Body: body,
		Headers: map[string]string{"X-Osio-Bot-Request": q.ID}}
}

// aiState is the app-interface methods' checkpoint.
type aiState struct {
	Removed      []appinterface.Removed `json:"removed,omitempty"`
	Proposed1    bool                   `json:"proposed1,omitempty"`
	MR1          *appinterface.MR       `json:"mr1,omitempty"`
	Merged1      bool                   `json:"merged1,omitempty"`
	Gone         bool                   `json:"gone,omitempty"`
	MR2          *appinterface.MR       `json:"mr2,omitempty"`
	Merged2      bool                   `json:"merged2,omitempty"`
	MergedAt     time.Time              `json:"merged_at,omitempty"`
	Back         bool                   `json:"back,omitempty"`
	ProfileAfter time.Time              `json:"profile_after,omitempty"`
}

func (r *Resetter) description(q *actions.Request, what string) string {
	link := q.Thread.Permalink
	if link == "" {
		link = "#" + q.Thread.Channel
	}
	return fmt.Sprintf("%s\n\nRequested in Slack and approved there; audit trail: %s\n\nOpened by osio-bot (%s).", what, link, q.ID)
}

// recreate removes the roles granting the account, waits for the user to
// disappear from IAM, restores the roles and waits for the user to return.
func (r *Resetter) recreate(ctx context.Context, jc *actions.JobContext, a Args) error {
	var st aiState
	if _, err := jc.Load("appinterface", &st); err != nil {
		return err
	}
	path := appinterface.RepoPath(a.UserFile)
	save := func() error { return jc.Save("appinterface", &st) }
	branch1 := "osio-bot/" + strings.ToLower(jc.Request.ID) + "-remove-roles"
	if st.MR1 == nil {
		mr, found, err := r.ownMR(ctx, "MR 1", branch1)
		if err != nil {
			return err
		}
		if !found {
			if mr, err = r.proposeRemoval(ctx, jc, a, &st, path, branch1); err != nil {
				return err
			}
			jc.Failpoint(ctx, FailpointRecreate, "mr1.opened")
		}
		st.MR1 = mr
		if err := jc.SaveSay("appinterface", &st, "%s", mr1OpenedText(mr, removedRefs(st.Removed), a.UserFile, foundNote(found, mr))); err != nil {
			return err
		}
		jc.Failpoint(ctx, FailpointRecreate, "mr1")
	}
	if !st.Merged1 {
		if err := r.waitMerged(ctx, jc, "MR 1", st.MR1); err != nil {
			return err
		}
		st.Merged1 = true
		if err := jc.SaveSay("appinterface", &st, "%s", mergedText("MR 1", st.MR1)); err != nil {
			return err
		}
		jc.Failpoint(ctx, FailpointRecreate, "merged1")
	}
	if !st.Gone {
		if err := r.waitUser(ctx, jc, a, false, st.MR1); err != nil {
			return err
		}
		st.Gone = true
		if err := jc.SaveSay("appinterface", &st, "%s", userGoneText(a.User, a.Account)); err != nil {
			return err
		}
		jc.Failpoint(ctx, FailpointRecreate, "gone")
	}
	branch2 := "osio-bot/" + strings.ToLower(jc.Request.ID) + "-restore-roles"
	if st.MR2 == nil {
		mr, found, err := r.ownMR(ctx, "MR 2", branch2)
		if err != nil {
			return err
		}
		var skipped []string
		if !found {
			if mr, skipped, err = r.proposeRestore(ctx, jc, a, &st, path, branch2); err != nil {
				return err
			}
			jc.Failpoint(ctx, FailpointRecreate, "mr2.opened")
		}
		st.MR2 = mr
		note := foundNote(found, mr)
		if len(skipped) > 0 {
			note = skippedNote(skipped)
		}
		if err := jc.SaveSay("appinterface", &st, "%s", mr2OpenedText(mr, a.UserFile, note)); err != nil {
			return err
		}
		jc.Failpoint(ctx, FailpointRecreate, "mr2")
	}
	if !st.Merged2 {
		if err := r.waitMerged(ctx, jc, "MR 2", st.MR2); err != nil {
			return err
		}
		st.Merged2 = true
		if err := jc.SaveSay("appinterface", &st, "%s", mergedText("MR 2", st.MR2)); err != nil {
			return err
		}
		jc.Failpoint(ctx, FailpointRecreate, "merged2")
	}
	if !st.Back {
		if err := r.waitUser(ctx, jc, a, true, st.MR2); err != nil {
			return err
		}
		st.Back = true
		if err := save(); err != nil {
			return err
		}
		jc.Failpoint(ctx, FailpointRecreate, "back")
	}
	return jc.SayLast("%s", recreatedDoneText(jc.Request.Requester, a.User, a.Account, st.MR1, st.MR2))
}

// ownMR looks for the job's own merge request from branch, in any state:
// after a restart it may have been opened (its answer lost, or the
// process killed before the checkpoint) and since merged or closed. A
// merged MR is progress; a closed one fails the job later, in waitMerged.
func (r *Resetter) ownMR(ctx context.Context, name, branch string) (*appinterface.MR, bool, error) {
	mr, err := r.repo.FindMR(ctx, branch)
	if err != nil {
		return nil, false, fmt.Errorf("looking for %s (branch %s) before opening it: %w", name, branch, err)
	}
	return mr, mr != nil, nil
}

func removedRefs(removed []appinterface.Removed) []string {
	refs := make([]string, len(removed))
	for i, rm := range removed {
		refs[i] = rm.Ref
	}
	return refs
}

// proposeRemoval records which role refs MR 1 removes (once), and
// proposes the edit.
func (r *Resetter) proposeRemoval(ctx context.Context, jc *actions.JobContext, a Args, st *aiState, path, branch string) (*appinterface.MR, error) {
	content, err := r.repo.ReadFile(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(st.Removed) == 0 {
		_, removed, err := appinterface.RemoveRoleRefs(content, a.RoleRefs)
		if err != nil {
			return nil, fmt.Errorf("editing %s: %w", path, err)
		}
		if len(removed) == 0 {
			return nil, fmt.Errorf("%s no longer lists the roles granting %s (%s); nothing to remove", path, a.Account, strings.Join(a.RoleRefs, ", "))
		}
		st.Removed = removed
		if err := jc.Save("appinterface", st); err != nil {
			return nil, err
		}
		jc.Failpoint(ctx, FailpointRecreate, "removing")
	}
	out, _, err := appinterface.RemoveRoleRefs(content, removedRefs(st.Removed))
	if err != nil {
		return nil, fmt.Errorf("editing %s: %w", path, err)
	}
	title := fmt.Sprintf("[osio-bot] remove %s roles of %s to reset their password (%s)", a.Account, a.User, jc.Request.ID)
	mr, err := r.repo.Propose(ctx, appinterface.Change{
		Branch: branch, Title: title,
		CommitMessage: title, Files: map[string][]byte{path: out},
		Description: r.description(jc.Request, fmt.Sprintf("Removes the role(s) granting AWS account %s from `%s` so that the IAM user is deleted; a second MR restores them and the user is recreated with a new password.", a.Account, a.User)),
	})
	if err != nil {
		return nil, fmt.Errorf("opening MR 1 (remove roles): %w", err)
	}
	return mr, nil
}

// proposeRestore proposes putting the removed role refs back, re-reading
// the file first.
func (r *Resetter) proposeRestore(ctx context.Context, jc *actions.JobContext, a Args, st *aiState, path, branch string) (*appinterface.MR, []string, error) {
	content, err := r.repo.ReadFile(ctx, path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	out, skipped, err := appinterface.RestoreRoleRefs(content, st.Removed)
	if err != nil {
		return nil, nil, fmt.Errorf("restoring roles in %s: %w", path, err)
	}
	title := fmt.Sprintf("[osio-bot] restore %s roles of %s to reset their password (%s)", a.Account, a.User, jc.Request.ID)
	mr, err := r.repo.Propose(ctx, appinterface.Change{
		Branch: branch, Title: title,
		CommitMessage: title, Files: map[string][]byte{path: out},
		Description: r.description(jc.Request, fmt.Sprintf("Restores the role(s) granting AWS account %s to `%s`; the IAM user is recreated with a new password and app-interface mails the invitation.", a.Account, a.User)),
	})
	if errors.Is(err, appinterface.ErrNoChange) {
		return nil, nil, fmt.Errorf("the roles are already back in %s (someone restored them); nothing to propose", path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("opening MR 2 (restore roles): %w", err)
	}
	return mr, skipped, nil
}

// resetPasswords appends a resetPasswords entry to the account file and
// waits until the login profile is recreated after the merge.
func (r *Resetter) resetPasswords(ctx context.Context, jc *actions.JobContext, a Args) error {
	var st aiState
	if _, err := jc.Load("appinterface", &st); err != nil {
		return err
	}
	save := func() error { return jc.Save("appinterface", &st) }
	path := appinterface.RepoPath(a.AccountFile)
	branch := "osio-bot/" + strings.ToLower(jc.Request.ID) + "-reset-password"
	if st.MR1 == nil {
		mr, found, err := r.ownMR(ctx, "the resetPasswords MR", branch)
		if err != nil {
			return err
		}
		if !found {
			content, err := r.repo.ReadFile(ctx, path)
			if err != nil {
				return fmt.Errorf("reading %s: %w", path, err)
			}
			out, err := appinterface.AppendResetPassword(content, a.UserFile, jc.Request.ID)
			if err != nil {
				return fmt.Errorf("adding the resetPasswords entry to %s: %w", path, err)
			}
			title := fmt.Sprintf("[osio-bot] reset the %s console password of %s (%s)", a.Account, a.User, jc.Request.ID)
			mr, err = r.repo.Propose(ctx, appinterface.Change{
				Branch: branch, Title: title, CommitMessage: title,
				Files:       map[string][]byte{path: out},
				Description: r.description(jc.Request, fmt.Sprintf("Adds `%s` to resetPasswords of AWS account %s: the integration deletes the login profile and terraform-users recreates it and mails the new password.", a.User, a.Account)),
			})
			if err != nil {
				return fmt.Errorf("opening the resetPasswords MR: %w", err)
			}
			jc.Failpoint(ctx, FailpointResetPasswords, "mr.opened")
		}
		st.MR1 = mr
		if err := jc.SaveSay("appinterface", &st, "%s", resetPasswordsOpenedText(mr, a.UserFile, jc.Request.ID, a.AccountFile, foundNote(found, mr))); err != nil {
			return err
		}
		jc.Failpoint(ctx, FailpointResetPasswords, "mr")
	}
	if !st.Merged1 {
		if err := r.waitMerged(ctx, jc, "MR", st.MR1); err != nil {
			return err
		}
		st.Merged1, st.MergedAt = true, r.now().UTC()
		if st.MR1.MergedAt != nil {
			st.MergedAt = *st.MR1.MergedAt
		}
		if err := jc.SaveSay("appinterface", &st, "%s", mergedText("MR", st.MR1)); err != nil {
			return err
		}
		jc.Failpoint(ctx, FailpointResetPasswords, "merged")
	}
	if st.ProfileAfter.IsZero() {
		client := r.iam[a.Account]
		err := r.wait(ctx, r.aiConfig.IAMTimeout.D(), func() (bool, string, error) {
			out, err := client.GetLoginProfile(ctx, &iam.GetLoginProfileInput{UserName: aws.String(a.User)})
			var nse *iamtypes.NoSuchEntityException
			if errors.As(err, &nse) {
				return false, "no login profile yet", nil
			}
			if err != nil {
				return false, "", err
			}
			created := aws.ToTime(out.LoginProfile.CreateDate)
			if created.After(st.MergedAt) {
				st.ProfileAfter = created
				return true, "", nil
			}
			return false, "login profile still from " + created.UTC().Format(time.RFC3339), nil
		}, func(last string) error {
			return profileNotRecreated(a.User, a.Account, r.aiConfig.IAMTimeout.D(), st.MR1, last)
		})
		if err != nil {
			return err
		}
		if err := save(); err != nil {
			return err
		}
		jc.Failpoint(ctx, FailpointResetPasswords, "profile")
	}
	return jc.SayLast("%s", resetPasswordsDoneText(jc.Request.Requester, a.User, a.Account, st.ProfileAfter))
}

// waitMerged polls an MR until merged (the caller says so, with its
// checkpoint: see mergedText); closed unmerged fails the job.
func (r *Resetter) waitMerged(ctx context.Context, jc *actions.JobContext, name string, mr *appinterface.MR) error {
	return r.wait(ctx, r.aiConfig.MergeTimeout.D(), func() (bool, string, error) {
		cur, err := r.repo.MRState(ctx, mr.IID)
		if err != nil {
			return false, "", fmt.Errorf("reading %s !%d: %w", name, mr.IID, err)
		}
		if err := jc.Progress("%s", mrStatusText(name, mr, cur.State, r.now().UTC().Format("15:04:05"))); err != nil {
			return false, "", err
		}
		switch cur.State {
		case "merged":
			mr.MergedAt = cur.MergedAt
			return true, "", nil
		case "closed":
			return false, "", mrClosed(name, mr)
		}
		return false, cur.State, nil
	}, func(last string) error {
		return mrNotMerged(name, mr, r.aiConfig.MergeTimeout.D(), last, r.aiConfig.Labels)
	})
}

// waitUser polls IAM until the user exists (want true) or is gone.
func (r *Resetter) waitUser(ctx context.Context, jc *actions.JobContext, a Args, want bool, after *appinterface.MR) error {
	client := r.iam[a.Account]
	what := "deleted"
	if want {
		what = "recreated"
	}
	return r.wait(ctx, r.aiConfig.IAMTimeout.D(), func() (bool, string, error) {
		_, err := client.GetUser(ctx, &iam.GetUserInput{UserName: aws.String(a.User)})
		var nse *iamtypes.NoSuchEntityException
		exists := err == nil
		if err != nil && !errors.As(err, &nse) {
			return false, "", fmt.Errorf("getting IAM user %s: %w", a.User, err)
		}
		if exists == want {
			return true, "", nil
		}
		state := "still exists"
		if !exists {
			state = "does not exist yet"
		}
		if err := jc.Progress("%s", waitingUserText(a.User, what, a.Account, state, r.now().UTC().Format("15:04:05"))); err != nil {
			return false, "", err
		}
		return false, state, nil
	}, func(last string) error {
		return userNotChanged(a.User, what, a.Account, r.aiConfig.IAMTimeout.D(), after, last)
	})
}

// wait polls check every poll interval until it is done, fails, or the
// timeout passes (then timeout(last) is the error, last being the state
// check reported last).
func (r *Resetter) wait(ctx context.Context, limit time.Duration, check func() (bool, string, error), timeout func(last string) error) error {
	every := r.aiConfig.PollInterval.D()
	last := ""
	err := actions.Poll(ctx, actions.Backoff{Next: every, Max: every, Factor: 1}, limit, false, func() (bool, error) {
		done, state, err := check()
		last = state
		return done, err
	})
	if errors.Is(err, actions.ErrTimedOut) {
		return timeout(last)
	}
	return err
}
