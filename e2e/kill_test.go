package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/osio/osio-bot/testservers/testenv"
)

// buildBot compiles cmd/osio-bot into the test's temporary folder.
func buildBot(t testing.TB) string {
	t.Helper()
	return buildBin(t, "../cmd/osio-bot", "osio-bot")
}

// buildBin compiles the main package pkg (relative to e2e) as name.
func buildBin(t testing.TB, pkg, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("building %s: %v\n%s", name, err, out)
	}
	return bin
}

type proc struct {
	cmd *exec.Cmd
	log string
}

func startProc(t *testing.T, w *world, bin string, n int) *proc {
	t.Helper()
	return startProcConfig(t, w, bin, n, w.ConfigPath)
}

// startProcConfig starts the bot binary with the config file cfg.
func startProcConfig(t *testing.T, w *world, bin string, n int, cfg string) *proc {
	t.Helper()
	logPath := filepath.Join(w.Dir, "bot-"+string(rune('0'+n))+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	before := w.Slack.Connections()
	cmd := exec.Command(bin, "run", "--config", cfg)
	cmd.Env = w.Environ()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait(); f.Close() })
	if err := w.Slack.WaitFor(w.ctx, func() bool { return w.Slack.Connections() > before }); err != nil {
		data, _ := os.ReadFile(logPath)
		t.Fatalf("bot process never connected: %v\n%s", err, data)
	}
	return &proc{cmd: cmd, log: logPath}
}

// Acceptance 7: the bot process is SIGKILLed while it watches a run and is
// started again; it resumes the watch, does not activate again, and
// finishes the thread.
func TestKillWhileWatching(t *testing.T) {
	w := newWorld(t, testenv.Options{})
	w.table("prod_txlog", 12)
	w.DP.Hold("prod_txlog")
	bin := buildBot(t)

	p1 := startProc(t, w, bin, 1)
	_, id := w.request(testenv.Requester, "prod_txlog")
	if id == "" {
		t.Fatal("no request id")
	}
	w.click(testenv.Approver, "approve", id)
	w.waitThread(id, "is RUNNING")

	if err := p1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p1.cmd.Wait()
	pid, _ := w.DP.PipelineIDByName("prod_txlog")
	if n := w.DP.Activations(pid); n != 1 {
		t.Fatalf("activations before restart = %d", n)
	}

	p2 := startProc(t, w, bin, 2)
	time.Sleep(500 * time.Millisecond) // let it resume and poll while still held
	w.DP.Release("prod_txlog")
	w.waitThread(id, "Good luck!")
	w.waitThread(id, "Request finished")

	if n := w.DP.Activations(pid); n != 1 {
		t.Errorf("activations after restart = %d, want 1", n)
	}
	if n := w.DP.Calls("CreatePipeline"); n != 1 {
		t.Errorf("CreatePipeline called %d times, want 1", n)
	}
	logs, _ := os.ReadFile(p2.log)
	if !strings.Contains(string(logs), `"resuming request"`) || !strings.Contains(string(logs), id) {
		t.Errorf("second process did not log resuming %s:\n%s", id, logs)
	}
	th := w.ThreadText(id)
	if n := strings.Count(th, "activated pipeline"); n != 1 {
		t.Errorf("thread says 'activated pipeline' %d times:\n%s", n, th)
	}
	if n := strings.Count(th, "verified from account"); n != 1 {
		t.Errorf("thread verified %d times:\n%s", n, th)
	}
	for _, secret := range []string{testenv.AppToken, testenv.BotToken} {
		for _, f := range []string{p1.log, p2.log} {
			data, _ := os.ReadFile(f)
			if strings.Contains(string(data), secret) {
				t.Errorf("a Slack token appears in %s", f)
			}
		}
	}
}
