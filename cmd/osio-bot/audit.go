package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/osio/osio-bot/app"
	"github.com/osio/osio-bot/audit"
	"github.com/osio/osio-bot/config"
	"github.com/osio/osio-bot/store"
)

const auditUsage = `usage:
  osio-bot audit export [--config FILE | --file PATH] [--since DATE] [--until DATE] [--format jsonl|csv] [--out FILE]
      one record per request created in [since, until): who asked, where and what, the plan,
      the decision, every event with its time, the outcome, the thread's permalink.
      DATE is 2006-01-02 or RFC 3339; since defaults to the beginning, until to now.
      The store is the config's (bolt: stop the bot first, or export a copy of the file
      with --file; dynamodb: any time).
  osio-bot audit verify [--config FILE | --file PATH]
      recomputes each request's hash chain of events and names every request whose
      events were changed, removed or reordered; exit 1 if any.
`

// auditCmd serves "audit ...".
func auditCmd(args []string, stdout, stderr io.Writer) int {
	return dispatch("audit", auditUsage, map[string]subcommand{"export": auditExport, "verify": auditVerify}, args, stdout, stderr)
}

func auditExport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "/etc/osio-bot/config.yaml", "configuration file (its store is exported)")
	file := fs.String("file", "", "a bbolt store file to export, instead of the config's store")
	sinceArg := fs.String("since", "", "first day (or instant) of requests created, inclusive")
	untilArg := fs.String("until", "", "end (exclusive); default now")
	format := fs.String("format", "jsonl", "jsonl or csv")
	outPath := fs.String("out", "", "file to write (default standard output)")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "audit export: "+format+"\n", a...)
		fmt.Fprint(stderr, auditUsage)
		return 2
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q", fs.Arg(0))
	}
	if *format != "jsonl" && *format != "csv" {
		return fail("--format %q: use jsonl or csv", *format)
	}
	since, until := time.Time{}, time.Now()
	var err error
	if *sinceArg != "" {
		if since, err = parseDate(*sinceArg); err != nil {
			return fail("--since: %v", err)
		}
	}
	if *untilArg != "" {
		if until, err = parseDate(*untilArg); err != nil {
			return fail("--until: %v", err)
		}
	}
	if !since.Before(until) {
		return fail("--since %s is not before --until %s", since.Format(time.RFC3339), until.Format(time.RFC3339))
	}
	src, code := auditSource(*cfgPath, *file, stderr)
	if src == nil {
		return code
	}
	defer src.Close()
	recs, err := audit.Export(src, since, until)
	if err != nil {
		fmt.Fprintln(stderr, "audit export:", err)
		return 1
	}
	out := stdout
	if *outPath != "" {
		f, err := os.OpenFile(*outPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			fmt.Fprintln(stderr, "audit export:", err)
			return 1
		}
		defer f.Close()
		out = f
	}
	write := audit.WriteJSONL
	if *format == "csv" {
		write = audit.WriteCSV
	}
	if err := write(out, recs); err != nil {
		fmt.Fprintln(stderr, "audit export: writing:", err)
		return 1
	}
	fmt.Fprintf(stderr, "%d request(s) created from %s until %s\n", len(recs), since.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
	return 0
}

// parseDate reads 2006-01-02 (UTC midnight) or RFC 3339.
func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither 2006-01-02 nor RFC 3339", s)
	}
	return t, nil
}

// auditStore is a store an audit reads.
type auditStore interface {
	audit.Source
	Close() error
}

// auditSource opens the bbolt file, or else the config's store; nil and
// the exit status when it cannot.
func auditSource(cfgPath, file string, stderr io.Writer) (auditStore, int) {
	if file != "" {
		s, err := store.Open(file, store.Options{})
		if err != nil {
			fmt.Fprintf(stderr, "audit: opening %s: %v (a running bot holds its file: stop it, or use a copy)\n", file, err)
			return nil, 1
		}
		return s, 0
	}
	cfg, err := config.Load(cfgPath, os.LookupEnv)
	if err != nil {
		fmt.Fprintln(stderr, "audit:", err)
		return nil, 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, _, err := app.OpenStore(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "audit: opening the store: %v (bolt: a running bot holds its file: stop it, or use a copy with --file)\n", err)
		return nil, 1
	}
	return s, 0
}

func auditVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "/etc/osio-bot/config.yaml", "configuration file (its store is verified)")
	file := fs.String("file", "", "a bbolt store file to verify, instead of the config's store")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "audit verify: unexpected argument %q\n%s", fs.Arg(0), auditUsage)
		return 2
	}
	src, code := auditSource(*cfgPath, *file, stderr)
	if src == nil {
		return code
	}
	defer src.Close()
	checked, broken, err := audit.Verify(src)
	if err != nil {
		fmt.Fprintln(stderr, "audit verify:", err)
		return 1
	}
	for _, b := range broken {
		fmt.Fprintf(stdout, "%s: %s\n", b.ID, strings.Join(b.Problems, "; "))
	}
	if len(broken) > 0 {
		fmt.Fprintf(stdout, "%d of %d requests have events changed, removed or reordered\n", len(broken), checked)
		return 1
	}
	fmt.Fprintf(stdout, "%d requests: every event chain is intact\n", checked)
	return 0
}
