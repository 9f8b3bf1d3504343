package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/actions/export"
	"github.com/osio/osio-bot/bot/mrkdwn"
	"github.com/osio/osio-bot/store"
	slackserver "github.com/osio/osio-bot/testservers/slack"
)

// fakeChecker accepts every name and plans one line per table.
type fakeChecker struct{}

func (fakeChecker) CheckNames(t []string) ([]string, string)              { return t, "" }
func (fakeChecker) CheckTables(context.Context, []string) (string, error) { return "", nil }
func (fakeChecker) CheckNative(context.Context, []string) (string, error) { return "", nil }
func (fakeChecker) Plan(_ context.Context, _ string, t []string) []string {
	var out []string
	for _, n := range t {
		out = append(out, "• export `"+n+"`")
	}
	return out
}
func (fakeChecker) Method() string { return export.MethodDataPipeline }

type noRun struct{}

func (noRun) Run(string) {}

// socketWorld is the bot running against the local Slack server with the
// real slack-go Socket Mode client, for tests of what an ack carries.
type socketWorld struct {
	t   *testing.T
	ctx context.Context
	srv *slackserver.Server
	st  *store.Store
}

func newSocketWorld(t *testing.T) *socketWorld { return newSocketWorldWith(t, nil) }

// newSocketWorldWith is newSocketWorld with tweak applied to the bot's
// Deps before it starts.
func newSocketWorldWith(t *testing.T, tweak func(*Deps)) *socketWorld {
	t.Helper()
	return newSocketWorldChecked(t, fakeChecker{}, tweak)
}

// newSocketWorldChecked is newSocketWorldWith with chk checking the
// export commands.
func newSocketWorldChecked(t *testing.T, chk interface {
	ExportChecker
	Plan(context.Context, string, []string) []string
	Method() string
}, tweak func(*Deps)) *socketWorld {
	t.Helper()
	srv, err := slackserver.New(slackserver.Options{PingInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	srv.AddChannel("CAPPROVALS", "approvals")
	srv.AddChannel("CDEV", "dev")
	srv.AddUserGroup("SCATCHERS", "UCATCHER")
	srv.AddUser(slackserver.User{ID: "UDEV", Name: "dev"})
	srv.AddUser(slackserver.User{ID: "UCATCHER", Name: "catcher"})
	st, err := store.Open(filepath.Join(t.TempDir(), "bot.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	api := slack.New("xoxb-test", slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken("xapp-test"))
	kinds := map[string]Kind{export.Kind: ExportKind(chk)}
	rep := NewReporter(api, st, ReporterOptions{MinInterval: time.Millisecond, ProgressInterval: time.Second,
		Render: RenderCard(kinds, []string{"SCATCHERS"}), Log: zap.NewNop()})
	d := Deps{
		Settings: Settings{ApprovalsChannel: "CAPPROVALS", ApproverGroups: []string{"SCATCHERS"}, Expiry: time.Hour, SweepInterval: time.Hour},
		API:      api, Socket: socketmode.New(api), Store: st, Runner: noRun{}, Reporter: rep,
		Approvers: NewApprovers(api, []string{"SCATCHERS"}, time.Minute, time.Now),
		Kinds:     kinds, Log: zap.NewNop(),
	}
	if tweak != nil {
		tweak(&d)
	}
	b := New(d)
	b.AddCommand(b.ExportCommand(chk, "osio", "osio-dev"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	done := make(chan struct{})
	go func() { _ = b.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := srv.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	return &socketWorld{t: t, ctx: ctx, srv: srv, st: st}
}

// slash types a command and returns its ack; an ack slack-go refused never
// comes, and the test fails after a few seconds, as the user would see a
// timeout.
func (w *socketWorld) slash(user, text string) slackserver.Ack {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, 5*time.Second)
	defer cancel()
	ack, err := w.srv.SlashCommand(ctx, slackserver.SlashCommand{Command: "/osio-export", Text: text, UserID: user, ChannelID: "CDEV"})
	if err != nil {
		w.t.Fatalf("/osio-export %.60s…: no ack (%v): the user sees a timeout", text, err)
	}
	return ack
}

func longName(i, j int) string {
	p := fmt.Sprintf("t%03d_%02d_", i, j)
	return p + strings.Repeat("x", 255-len(p))
}

// checkAckLimits asserts that an ack fits Socket Mode (the envelope under
// 20 KB, as slack-go demands) and Block Kit (50 blocks, 3,000 characters
// per section text), and returns its text.
func checkAckLimits(t *testing.T, ack slackserver.Ack) string {
	t.Helper()
	env, err := json.Marshal(map[string]any{"envelope_id": ack.EnvelopeID, "payload": ack.Payload})
	if err != nil {
		t.Fatal(err)
	}
	if len(env) >= 20*1024 {
		t.Errorf("ack envelope is %d bytes, at or over Socket Mode's 20 KB", len(env))
	}
	t.Logf("ack envelope: %d bytes", len(env))
	var p struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text *struct {
				Text string `json:"text"`
			} `json:"text"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(ack.Payload, &p); err != nil {
		t.Fatalf("ack payload: %v", err)
	}
	if len(p.Blocks) > 50 {
		t.Errorf("%d blocks, over Block Kit's 50", len(p.Blocks))
	}
	for i, b := range p.Blocks {
		if b.Text != nil && utf8.RuneCountInString(b.Text.Text) > 3000 {
			t.Errorf("block %d (%s) text has %d characters, over 3,000", i, b.Type, utf8.RuneCountInString(b.Text.Text))
		}
	}
	if !utf8.ValidString(p.Text) {
		t.Errorf("ack text is not valid UTF-8")
	}
	return p.Text
}

var moreRe = regexp.MustCompile(`and (\d+) more`)

// Issue 8, item 12: "status" of many requests with long table names fits
// one ack, lists the newest first and says how many more there are; one
// request's status and a receipt naming 40 long tables fit too.
func TestStatusAckFitsSocketMode(t *testing.T) {
	w := newSocketWorld(t)
	const n = 40
	var ids []string
	for i := 0; i < n; i++ {
		var tables []string
		for j := 0; j < 20; j++ {
			tables = append(tables, longName(i, j))
		}
		args, _ := json.Marshal(export.Args{Tables: tables, Method: export.MethodDataPipeline})
		res, err := w.st.Create(&actions.Request{Kind: export.Kind, Requester: "UDEV", Origin: "CDEV", Args: args,
			Thread: actions.Thread{Channel: "CAPPROVALS"}, ExpiresAt: time.Now().Add(time.Hour)}, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Request.ID)
	}

	text := checkAckLimits(t, w.slash("UOTHER", "status"))
	newest, previous := strings.Index(text, ids[n-1]), strings.Index(text, ids[n-2])
	if newest < 0 || previous < 0 || newest > previous {
		t.Errorf("the newest requests are not listed first:\n%s", text)
	}
	listed := 0
	for _, id := range ids {
		if strings.Contains(text, "*"+id+"*") {
			listed++
		}
	}
	m := moreRe.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("the reply does not say how many more there are:\n%s", text)
	}
	more, _ := strconv.Atoi(m[1])
	if listed+more != n || listed == 0 {
		t.Errorf("listed %d and says %d more; want %d in all", listed, more, n)
	}
	t.Logf("status lists %d requests and says %d more", listed, more)

	checkAckLimits(t, w.slash("UDEV", "status "+ids[n-1]))

	var forty []string
	for j := 0; j < 40; j++ {
		forty = append(forty, longName(99, j))
	}
	ack := w.slash("UDEV", strings.Join(forty, " "))
	checkAckLimits(t, ack)
	if !strings.Contains(string(ack.Payload), `"action_id":"cancel"`) {
		t.Errorf("the receipt lost its Cancel button:\n%s", ack.Payload)
	}
}

// unitBot is a bot with a real store and no Slack connection.
func unitBot(t *testing.T, kinds map[string]Kind, s Settings) (*Bot, *store.Store) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "bot.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rep := NewReporter(&recorder{}, st, ReporterOptions{Log: zap.NewNop(), Render: RenderCard(kinds, nil)})
	s.ApprovalsChannel, s.Expiry = "CAPPROVALS", time.Hour
	return New(Deps{Settings: s, API: &fakeAPI{recorder: &recorder{}}, Store: st, Runner: noRun{}, Reporter: rep, Kinds: kinds, Log: zap.NewNop()}), st
}

// fakeAPI is the bot's Slack without a server: it records ephemerals.
type fakeAPI struct {
	*recorder
	mu    sync.Mutex
	told  []string
	group []string
}

func (f *fakeAPI) GetUserGroupMembersContext(context.Context, string, ...slack.GetUserGroupMembersOption) ([]string, error) {
	return f.group, nil
}

func (f *fakeAPI) PostEphemeralContext(_ context.Context, _, user string, opts ...slack.MsgOption) (string, error) {
	_, vals, _ := slack.UnsafeApplyMsgOptions("", "C", "", opts...)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.told = append(f.told, user+": "+vals.Get("text"))
	return "1.0", nil
}

// Issue 8, item 6: a click that comes as soon as the card is posted, before
// the reporter has recorded the card's ts, is checked against the ts once
// it is recorded, not refused.
func TestClickBeforeCardTSIsRecorded(t *testing.T) {
	b, st := unitBot(t, map[string]Kind{}, Settings{})
	id := pendingRequest(t, st, "k")
	c := click{Action: ActionApprove, ID: id, User: "UCATCHER", Channel: "CAPPROVALS", TS: "1764180000.000100"}
	req, _ := st.Get(id)
	go func() {
		time.Sleep(200 * time.Millisecond) // the reporter gets the permalink, then saves the ts
		_, _ = st.Update(id, nil, func(q *actions.Request) error { q.Thread.TS = "1764180000.000100"; return nil })
	}()
	if !b.fromItsMessage(context.Background(), zap.NewNop(), c, req) {
		t.Errorf("a click on the card was refused because its ts was not recorded yet: %v", b.API.(*fakeAPI).told)
	}
	c.TS = "1764180000.000999"
	if b.fromItsMessage(context.Background(), zap.NewNop(), c, req) {
		t.Error("a click on another message was accepted")
	}
}

func pendingRequest(t *testing.T, st *store.Store, kind string) string {
	t.Helper()
	res, err := st.Create(&actions.Request{Kind: kind, Requester: "UDEV", Origin: "CDEV", Args: json.RawMessage(`{}`),
		Thread: actions.Thread{Channel: "CAPPROVALS"}, ExpiresAt: time.Now().Add(time.Hour)}, "")
	if err != nil {
		t.Fatal(err)
	}
	return res.Request.ID
}

// Issue 8, item 16: computing the plan (ListPipelines and friends) has a
// deadline; when it passes, the card is posted with a plan that says so.
func TestPlanHasDeadline(t *testing.T) {
	kinds := map[string]Kind{"slow": {
		Describe: func(*actions.Request) (string, []string) { return "Slow", nil },
		Plan: func(ctx context.Context, _ *actions.Request) []string {
			<-ctx.Done() // AWS never answers
			return nil
		},
	}}
	b, st := unitBot(t, kinds, Settings{PlanTimeout: 100 * time.Millisecond})
	id := pendingRequest(t, st, "slow")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { b.plan(ctx, id); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("plan still waiting on a Plan call after 5 s: no deadline")
	}
	r, err := st.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Planned || len(r.Plan) == 0 || !strings.Contains(strings.Join(r.Plan, "\n"), "could not") {
		t.Errorf("after the deadline: planned=%v plan=%q; want the card posted with a plan saying it could not be computed", r.Planned, r.Plan)
	}
}

// Issue 8, item 16: an ack has a deadline. slack-go's Ack waits with
// context.TODO for room in its send queue (20 responses), so a stalled
// connection would hang every handler for ever.
func TestAckHasDeadline(t *testing.T) {
	api := slack.New("xoxb-test", slack.OptionAppLevelToken("xapp-test"))
	b := New(Deps{Socket: socketmode.New(api), Log: zap.NewNop(), Settings: Settings{AckTimeout: 50 * time.Millisecond}})
	done := make(chan struct{})
	go func() {
		for i := 0; i < 25; i++ { // nothing drains the queue: the connection is stalled
			b.ack(context.Background(), &socketmode.Request{EnvelopeID: fmt.Sprintf("env-%d", i)}, nil)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("acks still blocked after 5 s on a stalled connection: no deadline")
	}
}

// Issue 8, item 13: two plans of one request at once (the restart's
// replan and the command's own) post "Requested by" once.
func TestPlanTwiceAtOncePostsRequestedByOnce(t *testing.T) {
	var mu sync.Mutex
	entered := 0
	both := make(chan struct{})
	kinds := map[string]Kind{"k": {
		Describe: func(*actions.Request) (string, []string) { return "K", nil },
		Plan: func(ctx context.Context, _ *actions.Request) []string {
			mu.Lock()
			entered++
			if entered == 2 {
				close(both)
			}
			mu.Unlock()
			select { // both read Planned == false before either saves
			case <-both:
			case <-time.After(2 * time.Second):
			}
			return []string{"do it"}
		},
	}}
	b, st := unitBot(t, kinds, Settings{})
	id := pendingRequest(t, st, "k")
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); b.plan(context.Background(), id) }()
	}
	wg.Wait()
	evs, err := st.Events(id)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if strings.HasPrefix(e.Text, "Requested by") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d \"Requested by\" events, want 1", n)
	}
}

// Issue 8, item 12: a card stays within Block Kit's limits whatever the
// request holds: 50 blocks, 3,000 characters per section or context text,
// 150 per header, 75 per button label, 300 per confirmation text.
func TestCardWithinBlockKitLimits(t *testing.T) {
	var tables, plan []string
	for j := 0; j < 40; j++ {
		tables = append(tables, longName(7, j))
		plan = append(plan, "• "+longName(8, j)+" → "+strings.Repeat("é", 200))
	}
	long := strings.Repeat("ü", 400)
	kinds := map[string]Kind{
		export.Kind: ExportKind(fakeChecker{}),
		"wide": {
			Describe: func(*actions.Request) (string, []string) {
				return long, []string{long, long, long, long, long, long, long, long}
			},
			Options: func(*actions.Request) []Option {
				var out []Option
				for i := 0; i < 5; i++ {
					out = append(out, Option{Value: fmt.Sprintf("m%d", i), Label: long, Recommended: i == 0})
				}
				return out
			},
		},
	}
	args, _ := json.Marshal(export.Args{Tables: tables, Method: export.MethodDataPipeline})
	render := RenderCard(kinds, []string{"SCATCHERS"})
	for _, r := range []*actions.Request{
		{ID: "R-000001", Kind: export.Kind, State: actions.Pending, Requester: "UDEV", Args: args, Plan: plan, Planned: true},
		{ID: "R-000002", Kind: "wide", State: actions.Pending, Requester: "UDEV", Args: args, Plan: plan, Planned: true},
		{ID: "R-000003", Kind: "wide", State: actions.Failed, Requester: "UDEV", Error: long + long + long + long + long + long + long + long, Retry: long, Decision: &actions.Decision{Action: "approved", By: "UCATCHER"}},
	} {
		_, blocks := render(r)
		raw, err := json.Marshal(blocks)
		if err != nil {
			t.Fatal(err)
		}
		var bs []map[string]any
		_ = json.Unmarshal(raw, &bs)
		if len(bs) > 50 {
			t.Errorf("%s: %d blocks", r.ID, len(bs))
		}
		var walk func(path string, v any, limit int)
		walk = func(path string, v any, limit int) {
			switch x := v.(type) {
			case map[string]any:
				for k, c := range x {
					l := limit
					switch {
					case k == "confirm":
						l = 300
					case path == "header":
						l = 150
					case x["type"] == "button" && k == "text":
						l = 75
					}
					walk(path, c, l)
				}
				if s, ok := x["text"].(string); ok && mrkdwn.Len(s) > limit {
					t.Errorf("%s: %s text has %d characters, over %d", r.ID, path, mrkdwn.Len(s), limit)
				}
			case []any:
				for _, c := range x {
					walk(path, c, limit)
				}
			}
		}
		for _, b := range bs {
			typ, _ := b["type"].(string)
			walk(typ, b, 3000)
		}
	}
}
