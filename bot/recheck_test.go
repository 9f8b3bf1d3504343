package bot

import (
	"context"
	"encoding/json"
	"path/filepath"
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
