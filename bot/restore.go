package bot

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/actions/restore"
)

// RestoreKind presents restore requests.
func RestoreKind(r *restore.Restorer, autoApprove bool) Kind {
	return Kind{
		AutoApprove: autoApprove,
		Public:      true, // tables and the export it restores; nothing secret
		Describe: func(q *actions.Request) (string, []string) {
			var a restore.Args
			_ = q.DecodeArgs(&a)
			dest := r.DestAccount()
			return "DynamoDB restore", []string{
				fmt.Sprintf("*From export:* %s (%s) · table `%s`", a.ExportID, link(a.ExportThread), a.Table),
				fmt.Sprintf("*New table:* `%s` in %s (%s)", a.NewTable, dest.Name, dest.ID),
			}
		},
		Plan: func(_ context.Context, q *actions.Request) []string {
			var a restore.Args
			if err := q.DecodeArgs(&a); err != nil {
				return []string{"cannot read the request: " + err.Error()}
			}
			return r.Plan(a)
		},
	}
}

func link(permalink string) string {
	if permalink == "" {
		return "thread not posted"
	}
	return "<" + permalink + "|thread>"
}

// RestoreCommand is /osio-restore.
func (b *Bot) RestoreCommand(r *restore.Restorer, needsApproval bool) Command {
	approval := "after an interrupt catcher approves"
	if !needsApproval {
		approval = "at once (restores need no approval here)"
	}
	return Command{
		Name:    "/osio-restore",
		Summary: fmt.Sprintf("import a finished native export into a new table in %s, %s.", r.DestAccount().Name, approval),
		Subs: []Sub{
			{Name: "help", Help: "shows this help."},
			{Name: "status", Args: "[REQUEST-ID]", Help: "lists running and recent restores, or shows one.", Run: func(ctx context.Context, inv Invocation) Reply {
				return b.Status(ctx, restore.Kind, inv)
			}},
			{Args: "REQUEST-ID TABLE NEW_TABLE_NAME", Help: "restores TABLE from export REQUEST-ID into a new table.", Run: func(ctx context.Context, inv Invocation) Reply {
				if len(inv.Args) != 3 {
					return Reply{Text: ":warning: Usage: `/osio-restore REQUEST-ID TABLE NEW_TABLE_NAME`, e.g. `/osio-restore R-000042 prod_txlog dev_txlog`."}
				}
				cctx, cancel := context.WithTimeout(ctx, b.Settings.CheckTimeout)
				defer cancel()
				args, msg, err := r.Check(cctx, inv.Args[0], inv.Args[1], inv.Args[2])
				if err != nil {
					b.Log.Warn("checking restore", zap.Error(err))
					return Reply{Text: ":warning: I could not check that restore just now, so nothing was requested. Try again in a minute."}
				}
				if msg != "" {
					return Reply{Text: ":warning: " + msg}
				}
				return b.NewRequest(inv, restore.Kind, args, restore.Locks(args),
					fmt.Sprintf("restore of `%s` from %s into new table `%s` in %s", args.Table, args.ExportID, args.NewTable, r.DestAccount().Name))
			}},
		},
	}
}
