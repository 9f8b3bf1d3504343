package bot

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/osio/osio-bot/actions"
	slackserver "github.com/osio/osio-bot/testservers/slack"
)

// isStatus reports whether m is a status message, by its metadata.
func isStatus(m slackserver.Message) bool {
	var md struct {
		EventType    string         `json:"event_type"`
		EventPayload map[string]any `json:"event_payload"`
	}
	return json.Unmarshal(m.Metadata, &md) == nil && md.EventType == metaType && md.EventPayload["kind"] == "status"
}

func statusMessages(th []slackserver.Message) []slackserver.Message {
	var out []slackserver.Message
	for _, m := range th {
		if isStatus(m) {
			out = append(out, m)
		}
	}
	return out
}

// finish ends request id as the runner does: the status's last progress,
// the closing replies and the card, with the terminal state.
func (w *slackWorld) finish(id string, to actions.State, last ...string) {
	w.t.Helper()
	evs := []actions.Event{{Kind: actions.Progress, Text: "Finished: " + string(to)}}
	for _, l := range last {
		evs = append(evs, actions.Event{Kind: actions.Message, Text: l})
	}
	evs = append(evs, actions.Event{Kind: actions.Card})
	if _, err := w.st.Transition(id, nil, to, nil, evs...); err != nil {
		w.t.Fatal(err)
	}
}

// Fault 2 of issue 12 part 4: a progress event whose text is the one the
// status message already shows must not cost a chat.update.
func TestStatusSameTextIsNotSentAgain(t *testing.T) {
	w := newSlackWorld(t)
	id := w.request(approvals, time.Now().Add(time.Hour), actions.Event{Kind: actions.Card}, actions.Event{Kind: actions.Progress, Text: "pipeline is RUNNING (checked 04:03:20 UTC)"})
	rep := w.reporter(ReporterOptions{ProgressInterval: time.Millisecond})
	ctx := context.Background()
	if _, err := rep.deliver(ctx, id); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		w.add(id, actions.Event{Kind: actions.Progress, Text: "pipeline is RUNNING (checked 04:03:20 UTC)"})
		time.Sleep(5 * time.Millisecond)
		if _, err := rep.deliver(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if n := w.srv.Calls("chat.update"); n != 0 {
		t.Errorf("%d chat.update calls that send the status's text again; want 0", n)
	}
	w.add(id, actions.Event{Kind: actions.Progress, Text: "pipeline is FINISHED (checked 04:03:25 UTC)"})
	time.Sleep(5 * time.Millisecond)
	if _, err := rep.deliver(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n := w.srv.Calls("chat.update"); n != 1 {
		t.Errorf("%d chat.update calls after a new text; want 1", n)
	}
}

// Fault 1 of issue 12 part 4: once the request has ended, its status
// message reads as finished (an outcome icon, no hourglass, past tense)
// and says that the last steps follow it, so that the thread reads in
// order.
func TestStatusReadsFinished(t *testing.T) {
	for _, tt := range []struct {
		to   actions.State
		icon string
		word string
	}{
		{actions.Succeeded, ":white_check_mark: ", "Succeeded"},
		{actions.Failed, ":x: ", "Failed"},
		{actions.Cancelled, ":no_entry_sign: ", "Cancelled"},
	} {
		t.Run(string(tt.to), func(t *testing.T) {
			w := newSlackWorld(t)
			id := w.request(approvals, time.Now().Add(time.Hour), actions.Event{Kind: actions.Card},
				actions.Event{Kind: actions.Message, Text: "activated pipeline"}, actions.Event{Kind: actions.Progress, Text: "pipeline is RUNNING"})
			rep := w.reporter(ReporterOptions{ProgressInterval: time.Millisecond})
			ctx := context.Background()
			if _, err := rep.deliver(ctx, id); err != nil {
				t.Fatal(err)
			}
			w.finish(id, tt.to, "pipeline FINISHED.", "Request ended.")
			if _, err := rep.deliver(ctx, id); err != nil {
				t.Fatal(err)
			}
			th := w.thread(id)
			st := statusMessages(th)
			if len(st) != 1 {
				t.Fatalf("thread %q holds %d status messages; want 1", texts(th), len(st))
			}
			got := st[0].Text
			if !strings.HasPrefix(got, tt.icon+tt.word) || strings.Contains(got, "hourglass") || strings.Contains(got, "Finished: ") || !strings.Contains(got, "follow") {
				t.Errorf("finished status reads %q; want %q, past tense, saying the last steps follow", got, tt.icon+tt.word+" at …")
			}
			if got := texts(th); got[len(got)-1] != "Request ended." {
				t.Errorf("the thread ends with %q; want the outcome last", got[len(got)-1])
			}
		})
	}
	t.Run("ended before its status was posted", func(t *testing.T) {
		w := newSlackWorld(t)
		id := w.request(approvals, time.Now().Add(time.Hour), actions.Event{Kind: actions.Card})
		rep := w.reporter(ReporterOptions{ProgressInterval: time.Millisecond})
		w.add(id, actions.Event{Kind: actions.Message, Text: "activated pipeline"}, actions.Event{Kind: actions.Progress, Text: "step 1"}, actions.Event{Kind: actions.Message, Text: "step 1 done"})
		w.finish(id, actions.Failed, ":x: Request failed: boom.")
		if _, err := rep.deliver(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		th := w.thread(id)
		got := texts(th)
		if len(got) != 4 || !isStatus(th[1]) || !strings.HasPrefix(got[1], ":x: Failed at ") || got[3] != ":x: Request failed: boom." || th[1].Edits != 0 {
			t.Errorf("thread holds %q; want the status posted finished where the job first reported progress, and not edited", got)
		}
	})
	// The status post's answer was lost, and the process restarted: the
	// status message is found by its metadata and edited to its finished
	// form, not posted again.
	t.Run("lost status answer and restart", func(t *testing.T) {
		w := newSlackWorld(t)
		id := w.request(approvals, time.Now().Add(time.Hour), actions.Event{Kind: actions.Card}, actions.Event{Kind: actions.Progress, Text: "step 1"})
		rep := w.reporter(ReporterOptions{ProgressInterval: time.Millisecond})
		ctx := context.Background()
		w.srv.LoseNext("chat.postMessage", 2) // the card is adopted; the status is lost
		for range 3 {
			if _, err := rep.deliver(ctx, id); err == nil {
				break
			}
		}
		w.finish(id, actions.Succeeded, "Done.")
		rep = w.reporter(ReporterOptions{ProgressInterval: time.Millisecond, Now: func() time.Time { return time.Now().Add(time.Minute) }})
		for range 3 {
			if _, err := rep.deliver(ctx, id); err == nil {
				break
			}
		}
		th := w.thread(id)
		st := statusMessages(th)
		if len(st) != 1 || !strings.HasPrefix(st[0].Text, ":white_check_mark: Succeeded") {
			t.Fatalf("thread holds %q; want one status message, finished", texts(th))
		}
		if got := texts(th); len(got) != 2 || got[1] != "Done." {
			t.Errorf("thread holds %q; want the status, then the outcome once", got)
		}
	})
}

// Issue 12 part 4: a failed request that an approver resends runs again;
// its first status message keeps its finished form (":x: Failed at …",
// above the failure reply), and the second run's progress and outcome go
// to a new status message below the resend, so that the thread reads in
// order, not "Succeeded" above the earlier failure.
func TestRetriedRequestGetsANewStatus(t *testing.T) {
	w, _, id, deliver := failedRun(t)
	w.resend(id)
	w.add(id, actions.Event{Kind: actions.Progress, Text: "mailing the password again"})
	deliver(false)
	w.finish(id, actions.Succeeded, "mailed.")
	deliver(false)

	var order []string
	for _, m := range w.thread(id) {
		switch {
		case isStatus(m) && strings.HasPrefix(m.Text, ":x: Failed"):
			order = append(order, "status:failed")
		case isStatus(m) && strings.HasPrefix(m.Text, ":white_check_mark: Succeeded"):
			order = append(order, "status:succeeded")
		case isStatus(m):
			order = append(order, "status:"+m.Text)
		default:
			order = append(order, m.Text)
		}
	}
	want := []string{"status:failed", ":x: the mail failed.", "Resend by <@UCATCHER>.", "status:succeeded", "mailed."}
	if strings.Join(order, " | ") != strings.Join(want, " | ") {
		t.Errorf("thread reads:\n  %s\nwant:\n  %s", strings.Join(order, " | "), strings.Join(want, " | "))
	}
}

// The same, with the answer to the second run's status post lost: the
// reporter finds the one it posted (after the resend), not the first
// run's, and posts no third.
func TestRetriedStatusPostLost(t *testing.T) {
	w, _, id, deliver := failedRun(t)
	w.resend(id)
	deliver(false)
	w.add(id, actions.Event{Kind: actions.Progress, Text: "mailing the password again"})
	w.srv.LoseNext("chat.postMessage", 1)
	deliver(true)
	deliver(false)
	w.finish(id, actions.Succeeded, "mailed.")
	deliver(false)
	st := statusMessages(w.thread(id))
	if len(st) != 2 || !strings.HasPrefix(st[0].Text, ":x: Failed") || !strings.HasPrefix(st[1].Text, ":white_check_mark: Succeeded") {
		var got []string
		for _, m := range st {
			got = append(got, m.Text)
		}
		t.Errorf("status messages %q; want the first run's failed one and the second run's succeeded one", got)
	}
}

// A second run's status post that never reached Slack is not mistaken for
// the first run's, finished status above the resend: findStatus looks
// only after the reply it is given.
func TestFindStatusLooksAfterTheResend(t *testing.T) {
	w, rep, id, _ := failedRun(t)
	ctx := context.Background()
	req, err := w.st.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	th := w.thread(id)
	last := th[len(th)-1].TS // the failure reply
	if ts, err := rep.findStatus(ctx, req, ""); err != nil || ts == "" {
		t.Fatalf("findStatus from the start: %q, %v; want the first run's status", ts, err)
	}
	if ts, err := rep.findStatus(ctx, req, last); err != nil || ts != "" {
		t.Errorf("findStatus after the last reply: %q, %v; want none (the first run's is above it)", ts, err)
	}
}

// failedRun is a request whose job reported progress and failed, its
// thread delivered: the status message closed as failed, then the
// failure reply. deliver runs a delivery round, which must fail or not.
func failedRun(t *testing.T) (w *slackWorld, rep *Reporter, id string, deliver func(wantErr bool)) {
	t.Helper()
	w = newSlackWorld(t)
	id = w.request(approvals, time.Now().Add(time.Hour), actions.Event{Kind: actions.Card},
		actions.Event{Kind: actions.Progress, Text: "mailing the password"})
	rep = w.reporter(ReporterOptions{ProgressInterval: time.Millisecond})
	deliver = func(wantErr bool) {
		t.Helper()
		time.Sleep(5 * time.Millisecond) // past the progress interval
		if _, err := rep.deliver(context.Background(), id); (err != nil) != wantErr {
			t.Fatalf("deliver: %v (want an error: %v)", err, wantErr)
		}
	}
	deliver(false)
	w.finish(id, actions.Failed, ":x: the mail failed.")
	deliver(false)
	return w, rep, id, deliver
}

// resend records an approver's Resend of id as bot.retry does.
func (w *slackWorld) resend(id string) {
	w.t.Helper()
	if _, err := w.st.Transition(id, nil, actions.Approved, nil, actions.Event{Kind: actions.Card}, actions.Event{Kind: actions.Message, Text: "Resend by <@UCATCHER>."}); err != nil {
		w.t.Fatal(err)
	}
}
