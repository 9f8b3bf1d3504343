package bot

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/actions/export"
	"github.com/osio/osio-bot/store"
	slackserver "github.com/osio/osio-bot/testservers/slack"
)

// A replica died between the ack and the checks, leaving a request
// received. The two replicas still up on the shared store find it once it
// is abandoned: one checks it, the requester is told once, and one card
// is posted.
func TestAbandonedIntakeIsCheckedByOneReplica(t *testing.T) {
	srv, err := slackserver.New(slackserver.Options{PingInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	srv.AddChannel("CAPPROVALS", "approvals")
	srv.AddChannel("CDEV", "dev")
	srv.AddUserGroup("SCATCHERS", "UCATCHER")
	srv.AddUser(slackserver.User{ID: "UDEV", Name: "dev"})
	st, err := store.Open(filepath.Join(t.TempDir(), "bot.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	args, _ := json.Marshal(map[string]any{"tables": []string{"prod_txlog"}})
	res, err := st.Create(&actions.Request{Kind: export.Kind, State: actions.Received, Requester: "UDEV", Origin: "CDEV",
		Input: "/osio-export prod_txlog", Args: args, Thread: actions.Thread{Channel: "CAPPROVALS"},
		What: "export of `prod_txlog`", ExpiresAt: time.Now().Add(time.Hour)}, "env-dead")
	if err != nil {
		t.Fatal(err)
	}
	id := res.Request.ID
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, owner := range []string{"replica-a", "replica-b"} {
		api := slack.New("xoxb-test", slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken("xapp-test"))
		kinds := map[string]Kind{export.Kind: ExportKind(fakeChecker{})}
		rep := NewReporter(api, st, ReporterOptions{MinInterval: time.Millisecond, ProgressInterval: time.Second,
			Render: RenderCard(kinds, []string{"SCATCHERS"}), Log: zap.NewNop(), Leases: st, Owner: owner})
		b := New(Deps{
			Settings: Settings{ApprovalsChannel: "CAPPROVALS", ApproverGroups: []string{"SCATCHERS"}, Expiry: time.Hour,
				SweepInterval: 50 * time.Millisecond, Shared: true, AbandonAfter: 300 * time.Millisecond},
			API: api, Socket: socketmode.New(api), Store: st, Runner: noRun{}, Reporter: rep,
			Approvers: NewApprovers(api, []string{"SCATCHERS"}, time.Minute, time.Now),
			Kinds:     kinds, Log: zaptest.NewLogger(t).Named(owner),
		})
		b.AddCommand(b.ExportCommand(fakeChecker{}, "osio", "osio-dev"))
		done := make(chan struct{})
		go func() { _ = b.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		if err := srv.WaitFor(ctx, func() bool { return srv.LiveConnections() == i+1 }); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := srv.WaitFor(ctx, func() bool {
		q, _ := st.Get(id)
		return q.State == actions.Pending && q.Told && len(srv.Messages("CAPPROVALS")) > 0
	}); err != nil {
		q, _ := st.Get(id)
		t.Fatalf("request is %s (told %v) with %d approvals messages", q.State, q.Told, len(srv.Messages("CAPPROVALS")))
	}
	t.Logf("checked and told %v after both replicas were up", time.Since(start).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond) // any second tell or card
	if n := len(srv.Ephemerals("UDEV")); n != 1 {
		t.Errorf("the requester was told %d times, want once: %+v", n, srv.Ephemerals("UDEV"))
	}
	cards := 0
	for _, m := range srv.Messages("CAPPROVALS") {
		if m.ThreadTS == "" {
			cards++
		}
	}
	if cards != 1 {
		t.Errorf("%d cards, want 1", cards)
	}
}

// A refusal whose telling failed (the response_url past its 30 minutes,
// chat.postEphemeral answering internal_error) is told by a later sweep,
// once, and recorded as told: a refused request has ended, but its
// requester has not heard of it yet.
func TestUntoldRefusalIsToldBySweep(t *testing.T) {
	w, id := toldAfterExpiry(t, true, func(srv *slackserver.Server) { srv.FailNext("chat.postEphemeral", "internal_error", 1) })
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	if err := w.srv.WaitFor(ctx, func() bool { r, err := w.st.Get(id); return err == nil && r.State == actions.Refused }); err != nil {
		t.Fatalf("%s was never refused: %v", id, err)
	}
	start := time.Now()
	if err := w.srv.WaitFor(ctx, func() bool { return len(w.srv.Ephemerals("UDEV")) > 0 }); err != nil {
		r, _ := w.st.Get(id)
		t.Fatalf("%s (%s, told %v): the requester never heard of the refusal: %v", id, r.State, r.Told, err)
	}
	t.Logf("told %v after the refusal was stored", time.Since(start).Round(time.Millisecond))
	if err := w.srv.WaitFor(ctx, func() bool { r, err := w.st.Get(id); return err == nil && r.Told }); err != nil {
		t.Errorf("%s: not recorded as told: %v", id, err)
	}
	time.Sleep(500 * time.Millisecond) // later sweeps: no second message
	if told := w.srv.Ephemerals("UDEV"); len(told) != 1 || !strings.Contains(told[0].Text, "does not exist") {
		t.Errorf("the requester was told %d messages %+v; want the refusal once", len(told), told)
	}
}

// A refusal that cannot be told (the command's channel archived, so
// chat.postEphemeral answers is_archived, and the response_url expired)
// is recorded as untellable with Slack's code, and the sweeps do not try
// it again and again.
func TestUntellableRefusalIsNotRetried(t *testing.T) {
	w, id := toldAfterExpiry(t, true, func(srv *slackserver.Server) { srv.SetChannelError("CDEV", "is_archived") })
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	if err := w.srv.WaitFor(ctx, func() bool { r, err := w.st.Get(id); return err == nil && r.Untellable != "" }); err != nil {
		r, _ := w.st.Get(id)
		t.Fatalf("%s (%s, told %v): not recorded as untellable: %v", id, r.State, r.Told, err)
	}
	time.Sleep(time.Second) // several abandon periods and sweeps
	r, _ := w.st.Get(id)
	if r.State != actions.Refused || r.Told || r.Untellable != "is_archived" {
		t.Errorf("%s is %s, told %v, untellable %q; want refused, not told, untellable is_archived", id, r.State, r.Told, r.Untellable)
	}
	if n := w.srv.Calls("chat.postEphemeral"); n != 1 {
		t.Errorf("chat.postEphemeral was tried %d times for an archived channel; want once", n)
	}
	if active, _ := actions.ListActive(w.st, func(q *actions.Request) bool { return q.ID == id }); len(active) != 0 {
		t.Errorf("%s is still listed active", id)
	}
}
