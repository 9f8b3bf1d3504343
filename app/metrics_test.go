package app

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/osio/osio-bot/actions"
)

// Peer operations name no id, branch or file path.
func TestPeerOperationNames(t *testing.T) {
	for path, want := range map[string]string{
		"/api/v4/projects/service%2Fapp-interface/merge_requests":                       "GET merge_requests",
		"/api/v4/projects/42/merge_requests/17/notes":                                   "GET merge_requests/notes",
		"/api/v4/projects/42/repository/files/data%2Fusers%2Fdana.yml/raw":              "GET repository/files",
		"/api/v4/projects/42/repository/branches/osio-bot-reset-R-000012":               "GET repository/branches",
		"/api/v4/projects/service%2Fapp-interface/repository/commits":                   "GET repository/commits",
		"/gitlab/api/v4/projects/42/merge_requests?source_branch=osio-bot-reset-R-0001": "GET merge_requests",
	} {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		if got := gitlabOperation(r); got != want {
			t.Errorf("gitlabOperation(%s) = %q, want %q", path, got, want)
		}
	}
	for path, want := range map[string]string{"/api/chat.postMessage": "chat.postMessage", "/api/": "other", "/services/T1/B2/xyz": "other"} {
		if got := slackMethod(httptest.NewRequest(http.MethodPost, path, nil)); got != want {
			t.Errorf("slackMethod(%s) = %q, want %q", path, got, want)
		}
	}
	for _, c := range []struct {
		status int
		err    error
		want   string
	}{{200, nil, "ok"}, {429, nil, "throttled"}, {404, nil, "client_error"}, {503, nil, "server_error"}, {0, errors.New("reset"), "error"}} {
		if got := resultOf(c.status, c.err); got != c.want {
			t.Errorf("resultOf(%d, %v) = %q, want %q", c.status, c.err, got, c.want)
		}
	}
}

type slowOutbox struct{ delay time.Duration }

func (s slowOutbox) Outbox() ([]string, error) { time.Sleep(s.delay); return []string{"R-1"}, nil }
func (s slowOutbox) Undelivered(string) ([]actions.Event, actions.Cursor, error) {
	return []actions.Event{{Seq: 1, At: time.Now().Add(-time.Minute)}, {Seq: 2, At: time.Now()}}, actions.Cursor{}, nil
}

// A slow outbox read does not hold a scrape past the budget.
func TestOutboxCollectorBounded(t *testing.T) {
	c := newOutboxCollector(slowOutbox{delay: 300 * time.Millisecond}, 50*time.Millisecond)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	start := time.Now()
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 3 {
		t.Fatalf("gathered %d families, %v", len(mfs), err)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("scrape took %s; the budget is 50ms", d)
	}
	time.Sleep(400 * time.Millisecond)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
	}
	if got["osio_bot_delivery_pending_events"] != 2 || got["osio_bot_delivery_oldest_seconds"] < 59 || got["osio_bot_delivery_outbox_read_ok"] != 1 {
		t.Errorf("after the read: %v; want 2 pending, the oldest a minute old", got)
	}
}
