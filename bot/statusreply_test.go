package bot

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/osio/osio-bot/actions"
	"github.com/slack-go/slack"
)

// Issue 12 part 4: "status R-…" lists the request's last steps as people
// read them in its thread: not the card's re-renderings (events with no
// text, shown as empty lines) nor the runner's internal "Finished: …"
// progress (the state line already says how it ended).
func TestStatusReplyShowsStepsOnly(t *testing.T) {
	kinds := map[string]Kind{"k": {Describe: func(*actions.Request) (string, []string) { return "K", []string{"*Fact:* x"} }}}
	b, st := unitBot(t, kinds, Settings{})
	res, err := st.Create(&actions.Request{Kind: "k", State: actions.Approved, Requester: "UDEV", Origin: "CDEV",
		Thread: actions.Thread{Channel: "CAPPROVALS"}, ExpiresAt: time.Now().Add(time.Hour)}, "")
	if err != nil {
		t.Fatal(err)
	}
	id := res.Request.ID
	if _, err := st.Transition(id, nil, actions.Running, nil, actions.Event{Kind: actions.Card},
		actions.Event{Kind: actions.Message, Text: "created pipeline"}, actions.Event{Kind: actions.Progress, Text: "pipeline RUNNING"}); err != nil {
		t.Fatal(err)
	}
	running := b.Status(context.Background(), "k", Invocation{Cmd: slack.SlashCommand{UserID: "UDEV"}, Args: []string{id}}).Text
	if !strings.Contains(running, "created pipeline") || !strings.Contains(running, "pipeline RUNNING") {
		t.Errorf("status of a running request:\n%s\nwant its steps and its latest progress", running)
	}
	if _, err := st.Transition(id, nil, actions.Succeeded, nil, actions.Event{Kind: actions.Progress, Text: "Finished: succeeded"},
		actions.Event{Kind: actions.Message, Text: "Good luck!"}, actions.Event{Kind: actions.Card}); err != nil {
		t.Fatal(err)
	}
	done := b.Status(context.Background(), "k", Invocation{Cmd: slack.SlashCommand{UserID: "UDEV"}, Args: []string{id}}).Text
	if strings.Contains(done, "Finished: ") || strings.Contains(done, "pipeline RUNNING") {
		t.Errorf("status of an ended request shows internal progress:\n%s", done)
	}
	if regexp.MustCompile(`(?m)^> \d\d:\d\d:\d\d\s*$`).MatchString(done) {
		t.Errorf("status shows an empty step (a card event):\n%s", done)
	}
	if !strings.Contains(done, "created pipeline") || !strings.Contains(done, "Good luck!") {
		t.Errorf("status of an ended request:\n%s\nwant its steps", done)
	}
}
