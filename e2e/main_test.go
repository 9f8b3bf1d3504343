// Package e2e runs the real bot, in-process or as its own process, against
// moto_server, the Data Pipeline test server and the local Slack server.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/osio/osio-bot/app"
	"github.com/osio/osio-bot/testservers/moto"
	"github.com/osio/osio-bot/testservers/testenv"
)

var sharedMoto *moto.Server

func TestMain(m *testing.M) {
	dir, _ := os.MkdirTemp("", "osio-e2e-moto")
	var err error
	sharedMoto, err = moto.Start(context.Background(), dir+"/moto.log")
	if errors.Is(err, moto.ErrMissing) && os.Getenv("CI") != "true" {
		fmt.Fprintln(os.Stderr, "e2e: moto_server missing; skipping (CI=true makes this a failure)")
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: cannot start moto_server:", err)
		os.Exit(1)
	}
	code := m.Run()
	sharedMoto.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// world is one test's environment plus an in-process bot whose logs are
// captured.
type world struct {
	*testenv.Env
	t    *testing.T
	ctx  context.Context
	bot  *testenv.Bot
	logs *observer.ObservedLogs
}

func newWorld(t *testing.T, o testenv.Options) *world {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	o.Moto = sharedMoto
	env, err := testenv.Start(ctx, t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	return &world{Env: env, t: t, ctx: ctx}
}

func (w *world) start(o app.Options) {
	w.t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	w.logs = logs
	b, err := w.StartBot(w.ctx, zap.New(core), o)
	if err != nil {
		w.t.Fatal(err)
	}
	w.bot = b
	w.t.Cleanup(func() { _ = b.Stop() })
}

func (w *world) stop() {
	w.t.Helper()
	if err := w.bot.Stop(); err != nil {
		w.t.Fatalf("bot stopped with error: %v", err)
	}
}

func (w *world) table(name string, n int) {
	w.t.Helper()
	if err := w.CreateTable(w.ctx, name, n); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) request(user, text string) (string, string) {
	w.t.Helper()
	ack, id, err := w.Slash(w.ctx, user, "/osio-export", text)
	if err != nil {
		w.t.Fatal(err)
	}
	return ack, id
}

func (w *world) click(user, action, id string) {
	w.t.Helper()
	if _, err := w.Click(w.ctx, user, action, id); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) waitThread(id, substr string) {
	w.t.Helper()
	if err := w.WaitThread(w.ctx, id, substr); err != nil {
		w.t.Fatal(err)
	}
}
