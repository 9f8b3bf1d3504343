package bot

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/slack-go/slack"
	"go.uber.org/zap"
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
// path reaches the resetter (nil here).
func TestResetCommandRefusesGuestsFirst(t *testing.T) {
	b := New(Deps{Log: zap.NewNop()})
	users := fakeUsers{"UGUEST": {Email: "dana@example.com", Guest: true}}
	cmd := b.ResetCommand(nil, users)
	run := func(user, text string) string {
		return cmd.Dispatch(context.Background(), Invocation{Cmd: slack.SlashCommand{UserID: user, Command: cmd.Name}, Args: strings.Fields(text)}).Text
	}
	for _, text := range []string{"", "dana", "dana --account osio --method inplace", "--force", "a b c"} {
		if got := run("UGUEST", text); got != guestRefusal {
			t.Errorf("guest %q: %q", text, got)
		}
	}
	if got := run("UNKNOWN", "dana"); !strings.Contains(got, "could not read your Slack profile") || !strings.Contains(got, "nothing was requested") {
		t.Errorf("users.info failing: %q", got)
	}
	if !strings.Contains(guestRefusal, "guest") || !strings.Contains(guestRefusal, "nothing was requested") {
		t.Errorf("the refusal does not say why: %q", guestRefusal)
	}
	// help stays open.
	if got := run("UGUEST", "help"); !strings.Contains(got, "/osio-reset-password") {
		t.Errorf("help for a guest: %q", got)
	}
}
