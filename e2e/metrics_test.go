package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/osio/osio-bot/app"
	"github.com/osio/osio-bot/config"
	"github.com/osio/osio-bot/testservers/testenv"
)

// metricValue is the value of one series in a /metrics text, named as
// the exposition writes it (labels in alphabetical order); ok is false
// when it is not there.
func metricValue(body, series string) (float64, bool) {
	for _, l := range strings.Split(body, "\n") {
		if v, found := strings.CutPrefix(l, series+" "); found {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// metricSum adds up every series of a metric whose line contains all of
// parts (e.g. `service="aws"`).
func metricSum(body, name string, parts ...string) float64 {
	var sum float64
next:
	for _, l := range strings.Split(body, "\n") {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue next
			}
		}
		if i := strings.LastIndexByte(l, ' '); i > 0 {
			if f, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
				sum += f
			}
		}
	}
	return sum
}

// Issue 11, acceptance 1: after an export, a password reset in place, a
// refused export and a denied one, /metrics holds each metric with its
// value.
func TestMetricsAfterExportAndReset(t *testing.T) {
	addr := freeAddr(t)
	dana := newPerson(t, "dana", "")
	w := resetWorld(t, []person{dana}, testenv.Options{Tweak: func(c *config.Config) { c.Metrics.Listen = addr }})
	w.table("prod_txlog", 5)
	w.table("prod_other", 1)
	w.start(app.Options{})

	// An export, approved, that succeeds.
	_, exp := w.request(testenv.Requester, "prod_txlog")
	if exp == "" {
		t.Fatal("export not taken")
	}
	w.click(testenv.Approver, "approve", exp)
	w.waitThread(exp, "Request finished")

	// A password reset in place, approved, that succeeds (IAM, SMTP).
	ack, rst := w.resetRequest(testenv.Requester, "")
	if rst == "" {
		t.Fatalf("reset refused: %s", ack)
	}
	cardState(t, w, rst)
	w.clickValue(testenv.Approver, "approve", rst+"/inplace", rst)
	w.waitThread(rst, "Request finished")

	// An export refused by its checks, and one denied.
	// (The refused one is stored, refused, but its ack carries no id.)
	if ack, _ := w.request(testenv.Requester, "no_such_table"); !strings.Contains(ack, "No such table") {
		t.Fatalf("missing table: ack %q", ack)
	}
	_, denied := w.request(testenv.Requester, "prod_other")
	if denied == "" {
		t.Fatal("request not taken")
	}
	w.click(testenv.Approver, "deny", denied)
	w.waitThread(denied, "Denied")

	// Everything delivered: no event left in the outbox.
	var body string
	deadline := time.Now().Add(20 * time.Second)
	for {
		body = scrape(t, addr)
		n, ok := metricValue(body, "osio_bot_delivery_pending_events")
		if ok && n == 0 && metricSum(body, "osio_bot_requests_total", `outcome="refused"`) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events still undelivered (%v, %v) or the refusal not counted:\n%s", n, ok, grepLines(body, "osio_bot_"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("/metrics, counters:\n%s\n%s\n%s", grepLines(body, "osio_bot_requests_total"), grepLines(body, "osio_bot_peer_calls_total"), grepLines(body, "osio_bot_deliver"))

	exact := map[string]float64{
		`osio_bot_requests_total{kind="export",outcome="pending"}`:                                        2,
		`osio_bot_requests_total{kind="export",outcome="approved"}`:                                       1,
		`osio_bot_requests_total{kind="export",outcome="succeeded"}`:                                      1,
		`osio_bot_requests_total{kind="export",outcome="refused"}`:                                        1,
		`osio_bot_requests_total{kind="export",outcome="denied"}`:                                         1,
		`osio_bot_requests_total{kind="reset-password",outcome="pending"}`:                                1,
		`osio_bot_requests_total{kind="reset-password",outcome="approved"}`:                               1,
		`osio_bot_requests_total{kind="reset-password",outcome="succeeded"}`:                              1,
		`osio_bot_decision_seconds_count{kind="export",outcome="approved"}`:                               1,
		`osio_bot_decision_seconds_count{kind="export",outcome="denied"}`:                                 1,
		`osio_bot_decision_seconds_count{kind="reset-password",outcome="approved"}`:                       1,
		`osio_bot_job_seconds_count{kind="export",outcome="succeeded"}`:                                   1,
		`osio_bot_job_seconds_count{kind="reset-password",outcome="succeeded"}`:                           1,
		`osio_bot_peer_calls_total{operation="send",result="ok",service="smtp"}`:                          1,
		`osio_bot_peer_calls_total{operation="IAM.UpdateLoginProfile",result="ok",service="aws"}`:         1,
		`osio_bot_peer_calls_total{operation="Data Pipeline.ActivatePipeline",result="ok",service="aws"}`: 1,
		`osio_bot_socket_connected`:                                                                       1,
		`osio_bot_socket_reconnects_total`:                                                                0,
		`osio_bot_delivery_pending_events`:                                                                0,
		`osio_bot_delivery_oldest_seconds`:                                                                0,
		`osio_bot_delivery_outbox_read_ok`:                                                                1,
		`osio_bot_ack_seconds_count{command="/osio-export"}`:                                              3,
		`osio_bot_ack_seconds_count{command="/osio-reset-password"}`:                                      1,
	}
	for series, want := range exact {
		if got, ok := metricValue(body, series); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	for _, o := range []string{"failed", "expired", "cancelled"} {
		if n := metricSum(body, "osio_bot_requests_total", `outcome="`+o+`"`); n != 0 {
			t.Errorf("requests_total{outcome=%q} = %v, want 0", o, n)
		}
	}
	positive := [][]string{
		{"osio_bot_peer_calls_total", `service="slack"`, `operation="chat.postMessage"`, `result="ok"`},
		{"osio_bot_peer_calls_total", `service="slack"`, `operation="chat.update"`, `result="ok"`},
		{"osio_bot_peer_calls_total", `service="slack"`, `operation="apps.connections.open"`, `result="ok"`},
		{"osio_bot_peer_calls_total", `service="aws"`, `operation="DynamoDB.DescribeTable"`, `result="ok"`},
		{"osio_bot_peer_calls_total", `service="aws"`, `operation="STS.AssumeRole"`, `result="ok"`},
		{"osio_bot_peer_calls_total", `service="aws"`, `operation="S3.ListObjectsV2"`, `result="ok"`},
		{"osio_bot_deliveries_total", `result="ok"`},
		{"osio_bot_store_op_seconds_count", `op="create"`},
		{"osio_bot_store_op_seconds_count", `op="update"`},
		{"osio_bot_store_op_seconds_count", `op="transition"`},
		{"osio_bot_store_op_seconds_count", `op="save_checkpoint"`},
		{"osio_bot_store_op_seconds_count", `op="mark_delivered"`},
		{"go_goroutines"},
		{"process_start_time_seconds"},
		{"process_resident_memory_bytes"},
	}
	for _, p := range positive {
		if n := metricSum(body, p[0], p[1:]...); n <= 0 {
			t.Errorf("%s %v = %v, want > 0", p[0], p[1:], n)
		}
	}
	// A refused export's DescribeTable is a client error, not ok.
	if n := metricSum(body, "osio_bot_peer_calls_total", `service="aws"`, `operation="DynamoDB.DescribeTable"`, `result="client_error"`); n < 1 {
		t.Errorf("DescribeTable of a missing table counted %v client errors, want >= 1", n)
	}
	if n := metricSum(body, "osio_bot_store_errors_total"); n != 0 {
		t.Errorf("store errors = %v, want 0", n)
	}
	// No user, request id or table name in a label.
	for _, secretish := range []string{testenv.Requester, testenv.Approver, exp, rst, "prod_txlog", "dana"} {
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "osio_bot_") && strings.Contains(l, secretish) {
				t.Errorf("a label names %q: %s", secretish, l)
			}
		}
	}
}
