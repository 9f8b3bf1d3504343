package faultproxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// upstream is a peer that counts what reached it.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	hits []string
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.hits = append(u.hits, r.Method+" "+r.URL.EscapedPath()+" "+string(b))
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) n() int { u.mu.Lock(); defer u.mu.Unlock(); return len(u.hits) }

func newProxy(t *testing.T, u *upstream, f Flavor) *Proxy {
	p, err := New(Options{Target: u.URL, Flavor: f, HoldMax: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func awsJSON(t *testing.T, c *http.Client, base, target string) (*http.Response, error) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/", strings.NewReader(`{"pipelineId":"df-1"}`))
	req.Header.Set("X-Amz-Target", target)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	return c.Do(req)
}

func TestOperationNames(t *testing.T) {
	u := newUpstream(t)
	aws := newProxy(t, u, AWS)
	if resp, err := awsJSON(t, http.DefaultClient, aws.URL(), "DataPipeline.ActivatePipeline"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	resp, err := http.PostForm(aws.URL()+"/", url.Values{"Action": {"UpdateLoginProfile"}, "UserName": {"dana"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = http.Get(aws.URL() + "/bucket/key")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for op, want := range map[string]int{"ActivatePipeline": 1, "UpdateLoginProfile": 1, "GET /bucket/key": 1} {
		if got := aws.Count(op); got != want {
			t.Errorf("AWS count(%q) = %d, want %d", op, got, want)
		}
	}
	if b := aws.Bodies("UpdateLoginProfile"); len(b) != 1 || !strings.Contains(string(b[0]), "UserName=dana") {
		t.Errorf("bodies: %q", b)
	}
	// The form was put back for the peer.
	if u.n() != 3 || !strings.Contains(u.hits[1], "Action=UpdateLoginProfile") {
		t.Errorf("upstream saw %q", u.hits)
	}

	slack := newProxy(t, u, Slack)
	resp, err = http.PostForm(slack.URL()+"/api/chat.postMessage", url.Values{"channel": {"C1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if slack.Count("chat.postMessage") != 1 {
		t.Errorf("slack ops: %d", slack.Count("chat.postMessage"))
	}

	gl := newProxy(t, u, GitLab)
	gl.Arm(Rule{Op: "POST /api/v4/projects/*/merge_requests", Fault: Fail5xx, Times: 1})
	resp, err = http.Post(gl.URL()+"/api/v4/projects/osio%2Fapp-interface/merge_requests", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 || gl.Injected("POST /api/v4/projects/osio%2Fapp-interface/merge_requests") != 1 {
		t.Errorf("GitLab pattern: status %d, injected %d", resp.StatusCode, gl.Injected("POST /api/v4/projects/osio%2Fapp-interface/merge_requests"))
	}
}

func TestFail5xx(t *testing.T) {
	u := newUpstream(t)
	p := newProxy(t, u, AWS)
	p.Arm(Rule{Op: "ActivatePipeline", Fault: Fail5xx, Times: 2})
	p.Arm(Rule{Op: "UpdateLoginProfile", Fault: Fail5xx, Times: 1, Status: 503})
	for i, want := range []int{500, 500, 200} {
		resp, err := awsJSON(t, http.DefaultClient, p.URL(), "DataPipeline.ActivatePipeline")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("request %d: %d, want %d", i, resp.StatusCode, want)
		}
		if want == 500 {
			var e struct {
				Type string `json:"__type"`
			}
			if json.Unmarshal(b, &e); e.Type != "InternalServiceError" {
				t.Errorf("error body %s", b)
			}
		}
	}
	if u.n() != 1 {
		t.Errorf("the peer saw %d requests, want only the unfaulted one", u.n())
	}
	resp, err := http.PostForm(p.URL()+"/", url.Values{"Action": {"UpdateLoginProfile"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), "<Code>ServiceUnavailable</Code>") {
		t.Errorf("query protocol 503: %d %s", resp.StatusCode, b)
	}
	if p.Count("ActivatePipeline") != 3 || p.Injected("ActivatePipeline") != 2 || p.Pending() != 0 {
		t.Errorf("count %d injected %d pending %d", p.Count("ActivatePipeline"), p.Injected("ActivatePipeline"), p.Pending())
	}

	s := newProxy(t, u, Slack)
	s.Arm(Rule{Op: "chat.postMessage", Fault: Fail5xx, Times: 1})
	resp, err = http.PostForm(s.URL()+"/api/chat.postMessage", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("Slack 5xx: %d", resp.StatusCode)
	}
}

func TestTimeoutClientGivesUp(t *testing.T) {
	u := newUpstream(t)
	p := newProxy(t, u, AWS)
	p.Arm(Rule{Op: "ActivatePipeline", Fault: Timeout, Times: 1})
	start := time.Now()
	_, err := awsJSON(t, &http.Client{Timeout: 200 * time.Millisecond}, p.URL(), "DataPipeline.ActivatePipeline")
	if err == nil {
		t.Fatal("the held request was answered")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the client waited %s", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(p.Holds()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	h := p.Holds()
	if len(h) != 1 || !h[0].ClientGaveUp || h[0].Op != "ActivatePipeline" {
		t.Fatalf("holds %+v", h)
	}
	if u.n() != 0 {
		t.Errorf("a held request reached the peer")
	}
	// The next one goes through.
	resp, err := awsJSON(t, http.DefaultClient, p.URL(), "DataPipeline.ActivatePipeline")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the timeout: %v", err)
	}
	resp.Body.Close()
}

func TestTimeoutBound(t *testing.T) {
	u := newUpstream(t)
	p := newProxy(t, u, GitLab)
	p.Arm(Rule{Op: "POST /x", Fault: Timeout, Times: 1, HoldFor: 150 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", p.URL()+"/x", strings.NewReader("{}"))
	_, err := http.DefaultClient.Do(req)
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the connection dropped at the bound, got %v", err)
	}
	h := p.Holds()
	if len(h) != 1 || h[0].ClientGaveUp || h[0].Held < 150*time.Millisecond {
		t.Errorf("holds %+v", h)
	}
	if u.n() != 0 {
		t.Errorf("a held request reached the peer")
	}
}

func TestLost(t *testing.T) {
	u := newUpstream(t)
	p := newProxy(t, u, Slack)
	p.Arm(Rule{Op: "chat.postMessage", Fault: Lost, Times: 1})
	_, err := http.PostForm(p.URL()+"/api/chat.postMessage", url.Values{"text": {"hello"}})
	if err == nil {
		t.Fatal("the lost answer arrived")
	}
	if u.n() != 1 || !strings.Contains(u.hits[0], "text=hello") {
		t.Fatalf("the peer did not do the work: %q", u.hits)
	}
	resp, err := http.PostForm(p.URL()+"/api/chat.postMessage", url.Values{"text": {"again"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != `{"ok":true}` || u.n() != 2 || p.Count("chat.postMessage") != 2 || p.Injected("chat.postMessage") != 1 {
		t.Errorf("after the lost answer: %s, peer %d, count %d", b, u.n(), p.Count("chat.postMessage"))
	}
}

// A repeated ClientToken gets the first answer without reaching the peer;
// other parameters under the same token are a mismatch.
func TestClientTokens(t *testing.T) {
	u := newUpstream(t)
	p, err := New(Options{Target: u.URL, Flavor: AWS, ClientTokens: []string{"ImportTable"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Arm(Rule{Op: "ImportTable", Fault: Lost, Times: 1})
	send := func(body string) (int, string, error) {
		req, _ := http.NewRequest("POST", p.URL()+"/", strings.NewReader(body))
		req.Header.Set("X-Amz-Target", "DynamoDB_20120810.ImportTable")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	if _, _, err := send(`{"ClientToken":"t1","TableName":"a"}`); err == nil {
		t.Fatal("the lost answer arrived")
	}
	code, body, err := send(`{"ClientToken":"t1","TableName":"a"}`)
	if err != nil || code != 200 || body != `{"ok":true}` {
		t.Fatalf("repeat: %d %s %v", code, body, err)
	}
	if u.n() != 1 || p.Reached("ImportTable") != 1 || p.Count("ImportTable") != 2 {
		t.Errorf("the peer saw %d imports (reached %d), want 1", u.n(), p.Reached("ImportTable"))
	}
	if code, body, _ := send(`{"ClientToken":"t1","TableName":"b"}`); code != 400 || !strings.Contains(body, "IdempotentParameterMismatchException") {
		t.Errorf("mismatch: %d %s", code, body)
	}
	if code, _, _ := send(`{"ClientToken":"t2","TableName":"b"}`); code != 200 || u.n() != 2 {
		t.Errorf("a new token: %d, peer %d", code, u.n())
	}
}

// Delay: every matching request ("*", unbounded) is answered by the peer,
// Delay late; a client that gives up first is not forwarded; Disarm ends
// the rule.
func TestDelayAllUntilDisarmed(t *testing.T) {
	u := newUpstream(t)
	p := newProxy(t, u, AWS)
	const d = 150 * time.Millisecond
	p.Arm(Rule{Op: "*", Fault: Delay, Delay: d, Times: -1})
	for _, path := range []string{"/bucket/key", "/other/key"} { // S3 names hold "/"
		start := time.Now()
		resp, err := http.Get(p.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if took := time.Since(start); took < d || resp.StatusCode != 200 || string(b) != `{"ok":true}` {
			t.Errorf("GET %s: %d %s after %v, want the peer's answer after %v", path, resp.StatusCode, b, took, d)
		}
	}
	if u.n() != 2 || p.Injected("GET /bucket/key") != 1 || p.Pending() != 0 {
		t.Errorf("peer saw %d, injected %d, pending %d", u.n(), p.Injected("GET /bucket/key"), p.Pending())
	}

	// A client that gives up before the delay ends: nothing forwarded.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.URL()+"/gone/key", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("answered %d before the delay ended", resp.StatusCode)
	}
	time.Sleep(2 * d)
	if u.n() != 2 {
		t.Errorf("a request whose client gave up reached the peer (%d requests)", u.n())
	}

	p.Disarm()
	start := time.Now()
	resp, err := http.Get(p.URL() + "/bucket/key")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if took := time.Since(start); took >= d {
		t.Errorf("after Disarm a request took %v", took)
	}
}
