package bot

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/store"
)

// stalledSlack is a Web API whose chat.postEphemeral hangs until
// released; it counts the calls in flight.
type stalledSlack struct {
	*recorder
	release      chan struct{}
	in, most, n  atomic.Int32
	groupMembers []string
}

func (s *stalledSlack) GetUserGroupMembersContext(context.Context, string, ...slack.GetUserGroupMembersOption) ([]string, error) {
	return s.groupMembers, nil
}

func (s *stalledSlack) PostEphemeralContext(ctx context.Context, _, _ string, _ ...slack.MsgOption) (string, error) {
	n := s.in.Add(1)
	defer s.in.Add(-1)
	for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
	}
	select {
	case <-s.release:
		s.n.Add(1)
		return "1.0", nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Issue 9: while Slack's Web API stalls, acked clicks are handled at most
// maxClicking at a time; the others wait as records in a queue, not each
// in a goroutine holding a connection. Once Slack answers, every clicker
// is told.
func TestStalledClicksAreBounded(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "bot.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	api := &stalledSlack{recorder: &recorder{}, release: make(chan struct{}), groupMembers: []string{"UCATCHER"}}
	kinds := map[string]Kind{"k": {Describe: func(*actions.Request) (string, []string) { return "K", nil }}}
	b := New(Deps{
		Settings: Settings{ApprovalsChannel: "CAPPROVALS", ApproverGroups: []string{"SCATCHERS"}, Expiry: time.Hour},
		API:      api, Store: st, Runner: noRun{}, Socket: socketmode.New(slack.New("xoxb-test")),
		Reporter:  NewReporter(&recorder{}, st, ReporterOptions{Log: zap.NewNop(), Render: RenderCard(kinds, nil)}),
		Approvers: NewApprovers(api, []string{"SCATCHERS"}, time.Minute, time.Now),
		Kinds:     kinds, Log: zap.NewNop(),
	})
	res, err := st.Create(&actions.Request{Kind: "k", State: actions.Pending, Requester: "UDEV", Origin: "CDEV",
		Thread: actions.Thread{Channel: "CAPPROVALS", TS: "1.0"}, ExpiresAt: time.Now().Add(time.Hour)}, "")
	if err != nil {
		t.Fatal(err)
	}
	id := res.Request.ID
	const clicks = 300
	ctx := context.Background()
	for i := range clicks {
		// An outsider's Approve on the card: refused, told ephemerally.
		evt := socketmode.Event{Type: socketmode.EventTypeInteractive, Request: &socketmode.Request{EnvelopeID: fmt.Sprintf("env-%d", i)},
			Data: slack.InteractionCallback{Type: slack.InteractionTypeBlockActions, User: slack.User{ID: "UOUTSIDER"},
				Container:      slack.Container{Type: "message", ChannelID: "CAPPROVALS", MessageTs: "1.0"},
				ActionCallback: slack.ActionCallbacks{BlockActions: []*slack.BlockAction{{ActionID: ActionApprove, BlockID: "decide", Value: id}}}}}
		c, why := decodeClick(evt.Data.(slack.InteractionCallback))
		b.clicks.push(func() { b.click(ctx, evt.Request.EnvelopeID, c, why) })
	}
	// Wait until the first clicks hang on Slack.
	for deadline := time.Now().Add(20 * time.Second); api.in.Load() < maxClicking && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	b.clicks.mu.Lock()
	queued := len(b.clicks.queue)
	b.clicks.mu.Unlock()
	if in := api.in.Load(); in != maxClicking || queued != clicks-maxClicking {
		t.Errorf("%d clicks waiting on Slack and %d queued, want %d and %d", in, queued, maxClicking, clicks-maxClicking)
	}
	close(api.release)
	b.wg.Wait()
	if n, m := api.n.Load(), api.most.Load(); n != clicks || m > maxClicking {
		t.Errorf("%d clickers told, %d calls at once at most; want %d told, at most %d at once", n, m, clicks, maxClicking)
	}
	if r, _ := st.Get(id); r.State != actions.Pending {
		t.Errorf("the outsiders' clicks changed the request: %s", r.State)
	}
}
