// Package faultproxy is an HTTP reverse proxy (net/http/httputil) that
// stands in front of one peer of the bot (moto, the Data Pipeline server,
// the Slack Web API, GitLab) and injects faults into chosen operations, for
// the fault matrix (e2e/matrix_test.go).
//
// Each request is classified into an operation name by the peer's Flavor:
//
//   - AWS: the X-Amz-Target header of the JSON protocols (DynamoDB, Data
//     Pipeline), without its service prefix ("ActivatePipeline",
//     "ExportTableToPointInTime"); else the form's Action of the query
//     protocols (IAM, STS: "UpdateLoginProfile", "AssumeRole"); else
//     "METHOD /path" (S3's REST protocol).
//   - Slack: the Web API method from the URL path ("/api/chat.postMessage"
//     is "chat.postMessage").
//   - GitLab: "METHOD /escaped/path", e.g.
//     "POST /api/v4/projects/osio%2Fapp-interface/merge_requests"; rules
//     match it with path.Match patterns
//     ("POST /api/v4/projects/*/merge_requests").
//
// A Rule injects one Fault into the next Times requests whose operation
// matches:
//
//   - Fail5xx answers as the service does when it fails inside, without
//     forwarding: AWS JSON protocols 500 with
//     {"__type":"InternalServerError",...} (503 ServiceUnavailable when
//     Status is 503), AWS query protocols 500 with an <ErrorResponse> of
//     Code ServiceFailure, Slack an HTTP 503 with an empty body (as Slack's
//     edge does), GitLab 500 {"message":"500 Internal Server Error"}.
//   - Timeout holds the request, never forwarding it, until the client gives
//     up (closes the connection or cancels) or Rule.HoldFor passes
//     (Options.HoldMax when zero); then it drops the connection without an
//     answer. Holds records which of the two ended it.
//   - Lost forwards the request, so the peer does the work, reads the
//     peer's whole answer, then hijacks the client's connection and closes
//     it: the client sees the connection end with no answer.
//   - Delay holds the request for Rule.Delay, then forwards it and answers
//     with the peer's answer: a slow peer. A client that gives up first
//     gets nothing, and the request is not forwarded.
//
// Op "*" matches every operation (path.Match's "*" stops at "/", which
// S3's and GitLab's names contain). Times < 0 arms a rule without bound,
// until Disarm.
//
// Options.ClientTokens fills a gap of moto 5.2.1, which ignores the
// ClientToken of DynamoDB's ExportTableToPointInTime and ImportTable: for
// the listed operations (AWS JSON protocols), a repeat with a ClientToken
// already answered with a 200 gets that answer again without reaching the
// peer, as AWS does (for 8 hours); a repeat with other parameters gets
// IdempotentParameterMismatchException.
//
// Every request is counted per operation (Count), with its body (Bodies),
// whether a fault was injected or not.
//
// What it does NOT model (be careful what a passing cell proves):
//
//   - Faults are per request, not per TCP connection: no half-open
//     connections, resets in the middle of a body, slow bodies, DNS or
//     connect failures, TLS (the peers here speak plain HTTP/1.1).
//   - A 5xx carries no Retry-After; throttling (429, AWS
//     ThrottlingException, Slack ratelimited) is the peers' own business.
//   - Lost answers are lost after the peer finished; a peer that fails
//     half-way and rolls back is not modelled.
//   - WebSockets (Socket Mode) are not proxied: the Slack server hands out
//     its own wss URL; only the Web API goes through the proxy.
package faultproxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
)

// Flavor tells how a peer names its operations and how it answers a 5xx.
type Flavor int

// The peers' flavors.
const (
	AWS Flavor = iota
	Slack
	GitLab
)

// Fault is what a Rule injects.
type Fault string

// The faults.
const (
	Fail5xx Fault = "5xx"
	Timeout Fault = "timeout"
	Lost    Fault = "lost"
	Delay   Fault = "delay"
)

// Rule injects Fault into the next Times requests whose operation matches
// Op (a path.Match pattern; a plain name matches itself; "*" matches every
// operation). Times < 0 injects it into every matching request until
// Disarm.
type Rule struct {
	Op    string
	Fault Fault
	Times int
	// Delay is how long a Delay fault holds a request before forwarding it.
	Delay time.Duration
	// Status is the 5xx status (default 500; AWS 503 is
	// ServiceUnavailable).
	Status int
	// HoldFor bounds a Timeout (default Options.HoldMax).
	HoldFor time.Duration
}

// Options configure a Proxy.
type Options struct {
	// Target is the peer's base URL (scheme and host; a path is kept).
	Target string
	Flavor Flavor
	// HoldMax bounds a Timeout whose rule has no HoldFor (default 2 min).
	HoldMax time.Duration
	// ClientTokens lists AWS JSON operations whose ClientToken the proxy
	// makes idempotent (see the package comment).
	ClientTokens []string
}

type answer struct {
	body   []byte // the request's
	status int
	header http.Header
	out    []byte
}

// Hold is how one Timeout ended.
type Hold struct {
	Op string
	// ClientGaveUp: the client closed or cancelled before the bound.
	ClientGaveUp bool
	Held         time.Duration
}

// Proxy is a running fault proxy. Its methods are safe for concurrent use.
type Proxy struct {
	opts  Options
	srv   *httptest.Server
	rp    *httputil.ReverseProxy
	stop  chan struct{}
	close sync.Once

	mu       sync.Mutex
	rules    []*Rule
	counts   map[string]int
	injected map[string]int
	bodies   map[string][][]byte
	holds    []Hold
	tokens   map[string]*answer
	reached  map[string]int
}

// New starts a proxy on 127.0.0.1 in front of o.Target. Close it when done.
func New(o Options) (*Proxy, error) {
	target, err := url.Parse(o.Target)
	if err != nil || target.Scheme == "" || target.Host == "" {
		return nil, fmt.Errorf("faultproxy: bad target %q", o.Target)
	}
	if o.HoldMax <= 0 {
		o.HoldMax = 2 * time.Minute
	}
	p := &Proxy{opts: o, stop: make(chan struct{}), counts: map[string]int{}, injected: map[string]int{}, bodies: map[string][][]byte{}, tokens: map[string]*answer{}, reached: map[string]int{}}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // keep what the client signed (SigV4 covers Host); the local peers do not check it
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "faultproxy: peer unreachable: "+err.Error(), http.StatusBadGateway)
		},
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	return p, nil
}

// URL is the proxy's base URL, to give the client instead of the peer's.
func (p *Proxy) URL() string { return p.srv.URL }

// Close stops the proxy, ending held requests.
func (p *Proxy) Close() {
	p.close.Do(func() {
		close(p.stop)
		p.srv.CloseClientConnections()
		p.srv.Close()
	})
}

// Arm adds a rule. Rules are tried in the order armed; a rule whose Times
// is used up is skipped.
func (p *Proxy) Arm(r Rule) {
	if r.Status == 0 {
		r.Status = http.StatusInternalServerError
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, &r)
}

// Disarm removes every rule; requests already held by a fault are not
// released early.
func (p *Proxy) Disarm() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// Pending is how many injections armed rules still hold (rules without
// bound, Times < 0, are not counted).
func (p *Proxy) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.rules {
		n += max(r.Times, 0)
	}
	return n
}

// Count is how many requests of operation op (exact name) arrived.
func (p *Proxy) Count(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[op]
}

// Injected is how many requests of operation op got a fault.
func (p *Proxy) Injected(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.injected[op]
}

// Reached is how many requests of operation op the proxy passed on to the
// peer (faulted ones included when the fault forwards: Lost).
func (p *Proxy) Reached(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reached[op]
}

// Bodies are the request bodies of operation op, in arrival order.
func (p *Proxy) Bodies(op string) [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([][]byte, len(p.bodies[op]))
	for i, b := range p.bodies[op] {
		out[i] = bytes.Clone(b)
	}
	return out
}

// Holds are the Timeouts that ended, in order.
func (p *Proxy) Holds() []Hold {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Hold(nil), p.holds...)
}

// Op names a request's operation the way this proxy's Flavor does.
func (p *Proxy) Op(r *http.Request, body []byte) string {
	switch p.opts.Flavor {
	case AWS:
		if t := r.Header.Get("X-Amz-Target"); t != "" {
			if i := strings.LastIndexByte(t, '.'); i >= 0 {
				return t[i+1:]
			}
			return t
		}
		if a := r.URL.Query().Get("Action"); a != "" {
			return a
		}
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			if v, err := url.ParseQuery(string(body)); err == nil && v.Get("Action") != "" {
				return v.Get("Action")
			}
		}
	case Slack:
		if m, ok := strings.CutPrefix(r.URL.Path, "/api/"); ok {
			return m
		}
	}
	return r.Method + " " + r.URL.EscapedPath()
}

func (p *Proxy) take(op string) *Rule {
	for _, r := range p.rules {
		if r.Times == 0 {
			continue
		}
		if ok, _ := path.Match(r.Op, op); ok || r.Op == op || r.Op == "*" {
			if r.Times > 0 {
				r.Times--
			}
			p.injected[op]++
			return r
		}
	}
	return nil
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "faultproxy: reading the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	op := p.Op(r, body)
	p.mu.Lock()
	p.counts[op]++
	p.bodies[op] = append(p.bodies[op], body)
	rule := p.take(op)
	var fault Fault
	var status int
	var holdFor, delay time.Duration
	if rule != nil {
		fault, status, holdFor, delay = rule.Fault, rule.Status, rule.HoldFor, rule.Delay
	}
	p.mu.Unlock()

	if fault == Delay {
		t := time.NewTimer(delay)
		select {
		case <-r.Context().Done(): // the client gave up: nothing is forwarded
			t.Stop()
			return
		case <-p.stop:
			t.Stop()
			drop(w)
			return
		case <-t.C:
		}
		fault = ""
	}
	switch fault {
	case "":
		rec := p.forward(r, op, body)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	case Fail5xx:
		p.fail(w, r, status)
	case Timeout:
		if holdFor <= 0 {
			holdFor = p.opts.HoldMax
		}
		start := time.Now()
		t := time.NewTimer(holdFor)
		defer t.Stop()
		gaveUp := false
		select {
		case <-r.Context().Done(): // the client closed the connection
			gaveUp = true
		case <-t.C:
		case <-p.stop:
		}
		p.mu.Lock()
		p.holds = append(p.holds, Hold{Op: op, ClientGaveUp: gaveUp, Held: time.Since(start)})
		p.mu.Unlock()
		drop(w)
	case Lost:
		p.forward(r, op, body) // the peer does the work
		drop(w)
	}
}

// forward sends the request to the peer and returns its whole answer,
// or replays the answer to an earlier request with the same ClientToken.
func (p *Proxy) forward(r *http.Request, op string, body []byte) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	key := ""
	if slices.Contains(p.opts.ClientTokens, op) {
		var in struct{ ClientToken string }
		if json.Unmarshal(body, &in) == nil && in.ClientToken != "" {
			key = op + "\x00" + in.ClientToken
		}
	}
	if key != "" {
		p.mu.Lock()
		a := p.tokens[key]
		p.mu.Unlock()
		if a != nil {
			if !bytes.Equal(a.body, body) {
				rec.Header().Set("Content-Type", "application/x-amz-json-1.0")
				rec.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(rec, `{"__type":"com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException","message":"The request uses the same client token as a previous, but non-identical request."}`)
				return rec
			}
			for k, v := range a.header {
				rec.Header()[k] = v
			}
			rec.WriteHeader(a.status)
			_, _ = rec.Body.Write(a.out)
			return rec
		}
	}
	p.mu.Lock()
	p.reached[op]++
	p.mu.Unlock()
	p.rp.ServeHTTP(rec, r)
	if key != "" && rec.Code == http.StatusOK {
		p.mu.Lock()
		p.tokens[key] = &answer{body: body, status: rec.Code, header: rec.Header().Clone(), out: bytes.Clone(rec.Body.Bytes())}
		p.mu.Unlock()
	}
	return rec
}

// drop closes the client's connection without writing an answer.
func drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // HTTP/2: abort the stream
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // a reset, not a graceful close
	}
	_ = conn.Close()
}

// fail answers a 5xx the way the peer's service does.
func (p *Proxy) fail(w http.ResponseWriter, r *http.Request, status int) {
	switch p.opts.Flavor {
	case AWS:
		w.Header().Set("X-Amzn-Requestid", "faultproxy-0000")
		if target := r.Header.Get("X-Amz-Target"); target != "" {
			code := "InternalServerError"
			if status == http.StatusServiceUnavailable {
				code = "ServiceUnavailable"
			}
			if strings.HasPrefix(target, "DataPipeline.") && status != http.StatusServiceUnavailable {
				code = "InternalServiceError"
			}
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"__type":"%s","message":"We encountered an internal error. Please try again."}`, code)
			return
		}
		code := "ServiceFailure"
		if status == http.StatusServiceUnavailable {
			code = "ServiceUnavailable"
		}
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Receiver</Type><Code>%s</Code><Message>Request processing has failed because of an unknown error, exception or failure.</Message></Error><RequestId>faultproxy-0000</RequestId></ErrorResponse>`, code)
	case Slack:
		w.WriteHeader(http.StatusServiceUnavailable)
	case GitLab:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"message":"%d %s"}`, status, http.StatusText(status))
	}
}
