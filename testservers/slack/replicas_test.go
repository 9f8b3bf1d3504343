package slackserver

import (
	"testing"
	"time"
)

// With two connections (two replicas of one app), envelopes are spread
// over both at random, and Options.Redeliver sends a share of them a
// second time, to the other connection, with retry_attempt 1.
func TestEnvelopesSpreadOverConnectionsAndRedelivered(t *testing.T) {
	srv, err := New(Options{PingInterval: time.Second, Seed: 7, Redeliver: 0.5, RedeliverAfter: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	srv.AddChannel("C1", "general")
	srv.AddUser(User{ID: "U1", Name: "alice"})
	ctx := testCtx(t)
	startBot(t, srv, time.Second)
	startBot(t, srv, time.Second)
	if err := srv.WaitFor(ctx, func() bool { return srv.LiveConnections() == 2 }); err != nil {
		t.Fatalf("live connections: %d", srv.LiveConnections())
	}
	const n = 40
	for i := 0; i < n; i++ {
		if _, err := srv.SlashCommand(ctx, SlashCommand{Command: "/osio", Text: "x", UserID: "U1", ChannelID: "C1"}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait for the second deliveries (each acked too).
	var firsts, seconds int
	perConn := map[int]int{}
	if err := srv.WaitFor(ctx, func() bool {
		firsts, seconds = 0, 0
		for _, d := range srv.Deliveries() {
			if d.Attempt == 0 {
				firsts++
			} else {
				seconds++
			}
		}
		return firsts == n && seconds > 0 && len(srv.Acks()) == firsts+seconds
	}); err != nil {
		t.Fatalf("deliveries: %d first, %d again, %d acks", firsts, seconds, len(srv.Acks()))
	}
	time.Sleep(50 * time.Millisecond) // any late second delivery
	byEnv := map[string][]Delivery{}
	for _, d := range srv.Deliveries() {
		byEnv[d.EnvelopeID] = append(byEnv[d.EnvelopeID], d)
		if d.Attempt == 0 {
			perConn[d.Conn]++
		}
	}
	if len(perConn) != 2 || perConn[1] < 8 || perConn[2] < 8 {
		t.Errorf("first deliveries per connection: %v (want both used)", perConn)
	}
	again := 0
	for id, ds := range byEnv {
		if len(ds) > 2 {
			t.Errorf("%s delivered %d times", id, len(ds))
		}
		if len(ds) == 2 {
			again++
			if ds[1].Attempt != 1 || ds[1].Conn == ds[0].Conn {
				t.Errorf("%s: second delivery %+v after %+v: want attempt 1 on the other connection", id, ds[1], ds[0])
			}
		}
	}
	if again < 10 || again > 30 {
		t.Errorf("%d of %d envelopes redelivered, want about half", again, n)
	}
}
