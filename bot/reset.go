package bot

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/actions/passwordreset"
)

// ResetKind presents password reset requests: the facts that guide the
// choice, and one Approve button per method.
func ResetKind() Kind {
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
func (b *Bot) ResetCommand(r *passwordreset.Resetter, users UserInfo) Command {
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
				cctx, cancel := context.WithTimeout(ctx, b.Settings.CheckTimeout)
				defer cancel()
				// Who asks comes first: a guest is refused whatever they
				// typed, and without users.info nobody is known not to be one.
				who, err := users.SlackUser(cctx, inv.Cmd.UserID)
				if err != nil {
					b.Log.Warn("users.info", zap.String("user", inv.Cmd.UserID), zap.Error(err))
					return Reply{Text: ":warning: I could not read your Slack profile just now, so nothing was requested. Try again in a minute."}
				}
				if who.Guest {
					b.Log.Info("reset refused: Slack guest", zap.String("user", inv.Cmd.UserID))
					return Reply{Text: guestRefusal}
				}
				q, msg := r.Parse(inv.Args)
				if msg != "" {
					return Reply{Text: ":warning: " + msg}
				}
				email := ""
				if q.User == "" {
					email = who.Email
				}
				args, msg, err := r.Check(cctx, q, inv.Cmd.UserID, email)
				if err != nil {
					b.Log.Warn("checking reset", zap.Error(err))
					return Reply{Text: ":warning: I could not check that reset just now (AWS, the directory or app-interface did not answer), so nothing was requested. Try again in a minute."}
				}
				if msg != "" {
					return Reply{Text: ":warning: " + msg}
				}
				return b.NewRequest(inv, passwordreset.Kind, args, []string{"reset:" + args.Account + ":" + args.User},
					fmt.Sprintf("console password reset of `%s` in %s", args.User, args.Account))
			}},
		},
	}
}
