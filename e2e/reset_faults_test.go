package e2e

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/osio/osio-bot/app"
	gitlabserver "github.com/osio/osio-bot/testservers/gitlab"
	"github.com/osio/osio-bot/testservers/testenv"
)

// killAtFailpoint waits until the process logs that it reached its
// failpoint, then SIGKILLs it.
func killAtFailpoint(t *testing.T, w *world, p *proc) {
	t.Helper()
	if err := w.Slack.WaitFor(w.ctx, func() bool {
		b, _ := os.ReadFile(p.log)
		return strings.Contains(string(b), "failpoint reached")
	}); err != nil {
		b, _ := os.ReadFile(p.log)
		t.Fatalf("the failpoint was never reached: %v\n%s", err, b)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
}

// waitMRsUnlessFailed waits for n MRs, failing at once if the request
// fails meanwhile.
func waitMRsUnlessFailed(t *testing.T, w *world, id string, n int) []gitlabserver.MR {
	t.Helper()
	if err := w.Slack.WaitFor(w.ctx, func() bool {
		return len(w.GitLab.MRs()) >= n || strings.Contains(w.ThreadText(id), "* failed: ")
	}); err != nil {
		t.Fatalf("never saw %d MRs: %v", n, err)
	}
	if mrs := w.GitLab.MRs(); len(mrs) >= n {
		return mrs
	}
	t.Fatalf("the request failed before MR %d:\n%s", n, w.ThreadText(id))
	return nil
}

// Issue 8, item 1: the bot opens a merge request and is killed before it
// records it (the "lost answer" failpoints). While it is down,
// app-interface merges that MR. The restarted bot must find its own MR by
// branch, take the merge as progress, and finish: never "the files
// already have that content", never a second MR for the same step.
func TestResetMRMergedWhileBotDown(t *testing.T) {
	bin := buildBot(t)
	for _, c := range []struct {
		failpoint, method string
		// before is how many MRs the test merges before the failpoint is
		// reached (recreate's MR 1 when the failpoint is at MR 2).
		before int
		mrs    int
		done   string
	}{
		{"recreate.mr1.opened", "recreate", 0, 2, "was recreated in osio-dev"},
		{"recreate.mr2.opened", "recreate", 1, 2, "was recreated in osio-dev"},
		{"resetpasswords.mr.opened", "resetpasswords", 0, 1, "was reset by app-interface (login profile recreated at"},
	} {
		t.Run(c.failpoint, func(t *testing.T) {
			w, _ := aiWorld(t, testenv.Options{})
			reconciler(t, w, true)
			original, _ := w.GitLab.File("master", "data"+userPath)
			w.Vars["OSIO_BOT_FAILPOINT"] = c.failpoint
			p1 := startProc(t, w, bin, 1)
			_, id := w.resetRequest(testenv.Requester, "dana --method "+c.method)
			if id == "" {
				t.Fatal("refused")
			}
			w.clickValue(testenv.Approver, "approve", id+"/"+c.method, id)
			for i := 0; i < c.before; i++ {
				w.merge(w.waitMRs(i + 1)[i].IID)
			}
			killAtFailpoint(t, w, p1)
			mrs := w.GitLab.MRs()
			if len(mrs) != c.before+1 || mrs[c.before].State != "opened" {
				t.Fatalf("at the failpoint: %+v, want MR %d open", mrs, c.before+1)
			}
			// app-interface's housekeeping merges it while the bot is down.
			w.merge(mrs[c.before].IID)

			delete(w.Vars, "OSIO_BOT_FAILPOINT")
			startProc(t, w, bin, 2)
			for i := c.before + 1; i < c.mrs; i++ {
				w.merge(waitMRsUnlessFailed(t, w, id, i+1)[i].IID)
			}
			w.waitThread(id, "Request f") // finished or failed
			th := w.ThreadText(id)
			t.Logf("thread:\n%s", th)
			if strings.Contains(th, "* failed: ") || !strings.Contains(th, c.done) {
				t.Fatalf("thread:\n%s", th)
			}
			if n := len(w.GitLab.MRs()); n != c.mrs {
				t.Errorf("%d MRs, want %d", n, c.mrs)
			}
			for _, m := range w.GitLab.MRs() {
				if m.State != "merged" {
					t.Errorf("MR !%d is %s", m.IID, m.State)
				}
				if n := strings.Count(th, m.WebURL+"|"); n < 1 {
					t.Errorf("the thread never names MR !%d", m.IID)
				}
			}
			if c.method == "recreate" {
				for i := 1; i <= 2; i++ {
					if n := strings.Count(th, fmt.Sprintf("MR %d opened", i)); n != 1 {
						t.Errorf("'MR %d opened' said %d times:\n%s", i, n, th)
					}
				}
				if final, _ := w.GitLab.File("master", "data"+userPath); string(final) != string(original) {
					t.Errorf("user file after both MRs differs from the original:\n%s", final)
				}
			}
		})
	}
}

// Issue 8, item 1: the MR is closed without merging while the bot is
// down. The restarted bot finds it by branch and fails the job, saying so;
// it opens no other MR.
func TestResetMRClosedWhileBotDown(t *testing.T) {
	bin := buildBot(t)
	w, _ := aiWorld(t, testenv.Options{})
	reconciler(t, w, true)
	w.Vars["OSIO_BOT_FAILPOINT"] = "recreate.mr1.opened"
	p1 := startProc(t, w, bin, 1)
	_, id := w.resetRequest(testenv.Requester, "dana --method recreate")
	w.clickValue(testenv.Approver, "approve", id+"/recreate", id)
	killAtFailpoint(t, w, p1)
	mrs := w.GitLab.MRs()
	if len(mrs) != 1 {
		t.Fatalf("%d MRs at the failpoint", len(mrs))
	}
	if err := w.GitLab.CloseMR(mrs[0].IID); err != nil {
		t.Fatal(err)
	}
	delete(w.Vars, "OSIO_BOT_FAILPOINT")
	startProc(t, w, bin, 2)
	w.waitThread(id, "* failed: ")
	if th := w.ThreadText(id); !strings.Contains(th, "was closed without being merged") {
		t.Errorf("thread:\n%s", th)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(w.GitLab.MRs()); n != 1 {
		t.Errorf("%d MRs, want only MR 1", n)
	}
}

// resend clicks Resend on id as user and waits until the bot answers:
// an ephemeral refusal, or the retry recorded in the thread.
func (w *world) resend(user, id string) (refusal string) {
	w.t.Helper()
	before := len(w.Slack.Ephemerals(user))
	requested := strings.Count(w.ThreadText(id), "Resend requested by")
	w.clickValue(user, "retry", id, id)
	if err := w.Slack.WaitFor(w.ctx, func() bool {
		return len(w.Slack.Ephemerals(user)) > before || strings.Count(w.ThreadText(id), "Resend requested by") > requested
	}); err != nil {
		w.t.Fatalf("no answer to Resend on %s: %v", id, err)
	}
	if len(w.Slack.Ephemerals(user)) > before {
		return lastEphemeral(w, user)
	}
	return ""
}

// Issue 8, item 2: a failed reset's Resend must not mail a password that
// no longer works. While a newer reset of the same user holds the lock,
// Resend is refused naming it; once that newer reset has set a password,
// Resend is refused saying so. Nothing is mailed either time.
func TestResendRefusedForLaterReset(t *testing.T) {
	dana := newPerson(t, "dana", "")
	w := resetWorld(t, []person{dana}, testenv.Options{})
	w.start(app.Options{})

	w.SMTP.FailNext(1, 550, "5.1.1 Mailbox unavailable")
	_, r1 := w.resetRequest(testenv.Requester, "dana")
	w.clickValue(testenv.Approver, "approve", r1+"/inplace", r1)
	w.waitThread(r1, "* failed: ")
	if err := w.Slack.WaitFor(w.ctx, func() bool { return strings.Contains(cardState(t, w, r1), `"retry"`) }); err != nil {
		t.Fatalf("no Resend button: %s", cardState(t, w, r1))
	}

	// A newer reset of dana, waiting for approval, holds the lock.
	ack, r2 := w.resetRequest(testenv.Requester, "dana")
	if r2 == "" {
		t.Fatalf("a new reset after a failed one was refused: %s", ack)
	}
	got := w.resend(testenv.Approver, r1)
	t.Logf("Resend while %s holds the lock: %s", r2, got)
	if !strings.Contains(got, r2) || !strings.Contains(got, "reset:osio-dev:dana") {
		t.Errorf("Resend while %s holds the lock: told %q; want a refusal naming %s", r2, got, r2)
	}
	if n := len(w.SMTP.Messages()); n != 0 {
		t.Fatalf("%d mails after a Resend that must be refused", n)
	}

	// The newer reset runs and sets (and mails) a new password.
	w.clickValue(testenv.Approver, "approve", r2+"/inplace", r2)
	w.waitThread(r2, "Request finished")
	got = w.resend(testenv.Approver, r1)
	t.Logf("Resend after %s: %s", r2, got)
	if !strings.Contains(got, r2) || !strings.Contains(got, "no longer") {
		t.Errorf("Resend after %s set a password: told %q; want a refusal saying %s set a newer one", r2, got, r2)
	}
	time.Sleep(300 * time.Millisecond)
	msgs := w.SMTP.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d mails, want only %s's", len(msgs), r2)
	}
	if decrypt(t, msgs[0].Data, dana.priv) != motoPassword(t, w, "dana") {
		t.Error("the one mail does not hold the password IAM has")
	}
	if th := w.ThreadText(r1); strings.Contains(th, "Resend requested by") {
		t.Errorf("a refused Resend reached %s's thread:\n%s", r1, th)
	}
}
