// Command floorapp is the floor of the ack benchmark (e2e/bench_test.go,
// issue 9): the least a slack-go Socket Mode app can do, which is to ack
// every envelope at once, with no payload and no other work. It is run
// against the same local Slack server and load as osio-bot, so that the
// bot's ack latency and memory are read against it.
//
// Environment: SLACK_APP_TOKEN (xapp-…), SLACK_BOT_TOKEN (xoxb-…) and
// SLACK_API_URL (the Web API base, with its trailing slash). It stops on
// SIGTERM or SIGINT.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

func main() {
	// The process's root context (this is main): it ends on SIGTERM.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	api := slack.New(os.Getenv("SLACK_BOT_TOKEN"), slack.OptionAPIURL(os.Getenv("SLACK_API_URL")),
		slack.OptionAppLevelToken(os.Getenv("SLACK_APP_TOKEN")))
	client := socketmode.New(api)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case evt := <-client.Events:
				if evt.Request != nil && evt.Request.EnvelopeID != "" {
					_ = client.Ack(*evt.Request)
				}
			}
		}
	}()
	if err := client.RunContext(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "floorapp:", err)
		os.Exit(1)
	}
}
