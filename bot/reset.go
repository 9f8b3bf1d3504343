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

// UserInfo is the Slack call used to find the requester's e-mail.
type UserInfo interface {
	Email(ctx context.Context, userID string) (string, error)
}

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
				q, msg := r.Parse(inv.Args)
				if msg != "" {
					return Reply{Text: ":warning: " + msg}
				}
				cctx, cancel := context.WithTimeout(ctx, b.Settings.CheckTimeout)
				defer cancel()
				email := ""
				if q.User == "" {
					var err error
					if email, err = users.Email(cctx, inv.Cmd.UserID); err != nil {
						b.Log.Warn("users.info", zap.Error(err))
						return Reply{Text: ":warning: I could not read your Slack profile just now. Name the IAM user: `/osio-reset-password IAM_USER`."}
					}
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
