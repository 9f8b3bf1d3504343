// Command osio-demo walks one export through the real bot with no cloud
// account: it starts moto_server (the production and dev accounts), the
// Data Pipeline test server and the local Slack server, runs osio-bot
// against them, types "/osio-export prod_txlog" as a developer, clicks
// Approve as the interrupt catcher, and prints the thread.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/osio/osio-bot/app"
	"github.com/osio/osio-bot/testservers/testenv"
)

func main() {
	table := flag.String("table", "prod_txlog", "table to create in the production account and export")
	items := flag.Int("items", 100, "items to put in the table")
	keep := flag.Bool("keep", false, "keep the working directory (store, logs, config)")
	flag.Parse()
	if err := run(*table, *items, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func run(table string, items int, keep bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "osio-demo-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	step("starting moto_server (accounts osio %s and osio-dev %s), the Data Pipeline test server and the local Slack server", testenv.ProdAccount, testenv.DevAccount)
	env, err := testenv.Start(ctx, dir, testenv.Options{})
	if err != nil {
		return err
	}
	defer env.CloseAll()
	step("creating DynamoDB table %s with %d items in account osio", table, items)
	if err := env.CreateTable(ctx, table, items); err != nil {
		return err
	}
	logPath := filepath.Join(dir, "osio-bot.log")
	lf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer lf.Close()
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(lf), zap.DebugLevel))
	step("starting osio-bot (config %s, log %s)", env.ConfigPath, logPath)
	b, err := env.StartBot(ctx, log, app.Options{})
	if err != nil {
		return err
	}
	defer b.Stop()

	step("<@%s> types: /osio-export %s", testenv.Requester, table)
	ack, id, err := env.Slash(ctx, testenv.Requester, "/osio-export", table)
	if err != nil {
		return err
	}
	fmt.Printf("    ephemeral reply: %s\n", ack)
	if id == "" {
		return fmt.Errorf("no request was created")
	}
	if _, err := env.Card(ctx, id); err != nil {
		return err
	}
	step("<@%s> (interrupt catcher) clicks Approve on %s", testenv.Approver, id)
	if _, err := env.Click(ctx, testenv.Approver, "approve", id); err != nil {
		return err
	}
	if err := env.WaitThread(ctx, id, "Request finished"); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond) // let the card's final edit land
	step("the thread of %s in #osio-approvals:", id)
	env.PrintThread(os.Stdout, id)
	if !strings.Contains(env.ThreadText(id), "Good luck!") {
		return fmt.Errorf("the thread has no follow-up")
	}
	step("done: the export is in s3://%s/backups/%s/ in account osio-dev", testenv.Bucket, table)
	return nil
}
