// Command osio-bot is the interrupt catcher's chat-ops Slack bot.
//
//	osio-bot run --config FILE            serve (Socket Mode)
//	osio-bot check-config --config FILE   print the resolved config, secrets redacted
//	osio-bot store check --config FILE    check the store file (or --file PATH)
//	osio-bot store init --config FILE     create the DynamoDB table (store.backend dynamodb)
//	osio-bot store migrate --from bolt:PATH --to dynamodb:TABLE [--config FILE] [--dry-run]
//	                                      copy a stopped bot's bbolt store into the table
//	osio-bot audit export [--since DATE] [--until DATE] [--format jsonl|csv]
//	                                      one audit record per request, from the store
//
// Secrets come from the environment: SLACK_APP_TOKEN, SLACK_BOT_TOKEN and
// the AWS SDK's standard variables.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/osio/osio-bot/app"
	"github.com/osio/osio-bot/config"
	"github.com/osio/osio-bot/directory"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  osio-bot run --config FILE            serve Slack in Socket Mode
  osio-bot check-config --config FILE   print the resolved config (secrets redacted); exit 1 if invalid
  osio-bot store check --config FILE    check the store file without changing it (or --file PATH); exit 1 if damaged
  osio-bot store init --config FILE     create the DynamoDB table of store.backend dynamodb if missing (idempotent), TTL on
  osio-bot store migrate --from bolt:PATH --to dynamodb:TABLE [--config FILE] [--region R] [--endpoint URL] [--dry-run]
                                        copy a stopped bot's bbolt store (requests, events, cursors, checkpoints,
                                        locks, claims) into the table made by store init; safe to run again
  osio-bot store compact --config FILE   compact a stopped bot's bbolt file (after store.retention removed requests)
  osio-bot audit export [--config FILE | --file PATH] [--since DATE] [--until DATE] [--format jsonl|csv] [--out FILE]
                                        one audit record per request (who, where, what, plan, decision, events,
                                        outcome, permalink); no secret is in the store, so none is in the export
Secrets come from the environment: SLACK_APP_TOKEN (xapp-), SLACK_BOT_TOKEN (xoxb-), and the AWS SDK's variables.
`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return 0
	}
	sub := args[0]
	if sub == "store" {
		return storeCmd(args[1:], stdout, stderr)
	}
	if sub == "audit" {
		return auditCmd(args[1:], stdout, stderr)
	}
	if sub != "run" && sub != "check-config" {
		fmt.Fprintf(stderr, "unknown command %q\n", sub)
		usage(stderr)
		return 2
	}
	fs := flag.NewFlagSet(sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/osio-bot/config.yaml", "configuration file")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	cfg, err := config.Load(*path, os.LookupEnv)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	switch sub {
	case "check-config":
		fmt.Fprint(stdout, cfg.Redacted())
		ps := cfg.Validate()
		for _, p := range ps {
			fmt.Fprintln(stderr, "invalid:", p)
		}
		if len(ps) > 0 {
			fmt.Fprintf(stderr, "%d problem(s) in %s\n", len(ps), *path)
			return 1
		}
		for _, w := range mappingWarnings(cfg) {
			fmt.Fprintln(stderr, "warning:", w)
		}
		fmt.Fprintf(stderr, "%s is valid\n", *path)
		return 0
	case "run":
		log, err := newLogger(cfg.Log, stderr)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer log.Sync()
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		a, err := app.Build(ctx, cfg, log, app.Options{})
		if err != nil {
			log.Error("cannot start", zap.Error(err))
			return 1
		}
		log.Info("osio-bot started", zap.String("store", cfg.Store.Backend), zap.String("path", cfg.Store.Path), zap.String("table", cfg.Store.DynamoDB.Table))
		if err := a.Run(ctx); err != nil {
			log.Error("stopped with error", zap.Error(err))
			return 1
		}
		return 0
	default:
		fmt.Fprintf(stderr, "unknown command %q\n", sub)
		usage(stderr)
		return 2
	}
}

func newLogger(c config.Log, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder = zapcore.NewJSONEncoder(ec)
	if c.Format == "console" {
		enc = zapcore.NewConsoleEncoder(ec)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)), nil
}

// mappingWarnings compares the two places a Slack user can be mapped to a
// person: directory.mappings in the config wins over the people file's
// slack_user and mappings:, which win over e-mail matching. A user mapped
// in both to different people is named, with the one that wins.
func mappingWarnings(cfg config.Config) []string {
	if !cfg.Reset.Enabled || cfg.Directory.Source == "app-interface" || len(cfg.Directory.Mappings) == 0 {
		return nil
	}
	fd, err := directory.LoadFile(cfg.Directory.File)
	if err != nil {
		return []string{fmt.Sprintf("directory.file: %v", err)}
	}
	file := fd.Mappings()
	var out []string
	for id, org := range cfg.Directory.Mappings {
		if other, ok := file[id]; ok && !strings.EqualFold(other, org) {
			out = append(out, fmt.Sprintf("Slack user %s is mapped to %q in directory.mappings and to %q in %s; directory.mappings wins", id, org, other, cfg.Directory.File))
		}
	}
	sort.Strings(out)
	return out
}
