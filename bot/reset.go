package bot

import (
	"context"
	"fmt"
	"strings"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/actions/passwordreset"
)

// ResetKind presents password reset requests: the facts that guide the
// choice, and one Approve button per method.
func ResetKind(r *passwordreset.Resetter, users UserInfo) Kind {
	decode := func(q *actions.Request) passwordreset.Args {
		var a passwordreset.Args
		_ = q.DecodeArgs(&a)
		return a
	}
	return Kind{
		Describe: func(q *actions.Request) (string, []string) {
			return "Console password reset", passwordreset.Facts(decode(q))
		},
		Plan: func(_ context.Context, q *actions.Request) []string {
			a := decode(q)
			var out []string
			for _, m := range a.Methods {
				line := "• " + passwordreset.MethodLabel(m)
				switch m {
				case passwordreset.InPlace:
					line += fmt.Sprintf(": generate a password meeting %s's policy, encrypt it to `%s`, set it, mail it to %s", a.Account, a.Fingerprint, passwordreset.Mask(a.Email))
				case passwordreset.Recreate:
					line += fmt.Sprintf(": MR 1 removes `%v` from `%s`, wait for the user to go, MR 2 restores them", a.RoleRefs, a.UserFile)
				case passwordreset.ResetPasswords:
					line += fmt.Sprintf(": one MR adds `%s` to resetPasswords in `%s`", a.User, a.AccountFile)
				}
				if m == a.Recommended {
					line += " *(recommended)*"
				}
				out = append(out, line)
			}
			return out
		},
		RefuseRetry: func(s actions.Store, q *actions.Request) (string, error) {
			return passwordreset.RefuseResend(s, q)
		},
		// The words are parsed after the ack, in Check, after users.info:
		// a Slack guest is refused whatever they typed.
		Parse: func(words []string) (Parsed, string) {
			what := "console password reset of your own IAM user"
			if len(words) > 0 {
				what = "console password reset " + code(strings.Join(words, " "), 120)
			}
			return Parsed{Args: resetWords{Words: words}, What: what}, ""
		},
		Check: func(ctx context.Context, req *actions.Request) (Checked, error) {
			var in resetWords
			if err := req.DecodeArgs(&in); err != nil {
				return Checked{}, err
			}
			// Who asks comes first: a guest is refused whatever they
			// asked, and without users.info nobody is known not to be one.
			who, err := users.SlackUser(ctx, req.Requester)
			if err != nil {
				return Checked{}, fmt.Errorf("users.info: %w", err)
			}
			if who.Guest {
				return Checked{Refusal: guestRefusal}, nil
			}
			q, msg := r.Parse(in.Words)
			if msg != "" {
				return Checked{Refusal: msg}, nil
			}
			email := ""
			if q.User == "" {
				email = who.Email
			}
			args, msg, err := r.Check(ctx, q, req.Requester, email)
			if err != nil || msg != "" {
				return Checked{Refusal: msg}, err
			}
			return Checked{Args: args, Locks: []string{"reset:" + args.Account + ":" + args.User},
				What: fmt.Sprintf("console password reset of `%s` in %s", args.User, args.Account)}, nil
		},
		Unchecked: "I could not check that reset (Slack, the directory, AWS or app-interface did not answer)",
		Options: func(q *actions.Request) []Option {
			a := decode(q)
			var out []Option
			for _, m := range a.Methods {
				out = append(out, Option{Value: m, Label: passwordreset.MethodLabel(m), Recommended: m == a.Recommended && len(a.Methods) > 1})
			}
			return out
		},
	}
}

// resetWords are a reset's words as typed, kept with its intake.
type resetWords struct {
	Words []string `json:"words"`
}

// SlackUser is what a reset needs to know of the Slack user asking.
type SlackUser struct {
	// Email is the profile's e-mail ("" when Slack shows none).
	Email string
	// Guest is a multi-channel (is_restricted) or single-channel
	// (is_ultra_restricted) guest of the workspace.
	Guest bool
}

// UserInfo is the Slack call (users.info) that says who is asking.
type UserInfo interface {
	SlackUser(ctx context.Context, userID string) (SlackUser, error)
}

// guestRefusal is the whole answer to a Slack guest: guests are outside
// the company, and their profile e-mail proves nothing.
const guestRefusal = ":no_entry: Slack guest accounts cannot use /osio-reset-password, so nothing was requested. " +
	"If you need a console password reset, ask a full member of your team to request it for you."

// ResetCommand is /osio-reset-password.
func (b *Bot) ResetCommand() Command {
	return Command{
		Name:             "/osio-reset-password",
		Summary:          "reset an AWS console password, after an interrupt catcher approves and picks the method. Without IAM_USER it means your own.",
		EmptyRunsDefault: true,
		Subs: []Sub{
			{Name: "help", Help: "shows this help."},
			{Name: "status", Args: "[REQUEST-ID]", Help: "lists running and recent resets, or shows one.", Run: func(ctx context.Context, inv Invocation) Reply {
				return b.Status(ctx, passwordreset.Kind, inv)
			}},
			{Args: "[IAM_USER] [--account NAME] [--method inplace|recreate|resetpasswords]", Help: "asks to reset the password; the reply carries the request id.", Run: func(ctx context.Context, inv Invocation) Reply {
				return b.Intake(ctx, inv, passwordreset.Kind)
			}},
		},
	}
}
