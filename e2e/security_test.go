package e2e

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"go.uber.org/zap/zapcore"

	"github.com/osio/osio-bot/app"
	slackserver "github.com/osio/osio-bot/testservers/slack"
	"github.com/osio/osio-bot/testservers/testenv"
)

// slash types a command as user and returns its ack's whole payload, with
// encoding/json's HTML escaping undone, so that what Slack would render can
// be checked.
func (w *world) slash(user, command, text string) string {
	w.t.Helper()
	ack, err := w.Slack.SlashCommand(w.ctx, slackserver.SlashCommand{Command: command, Text: text, UserID: user, ChannelID: testenv.DevChannel})
	if err != nil {
		w.t.Fatalf("%s %s: %v", command, text, err)
	}
	if m := receiptRe.FindStringSubmatch(testenv.AckText(ack)); m != nil {
		// A receipt: what the user is told is the outcome of the checks.
		out, err := w.Outcome(w.ctx, user, m[1])
		if err != nil {
			w.t.Fatalf("%s %s: %v", command, text, err)
		}
		return unescape(out)
	}
	return unescape(string(ack.Payload))
}

var receiptRe = regexp.MustCompile(`Request \*(R-[0-9]{6})\* received`)

// Issue 8, item 6: a click acts only on the request whose card (or, for
// Cancel, whose requester's receipt) it sits on. A button value naming
// another request is refused, said to the clicker, and logged at warn.
func TestClickActsOnlyOnItsOwnCard(t *testing.T) {
	w := newWorld(t, testenv.Options{})
	w.table("prod_alpha", 2)
	w.table("prod_beta", 2)
	w.start(app.Options{})
	ack1, id1 := w.request(testenv.Requester, "prod_alpha")
	ack2, id2 := w.request(testenv.Requester, "prod_beta")
	if id1 == "" || id2 == "" {
		t.Fatalf("requests refused: %q / %q", ack1, ack2)
	}
	card1, err := w.Card(w.ctx, id1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Card(w.ctx, id2); err != nil {
		t.Fatal(err)
	}
	hostile := []struct {
		name string
		user string
		c    slackserver.Click
		told string
	}{
		{"approve on the other card", testenv.Approver, slackClick(testenv.Approver, card1.TS, "approve", "decide", id2), "not on " + id2 + "'s card"},
		{"deny on the other card", testenv.Approver2, slackClick(testenv.Approver2, card1.TS, "deny", "decide", id2), "not on " + id2 + "'s card"},
		{"approve on a message that is no card", testenv.Approver, slackClick(testenv.Approver, "1764189999.000100", "approve", "decide", id2), "not on " + id2 + "'s card"},
		{"cancel on the card, not the receipt", testenv.Requester, slackClick(testenv.Requester, card1.TS, "cancel", "requester", id2), "not on " + id2 + "'s receipt"},
	}
	for _, h := range hostile {
		if _, err := w.Slack.ClickButton(w.ctx, h.c); err != nil {
			t.Fatal(err)
		}
		if got := told(w, h.user, h.told); !strings.Contains(got, h.told) {
			t.Errorf("%s: %s was told %q, want it to say %q", h.name, h.user, got, h.told)
		}
	}
	for _, id := range []string{id1, id2} {
		if st := w.slash(testenv.Outsider, "/osio-export", "status "+id); !strings.Contains(st, id+"*: pending") {
			t.Errorf("hostile clicks changed %s:\n%s", id, st)
		}
	}
	if n := w.DP.Calls("CreatePipeline") + w.DP.Calls("ActivatePipeline"); n != 0 {
		t.Fatalf("hostile clicks ran something (%d calls)", n)
	}
	refused := w.logs.FilterMessage("click refused").FilterLevelExact(zapcore.WarnLevel).All()
	if len(refused) != len(hostile) {
		t.Errorf("%d warn-level 'click refused' logs, want %d", len(refused), len(hostile))
	}
	for _, e := range refused {
		m := e.ContextMap()
		if m["request_id"] != id2 || m["container_channel"] == nil || m["container_ts"] == nil {
			t.Errorf("refusal log lacks the request or the container: %v", m)
		}
	}

	// The right buttons still work: Cancel on the requester's receipt,
	// Approve on the request's own card.
	w.click(testenv.Requester, "cancel", id1)
	w.waitThread(id1, "Cancelled by")
	w.click(testenv.Approver, "approve", id2)
	w.waitThread(id2, "Good luck!")
}

// Issue 8, item 7: user text in replies is escaped the way Slack escapes
// message text, so it cannot mention @channel or anyone; clipping keeps
// whole characters, and lengths count characters.
func TestUserTextIsEscaped(t *testing.T) {
	w := newWorld(t, testenv.Options{})
	w.table("prod_alpha", 2)
	w.start(app.Options{})
	tests := []struct{ command, text, want string }{
		{"/osio-export", "<!channel>", "`&lt;!channel&gt;` is not a valid DynamoDB table name"},
		{"/osio-export", "--x<!here>", "Unknown option `--x&lt;!here&gt;`"},
		{"/osio-export", "status <@U0ADMIN>", "No export request `&lt;@U0ADMIN&gt;`"},
		{"/osio-export", "a&b<!subteam^S1>", "`a&amp;b&lt;!subteam^S1&gt;`"},
		{"/osio-restore", "<!everyone> prod_alpha dev_alpha", "There is no request `&lt;!everyone&gt;`"},
		{"/osio-restore", "status <!here>", "No restore request `&lt;!here&gt;`"},
	}
	for _, tc := range tests {
		got := w.slash(testenv.Requester, tc.command, tc.text)
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s %s: reply lacks %q:\n%s", tc.command, tc.text, tc.want, got)
		}
		for _, raw := range []string{"<!channel>", "<!here>", "<@U0ADMIN>", "<!subteam^S1>", "<!everyone>"} {
			if strings.Contains(got, raw) {
				t.Errorf("%s %s: reply echoes %s unescaped:\n%s", tc.command, tc.text, raw, got)
			}
		}
	}

	// 1 + 100 two-byte characters: too long, clipped on a character
	// boundary, and counted in characters.
	long := "a" + strings.Repeat("é", 100)
	got := w.slash(testenv.Requester, "/osio-export", long)
	if !utf8.ValidString(got) {
		t.Errorf("reply is not valid UTF-8: %q", got)
	}
	if !strings.Contains(got, "has 101 characters") {
		t.Errorf("reply does not count 101 characters:\n%s", got)
	}
}

// Issue 8, item 5: "status REQUEST-ID" shows a reset's details (IAM groups,
// policies, key fingerprint, user) only to the requester and approvers;
// anyone else sees its id, kind and state. Refusals of the reset command
// escape what was typed (item 7).
func TestResetStatusDetailsOnlyForRequesterAndApprovers(t *testing.T) {
	dana := newPerson(t, "dana", "")
	w := resetWorld(t, []person{dana}, testenv.Options{})
	c := iam.NewFromConfig(w.Dev)
	if _, err := c.CreateGroup(w.ctx, &iam.CreateGroupInput{GroupName: aws.String("osio-breakglass-admins")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddUserToGroup(w.ctx, &iam.AddUserToGroupInput{GroupName: aws.String("osio-breakglass-admins"), UserName: aws.String("dana")}); err != nil {
		t.Fatal(err)
	}
	w.start(app.Options{})
	ack, id := w.resetRequest(testenv.Requester, "")
	if id == "" {
		t.Fatalf("refused: %s", ack)
	}
	card := cardState(t, w, id)
	if !strings.Contains(card, "osio-breakglass-admins") {
		t.Fatalf("the card lacks the group (test setup):\n%s", card)
	}
	secrets := []string{"osio-breakglass-admins", "GPG key", "`dana`", "d***@example.com", "Requested by"}

	one := w.slash(testenv.Outsider, "/osio-reset-password", "status "+id)
	list := w.slash(testenv.Outsider, "/osio-reset-password", "status")
	for name, got := range map[string]string{"status " + id: one, "status": list} {
		for _, s := range secrets {
			if strings.Contains(got, s) {
				t.Errorf("outsider's %q shows %q:\n%s", name, s, got)
			}
		}
		if !strings.Contains(got, id) || !strings.Contains(got, "pending") {
			t.Errorf("outsider's %q lacks the id or the state:\n%s", name, got)
		}
	}
	if !strings.Contains(one, "Console password reset") {
		t.Errorf("outsider's status lacks the kind:\n%s", one)
	}
	for _, u := range []string{testenv.Requester, testenv.Approver} {
		if got := w.slash(u, "/osio-reset-password", "status "+id); !strings.Contains(got, "osio-breakglass-admins") || !strings.Contains(got, "GPG key") {
			t.Errorf("%s's status lacks the details:\n%s", u, got)
		}
		if got := w.slash(u, "/osio-reset-password", "status"); !strings.Contains(got, "`dana`") {
			t.Errorf("%s's status list lacks the user:\n%s", u, got)
		}
	}

	for text, want := range map[string]string{
		"--method <!here>": "`&lt;!here&gt;` is not a method",
		"<@U0ADMIN>":       "`&lt;@U0ADMIN&gt;` is not a valid IAM user name",
	} {
		got := w.slash(testenv.Requester, "/osio-reset-password", text)
		if !strings.Contains(got, want) || strings.Contains(got, "<!here>") || strings.Contains(got, "<@U0ADMIN>") {
			t.Errorf("/osio-reset-password %s: reply lacks %q or echoes raw text:\n%s", text, want, got)
		}
	}
}
