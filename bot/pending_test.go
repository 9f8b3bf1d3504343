package bot

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/actions/export"
	"github.com/osio/osio-bot/store"
	slackserver "github.com/osio/osio-bot/testservers/slack"
)

// /osio-pending lists the requests waiting for a decision across kinds,
// oldest first, with age, requester and card; an approver sees everyone's,
// anyone else only their own.
func TestPendingAcrossKinds(t *testing.T) {
	srv, err := slackserver.New(slackserver.Options{PingInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	srv.AddUserGroup("SCATCHERS", "UCATCHER")
	st, err := store.Open(filepath.Join(t.TempDir(), "bot.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	api := slack.New("xoxb-test", slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken("xapp-test"))
	kinds := map[string]Kind{
		export.Kind: ExportKind(fakeChecker{}),
		"reset": {Describe: func(r *actions.Request) (string, []string) {
			return "Password reset", []string{"IAM user `" + r.What + "`"}
		}},
		"restore": {Describe: func(r *actions.Request) (string, []string) { return "Restore", []string{"into `" + r.What + "`"} }},
	}
	var later time.Time
	b := New(Deps{
		Settings: Settings{ApprovalsChannel: "CAPPROVALS", ApproverGroups: []string{"SCATCHERS"}, Expiry: time.Hour, SweepInterval: time.Hour},
		API:      api, Socket: socketmode.New(api), Store: st, Runner: noRun{}, Reporter: NewReporter(api, st, ReporterOptions{Log: zap.NewNop()}),
		Approvers: NewApprovers(api, []string{"SCATCHERS"}, time.Minute, time.Now),
		Kinds:     kinds, Log: zap.NewNop(), Now: func() time.Time { return later },
	})
	ctx := context.Background()
	pending := func(user string) string {
		t.Helper()
		return b.PendingCommand().Dispatch(ctx, Invocation{Cmd: slack.SlashCommand{Command: "/osio-pending", UserID: user}}).Text
	}
	later = time.Now()
	if got := pending("UCATCHER"); got != "No request is waiting for a decision." {
		t.Errorf("empty: %q", got)
	}
	mk := func(kind, user, what string, state actions.State) string {
		t.Helper()
		res, err := st.Create(&actions.Request{Kind: kind, State: state, Requester: user, What: what, Args: []byte(`{"tables":["` + what + `"]}`),
			Thread: actions.Thread{Channel: "CAPPROVALS", Permalink: "http://slack.local/archives/CAPPROVALS/p" + what}}, "")
		if err != nil {
			t.Fatal(err)
		}
		return res.Request.ID
	}
	ids := []string{
		mk(export.Kind, "UDEV", "prod_a", actions.Pending),
		mk("reset", "UOTHER", "erin", actions.Pending),
		mk("restore", "UDEV", "dev_b", actions.Pending),
		mk(export.Kind, "UOTHER", "prod_c", actions.Pending),
	}
	done := mk(export.Kind, "UDEV", "prod_done", actions.Approved)
	later = time.Now().Add(2*time.Hour + 5*time.Minute + 10*time.Second)

	all := pending("UCATCHER")
	t.Logf("approver sees:\n%s", all)
	if !strings.HasPrefix(all, "Waiting for a decision (4, oldest first):") || strings.Contains(all, done) {
		t.Errorf("approver: %q", all)
	}
	last := -1
	for _, id := range ids {
		i := strings.Index(all, "*"+id+"*")
		if i < 0 || i < last {
			t.Errorf("%s missing or out of order (oldest first):\n%s", id, all)
		}
		last = i
	}
	for _, want := range []string{"Password reset · IAM user `erin`", "Restore · into `dev_b`", "<@UDEV>", "<@UOTHER>", "waiting 2h 5m", "<http://slack.local/archives/CAPPROVALS/pprod_a|card>"} {
		if !strings.Contains(all, want) {
			t.Errorf("approver's list lacks %q:\n%s", want, all)
		}
	}

	own := pending("UDEV")
	t.Logf("requester sees:\n%s", own)
	if !strings.Contains(own, "*"+ids[0]+"*") || !strings.Contains(own, "*"+ids[2]+"*") || strings.Contains(own, ids[1]) || strings.Contains(own, ids[3]) || strings.Contains(own, "UOTHER") {
		t.Errorf("non-approver sees other people's requests, or not their own:\n%s", own)
	}
	if !strings.Contains(own, "2 requests of other people are waiting too; only approvers see them.") {
		t.Errorf("non-approver not told of the others:\n%s", own)
	}
	if got := pending("USTRANGER"); got != "None of your requests is waiting for a decision. 4 requests of other people are waiting too; only approvers see them." {
		t.Errorf("stranger: %q", got)
	}
	if got := b.PendingCommand().Dispatch(ctx, Invocation{Cmd: slack.SlashCommand{Command: "/osio-pending", UserID: "UDEV"}, Args: []string{"help"}}).Text; !strings.Contains(got, "*/osio-pending*") {
		t.Errorf("help: %q", got)
	}
}
