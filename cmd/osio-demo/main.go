// Command osio-demo runs the bot's flows with no cloud account. It starts
// the playground world (package demo): moto_server with the production and
// dev accounts, the Data Pipeline, GitLab, GraphQL and SMTP test servers,
// the local Slack server and the real bot. Then it walks the flows as
// people do: commands typed as the developer, buttons clicked as the
// interrupt catcher, merge requests merged as the app-interface reviewer.
// Each flow prints its thread and the requester's ephemeral replies, and
// how long it took.
//
//	osio-demo                  # the five flows, one after the other
//	osio-demo --flow native    # one flow
//	osio-demo --flow list      # the flows, one line each
//	osio-demo --ui             # the playground: the same world, in a browser
//
// With --ui no flow runs: the world starts, and a page on 127.0.0.1 (the
// port is printed; --addr picks one) lets a person type commands and click
// buttons as the developer, an interrupt catcher or a stranger, beside
// the world's tables, pipelines, bucket, IAM users, mailbox and merge
// requests (package playground). Ctrl-C ends it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/osio/osio-bot/demo"
	"github.com/osio/osio-bot/playground"
	"github.com/osio/osio-bot/testservers/moto"
)

func main() {
	flow := flag.String("flow", "", "run one flow (list: name them)")
	items := flag.Int("items", 100, "items to put in each production table")
	keep := flag.Bool("keep", false, "keep the working directory (store, config, the bot's log, moto's log)")
	ui := flag.Bool("ui", false, "serve the playground page instead of running flows")
	addr := flag.String("addr", "127.0.0.1:0", "the playground's address (with --ui)")
	flag.Parse()
	o := options{flow: *flow, items: *items, keep: *keep}
	if *ui {
		o.ui = *addr
	}
	// Ctrl-C ends the flows, or the playground, and cleans up.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Stdout, os.Stderr, o)
	stop()
	os.Exit(code)
}

// options are the command's flags.
type options struct {
	flow  string
	items int
	keep  bool
	// ui is the playground's address; "" runs the flows.
	ui string
}

// run runs the chosen flows (or serves the playground) and returns the
// exit code: 0 when every flow did what it should, 1 when one did not or
// the world did not start, 2 for a flow name it does not know.
func run(ctx context.Context, stdout, stderr io.Writer, o options) int {
	name, items, keep := o.flow, o.items, o.keep
	flows, ok := choose(name)
	if o.ui != "" {
		flows, ok = nil, true
	}
	if !ok {
		w := stdout
		code := 0
		if name != "list" {
			w, code = stderr, 2
			fmt.Fprintf(w, "osio-demo: no flow %q. The flows:\n", name)
		}
		listFlows(w)
		return code
	}
	if _, err := exec.LookPath("moto_server"); err != nil {
		fmt.Fprint(stderr, "osio-demo: moto_server is not on PATH. The demo runs AWS locally in moto_server\n(moto 5.2.1); install it with\n    pip install 'moto[server]==5.2.1'\nand make sure the directory pip puts moto_server in is on PATH.\n")
		return 1
	}
	if o.ui == "" {
		// The flows take seconds; the playground runs until Ctrl-C.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
	}

	dir, err := os.MkdirTemp("", "osio-demo-")
	if err != nil {
		fmt.Fprintln(stderr, "osio-demo:", err)
		return 1
	}
	if keep {
		defer fmt.Fprintf(stdout, "==> kept %s (config.yaml, osio-bot.log, moto.log, the store)\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	logf, err := os.Create(filepath.Join(dir, "osio-bot.log"))
	if err != nil {
		fmt.Fprintln(stderr, "osio-demo:", err)
		return 1
	}
	defer logf.Close()

	total := time.Now()
	fmt.Fprintln(stdout, "==> starting the world: moto_server (osio and osio-dev), Data Pipeline, GitLab, GraphQL, SMTP and Slack test servers, and the bot")
	w, err := demo.Start(ctx, demo.Options{Dir: dir, Log: logf, Items: items})
	if err != nil {
		if errors.Is(err, moto.ErrMissing) {
			fmt.Fprintf(stderr, "osio-demo: %v\n", err)
		} else {
			fmt.Fprintf(stderr, "osio-demo: the world did not start: %v\n(the bot's log is %s; run with --keep to keep it)\n", err, logf.Name())
		}
		return 1
	}
	defer w.Close()
	startup := time.Since(total)
	fmt.Fprintf(stdout, "==> world up in %s\n", round(startup))
	if o.ui != "" {
		if err := playground.Run(ctx, w, o.ui, stdout); err != nil {
			fmt.Fprintln(stderr, "osio-demo:", err)
			return 1
		}
		return 0
	}

	type timing struct {
		name string
		took time.Duration
		err  error
	}
	var times []timing
	failed := false
	for _, f := range flows {
		fmt.Fprintf(stdout, "\n━━ %s: %s\n", f.Name, f.About)
		t0 := time.Now()
		err := f.Run(w, ctx, stdout)
		times = append(times, timing{f.Name, time.Since(t0), err})
		if err != nil {
			failed = true
			fmt.Fprintf(stdout, "✗ %s failed after %s: %v\n", f.Name, round(time.Since(t0)), err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		fmt.Fprintf(stdout, "✓ %s in %s\n", f.Name, round(time.Since(t0)))
	}
	fmt.Fprintf(stdout, "\n━━ times\n  %-16s %7s\n", "world startup", round(startup))
	for _, t := range times {
		mark := "ok"
		if t.err != nil {
			mark = "FAILED"
		}
		fmt.Fprintf(stdout, "  %-16s %7s  %s\n", t.name, round(t.took), mark)
	}
	fmt.Fprintf(stdout, "  %-16s %7s\n", "total", round(time.Since(total)))
	if failed {
		return 1
	}
	return 0
}

// choose picks the flows to run: the default ones for "", one by name.
func choose(name string) ([]demo.Flow, bool) {
	if name == "" {
		var out []demo.Flow
		for _, f := range demo.Flows() {
			if f.Default {
				out = append(out, f)
			}
		}
		return out, true
	}
	f, ok := demo.FlowNamed(name)
	if !ok {
		return nil, false
	}
	return []demo.Flow{f}, true
}

func listFlows(w io.Writer) {
	for _, f := range demo.Flows() {
		extra := ""
		if !f.Default {
			extra = " (not run by default)"
		}
		fmt.Fprintf(w, "  %-15s %s%s\n", f.Name, f.About, extra)
	}
	fmt.Fprintf(w, "Run one with --flow NAME; with no --flow these run, in order: %s.\n", strings.Join(defaultNames(), ", "))
}

func defaultNames() []string {
	var out []string
	for _, f := range demo.Flows() {
		if f.Default {
			out = append(out, f.Name)
		}
	}
	return out
}

func round(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }
