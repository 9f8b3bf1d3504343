package playground_test

import (
	"context"
	"os"
	"os/signal"
	"testing"

	"github.com/osio/osio-bot/demo"
	"github.com/osio/osio-bot/playground"
)

// TestServeByHand serves the playground for a person, until Ctrl-C:
//
//	PLAYGROUND_ADDR=127.0.0.1:8080 go test ./playground -run TestServeByHand -v -timeout 0
//
// It is what go run ./cmd/osio-demo --ui does; without PLAYGROUND_ADDR it
// skips.
func TestServeByHand(t *testing.T) {
	addr := os.Getenv("PLAYGROUND_ADDR")
	if addr == "" {
		t.Skip("set PLAYGROUND_ADDR (e.g. 127.0.0.1:8080) to serve the playground by hand")
	}
	needs(t, false)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	w, err := demo.Start(ctx, demo.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := playground.Run(ctx, w, addr, os.Stdout); err != nil {
		t.Fatal(err)
	}
}
