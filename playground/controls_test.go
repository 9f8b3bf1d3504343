package playground_test

import (
	"bufio"
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/osio/osio-bot/demo"
	"github.com/osio/osio-bot/playground"
	"github.com/osio/osio-bot/testservers/testenv"
)

// client talks to the playground's handler as the page's script does.
type client struct {
	t   *testing.T
	url string
}

func (c client) post(path string, form url.Values) (int, string) {
	c.t.Helper()
	resp, err := http.PostForm(c.url+path, form)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c client) ok(path string, form url.Values) string {
	c.t.Helper()
	code, body := c.post(path, form)
	if code != http.StatusOK {
		c.t.Fatalf("POST %s %v: %d %s", path, form, code, body)
	}
	return body
}

func (c client) get(path string) string {
	c.t.Helper()
	resp, err := http.Get(c.url + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}

// request types a command as the developer through the page and returns
// the request id the receipt names, once its checks are done.
func (c client) request(w *demo.World, ctx context.Context, command string) string {
	c.t.Helper()
	n := len(w.Slack.Receipts(demo.Developer))
	c.ok("/api/slash", url.Values{"user": {demo.Developer}, "text": {command}})
	var id string
	err := w.Slack.WaitFor(ctx, func() bool {
		rs := w.Slack.Receipts(demo.Developer)
		if len(rs) <= n || rs[len(rs)-1].Replaced == 0 {
			return false
		}
		id = requestID.FindString(rs[len(rs)-1].Text)
		return id != ""
	})
	if err != nil {
		c.t.Fatalf("%s: no request: %v", command, err)
	}
	return id
}

// approve clicks the card's Approve button whose value ends in suffix as
// the interrupt catcher, with what the page's button carries.
func (c client) approve(w *demo.World, ctx context.Context, id, suffix string) {
	c.t.Helper()
	card, err := w.Card(ctx, id)
	if err != nil {
		c.t.Fatal(err)
	}
	var blocks []struct {
		BlockID  string `json:"block_id"`
		Elements []struct {
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
		} `json:"elements"`
	}
	_ = json.Unmarshal(card.Blocks, &blocks)
	for _, b := range blocks {
		for _, e := range b.Elements {
			if e.ActionID == "approve" && strings.HasSuffix(e.Value, suffix) {
				c.ok("/api/click", url.Values{"user": {demo.Catcher}, "channel": {card.Channel}, "ts": {card.TS},
					"action_id": {e.ActionID}, "block_id": {b.BlockID}, "value": {e.Value}})
				return
			}
		}
	}
	c.t.Fatalf("card of %s has no Approve button for %q: %s", id, suffix, card.Blocks)
}

// TestWorldControls drives the world panes' controls through the
// playground's handler, as the page does: a held Data Pipeline run failed
// from the page fails the export; the mailed password decrypts with the
// developer's key and shows only after the decrypt button; an
// app-interface merge request merged from the page lets the reset finish;
// a person's mistakes are answered with a sentence; the event stream
// says when Slack changed.
func TestWorldControls(t *testing.T) {
	needs(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	w, err := demo.Start(ctx, demo.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	srv := httptest.NewServer(playground.New(w))
	defer srv.Close()
	c := client{t: t, url: srv.URL}

	// The event stream: hello, then slack after a change.
	ectx, ecancel := context.WithCancel(ctx)
	defer ecancel()
	req, _ := http.NewRequestWithContext(ectx, http.MethodGet, srv.URL+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if ev, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				events <- ev
			}
		}
		close(events)
	}()
	waitEvent := func(want string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case ev := <-events:
				if ev == want {
					return
				}
			case <-deadline:
				t.Fatalf("no %q event", want)
			}
		}
	}
	waitEvent("hello")

	// Mistakes are answered, not failures.
	for _, m := range []struct {
		path string
		form url.Values
		want string
	}{
		{"/api/slash", url.Values{"user": {demo.Developer}, "text": {"export please"}}, "type a slash command"},
		{"/api/slash", url.Values{"user": {"UNOBODY"}, "text": {"/osio-pending"}}, "choose someone"},
		{"/api/world", url.Values{"op": {"fail"}, "id": {"df-none"}}, "no pipeline"},
		{"/api/world", url.Values{"op": {"decrypt"}, "index": {"0"}}, "no such mail"},
		{"/api/world", url.Values{"op": {"explode"}}, "unknown control"},
	} {
		code, body := c.post(m.path, m.form)
		if code/100 != 4 && !(m.want == "no pipeline" && code == http.StatusBadGateway) || !strings.Contains(body, m.want) {
			t.Errorf("POST %s %v = %d %q, want a 4xx saying %q", m.path, m.form, code, body, m.want)
		}
	}

	// A held run, failed from the page.
	c.ok("/api/world", url.Values{"op": {"hold"}, "name": {demo.Table}})
	if !strings.Contains(c.get("/frag/world"), demo.Table+": held") {
		t.Error("the Data Pipeline pane does not show the hold")
	}
	exp := c.request(w, ctx, "/osio-export "+demo.Table)
	waitEvent("slack")
	c.approve(w, ctx, exp, exp)
	var pipeline string
	if err := w.Slack.WaitFor(ctx, func() bool {
		for _, p := range w.DP.Pipelines() {
			if len(p.Runs) > 0 && p.Runs[len(p.Runs)-1].Status == "RUNNING" {
				pipeline = p.ID
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal("no run became RUNNING")
	}
	if !strings.Contains(c.get("/frag/world"), `data-op="fail" data-id="`+pipeline+`"`) {
		t.Error("the held run has no Fail button")
	}
	c.ok("/api/world", url.Values{"op": {"fail"}, "id": {pipeline}, "msg": {"Access Denied (Service: Amazon S3; Status Code: 403)"}})
	if err := w.WaitThread(ctx, exp, "Access Denied"); err != nil {
		t.Error(err)
	}
	if code, body := c.post("/api/world", url.Values{"op": {"finish"}, "id": {pipeline}}); code != http.StatusBadRequest || !strings.Contains(body, "not held") {
		t.Errorf("finishing a failed run = %d %q", code, body)
	}

	// The mailed password: hidden until decrypted with the developer's key.
	reset := c.request(w, ctx, "/osio-reset-password "+demo.DevUser+" --account osio-dev")
	c.approve(w, ctx, reset, "/inplace")
	if _, err := w.SMTP.WaitMessages(ctx, 1); err != nil {
		t.Fatal(err)
	}
	world := c.get("/frag/world")
	if !strings.Contains(world, `data-op="decrypt" data-index="0"`) || strings.Contains(world, "Decrypted with") {
		t.Fatalf("the mailbox shows no decrypt button, or a password before it is decrypted:\n%s", world)
	}
	c.ok("/api/world", url.Values{"op": {"decrypt"}, "index": {"0"}})
	m := regexp.MustCompile(`Decrypted with dana's key: <code>([^<]+)</code>`).FindStringSubmatch(c.get("/frag/world"))
	if m == nil || len(html.UnescapeString(m[1])) < 32 {
		t.Errorf("no decrypted password of the policy's length in the mailbox: %q", m)
	}
	if err := w.WaitThread(ctx, reset, "Request finished"); err != nil {
		t.Log(err) // the wording is the thread's; the mail is what matters here
	}

	// An app-interface merge request, merged from the page.
	mr := c.request(w, ctx, "/osio-reset-password "+demo.DevUser+" --account osio-dev")
	c.approve(w, ctx, mr, "/resetpasswords")
	var iid int64
	if err := w.Slack.WaitFor(ctx, func() bool {
		for _, m := range w.GitLab.MRs() {
			if m.State == "opened" {
				iid = m.IID
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal("no merge request was opened")
	}
	world = c.get("/frag/world")
	if !strings.Contains(world, `data-op="merge" data-iid="`) || !strings.Contains(world, "resetPasswords") && !strings.Contains(world, "requestId") {
		t.Errorf("the GitLab pane shows no open MR with its diff:\n%s", world)
	}
	c.ok("/api/world", url.Values{"op": {"merge"}, "iid": {strconv.FormatInt(iid, 10)}})
	if m, _ := w.GitLab.MR(iid); m.State != "merged" {
		t.Errorf("!%d is %s after Merge", iid, m.State)
	}
	if errs := w.ReconcileErrors(); len(errs) > 0 {
		t.Errorf("the reconciler failed: %v", errs)
	}
	if err := w.WaitThread(ctx, mr, "Request finished"); err != nil {
		t.Log(err)
	}

	// The page never shows a token.
	all := c.get("/frag/world") + c.get("/frag/slack?as="+demo.Catcher) + c.get("/frag/slack?as="+demo.Developer) + c.get("/")
	for _, secret := range []string{testenv.BotToken, testenv.AppToken, testenv.SMTPPassword, testenv.GitLabToken} {
		if strings.Contains(all, secret) {
			t.Errorf("the page shows a secret (%.8s…)", secret)
		}
	}
}
