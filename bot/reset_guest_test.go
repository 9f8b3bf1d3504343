package bot

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions"
)

// fakeUsers answers users.info from memory; a missing user is an error.
type fakeUsers map[string]SlackUser

func (f fakeUsers) SlackUser(_ context.Context, id string) (SlackUser, error) {
	u, ok := f[id]
	if !ok {
		return SlackUser{}, errors.New("users.info: user_not_found")
	}
	return u, nil
}

// Issue 8 item 4: /osio-reset-password asks users.info who is asking
// before anything else, refuses a guest whatever they typed, and refuses
// (without requesting anything) when users.info does not answer. Neither
// path reaches the resetter (nil here). Issue 9: this is the check after
// the ack; the intake takes the words unparsed.
func TestResetCommandRefusesGuestsFirst(t *testing.T) {
	users := fakeUsers{"UGUEST": {Email: "dana@example.com", Guest: true}}
	k := ResetKind(nil, users)
	check := func(user, text string) (Checked, error) {
		p, msg := k.Parse(strings.Fields(text))
		if msg != "" {
			t.Fatalf("the intake refused %q: %s", text, msg)
		}
		data, err := json.Marshal(p.Args)
		if err != nil {
			t.Fatal(err)
		}
		return k.Check(context.Background(), &actions.Request{Requester: user, Args: data})
	}
	for _, text := range []string{"", "dana", "dana --account osio --method inplace", "--force", "a b c"} {
		if c, err := check("UGUEST", text); err != nil || c.Refusal != guestRefusal {
			t.Errorf("guest %q: %q %v", text, c.Refusal, err)
		}
	}
	if _, err := check("UNKNOWN", "dana"); err == nil {
		t.Errorf("users.info failing: no error")
	}
	if got := uncheckedText(k, false, time.Second); !strings.Contains(got, "could not check that reset") || !strings.Contains(got, "nothing was requested") {
		t.Errorf("users.info failing is told as %q", got)
	}
	if !strings.Contains(guestRefusal, "guest") || !strings.Contains(guestRefusal, "nothing was requested") {
		t.Errorf("the refusal does not say why: %q", guestRefusal)
	}
	// help stays open.
	b := New(Deps{Log: zap.NewNop()})
	cmd := b.ResetCommand()
	if got := cmd.Dispatch(context.Background(), Invocation{Cmd: slack.SlashCommand{UserID: "UGUEST", Command: cmd.Name}, Args: []string{"help"}}).Text; !strings.Contains(got, "/osio-reset-password") {
		t.Errorf("help for a guest: %q", got)
	}
}
