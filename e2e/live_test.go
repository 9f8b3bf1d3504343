package e2e

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/osio/osio-bot/config"
	"github.com/osio/osio-bot/store"
	"github.com/osio/osio-bot/testservers/testenv"
)

// freeAddr picks a free loopback port for metrics.listen.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// probe GETs path and returns the status code and body; 0 when nothing
// answers.
func probe(addr, path string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// waitProbe polls until path answers code, or fails the test.
func waitProbe(t *testing.T, addr, path string, code int, bodyHas string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got, body := probe(addr, path)
		if got == code && strings.Contains(body, bodyHas) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s answered %d %q for %v, want %d with %q", path, got, body, limit, code, bodyHas)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exited waits for the process to end within limit and returns its exit
// code and how long it took; -1 when it is still running.
func exited(p *proc, limit time.Duration) (int, time.Duration) {
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), time.Since(start)
		}
		if err != nil {
			return -2, time.Since(start)
		}
		return 0, time.Since(start)
	case <-time.After(limit):
		return -1, limit
	}
}

// Issue 8 item 8: the app token is revoked while a job is running. The
// bot must not stay up deaf: /healthz and /readyz fail, the running job
// stops at its checkpoint, and the process exits non-zero in a bounded
// time. Started again with a new app token, it is live and ready, and the
// job resumes from its checkpoint and finishes, activating once.
func TestRevokedAppTokenExitsAndResumes(t *testing.T) {
	addr := freeAddr(t)
	w := newWorld(t, testenv.Options{Tweak: func(c *config.Config) { c.Metrics.Listen = addr }})
	w.table("prod_txlog", 12)
	bin := buildBot(t)

	w.Vars["OSIO_BOT_FAILPOINT"] = "datapipeline.activating"
	p1 := startProc(t, w, bin, 1)
	waitProbe(t, addr, "/healthz", 200, "ok", 10*time.Second)
	waitProbe(t, addr, "/readyz", 200, "ready", 10*time.Second)

	_, id := w.request(testenv.Requester, "prod_txlog")
	if id == "" {
		t.Fatal("no request id")
	}
	w.click(testenv.Approver, "approve", id)
	if err := w.Slack.WaitFor(w.ctx, func() bool {
		b, _ := os.ReadFile(p1.log)
		return strings.Contains(string(b), "failpoint reached")
	}); err != nil {
		t.Fatal(err)
	}

	revoked := time.Now()
	w.Slack.RevokeAppToken(testenv.AppToken)
	waitProbe(t, addr, "/healthz", 503, "invalid_auth", 5*time.Second)
	if code, body := probe(addr, "/readyz"); code != 503 || !strings.Contains(body, "not connected to Slack") {
		t.Errorf("/readyz after the revocation answered %d %q, want 503 not connected", code, body)
	}
	code, _ := exited(p1, 30*time.Second)
	took := time.Since(revoked)
	logs, _ := os.ReadFile(p1.log)
	if code == -1 {
		t.Fatalf("the bot still runs %v after its app token was revoked (deaf):\n%s", took, tail(logs, 30))
	}
	if code == 0 {
		t.Errorf("the bot exited 0 after a fatal Socket Mode error, want non-zero")
	}
	t.Logf("exit %d %v after the revocation", code, took.Round(10*time.Millisecond))
	for _, want := range []string{"fatal Slack Socket Mode error", "invalid_auth", "job interrupted by shutdown"} {
		if !strings.Contains(string(logs), want) {
			t.Errorf("first process log does not say %q:\n%s", want, tail(logs, 30))
		}
	}
	if r := w.storeRequest(id); r != "running" {
		t.Errorf("request is %s after the exit, want running (to be resumed)", r)
	}
	pid, _ := w.DP.PipelineIDByName("prod_txlog")
	if n := w.DP.Activations(pid); n != 0 {
		t.Errorf("%d activations before the restart, want 0: the job went past its checkpoint", n)
	}

	// A new app token is issued; the pod restarts.
	delete(w.Vars, "OSIO_BOT_FAILPOINT")
	w.Vars["SLACK_APP_TOKEN"] = "xapp-1-A1-new-app-token"
	p2 := startProc(t, w, bin, 2)
	waitProbe(t, addr, "/healthz", 200, "ok", 10*time.Second)
	waitProbe(t, addr, "/readyz", 200, "ready", 10*time.Second)
	w.waitThread(id, "Request finished")
	pid, _ = w.DP.PipelineIDByName("prod_txlog")
	if n := w.DP.Activations(pid); n != 1 {
		t.Errorf("activations = %d, want 1", n)
	}
	logs2, _ := os.ReadFile(p2.log)
	if !strings.Contains(string(logs2), `"resuming request"`) {
		t.Errorf("second process did not resume %s:\n%s", id, tail(logs2, 30))
	}
}

// TestRevokedAppTokenJobReachesCheckpoint: after the fatal error a job
// that is watching a run goes on until its next checkpoint (the run
// finished) and stops there, without waiting out the grace; the restart
// verifies and finishes it.
func TestRevokedAppTokenJobReachesCheckpoint(t *testing.T) {
	addr := freeAddr(t)
	w := newWorld(t, testenv.Options{Tweak: func(c *config.Config) { c.Metrics.Listen = addr }})
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

	revoked := time.Now()
	w.Slack.RevokeAppToken(testenv.AppToken)
	waitProbe(t, addr, "/healthz", 503, "invalid_auth", 5*time.Second)
	w.DP.Release("prod_txlog")
	code, _ := exited(p1, 30*time.Second)
	took := time.Since(revoked)
	logs, _ := os.ReadFile(p1.log)
	if code == -1 || code == 0 {
		t.Fatalf("exit code %d (-1: still running) %v after the revocation, want non-zero:\n%s", code, took, tail(logs, 30))
	}
	t.Logf("exit %d %v after the revocation", code, took.Round(10*time.Millisecond))
	if took > 8*time.Second {
		t.Errorf("exit took %v: the job did not stop at its next checkpoint but waited out the 10s grace", took)
	}
	if !strings.Contains(string(logs), "job stopped at its checkpoint") {
		t.Errorf("first process did not stop the job at its checkpoint:\n%s", tail(logs, 30))
	}
	if r := w.storeRequest(id); r != "running" {
		t.Errorf("request is %s after the exit, want running (to be resumed)", r)
	}

	w.Vars["SLACK_APP_TOKEN"] = "xapp-1-A1-new-app-token"
	startProc(t, w, bin, 2)
	w.waitThread(id, "Request finished")
	pid, _ := w.DP.PipelineIDByName("prod_txlog")
	if n := w.DP.Activations(pid); n != 1 {
		t.Errorf("activations = %d, want 1", n)
	}
	if th := w.ThreadText(id); strings.Count(th, "verified from account") != 1 {
		t.Errorf("thread does not say verified exactly once:\n%s", th)
	}
}

// TestRevokedAppTokenIdleExits: with no job running the exit is prompt.
func TestRevokedAppTokenIdleExits(t *testing.T) {
	addr := freeAddr(t)
	w := newWorld(t, testenv.Options{Tweak: func(c *config.Config) { c.Metrics.Listen = addr }})
	bin := buildBot(t)
	p := startProc(t, w, bin, 1)
	waitProbe(t, addr, "/readyz", 200, "ready", 10*time.Second)
	w.Slack.RevokeAppToken(testenv.AppToken)
	code, took := exited(p, 15*time.Second)
	if code == -1 || code == 0 {
		logs, _ := os.ReadFile(p.log)
		t.Fatalf("exit code %d (-1: still running) after %v, want non-zero:\n%s", code, took, tail(logs, 20))
	}
	if took > 5*time.Second {
		t.Errorf("idle bot took %v to exit, want a few seconds at most", took)
	}
	t.Logf("idle exit %d %v after the revocation", code, took.Round(10*time.Millisecond))
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// storeRequest reads the request's state from the store file (the
// process that held it has exited).
func (w *world) storeRequest(id string) string {
	w.t.Helper()
	st, err := store.Open(w.Config.Store.Path, store.Options{})
	if err != nil {
		w.t.Fatal(err)
	}
	defer st.Close()
	r, err := st.Get(id)
	if err != nil {
		w.t.Fatal(err)
	}
	return string(r.State)
}
