package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/actions/export"
	"github.com/osio/osio-bot/config"
)

// Fuzzing the slash-command parser (issue 8, "Bad input, fuzzed"): the
// command table's dispatch, and /osio-export's argument parsing down to
// the request it would store.
//
// Run: go test -run '^$' -fuzz '^FuzzSlashCommand$' -fuzztime 10s ./bot

func FuzzSlashCommand(f *testing.F) {
	for _, s := range []string{
		"", "help", "HELP", "Help me", "status", "status R-000001", "STATUS x y", "prod_txlog", "--native prod_txlog",
		"--datapipeline a1b b2c --native", "--force prod_txlog", "prod_txlog prod_txlog", "-- x", "--NATIVE abc",
		"tab`le", "<!channel> <@U1>", "a\u00a0b", "täble", strings.Repeat("t", 256), "x\tstatus", "helpx",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, text string, emptyRunsDefault bool) {
		args := strings.Fields(text) // as the bot splits Slack's text
		if err := checkDispatch(Command.Dispatch, args, emptyRunsDefault); err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if err := checkExportArgs(exportCommand, args); err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if err := checkGuestRefused(args); err != nil {
			t.Fatalf("%q: %v", text, err)
		}
	})
}

// checkGuestRefused: a Slack guest asking for a reset is refused whatever
// they type (help and status aside), before anything is parsed or checked:
// the intake takes any words, and the check asks users.info first.
func checkGuestRefused(args []string) error {
	if len(args) > 0 && (strings.EqualFold(args[0], "help") || strings.EqualFold(args[0], "status")) {
		return nil
	}
	// A nil resetter: reaching it would panic.
	k := ResetKind(nil, fakeUsers{"UGUEST": {Email: "dana@example.com", Guest: true}})
	p, msg := k.Parse(slices.Clone(args))
	if msg != "" {
		return fmt.Errorf("the intake refused a reset's words: %q", msg)
	}
	data, err := json.Marshal(p.Args)
	if err != nil {
		return err
	}
	c, err := k.Check(context.Background(), &actions.Request{Requester: "UGUEST", Args: data})
	if err != nil || c.Refusal != guestRefusal {
		return fmt.Errorf("a guest got %q (%v)", c.Refusal, err)
	}
	return nil
}

// checkDispatch runs dispatch on a table with help, status and a default
// form, and checks that the form the first word names (ignoring case) ran
// with the other words, help answered help, and nothing else ran.
func checkDispatch(dispatch func(Command, context.Context, Invocation) Reply, args []string, emptyRunsDefault bool) error {
	var ran []string
	record := func(form string) func(context.Context, Invocation) Reply {
		return func(_ context.Context, inv Invocation) Reply {
			ran = append(ran, form+"|"+strings.Join(inv.Args, "|"))
			return Reply{Text: form}
		}
	}
	c := Command{Name: "/x", Summary: "does x.", EmptyRunsDefault: emptyRunsDefault, Subs: []Sub{
		{Name: "help", Help: "shows this help."},
		{Name: "status", Args: "[ID]", Help: "lists.", Run: record("status")},
		{Args: "THING...", Help: "does it.", Run: record("default")},
	}}
	got := dispatch(c, context.Background(), Invocation{Args: slices.Clone(args)})
	var want, wantRan string
	switch {
	case len(args) > 0 && strings.EqualFold(args[0], "help"):
		want = c.HelpText()
	case len(args) > 0 && strings.EqualFold(args[0], "status"):
		want, wantRan = "status", "status|"+strings.Join(args[1:], "|")
	case len(args) == 0 && !emptyRunsDefault:
		want = c.HelpText()
	default:
		want, wantRan = "default", "default|"+strings.Join(args, "|")
	}
	if got.Text != want {
		return fmt.Errorf("dispatch answered %q, want %q", got.Text, want)
	}
	if wantRan == "" && len(ran) != 0 || wantRan != "" && (len(ran) != 1 || ran[0] != wantRan) {
		return fmt.Errorf("dispatch ran %q, want %q", ran, wantRan)
	}
	return nil
}

// recordingChecker is the real exporter's name check, recording what the
// bot passes on; the AWS checks pass.
type recordingChecker struct {
	real             *export.Exporter
	names, tables    [][]string
	native           int
	defaultMethodArg string
}

func (r *recordingChecker) CheckNames(t []string) ([]string, string) {
	r.names = append(r.names, slices.Clone(t))
	return r.real.CheckNames(t)
}
func (r *recordingChecker) CheckTables(_ context.Context, t []string) (string, error) {
	r.tables = append(r.tables, slices.Clone(t))
	return "", nil
}
func (r *recordingChecker) CheckNative(context.Context, []string) (string, error) {
	r.native++
	return "", nil
}
func (r *recordingChecker) Plan(context.Context, string, []string) []string { return nil }
func (r *recordingChecker) Method() string                                  { return r.defaultMethodArg }

// createOnly is a store that only creates requests (and records them).
type createOnly struct {
	Store
	created []*actions.Request
}

func (s *createOnly) Create(r *actions.Request, _ string, _ ...actions.Event) (actions.Created, error) {
	c := *r
	c.ID = fmt.Sprintf("R-%06d", len(s.created)+1)
	s.created = append(s.created, &c)
	return actions.Created{Request: &c}, nil
}

// refusedOnly reports whether st holds one request, refused with a reason
// (the audit of a command that did not parse).
func refusedOnly(st *createOnly) bool {
	return len(st.created) == 1 && st.created[0].State == actions.Refused && st.created[0].Error != "" && len(st.created[0].Locks) == 0
}

// checkExportArgs runs /osio-export's default form on args and checks the
// request it would store against the usage "[--native|--datapipeline]
// TABLE [TABLE...]": the last method flag wins, any other --option is
// refused before anything is checked, and the other words are the tables,
// passed on as typed.
func checkExportArgs(run func(*Bot, ExportChecker, Invocation) Reply, args []string) error {
	cfg := config.Defaults()
	cfg.Accounts = []config.Account{{Name: "osio", Region: "us-east-1"}, {Name: "osio-dev", Region: "us-east-1"}}
	real, err := export.New(cfg, export.Deps{})
	if err != nil {
		return err
	}
	x := &recordingChecker{real: real, defaultMethodArg: export.MethodDataPipeline}
	st := &createOnly{}
	b := New(Deps{Store: st, Log: zap.NewNop(), Settings: Settings{ApprovalsChannel: "CAPPROVALS", Expiry: time.Hour},
		Kinds: map[string]Kind{export.Kind: ExportKind(x)}})
	inv := Invocation{Cmd: slack.SlashCommand{Command: "/osio-export", UserID: "UDEV", ChannelID: "CDEV"}, Args: slices.Clone(args)}
	reply := run(b, x, inv)

	method, badOption := export.MethodDataPipeline, ""
	var names []string
	for _, a := range args {
		switch a {
		case "--native":
			method = export.MethodNative
		case "--datapipeline":
			method = export.MethodDataPipeline
		default:
			if strings.HasPrefix(a, "--") && badOption == "" {
				badOption = a
			} else if !strings.HasPrefix(a, "--") {
				names = append(names, a)
			}
		}
	}
	if len(args) == 0 {
		// No arguments: the help, nothing checked.
		if len(x.names) != 0 || len(st.created) != 0 || !strings.Contains(reply.Text, "/osio-export") {
			return fmt.Errorf("no arguments: checked %q, created %d, replied %q", x.names, len(st.created), reply.Text)
		}
		return nil
	}
	if badOption != "" {
		if len(x.names) != 0 || !refusedOnly(st) || !strings.Contains(reply.Text, "Unknown option") {
			return fmt.Errorf("option %q: checked %q, created %d, replied %q", badOption, x.names, len(st.created), reply.Text)
		}
		return nil
	}
	if len(x.names) != 1 || !slices.Equal(x.names[0], names) {
		return fmt.Errorf("CheckNames got %q, want %q once", x.names, names)
	}
	tables, msg := real.CheckNames(names)
	if msg != "" {
		if !refusedOnly(st) || len(x.tables) != 0 || !strings.Contains(reply.Text, ":warning:") {
			return fmt.Errorf("invalid names %q: checked in AWS %q, created %d, replied %q", names, x.tables, len(st.created), reply.Text)
		}
		return nil
	}
	if len(st.created) != 1 {
		return fmt.Errorf("valid %q: created %d requests, replied %q", args, len(st.created), reply.Text)
	}
	q := st.created[0]
	if q.State != actions.Received || len(x.tables) != 0 || !strings.Contains(reply.Text, "received") || reply.After == nil {
		return fmt.Errorf("valid %q: stored %s, checked %q in AWS before the ack, replied %q", args, q.State, x.tables, reply.Text)
	}
	// The checks, after the ack.
	if c, err := checkExport(context.Background(), x, q); err != nil || c.Refusal != "" || !slices.Equal(c.Locks, q.Locks) {
		return fmt.Errorf("valid %q: checked %+v %v", args, c, err)
	}
	if len(x.tables) != 1 || !slices.Equal(x.tables[0], tables) {
		return fmt.Errorf("valid %q: CheckTables got %q, want %q once", args, x.tables, tables)
	}
	var a export.Args
	if err := json.Unmarshal(q.Args, &a); err != nil {
		return fmt.Errorf("stored args %s: %w", q.Args, err)
	}
	if q.Kind != export.Kind || !slices.Equal(a.Tables, tables) || a.Method != method || !slices.Equal(q.Locks, export.Locks(tables)) {
		return fmt.Errorf("stored %s %+v locks %q, want tables %q method %s", q.Kind, a, q.Locks, tables, method)
	}
	if wantNative := method == export.MethodNative; (x.native == 1) != wantNative || x.native > 1 {
		return fmt.Errorf("method %s: the point-in-time check ran %d times", method, x.native)
	}
	return nil
}

// exportCommand runs /osio-export's default form as the bot does.
func exportCommand(b *Bot, x ExportChecker, inv Invocation) Reply {
	if len(inv.Args) > 0 && (strings.EqualFold(inv.Args[0], "status") || strings.EqualFold(inv.Args[0], "help")) {
		return b.Intake(context.Background(), inv, export.Kind) // as if no sub-command matched
	}
	return b.ExportCommand(x, "osio", "osio-dev").Dispatch(context.Background(), inv)
}

// TestExportArgsCheckCatchesBrokenParsing shows that the fuzz target's
// export check fails argument parsing with one deliberate fault.
func TestExportArgsCheckCatchesBrokenParsing(t *testing.T) {
	if err := checkExportArgs(exportCommand, []string{"--native", "abc", "abc", "--datapipeline", "def"}); err != nil {
		t.Fatalf("the real /osio-export: %v", err)
	}
	without := func(drop string) func(*Bot, ExportChecker, Invocation) Reply {
		return func(b *Bot, x ExportChecker, inv Invocation) Reply {
			var kept []string
			for _, a := range inv.Args {
				if a != drop {
					kept = append(kept, a)
				}
			}
			inv.Args = kept
			return exportCommand(b, x, inv)
		}
	}
	broken := map[string]struct {
		run  func(*Bot, ExportChecker, Invocation) Reply
		args []string
	}{
		"ignores --native":                 {without("--native"), []string{"--native", "abc"}},
		"drops an unknown option silently": {without("--force"), []string{"--force", "abc"}},
		"takes the first method flag":      {without("--datapipeline"), []string{"--native", "abc", "--datapipeline"}},
		"drops the first table": {func(b *Bot, x ExportChecker, inv Invocation) Reply {
			inv.Args = inv.Args[1:]
			return exportCommand(b, x, inv)
		}, []string{"abc", "def"}},
	}
	for name, c := range broken {
		if err := checkExportArgs(c.run, c.args); err == nil {
			t.Errorf("parsing that %s: not caught", name)
		} else {
			t.Logf("parsing that %s: %v", name, err)
		}
	}
}

// TestDispatchCheckCatchesBrokenDispatch shows that the fuzz target's
// check fails a dispatcher with one deliberate fault.
func TestDispatchCheckCatchesBrokenDispatch(t *testing.T) {
	if err := checkDispatch(Command.Dispatch, []string{"Status", "R-1"}, false); err != nil {
		t.Fatalf("the real Dispatch: %v", err)
	}
	broken := map[string]struct {
		dispatch func(Command, context.Context, Invocation) Reply
		args     []string
	}{
		"matches sub-commands case-sensitively": {func(c Command, ctx context.Context, inv Invocation) Reply {
			if len(inv.Args) > 0 && inv.Args[0] != strings.ToLower(inv.Args[0]) {
				return c.Subs[2].Run(ctx, inv)
			}
			return c.Dispatch(ctx, inv)
		}, []string{"STATUS"}},
		"passes the sub-command's name on": {func(c Command, ctx context.Context, inv Invocation) Reply {
			if len(inv.Args) > 0 && inv.Args[0] == "status" {
				return c.Subs[1].Run(ctx, inv)
			}
			return c.Dispatch(ctx, inv)
		}, []string{"status", "R-1"}},
		"matches a prefix": {func(c Command, ctx context.Context, inv Invocation) Reply {
			if len(inv.Args) > 0 && strings.HasPrefix(inv.Args[0], "help") {
				return Reply{Text: c.HelpText()}
			}
			return c.Dispatch(ctx, inv)
		}, []string{"helpdesk"}},
	}
	for name, b := range broken {
		if err := checkDispatch(b.dispatch, b.args, false); err == nil {
			t.Errorf("a dispatcher that %s: not caught", name)
		} else {
			t.Logf("a dispatcher that %s: %v", name, err)
		}
	}
}
