// Command osio-bot is the interrupt catcher's chat-ops Slack bot.
//
//	osio-bot run --config FILE            serve (Socket Mode)
//	osio-bot check-config --config FILE   print the resolved config, secrets redacted
//	osio-bot store check --config FILE    check the store file (or --file PATH)
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
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/osio/osio-bot/app"
	"github.com/osio/osio-bot/config"
	"github.com/osio/osio-bot/store"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  osio-bot run --config FILE            serve Slack in Socket Mode
  osio-bot check-config --config FILE   print the resolved config (secrets redacted); exit 1 if invalid
  osio-bot store check --config FILE    check the store file without changing it (or --file PATH); exit 1 if damaged
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

// storeCmd serves "store check": it reads the store file (from the
// config's store.path, or --file) without changing it.
func storeCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(stderr, "usage: osio-bot store check [--config FILE | --file PATH]")
		return 2
	}
	fs := flag.NewFlagSet("store check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "/etc/osio-bot/config.yaml", "configuration file (its store.path is checked)")
	file := fs.String("file", "", "store file to check, instead of the config's store.path")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	path := *file
	if path == "" {
		cfg, err := config.Load(*cfgPath, os.LookupEnv)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		path = cfg.Store.Path
	}
	rep, err := store.Check(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if len(rep.Problems) > 0 {
		fmt.Fprintf(stdout, "%s: CORRUPT\n", path)
		for _, p := range rep.Problems {
			fmt.Fprintf(stdout, "  %s\n", p)
		}
		fmt.Fprintln(stdout, "To recover: stop osio-bot, keep a copy of the file, and restore it from a backup;")
		fmt.Fprintln(stdout, "or move it aside to start with an empty store (its requests, checkpoints and undelivered thread messages are then lost).")
		return 1
	}
	newest := ""
	if rep.Newest != "" {
		newest = ", newest " + rep.Newest
	}
	fmt.Fprintf(stdout, "%s: ok, %d requests%s\n", path, rep.Requests, newest)
	return 0
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
