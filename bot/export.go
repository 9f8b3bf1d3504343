package bot

import (
	"context"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/actions/export"
)

// ExportChecker is what /osio-export needs before approval.
type ExportChecker interface {
	CheckNames(tables []string) ([]string, string)
	CheckTables(ctx context.Context, tables []string) (string, error)
	CheckNative(ctx context.Context, tables []string) (string, error)
	Plan(ctx context.Context, method string, tables []string) []string
	Method() string
}

// ExportKind presents export requests on cards and plans them.
func ExportKind(x ExportChecker) Kind {
	return Kind{
		Public: true, // table names and method; nothing secret
		Describe: func(r *actions.Request) (string, []string) {
			var a export.Args
			_ = r.DecodeArgs(&a)
			return "DynamoDB export", []string{
				fmt.Sprintf("*Tables:* `%s`", strings.Join(a.Tables, "`, `")),
				fmt.Sprintf("*Method:* %s", methodName(a.Method)),
			}
		},
		Plan: func(ctx context.Context, r *actions.Request) []string {
			var a export.Args
			if err := r.DecodeArgs(&a); err != nil {
				return []string{"cannot read the request: " + err.Error()}
			}
			return x.Plan(ctx, a.Method, a.Tables)
		},
	}
}

func methodName(m string) string {
	switch m {
	case "native":
		return "DynamoDB native export to S3"
	default:
		return "AWS Data Pipeline (runbook)"
	}
}

// ExportCommand is /osio-export.
func (b *Bot) ExportCommand(x ExportChecker, source, dest string) Command {
	return Command{
		Name:    "/osio-export",
		Summary: fmt.Sprintf("export DynamoDB tables from the %s account to the %s account's S3 bucket, after an interrupt catcher approves.", source, dest),
		Subs: []Sub{
			{Name: "help", Help: "shows this help.", Run: func(context.Context, Invocation) Reply { return Reply{} }},
			{Name: "status", Args: "[REQUEST-ID]", Help: "lists running and recent exports, or shows one.", Run: func(ctx context.Context, inv Invocation) Reply {
				return b.Status(ctx, export.Kind, inv)
			}},
			{Args: "[--native|--datapipeline] TABLE [TABLE...]", Help: fmt.Sprintf("asks to export the tables (default method: %s); the reply carries the request id.", methodName(x.Method())), Run: func(ctx context.Context, inv Invocation) Reply {
				return b.requestExport(ctx, x, inv)
			}},
		},
	}
}

func (b *Bot) requestExport(ctx context.Context, x ExportChecker, inv Invocation) Reply {
	method := x.Method()
	var names []string
	for _, a := range inv.Args {
		switch {
		case a == "--native":
			method = export.MethodNative
		case a == "--datapipeline":
			method = export.MethodDataPipeline
		case strings.HasPrefix(a, "--"):
			return Reply{Text: fmt.Sprintf(":warning: Unknown option %s. Usage: `/osio-export [--native|--datapipeline] TABLE [TABLE...]`; see `/osio-export help`.", code(a, 40))}
		default:
			names = append(names, a)
		}
	}
	tables, msg := x.CheckNames(names)
	if msg != "" {
		return Reply{Text: ":warning: " + msg}
	}
	cctx, cancel := context.WithTimeout(ctx, b.Settings.CheckTimeout)
	defer cancel()
	msg, err := x.CheckTables(cctx, tables)
	if err != nil {
		b.Log.Warn("checking tables", zap.Strings("tables", tables), zap.Error(err))
		return Reply{Text: ":warning: I could not check the tables in AWS just now, so nothing was requested. Try again in a minute; if it persists, tell the bot's on-call."}
	}
	if msg == "" && method == export.MethodNative {
		msg, err = x.CheckNative(cctx, tables)
		if err != nil {
			b.Log.Warn("checking point-in-time recovery", zap.Strings("tables", tables), zap.Error(err))
			return Reply{Text: ":warning: I could not check the tables' point-in-time recovery just now, so nothing was requested. Try again in a minute."}
		}
	}
	if msg != "" {
		return Reply{Text: ":warning: " + msg}
	}
	what := fmt.Sprintf("export of `%s` by %s", strings.Join(tables, "`, `"), methodName(method))
	return b.NewRequest(inv, export.Kind, export.Args{Tables: tables, Method: method}, export.Locks(tables), what)
}
