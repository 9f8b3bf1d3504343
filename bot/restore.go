package bot

import (
	"context"
	"fmt"

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
		Parse: func(words []string) (Parsed, string) {
			if len(words) != 3 {
				return Parsed{}, "Usage: `/osio-restore REQUEST-ID TABLE NEW_TABLE_NAME`, e.g. `/osio-restore R-000042 prod_txlog dev_txlog`."
			}
			a := restore.Args{ExportID: words[0], Table: words[1], NewTable: words[2]}
			// No lock yet: the new table's name is not checked until Check.
			return Parsed{Args: a,
				What: fmt.Sprintf("restore of %s from %s into new table %s in %s", code(a.Table, 255), code(a.ExportID, 40), code(a.NewTable, 255), r.DestAccount().Name)}, ""
		},
		Check: func(ctx context.Context, q *actions.Request) (Checked, error) {
			var in restore.Args
			if err := q.DecodeArgs(&in); err != nil {
				return Checked{}, err
			}
			args, msg, err := r.Check(ctx, in.ExportID, in.Table, in.NewTable)
			if err != nil || msg != "" {
				return Checked{Refusal: msg}, err
			}
			return Checked{Args: args, Locks: restore.Locks(args),
				What: fmt.Sprintf("restore of `%s` from %s into new table `%s` in %s", args.Table, args.ExportID, args.NewTable, r.DestAccount().Name)}, nil
		},
		Unchecked: "I could not check that restore",
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
				return b.Intake(ctx, inv, restore.Kind)
			}},
		},
	}
}
