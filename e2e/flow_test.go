package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/osio/osio-bot/actions/export"
	"github.com/osio/osio-bot/app"
	"github.com/osio/osio-bot/config"
	slackserver "github.com/osio/osio-bot/testservers/slack"
	"github.com/osio/osio-bot/testservers/testenv"
)

// seedPipeline creates a pipeline named table with the runbook's definition,
// as if a human had made it in the console earlier.
func seedPipeline(w *world, table string) string {
	w.t.Helper()
	x, err := export.New(w.Config, export.Deps{})
	if err != nil {
		w.t.Fatal(err)
	}
	objs, params, values := x.Definition(table)
	return w.DP.SeedPipeline(table, objs, params, values)
}

// Acceptance 1: an existing pipeline is activated, not recreated; the thread
// reaches the follow-up and the verified file count.
func TestExportActivatesExistingPipeline(t *testing.T) {
	w := newWorld(t, testenv.Options{DPPageSize: 2})
	w.table("prod_users", 40)
	// Other pipelines, so that finding the right one needs several pages.
	for _, other := range []string{"prod_a", "prod_b", "prod_c"} {
		seedPipeline(w, other)
	}
	pid := seedPipeline(w, "prod_users")
	w.start(app.Options{})

	_, id := w.request(testenv.Requester, "prod_users")
	card, err := w.Card(w.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(card.Blocks), "activate existing pipeline `"+pid+"`") {
		t.Errorf("card does not plan to activate %s: %s", pid, card.Blocks)
	}
	w.click(testenv.Approver, "approve", id)
	w.waitThread(id, "Good luck!")
	if n := w.DP.Calls("CreatePipeline"); n != 0 {
		t.Errorf("CreatePipeline called %d times for an existing pipeline", n)
	}
	if n := w.DP.Calls("PutPipelineDefinition"); n != 0 {
		t.Errorf("PutPipelineDefinition called %d times for an existing pipeline", n)
	}
	if n := w.DP.Activations(pid); n != 1 {
		t.Errorf("existing pipeline activated %d times, want 1", n)
	}
	th := w.ThreadText(id)
	for _, want := range []string{"found existing pipeline `" + pid + "`", "holds 3 files"} {
		if !strings.Contains(th, want) {
			t.Errorf("thread lacks %q:\n%s", want, th)
		}
	}
	// The card ends without buttons and says who approved.
	w.waitThread(id, "Request finished")
	_ = w.Slack.WaitFor(w.ctx, func() bool { return strings.Contains(cardState(t, w, id), "succeeded") })
	if b := cardState(t, w, id); strings.Contains(b, `"approve"`) || !strings.Contains(b, "Approved by <@"+testenv.Approver+">") || !strings.Contains(b, "succeeded") {
		t.Errorf("decided card should say who approved and the outcome, without buttons: %s", b)
	}
}

// Acceptance 3: bad table names and missing tables get a clear ephemeral
// error; no request is created and nothing in AWS changes.
func TestExportRejectsBadInput(t *testing.T) {
	w := newWorld(t, testenv.Options{})
	w.table("prod_txlog", 1)
	w.start(app.Options{})

	cases := []struct{ text, want string }{
		{"no_such_table", "No such table in account osio (386414299200, us-east-1): `no_such_table`"},
		{"prod;rm -rf /", "`prod;rm` is not a valid DynamoDB table name"},
		{strings.Repeat("a", 300), "is not a valid DynamoDB table name: use 3 to 255 characters"},
		{"prod_txlog ab", "`ab` is not a valid DynamoDB table name"},
		{"--bogus prod_txlog", "Unknown option `--bogus`"},
	}
	for _, c := range cases {
		ack, id := w.request(testenv.Requester, c.text)
		if id != "" {
			t.Errorf("%.40q: a request was created (%s): %s", c.text, id, ack)
		}
		if !strings.Contains(ack, c.want) {
			t.Errorf("%.40q: ack = %q, want it to contain %q", c.text, ack, c.want)
		}
	}
	help, _ := w.request(testenv.Requester, "help")
	for _, want := range []string{"/osio-export [--native|--datapipeline] TABLE [TABLE...]", "/osio-export status [REQUEST-ID]", "/osio-export help"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q: %s", want, help)
		}
	}
	status, _ := w.request(testenv.Requester, "status")
	if !strings.Contains(status, "No export requests") {
		t.Errorf("status after only refusals = %q, want no requests", status)
	}
	for _, op := range []string{"CreatePipeline", "PutPipelineDefinition", "ActivatePipeline"} {
		if n := w.DP.Calls(op); n != 0 {
			t.Errorf("%s called %d times", op, n)
		}
	}
	if n := len(w.Slack.Messages(testenv.Channel)); n != 0 {
		t.Errorf("%d messages posted to the approvals channel", n)
	}
}

func cardState(t *testing.T, w *world, id string) string {
	t.Helper()
	card, err := w.Card(w.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return unescape(string(card.Blocks))
}

// unescape undoes encoding/json's HTML escaping of <, > and &.
func unescape(s string) string {
	return strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(s)
}

// told waits (up to 10 s) until the last ephemeral message user was shown
// contains want, and returns it: a click is acked before it is handled,
// so the answer comes after the ack.
func told(w *world, user, want string) string {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	_ = w.Slack.WaitFor(ctx, func() bool { return strings.Contains(lastEphemeral(w, user), want) })
	return lastEphemeral(w, user)
}

func lastEphemeral(w *world, user string) string {
	es := w.Slack.Ephemerals(user)
	if len(es) == 0 {
		return ""
	}
	return es[len(es)-1].Text
}

// Acceptance 4: clicks from a non-member or from the requester are refused
// and change nothing; two Approve clicks or a redelivered envelope activate
// once.
func TestExportAuthorizationAndIdempotency(t *testing.T) {
	w := newWorld(t, testenv.Options{})
	w.table("prod_txlog", 5)
	w.start(app.Options{})
	_, id := w.request(testenv.Requester, "prod_txlog")
	before := cardState(t, w, id)

	w.click(testenv.Outsider, "approve", id)
	if got := told(w, testenv.Outsider, "Only members of <!subteam^"+testenv.Group+">"); !strings.Contains(got, "Only members of <!subteam^"+testenv.Group+">") {
		t.Errorf("outsider was told %q", got)
	}
	w.click(testenv.Requester, "approve", id)
	if got := told(w, testenv.Requester, "you cannot approve it"); !strings.Contains(got, "you cannot approve it") {
		t.Errorf("requester was told %q", got)
	}
	w.click(testenv.Outsider, "deny", id)
	w.click(testenv.Approver, "cancel", id)
	if got := told(w, testenv.Approver, "Only the requester"); !strings.Contains(got, "Only the requester") {
		t.Errorf("approver cancelling was told %q", got)
	}
	if after := cardState(t, w, id); after != before || !strings.Contains(after, "Waiting for approval") {
		t.Errorf("refused clicks changed the card:\n%s\n->\n%s", before, after)
	}
	if n := w.DP.Calls("CreatePipeline") + w.DP.Calls("ActivatePipeline"); n != 0 {
		t.Fatalf("refused clicks ran something (%d calls)", n)
	}

	// Two approvers click at once, and Slack redelivers one envelope.
	card, _ := w.Card(w.ctx, id)
	click := slackserver.Click{ChannelID: testenv.Channel, MessageTS: card.TS, ActionID: "approve", BlockID: "decide", Value: id}
	c1, c2 := click, click
	c1.UserID, c2.UserID = testenv.Approver, testenv.Approver2
	e1, err := w.Slack.SendClick(c1)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := w.Slack.SendClick(c2)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{e1, e2} {
		if _, err := w.Slack.WaitAck(w.ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Slack.Redeliver(w.ctx, e1); err != nil {
		t.Fatal(err)
	}
	w.waitThread(id, "Good luck!")
	pid, _ := w.DP.PipelineIDByName("prod_txlog")
	if n := w.DP.Activations(pid); n != 1 {
		t.Errorf("activated %d times, want 1", n)
	}
	if n := strings.Count(w.ThreadText(id), "Approved by"); n != 1 {
		t.Errorf("thread records %d approvals, want 1:\n%s", n, w.ThreadText(id))
	}
}

// Acceptance 5: Deny and Cancel end the request; nothing runs and the
// thread says who did it.
func TestExportDenyAndCancel(t *testing.T) {
	w := newWorld(t, testenv.Options{})
	w.table("prod_a1", 1)
	w.table("prod_b1", 1)
	w.start(app.Options{})

	_, denied := w.request(testenv.Requester, "prod_a1")
	w.click(testenv.Approver, "deny", denied)
	w.waitThread(denied, "Denied by <@"+testenv.Approver+">")

	_, cancelled := w.request(testenv.Requester, "prod_b1")
	w.click(testenv.Requester, "cancel", cancelled)
	w.waitThread(cancelled, "Cancelled by <@"+testenv.Requester+">")

	// A late approval of either changes nothing.
	w.click(testenv.Approver2, "approve", denied)
	if got := told(w, testenv.Approver2, "already denied"); !strings.Contains(got, "already denied") {
		t.Errorf("late approver was told %q", got)
	}
	time.Sleep(300 * time.Millisecond)
	for _, op := range []string{"CreatePipeline", "ActivatePipeline"} {
		if n := w.DP.Calls(op); n != 0 {
			t.Errorf("%s called %d times after deny/cancel", op, n)
		}
	}
	for id, state := range map[string]string{denied: "denied", cancelled: "cancelled"} {
		status, _ := w.request(testenv.Requester, "status "+id)
		if !strings.Contains(status, id+"*: "+state) {
			t.Errorf("status of %s = %q, want %s", id, status, state)
		}
		if b := cardState(t, w, id); strings.Contains(b, `"approve"`) {
			t.Errorf("%s card keeps its buttons", id)
		}
	}
	// The tables are free again.
	if _, id := w.request(testenv.Requester, "prod_a1"); id == "" {
		t.Error("a denied request still holds its table")
	}
}

// Acceptance 6: a run that ends FAILED puts errorMessage in the thread and
// the request ends failed.
func TestExportRunFailure(t *testing.T) {
	w := newWorld(t, testenv.Options{})
	w.table("prod_fail", 3)
	w.start(app.Options{})
	w.DP.FailNext("prod_fail", "EMR cluster terminated: Bootstrap failure (NO_SLAVE_LEFT)")
	_, id := w.request(testenv.Requester, "prod_fail")
	w.click(testenv.Approver, "approve", id)
	w.waitThread(id, "* failed: ")
	th := w.ThreadText(id)
	if !strings.Contains(th, "errorMessage: EMR cluster terminated: Bootstrap failure (NO_SLAVE_LEFT)") {
		t.Errorf("thread lacks the errorMessage:\n%s", th)
	}
	if strings.Contains(th, "Good luck!") {
		t.Errorf("failed export posted the follow-up:\n%s", th)
	}
	status, _ := w.request(testenv.Requester, "status "+id)
	if !strings.Contains(status, id+"*: failed") {
		t.Errorf("status = %q, want failed", status)
	}
}

// A table already being exported cannot be requested again; the requester
// is pointed at the request holding it.
func TestExportTableLock(t *testing.T) {
	w := newWorld(t, testenv.Options{})
	w.table("prod_txlog", 2)
	w.start(app.Options{})
	_, first := w.request(testenv.Requester, "prod_txlog")
	if _, err := w.Card(w.ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := w.Slack.WaitFor(w.ctx, func() bool {
		s, _ := w.request(testenv.Approver, "status "+first)
		return strings.Contains(s, "http://slack.local/archives/")
	}); err != nil {
		t.Fatal(err)
	}
	ack, second := w.request(testenv.Approver, "prod_txlog")
	if second != "" && second != first {
		t.Fatalf("a second request %s was created for a locked table", second)
	}
	for _, want := range []string{"`prod_txlog` is held by " + first, "pending", "<http://slack.local/archives/" + testenv.Channel} {
		if !strings.Contains(ack, want) {
			t.Errorf("lock refusal %q lacks %q", ack, want)
		}
	}
}

// A pending request expires after the configured time and its card says so.
func TestExportExpiry(t *testing.T) {
	w := newWorld(t, testenv.Options{Tweak: func(c *config.Config) { c.Approval.Expiry = config.Duration(time.Second) }})
	w.table("prod_late", 1)
	w.start(app.Options{})
	_, id := w.request(testenv.Requester, "prod_late")
	w.waitThread(id, "expired")
	if b := cardState(t, w, id); !strings.Contains(b, "Expired at") || strings.Contains(b, `"approve"`) {
		t.Errorf("expired card: %s", b)
	}
	w.click(testenv.Approver, "approve", id)
	if got := told(w, testenv.Approver, "already expired"); !strings.Contains(got, "already expired") {
		t.Errorf("approving an expired request told %q", got)
	}
	if n := w.DP.Calls("ActivatePipeline") + w.DP.Calls("CreatePipeline"); n != 0 {
		t.Errorf("expired request ran (%d calls)", n)
	}
}

// A pending request survives a restart and is approved from its old card.
func TestPendingSurvivesRestart(t *testing.T) {
	w := newWorld(t, testenv.Options{})
	w.table("prod_txlog", 4)
	w.start(app.Options{})
	_, id := w.request(testenv.Requester, "prod_txlog")
	if _, err := w.Card(w.ctx, id); err != nil {
		t.Fatal(err)
	}
	w.stop()
	w.start(app.Options{})
	w.click(testenv.Approver, "approve", id)
	w.waitThread(id, "Good luck!")
	if n := len(w.Slack.Messages(testenv.Channel)); n != 1 {
		t.Errorf("%d top-level messages, want the one card", n)
	}
}

// Acceptance 8: Slack answers 429 with Retry-After on a post; the message
// arrives after the wait and the thread stays in order. Then Slack is down
// for a while; nothing is lost.
func TestReporterRateLimitAndOutage(t *testing.T) {
	w := newWorld(t, testenv.Options{})
	w.table("prod_txlog", 3)
	w.DP.Hold("prod_txlog")
	w.start(app.Options{})
	_, id := w.request(testenv.Requester, "prod_txlog")
	w.waitThread(id, "Waiting for an approver")

	posts := len(w.Slack.CallTimes("chat.postMessage"))
	w.Slack.RateLimitNext("chat.postMessage", 1, time.Second)
	w.click(testenv.Approver, "approve", id)
	w.waitThread(id, "Approved by")
	times := w.Slack.CallTimes("chat.postMessage")
	if len(times) < posts+2 {
		t.Fatalf("expected a limited call and its retry, saw %d calls", len(times)-posts)
	}
	if gap := times[posts+1].Sub(times[posts]); gap < time.Second {
		t.Errorf("retry came %v after the 429, before Retry-After (1s)", gap)
	}

	w.waitThread(id, "RUNNING")
	w.Slack.SetDown(true)
	w.DP.Release("prod_txlog")
	time.Sleep(3 * time.Second) // the run finishes while Slack is away
	w.Slack.SetDown(false)
	w.waitThread(id, "Good luck!")
	w.waitThread(id, "Request finished")

	var order []string
	for _, want := range []string{"Requested by", "Approved by", "created pipeline", "activated pipeline", "FINISHED.", "verified from account", "Good luck!", "Request finished"} {
		order = append(order, want)
	}
	th := w.ThreadText(id)
	last := -1
	for _, want := range order {
		i := strings.Index(th, want)
		if i <= last {
			t.Errorf("thread out of order or missing %q:\n%s", want, th)
		}
		last = i
	}
	for _, m := range w.Slack.Thread(testenv.Channel, mustCard(t, w, id).TS) {
		if strings.Count(w.ThreadText(id), m.Text) > 1 && !isStatus(m) {
			t.Errorf("message delivered twice: %q", m.Text)
		}
	}
}

// isStatus reports whether m is a thread's status message, by the
// metadata the bot posts it with (its text changes as the request goes
// on, and reads as finished once it ends).
func isStatus(m slackserver.Message) bool {
	var md struct {
		EventType    string         `json:"event_type"`
		EventPayload map[string]any `json:"event_payload"`
	}
	return json.Unmarshal(m.Metadata, &md) == nil && md.EventType == "osio_bot_post" && md.EventPayload["kind"] == "status"
}

func mustCard(t *testing.T, w *world, id string) slackserver.Message {
	c, err := w.Card(w.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Several tables in one request are all exported and verified, and
// progress is folded into one status message.
func TestExportSeveralTables(t *testing.T) {
	w := newWorld(t, testenv.Options{})
	tables := []string{"prod_t1", "prod_t2", "prod_t3"}
	for i, tb := range tables {
		w.table(tb, 5*(i+1))
	}
	w.start(app.Options{})
	_, id := w.request(testenv.Requester, strings.Join(tables, " "))
	w.click(testenv.Approver, "approve", id)
	w.waitThread(id, "Good luck!")
	th := w.ThreadText(id)
	for _, tb := range tables {
		if !strings.Contains(th, "verified from account osio-dev (619539278362): `s3://dynamodb-migration-backups-osio/backups/"+tb+"/") {
			t.Errorf("%s not verified:\n%s", tb, th)
		}
	}
	status := 0
	for _, m := range w.Slack.Thread(testenv.Channel, mustCard(t, w, id).TS) {
		if isStatus(m) {
			status++
			if !strings.HasPrefix(m.Text, ":white_check_mark: Succeeded at ") {
				t.Errorf("the status message of a finished request reads %q; want it finished", m.Text)
			}
		}
	}
	if status != 1 {
		t.Errorf("%d status messages, want 1 edited in place", status)
	}
}

// Slack asks the bot to reconnect (disconnect, refresh_requested) in the
// middle of a request; the bot reconnects and the flow goes on.
func TestSlackRefreshRequested(t *testing.T) {
	w := newWorld(t, testenv.Options{})
	w.table("prod_txlog", 2)
	w.start(app.Options{})
	_, id := w.request(testenv.Requester, "prod_txlog")
	if _, err := w.Card(w.ctx, id); err != nil {
		t.Fatal(err)
	}
	before := w.Slack.Connections()
	w.Slack.Disconnect("refresh_requested")
	if err := w.Slack.WaitFor(w.ctx, func() bool { return w.Slack.Connections() > before }); err != nil {
		t.Fatalf("bot did not reconnect: %v", err)
	}
	w.click(testenv.Approver, "approve", id)
	w.waitThread(id, "Good luck!")
	if n := w.Slack.Calls("apps.connections.open"); n < 2 {
		t.Errorf("apps.connections.open called %d times, want a fresh URL for the reconnect", n)
	}
}

func slackClick(user, ts, action, block, value string) slackserver.Click {
	return slackserver.Click{UserID: user, ChannelID: testenv.Channel, MessageTS: ts, ActionID: action, BlockID: block, Value: value}
}

// An existing pipeline whose definition lacks the runbook's post-step
// command is not activated: the job fails and says what to fix.
func TestExportExistingPipelineMismatch(t *testing.T) {
	w := newWorld(t, testenv.Options{})
	w.table("prod_odd", 2)
	x, err := export.New(w.Config, export.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	objs, params, values := x.Definition("prod_odd")
	for i := range objs {
		for j := range objs[i].Fields {
			if aws.ToString(objs[i].Fields[j].Key) == "postStepCommand" {
				objs[i].Fields[j].StringValue = aws.String("echo nothing")
			}
		}
	}
	pid := w.DP.SeedPipeline("prod_odd", objs, params, values)
	w.start(app.Options{})
	_, id := w.request(testenv.Requester, "prod_odd")
	w.click(testenv.Approver, "approve", id)
	w.waitThread(id, "* failed: ")
	th := w.ThreadText(id)
	if !strings.Contains(th, "pipeline "+pid+" does not match the runbook: its EmrActivity lacks the postStepCommand") || !strings.Contains(th, "Fix it or delete it") {
		t.Errorf("thread:\n%s", th)
	}
	if n := w.DP.Activations(pid); n != 0 {
		t.Errorf("mismatched pipeline activated %d times", n)
	}
}
