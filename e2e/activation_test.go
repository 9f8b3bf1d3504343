package e2e

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/osio/osio-bot/testservers/datapipeline"
	"github.com/osio/osio-bot/testservers/testenv"
)

// Issue 8, item 14: AWS accepts ActivatePipeline, the answer is lost (the
// bot is SIGKILLed while it waits for it), and the run's instances appear
// only seconds later. The restarted bot must see from the pipeline's
// @lastActivationTime that the activation happened and must not activate
// again: a second ActivatePipeline would cancel the run and start a new EMR
// cluster. The Data Pipeline server's clock is a few seconds behind the
// bot's, as AWS's may be.
func TestActivationAnswerLostThenKilled(t *testing.T) {
	const instanceDelay = 5 * time.Second
	w := newWorld(t, testenv.Options{DPInstanceDelay: instanceDelay, DPClockOffset: -3 * time.Second})
	w.table("prod_txlog", 12)
	bin := buildBot(t)
	w.DP.LoseAnswers("ActivatePipeline", dpserver.HoldAnswer, 1)

	p1 := startProc(t, w, bin, 1)
	_, id := w.request(testenv.Requester, "prod_txlog")
	if id == "" {
		t.Fatal("no request id")
	}
	w.click(testenv.Approver, "approve", id)
	if err := w.Slack.WaitFor(w.ctx, func() bool { return w.DP.HeldAnswers("ActivatePipeline") == 1 }); err != nil {
		t.Fatalf("the bot never activated: %v", err)
	}
	activated := time.Now()
	if err := p1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p1.cmd.Wait()
	pid, _ := w.DP.PipelineIDByName("prod_txlog")
	if n := w.DP.Activations(pid); n != 1 {
		t.Fatalf("activations before restart = %d, want 1", n)
	}

	p2 := startProc(t, w, bin, 2)
	// The bot must decide while the run's instances are still invisible,
	// else this test proves nothing.
	w.waitThread(id, "activated pipeline")
	if d := time.Since(activated); d >= instanceDelay {
		t.Fatalf("the restarted bot decided %v after the activation, after the instances appeared (%v); the test did not exercise the window", d, instanceDelay)
	} else {
		t.Logf("restarted bot decided %v after the activation; instances appear after %v", d, instanceDelay)
	}
	w.waitThread(id, "Request finished")
	if err := w.Slack.WaitFor(w.ctx, func() bool { return strings.Contains(cardState(t, w, id), "succeeded") }); err != nil {
		t.Errorf("card never said succeeded: %s", cardState(t, w, id))
	}

	if n := w.DP.Activations(pid); n != 1 {
		t.Errorf("activations = %d, want 1", n)
	}
	if n := w.DP.Calls("ActivatePipeline"); n != 1 {
		t.Errorf("ActivatePipeline called %d times, want 1", n)
	}
	if runs := w.DP.Runs(pid); len(runs) != 1 || runs[0].Status != "FINISHED" {
		t.Errorf("runs = %+v, want one FINISHED", runs)
	}
	th := w.ThreadText(id)
	if n := strings.Count(th, "activated pipeline"); n != 1 {
		t.Errorf("thread says 'activated pipeline' %d times:\n%s", n, th)
	}
	if n := strings.Count(th, "verified from account"); n != 1 {
		t.Errorf("thread verified %d times:\n%s", n, th)
	}
	logs, _ := os.ReadFile(p2.log)
	if !strings.Contains(string(logs), "resuming request") {
		t.Errorf("second process did not resume %s:\n%s", id, logs)
	}
}
