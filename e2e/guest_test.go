package e2e

import (
	"strings"
	"testing"

	"github.com/osio/osio-bot/app"
	"github.com/osio/osio-bot/config"
	slackserver "github.com/osio/osio-bot/testservers/slack"
	"github.com/osio/osio-bot/testservers/testenv"
)

// Issue 8 item 4: a Slack guest (multi- or single-channel) typing
// /osio-reset-password is refused outright, whatever their e-mail or
// mapping says and whoever they name; a full member whose e-mail is outside
// directory.email_domains is not taken for the employee with the same
// local part. No request is created, nothing is posted to approvers.
func TestResetGuestsRefused(t *testing.T) {
	dana := newPerson(t, "dana", "")
	gus := newPerson(t, "gus", "UGUS") // mapped explicitly in the directory
	w := resetWorld(t, []person{dana, gus}, testenv.Options{Tweak: func(c *config.Config) {
		c.Directory.EmailDomains = []string{"example.com"}
	}})
	for _, u := range []slackserver.User{
		// A multi-channel guest whose Slack e-mail is the employee's.
		{ID: "UGUEST", Name: "guest", RealName: "Gail Guest", Email: "dana@example.com", Restricted: true},
		// A single-channel guest.
		{ID: "USCGUEST", Name: "scguest", RealName: "Sam Single", Email: "dana@gmail.com", UltraRestricted: true},
		// A guest the directory maps to a person.
		{ID: "UGUS", Name: "gus", RealName: "Gus Guest", Email: "gus@example.com", Restricted: true},
		// A full member with an outside address sharing dana's local part.
		{ID: "UCONTRACTOR", Name: "contractor", RealName: "Dan Contractor", Email: "dana@gmail.com"},
	} {
		w.Slack.AddUser(u)
	}
	w.start(app.Options{})

	const guestMsg = "Slack guest accounts cannot use /osio-reset-password"
	for _, c := range []struct{ name, user, text, want string }{
		{"guest, own password", "UGUEST", "", guestMsg},
		{"guest names a user", "UGUEST", "dana", guestMsg},
		{"guest with a bad option", "UGUEST", "--force", guestMsg},
		{"single-channel guest", "USCGUEST", "", guestMsg},
		{"single-channel guest names a user", "USCGUEST", "dana --account osio-dev --method inplace", guestMsg},
		{"mapped guest", "UGUS", "", guestMsg},
		{"outside domain", "UCONTRACTOR", "", "I cannot tell who you are"},
	} {
		ack, id := w.resetRequest(c.user, c.text)
		if id != "" {
			t.Errorf("%s: request %s created (reply %q)", c.name, id, ack)
		}
		if !strings.Contains(ack, c.want) {
			t.Errorf("%s: reply %q lacks %q", c.name, ack, c.want)
		}
	}
	if n := len(w.Slack.Messages(testenv.Channel)); n != 0 {
		t.Errorf("%d approval messages posted for refused requests", n)
	}
	// A full member inside the domain still resolves by e-mail (Requester's
	// is dana@example.com), and may name a user.
	if ack, id := w.resetRequest(testenv.Requester, ""); id == "" || !strings.Contains(w.ThreadText(id)+ack, "dana") {
		t.Errorf("a member's own reset was refused: %s", ack)
	}
	if ack, id := w.resetRequest(testenv.Outsider, "gus"); id == "" {
		t.Errorf("a member naming a user was refused: %s", ack)
	}
	if n := len(w.SMTP.Messages()); n != 0 {
		t.Errorf("%d mails sent without approval", n)
	}
}
