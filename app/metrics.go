package app

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	smithy "github.com/aws/smithy-go"
	smithymiddleware "github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/mail"
)

// metrics are the bot's Prometheus metrics beyond the ack histogram and
// the Slack errors. Every label is low-cardinality: a kind, an outcome, a
// peer's operation, a store operation; never a user or a request id.
type metrics struct {
	ack        *prometheus.HistogramVec
	slackErrs  *prometheus.CounterVec
	requests   *prometheus.CounterVec
	decision   *prometheus.HistogramVec
	job        *prometheus.HistogramVec
	peer       *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	storeOp    *prometheus.HistogramVec
	storeErrs  *prometheus.CounterVec
}

// durationBuckets spans a click (seconds) to a long export (hours).
var durationBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400}

func newMetrics() *metrics {
	return &metrics{
		ack: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "osio_bot_ack_seconds", Help: "Slash command envelope-to-ack latency.",
			Buckets: []float64{.001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"command"}),
		slackErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "osio_bot_slack_errors_total",
			Help: "Slack errors that no retry fixes, by class (channel: the bot cannot post there; content: a message Slack refused; auth: the token is refused) and Slack's error code.",
		}, []string{"class", "error"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "osio_bot_requests_total",
			Help: "Requests reaching an outcome, by kind and outcome (pending, refused, approved, denied, expired, cancelled, succeeded, failed), counted when the store records the transition.",
		}, []string{"kind", "outcome"}),
		decision: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "osio_bot_decision_seconds",
			Help:    "Time from a request's creation to its decision (approved, denied, cancelled, expired).",
			Buckets: durationBuckets,
		}, []string{"kind", "outcome"}),
		job: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "osio_bot_job_seconds",
			Help:    "Time from a job's start (in this process) to its end, by kind and outcome (succeeded, failed).",
			Buckets: durationBuckets,
		}, []string{"kind", "outcome"}),
		peer: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "osio_bot_peer_calls_total",
			Help: "Calls to peers by service (slack, aws, gitlab, graphql, smtp), operation and result (ok, client_error, server_error, throttled, timeout, error; smtp: temporary, permanent).",
		}, []string{"service", "operation", "result"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "osio_bot_deliveries_total",
			Help: "Thread delivery rounds of one request, by result (ok; transient, channel, content, auth, gone: the Slack error class of a failed round).",
		}, []string{"result"}),
		storeOp: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "osio_bot_store_op_seconds",
			Help:    "Store operation latency, by operation.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"op"}),
		storeErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "osio_bot_store_errors_total",
			Help: "Store operations that failed (not a state conflict, a missing request or a lost lease), by operation.",
		}, []string{"op"}),
	}
}

// collectors are everything /metrics serves: the metrics, the runtime and
// process collectors, and the gauges read at scrape time (the Socket Mode
// connection, the outbox). Each kind's outcomes start at 0, so that the
// first failure or expiry is an increase an alert sees.
func (m *metrics) collectors(sock socketState, outbox outboxReader, kinds []string) []prometheus.Collector {
	for _, k := range kinds {
		for o := range outcomes {
			m.requests.WithLabelValues(k, string(o))
		}
	}
	return []prometheus.Collector{m.ack, m.slackErrs, m.requests, m.decision, m.job, m.peer, m.deliveries, m.storeOp, m.storeErrs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "osio_bot_socket_connected", Help: "1 while a Socket Mode connection to Slack is up.",
		}, func() float64 {
			if ok, _ := sock.Connected(); ok {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "osio_bot_socket_reconnects_total", Help: "Socket Mode connections made after the first one.",
		}, func() float64 { return float64(max(0, sock.Connects()-1)) }),
		newOutboxCollector(outbox, 2*time.Second),
	}
}

// socketState is the bot's Socket Mode connection as the gauges read it.
type socketState interface {
	Connected() (bool, time.Time)
	Connects() int
}

// ---- requests ----

// decisions are the outcomes that are a decision on a request.
var decisions = map[actions.State]bool{actions.Approved: true, actions.Denied: true, actions.Cancelled: true, actions.Expired: true}

// outcomes are the states counted in osio_bot_requests_total.
var outcomes = map[actions.State]bool{actions.Pending: true, actions.Refused: true, actions.Approved: true, actions.Denied: true,
	actions.Expired: true, actions.Cancelled: true, actions.Succeeded: true, actions.Failed: true}

// ---- peers ----

// resultOf classifies a peer call: its error, else its HTTP status.
func resultOf(status int, err error) string {
	switch {
	case err != nil:
		if errors.Is(err, context.DeadlineExceeded) {
			return "timeout"
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			return "timeout"
		}
		return "error"
	case status == http.StatusTooManyRequests:
		return "throttled"
	case status >= 500:
		return "server_error"
	case status >= 400:
		return "client_error"
	}
	return "ok"
}

// countingTransport counts each HTTP call: service, the operation op
// names from the request, and the result.
type countingTransport struct {
	next    http.RoundTripper
	service string
	op      func(*http.Request) string
	count   *prometheus.CounterVec
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	t.count.WithLabelValues(t.service, t.op(r), resultOf(status, err)).Inc()
	return resp, err
}

// counted wraps hc's transport (http.DefaultTransport when nil) in a
// countingTransport; hc itself is not changed.
func (m *metrics) counted(hc *http.Client, service string, op func(*http.Request) string) *http.Client {
	c := *hc
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	c.Transport = countingTransport{next: next, service: service, op: op, count: m.peer}
	return &c
}

// slackMethod is the Web API method: the path after /api/.
func slackMethod(r *http.Request) string {
	if _, m, ok := strings.Cut(r.URL.Path, "/api/"); ok && m != "" && !strings.Contains(m, "/") {
		return m
	}
	return "other"
}

// gitlabOperation names a GitLab API call by its method and at most two
// plain resource words after the project (merge_requests,
// repository/files): no id, branch with digits, or file path.
func gitlabOperation(r *http.Request) string {
	segs := strings.Split(strings.Trim(r.URL.EscapedPath(), "/"), "/")
	for i := 0; i+1 < len(segs); i++ {
		if segs[i] == "api" && segs[i+1] == "v4" {
			segs = segs[i+2:] // past a base URL's own path
			break
		}
	}
	var words []string
	for i := 0; i < len(segs) && len(words) < 2; i++ {
		s := segs[i]
		if s == "projects" {
			i++ // the project's id or path
			continue
		}
		if plainWord(s) {
			words = append(words, s)
		}
	}
	if len(words) == 0 {
		return r.Method
	}
	return r.Method + " " + strings.Join(words, "/")
}

func plainWord(s string) bool {
	for _, c := range s {
		if (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return s != ""
}

// awsCounter is an SDK middleware counting each operation (after the
// SDK's retries) by service.operation and result.
func (m *metrics) awsCounter(stack *smithymiddleware.Stack) error {
	return stack.Initialize.Add(smithymiddleware.InitializeMiddlewareFunc("osio-bot-peer-calls",
		func(ctx context.Context, in smithymiddleware.InitializeInput, next smithymiddleware.InitializeHandler) (smithymiddleware.InitializeOutput, smithymiddleware.Metadata, error) {
			out, md, err := next.HandleInitialize(ctx, in)
			op := awsmiddleware.GetServiceID(ctx) + "." + awsmiddleware.GetOperationName(ctx)
			m.peer.WithLabelValues("aws", op, awsResult(err)).Inc()
			return out, md, err
		}), smithymiddleware.After)
}

func awsResult(err error) string {
	if err == nil {
		return "ok"
	}
	if ae, ok := errors.AsType[smithy.APIError](err); ok {
		code := ae.ErrorCode()
		if strings.Contains(code, "Throttl") || strings.Contains(code, "TooManyRequests") || strings.Contains(code, "RequestLimitExceeded") ||
			code == "ProvisionedThroughputExceededException" {
			return "throttled"
		}
		if ae.ErrorFault() == smithy.FaultServer {
			return "server_error"
		}
	}
	if re, ok := errors.AsType[*awshttp.ResponseError](err); ok {
		return resultOf(re.HTTPStatusCode(), nil)
	}
	if _, ok := errors.AsType[smithy.APIError](err); ok {
		return "client_error"
	}
	return resultOf(0, err)
}

// withAWSCounter adds the counting middleware to cfg's API options.
func (m *metrics) withAWSCounter(cfg aws.Config) aws.Config {
	cfg.APIOptions = append(cfg.APIOptions, m.awsCounter)
	return cfg
}

// countedMailer counts each mail sent: ok, temporary (4xx, a dropped
// connection), permanent (5xx), timeout.
type countedMailer struct {
	next  mail.Mailer
	count *prometheus.CounterVec
}

func (c countedMailer) Send(ctx context.Context, msg mail.Message) error {
	err := c.next.Send(ctx, msg)
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, context.DeadlineExceeded):
		result = "timeout"
	case mail.IsTemporary(err):
		result = "temporary"
	default:
		result = "permanent"
	}
	c.count.WithLabelValues("smtp", "send", result).Inc()
	return err
}

// ---- thread delivery ----

// deliveryResult names a delivery round's result for
// osio_bot_deliveries_total.
func (m *metrics) delivery(result string) { m.deliveries.WithLabelValues(result).Inc() }

// outboxReader is the part of the store the outbox gauges read.
type outboxReader interface {
	Outbox() ([]string, error)
	Undelivered(id string) ([]actions.Event, actions.Cursor, error)
}

// outboxCollector computes, at scrape time, the events not yet delivered
// to their threads and the age of the oldest. A read that takes longer
// than budget is left running and the last values are reported, so a slow
// store never stalls a scrape.
type outboxCollector struct {
	st       outboxReader
	budget   time.Duration
	pendingD *prometheus.Desc
	oldestD  *prometheus.Desc

	mu       sync.Mutex
	reading  chan struct{} // closed when the read in progress ends; nil when none
	pending  float64
	oldest   float64
	readErrD *prometheus.Desc
	failed   bool
}

func newOutboxCollector(st outboxReader, budget time.Duration) *outboxCollector {
	return &outboxCollector{st: st, budget: budget,
		pendingD: prometheus.NewDesc("osio_bot_delivery_pending_events", "Audit events stored but not yet delivered to their threads.", nil, nil),
		oldestD:  prometheus.NewDesc("osio_bot_delivery_oldest_seconds", "Age of the oldest audit event not yet delivered to its thread; 0 when none.", nil, nil),
		readErrD: prometheus.NewDesc("osio_bot_delivery_outbox_read_ok", "1 when the last read of the outbox for these gauges worked.", nil, nil),
	}
}

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pendingD
	ch <- c.oldestD
	ch <- c.readErrD
}

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	done := c.reading
	if done == nil {
		done = make(chan struct{})
		c.reading = done
		go c.read(done)
	}
	c.mu.Unlock()
	t := time.NewTimer(c.budget)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	c.mu.Lock()
	pending, oldest, failed := c.pending, c.oldest, c.failed
	c.mu.Unlock()
	ok := 1.0
	if failed {
		ok = 0
	}
	ch <- prometheus.MustNewConstMetric(c.pendingD, prometheus.GaugeValue, pending)
	ch <- prometheus.MustNewConstMetric(c.oldestD, prometheus.GaugeValue, oldest)
	ch <- prometheus.MustNewConstMetric(c.readErrD, prometheus.GaugeValue, ok)
}

func (c *outboxCollector) read(done chan struct{}) {
	pending, oldest, err := c.measure()
	c.mu.Lock()
	if err == nil {
		c.pending, c.oldest = pending, oldest
	}
	c.failed = err != nil
	c.reading = nil
	c.mu.Unlock()
	close(done)
}

func (c *outboxCollector) measure() (pending, oldest float64, err error) {
	ids, err := c.st.Outbox()
	if err != nil {
		return 0, 0, err
	}
	now := time.Now()
	for _, id := range ids {
		evs, _, err := c.st.Undelivered(id)
		if errors.Is(err, actions.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, 0, err
		}
		pending += float64(len(evs))
		for _, e := range evs {
			if age := now.Sub(e.At).Seconds(); age > oldest {
				oldest = age
			}
		}
	}
	return pending, oldest, nil
}
