package bot

import (
	"context"
	"fmt"
	"strings"

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
		Parse:     func(words []string) (Parsed, string) { return parseExport(x, words) },
		Check:     func(ctx context.Context, r *actions.Request) (Checked, error) { return checkExport(ctx, x, r) },
		Unchecked: "I could not check the tables in AWS",
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
				return b.Intake(ctx, inv, export.Kind)
			}},
		},
	}
}

// parseExport reads "[--native|--datapipeline] TABLE [TABLE...]".
func parseExport(x ExportChecker, words []string) (Parsed, string) {
	method := x.Method()
	var names []string
	for _, a := range words {
		switch {
		case a == "--native":
			method = export.MethodNative
		case a == "--datapipeline":
			method = export.MethodDataPipeline
		case strings.HasPrefix(a, "--"):
			return Parsed{}, fmt.Sprintf("Unknown option %s. Usage: `/osio-export [--native|--datapipeline] TABLE [TABLE...]`; see `/osio-export help`.", code(a, 40))
		default:
			names = append(names, a)
		}
	}
	tables, msg := x.CheckNames(names)
	if msg != "" {
		return Parsed{}, msg
	}
	return Parsed{Args: export.Args{Tables: tables, Method: method}, Locks: export.Locks(tables),
		What: fmt.Sprintf("export of `%s` by %s", strings.Join(tables, "`, `"), methodName(method))}, ""
}

// checkExport checks, after the ack, that the tables exist and, for a
// native export, that point-in-time recovery is on.
func checkExport(ctx context.Context, x ExportChecker, r *actions.Request) (Checked, error) {
	var a export.Args
	if err := r.DecodeArgs(&a); err != nil {
		return Checked{}, err
	}
	msg, err := x.CheckTables(ctx, a.Tables)
	if err != nil {
		return Checked{}, fmt.Errorf("checking tables %v: %w", a.Tables, err)
	}
	if msg == "" && a.Method == export.MethodNative {
		if msg, err = x.CheckNative(ctx, a.Tables); err != nil {
			return Checked{}, fmt.Errorf("checking point-in-time recovery of %v: %w", a.Tables, err)
		}
	}
	if msg != "" {
		return Checked{Refusal: msg}, nil
	}
	return Checked{Args: a, Locks: r.Locks, What: r.What}, nil
}
