// Package slackserver is a local, in-process fake of the parts of Slack that a
// Socket Mode bot talks to. A bot under test uses the real slack-go client,
// pointed at it with slack.OptionAPIURL(srv.APIURL()) and
// slack.OptionAppLevelToken("xapp-..."), and a test (or a demo) drives it:
// it sends slash commands and button clicks, and inspects what the bot posted.
//
// What it models:
//
//   - Socket Mode: apps.connections.open (xapp- bearer token, single-use
//     ws:// ticket URLs), the hello message, WebSocket ping frames every
//     Options.PingInterval, envelopes of type slash_commands, interactive
//     (block_actions) and events_api, acks (recorded with payload, arrival
//     time and latency), redelivery with retry_attempt/retry_reason, and the
//     disconnect (refresh_requested) / reconnect cycle. Each envelope goes to
//     one of the live connections picked at random, as Slack spreads them
//     over an app's connections (Options.Seed); while none is live (e.g.
//     between a disconnect and the reconnect) they are queued and flushed on
//     the next hello. Options.Redeliver delivers a share of envelopes a
//     second time, to another connection when there is one (Deliveries
//     records each write).
//   - Web API: auth.test, apps.connections.open, chat.postMessage, chat.update,
//     chat.postEphemeral, chat.getPermalink, usergroups.users.list, users.info,
//     with the form fields, JSON shapes and error strings slack-go uses.
//     users.info reports guests as Slack does: is_restricted for a
//     multi-channel guest, is_restricted and is_ultra_restricted for a
//     single-channel one.
//     Tokens come from "Authorization: Bearer" or the "token" form field; bot
//     methods need xoxb-, apps.connections.open needs xapp-. Any other method
//     answers unknown_method and is recorded. Every call is counted and
//     time-stamped, including rejected ones.
//   - response_url: slash and interactive payloads carry a response_url on this
//     server; JSON posted there is recorded as an ephemeral for the user who
//     triggered it (response_type, replace_original, delete_original kept),
//     except that replace_original on a slash command's URL replaces the
//     command's receipt instead (a post that arrives before the server has
//     read the command's ack waits for it, up to 2 s, since the app wrote
//     the ack first). As on Slack, a URL takes 5 posts within 30 minutes:
//     the sixth is answered HTTP 404 {"ok":false,"error":"used_url"}, and
//     one past 30 minutes (or after ExpireResponseURLs) HTTP 404
//     {"ok":false,"error":"expired_url"} (the error strings are those
//     Slack developers report; Slack documents only the limits).
//   - Watch (watch.go): a view subscribes to the recorded messages and is
//     told (coalesced) after each post, update, ephemeral or receipt.
//   - Delays (delay.go): SetDelay makes Web API methods answer late;
//     Socket Mode and response_url are never delayed. SetOnAck hands each
//     ack to a load driver as it is read.
//   - Receipts: a slash command's ack payload (text and/or blocks) is the
//     ephemeral message Slack shows the user in the command's channel; it is
//     recorded with a ts of its own (Receipts), and its buttons can be
//     clicked.
//   - Clicks: a block_actions payload's container names the message the
//     button is on. A channel message gives is_ephemeral false plus the
//     "message" and "channel" objects; an ephemeral one (a receipt, a
//     chat.postEphemeral or response_url post, visible only to its user)
//     gives is_ephemeral true and, as Slack does, no "message".
//   - Failure injection: RateLimitNext (HTTP 429 + Retry-After), SetDown
//     (HTTP 503 for every Web API call, apps.connections.open and
//     response_url posts), and RevokeAppToken: the app-level (xapp-) token
//     is revoked, so Slack closes its Socket Mode connections and
//     apps.connections.open answers HTTP 200 {"ok":false,"error":"invalid_auth"}
//     (a fatal error for slack-go, which stops reconnecting); bot-token
//     methods go on working, as they do in Slack;
//     FailNext (a method error answered as Slack does,
//     HTTP 200 {"ok":false,"error":code}, e.g. invalid_auth, token_revoked,
//     missing_scope); SetChannelError (a channel the bot cannot use:
//     channel_not_found, is_archived, not_in_channel on every chat.* and
//     conversations.* call naming it); LoseNext (the call is carried out and
//     recorded, then the connection is closed without an answer); HangNext
//     (no answer until the client gives up).
//   - Slack's limits and formatting (faults.go): text past 40,000 characters
//     is msg_too_long; more than 50 blocks, a section text past 3,000 or a
//     header past 150 characters is invalid_blocks; stored text is escaped as
//     Slack does (&, <, > become &amp;, &lt;, &gt; outside <@U…>, <#C…>,
//     <!…>, <http…> and <mailto:…> sequences), so conversations.history and
//     .replies return escaped text; message metadata is kept and returned
//     with include_all_metadata. conversations.history and .replies answer
//     a page at a time (at most Options.PageSize, default 15, whatever
//     limit asks), with has_more and an opaque next_cursor.
//
// What it does NOT model (be careful what a passing test proves):
//
//   - No request signing, verification token or scope checks; any xoxb-/xapp-
//     token is accepted, and there is a single team (T1), app (A1) and bot
//     (UBOT/BBOT).
//   - Block Kit validation covers only the limits above (no element, type
//     or button-label checks); no mrkdwn parsing; block texts and ephemeral
//     blocks are stored unescaped; no attachments beyond recording the field.
//   - No automatic retry of unacknowledged envelopes (Slack retries events
//     after ~3 s and shows slash-command timeouts to the user); use Redeliver to
//     simulate a retry. The 3-second ack deadline is not enforced, only
//     measured (Ack.Latency).
//   - No channel membership, private channels, DMs via conversations.open, or
//     events generated by the bot's own posts. Posting to a known user ID is
//     accepted and recorded under that ID as the channel.
//   - replace_original on a slash command's response_url replaces its
//     receipt in place (Message.Replaced counts it); on a click's
//     response_url, and delete_original anywhere, they are only recorded
//     on a new ephemeral and change nothing.
//   - Message ts values are synthetic (1764180000.000100, .000200, ...) and
//     unrelated to wall-clock time; Message.Posted holds the real time.
//   - Rate limits are only what RateLimitNext injects; there are no per-tier
//     limits. A call answered 503 while down does not consume an injected 429.
//   - RevokeAppToken closes the token's connections without a disconnect
//     message and answers every later apps.connections.open with that token
//     invalid_auth; Slack's
//     other answer for this case, token_revoked, is not chosen.
//   - SetDown does not close existing WebSocket connections; call Disconnect
//     as well to force the client through apps.connections.open.
//   - Unmodelled chat parameters (as_user, username, unfurl_*, metadata, ...)
//     are accepted and ignored (they still appear in AllText).
//   - Slack's server-side disconnect of a connection after a refresh is left to
//     the client (slack-go closes it itself); a draining connection gets no
//     more envelopes but keeps its pings until it closes.
package slackserver

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Identifiers of the single team, app and bot the server models.
const (
	TeamID    = "T1"
	AppID     = "A1"
	BotUserID = "UBOT"
	BotID     = "BBOT"
	// WorkspaceURL is the base of auth.test's url and of permalinks.
	WorkspaceURL = "http://slack.local/"

	baseTS = 1764180000
)

// ErrClosed is returned by driving methods once the server is closed.
var ErrClosed = errors.New("slackserver: server closed")

// Options configures a Server.
type Options struct {
	// PingInterval is how often WebSocket pings are sent on each connection
	// (default 5s; slack-go drops a connection that sees none for 30s).
	PingInterval time.Duration
	// Logf, if set, receives a line for each connection, envelope and call.
	Logf func(format string, args ...any)
	// Seed seeds the choice of connection for each envelope (Slack picks
	// one of the app's live connections at random); 0 uses the time.
	Seed int64
	// Redeliver is the share (0 to 1) of envelopes that are delivered a
	// second time, RedeliverAfter later, with retry_attempt 1 and
	// retry_reason "timeout", to another live connection when there is
	// one, whether or not the first delivery was acked: Slack redelivers
	// an envelope whose ack it did not see in time, and an ack can be
	// lost, so a bot sees the same envelope twice, on two replicas.
	Redeliver float64
	// RedeliverAfter is the wait before such a second delivery (default
	// 50ms).
	RedeliverAfter time.Duration
	// PageSize is the most messages one page of conversations.history or
	// .replies holds, whatever limit asks (default 15: Slack may answer
	// fewer than asked, and since 2025 answers at most 15 to many apps).
	PageSize int
}

// Delivery is one write of an envelope to a Socket Mode connection.
type Delivery struct {
	EnvelopeID string
	// Conn numbers the connection in the order they were opened (1, 2, ...).
	Conn    int
	Attempt int
	At      time.Time
}

// User is a workspace member known to users.info.
type User struct {
	ID, Name, RealName, Email string
	// Restricted is a multi-channel guest (users.info is_restricted).
	Restricted bool
	// UltraRestricted is a single-channel guest (is_ultra_restricted). As
	// on Slack, such a user is also reported is_restricted.
	UltraRestricted bool
}

// SlashCommand describes a slash command invocation to deliver.
type SlashCommand struct{ Command, Text, UserID, UserName, ChannelID string }

// Click describes a button click (block_actions) to deliver. If BlockID or
// Value are empty and the message is known, they are taken from the button
// with ActionID in the message's blocks.
type Click struct{ UserID, ChannelID, MessageTS, ActionID, BlockID, Value string }

// Ack is an acknowledgement received from the Socket Mode client.
type Ack struct {
	EnvelopeID string
	Payload    json.RawMessage // nil when the ack carried no payload
	Received   time.Time
	Latency    time.Duration // last delivery of the envelope -> ack received
}

// Message is a recorded message (channel message, thread reply or ephemeral).
type Message struct {
	Channel, TS, ThreadTS string
	// User is the author of channel messages (BotUserID for the bot) and the
	// recipient of ephemerals.
	User    string
	Text    string
	Blocks  json.RawMessage
	Edits   int
	Posted  time.Time
	Updated time.Time
	History []string // texts of earlier versions, oldest first
	// Source is "chat.postMessage", "user", "chat.postEphemeral" or "response_url".
	Source string
	// Set for response_url posts only.
	ResponseType                    string
	ReplaceOriginal, DeleteOriginal bool
	// Replaced counts the response_url posts that replaced this receipt.
	Replaced int

	// Metadata is the message metadata posted with it (chat.postMessage
	// "metadata"); conversations.* return it with include_all_metadata.
	Metadata json.RawMessage
}

type obj = map[string]any

type wsConn struct {
	c                     *websocket.Conn
	wmu                   sync.Mutex
	ready, draining, dead bool   // guarded by Server.mu
	token                 string // the app token that opened it
	n                     int    // its number, in the order opened
}

func (c *wsConn) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.c.WriteMessage(websocket.TextMessage, b)
}

type envelope struct {
	id, typ string
	payload json.RawMessage
	attempt int
	reason  string
	sent    time.Time
	conn    *wsConn // the connection of the last delivery
	// user and channel of a slash command: where its ack's ephemeral
	// receipt appears.
	user, channel string
	// respID is a slash command's response_url id (responseID).
	respID string
}

type responseTarget struct {
	user, channel string
	// slash: the URL of a slash command, acked once its ack was read.
	slash, acked bool
	// original is the slash command's receipt, once its ack showed one.
	original *Message
	// made is when the URL was handed out, uses how many posts it took.
	made time.Time
	uses int
	// expired: ExpireResponseURLs was called after it was made.
	expired bool
}

// Slack's limits on a response_url: "up to 5 responses within 30 minutes".
const (
	responseURLUses     = 5
	responseURLLifetime = 30 * time.Minute
)

type rateLimit struct{ n, secs int }

// Server is a fake Slack. Create it with New; all methods are safe for
// concurrent use.
type Server struct {
	opts   Options
	ln     net.Listener
	hs     *http.Server
	closed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	mu         sync.Mutex
	users      map[string]User
	groups     map[string][]string
	channels   map[string]string
	msgs       []*Message
	ephemerals map[string][]*Message
	receipts   map[string][]*Message
	calls      map[string][]time.Time
	unknown    []string
	limits     map[string]*rateLimit
	down       bool
	seq, tsSeq int
	tickets    map[string]string // ticket -> the app token that opened it
	revoked    map[string]bool   // revoked app tokens
	conns      []*wsConn
	accepted   int
	envs       map[string]*envelope
	pending    []*envelope
	acks       []Ack
	responses  map[string]responseTarget
	// text is every payload the app sent, for AllText: kept as pieces,
	// joined when asked, not copied into one growing buffer on each.
	text       []string
	pings      int
	pongs      int
	faults     faults
	rnd        *rand.Rand
	deliveries []Delivery
	delays     map[string]time.Duration // Web API method or "*" -> delay (delay.go)
	onAck      func(Ack)
	watchers   watchers // Watch (watch.go)
}

// New starts a server listening on 127.0.0.1 on a free port.
func New(opts Options) (*Server, error) {
	if opts.PingInterval <= 0 {
		opts.PingInterval = 5 * time.Second
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts: opts, ln: ln, closed: make(chan struct{}),
		users: map[string]User{}, groups: map[string][]string{}, channels: map[string]string{},
		ephemerals: map[string][]*Message{}, receipts: map[string][]*Message{}, calls: map[string][]time.Time{},
		limits: map[string]*rateLimit{}, tickets: map[string]string{}, revoked: map[string]bool{},
		envs: map[string]*envelope{}, responses: map[string]responseTarget{},
	}
	s.faults.init()
	seed := opts.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	s.rnd = rand.New(rand.NewPCG(uint64(seed), 0x05105))
	if opts.RedeliverAfter <= 0 {
		s.opts.RedeliverAfter = 50 * time.Millisecond
	}
	if opts.PageSize <= 0 {
		s.opts.PageSize = 15
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/", s.handleAPI)
	mux.HandleFunc("/link/", s.handleLink)
	mux.HandleFunc("/response/", s.handleResponse)
	s.hs = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); _ = s.hs.Serve(ln) }()
	return s, nil
}

// URL is the server's base URL, e.g. "http://127.0.0.1:PORT".
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// APIURL is the value for slack.OptionAPIURL (with trailing slash).
func (s *Server) APIURL() string { return s.URL() + "/api/" }

// Close stops the server and closes every WebSocket connection.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closed)
		_ = s.hs.Close()
		s.mu.Lock()
		conns := slices.Clone(s.conns)
		s.mu.Unlock()
		for _, c := range conns {
			_ = c.c.Close()
		}
		s.wg.Wait()
	})
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf("slackserver: "+format, args...)
	}
}

// ---- fixtures ----

// AddUser registers a user for users.info (and as a valid DM target).
func (s *Server) AddUser(u User) { s.mu.Lock(); s.users[u.ID] = u; s.mu.Unlock() }

// AddUserGroup registers a user group (subteam) and its members.
func (s *Server) AddUserGroup(id string, members ...string) {
	s.mu.Lock()
	s.groups[id] = append([]string{}, members...)
	s.mu.Unlock()
}

// AddChannel registers a channel that messages can be posted to.
func (s *Server) AddChannel(id, name string) { s.mu.Lock(); s.channels[id] = name; s.mu.Unlock() }

// PostUserMessage records a top-level message written by a user (not the bot)
// and returns its ts. No event is sent to the bot; use SendEvent for that.
func (s *Server) PostUserMessage(channel, userID, text string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := &Message{Channel: channel, TS: s.nextTSLocked(), User: userID, Text: text, Posted: time.Now(), Source: "user"}
	s.msgs = append(s.msgs, m)
	s.watchers.changed()
	return m.TS
}

// ---- failure injection ----

// RateLimitNext makes the next n calls of method (a Web API method name, or
// "response_url") answer HTTP 429 with Retry-After in whole seconds (>= 1).
func (s *Server) RateLimitNext(method string, n int, retryAfter time.Duration) {
	secs := max(1, int((retryAfter+time.Second-1)/time.Second))
	s.mu.Lock()
	s.limits[method] = &rateLimit{n: n, secs: secs}
	s.mu.Unlock()
}

// SetDown makes every Web API call (and response_url post) answer HTTP 503.
func (s *Server) SetDown(down bool) { s.mu.Lock(); s.down = down; s.mu.Unlock() }

// ---- Socket Mode ----

// liveConnLocked picks one live connection at random, as Slack does,
// preferring one other than avoid.
func (s *Server) liveConnLocked(avoid *wsConn) *wsConn {
	var live, others []*wsConn
	for _, c := range s.conns {
		if c.ready && !c.draining && !c.dead {
			live = append(live, c)
			if c != avoid {
				others = append(others, c)
			}
		}
	}
	if len(others) > 0 {
		live = others
	}
	if len(live) == 0 {
		return nil
	}
	return live[s.rnd.IntN(len(live))]
}

// Deliveries returns every write of an envelope to a connection so far,
// in order.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deliveries)
}

func (s *Server) dropConn(c *wsConn) {
	s.mu.Lock()
	if !c.dead {
		c.dead = true
		s.conns = slices.DeleteFunc(s.conns, func(x *wsConn) bool { return x == c })
	}
	s.mu.Unlock()
	_ = c.c.Close()
}

func (s *Server) handleLink(w http.ResponseWriter, r *http.Request) {
	t := r.URL.Query().Get("ticket")
	s.mu.Lock()
	token, ok := s.tickets[t]
	delete(s.tickets, t)
	s.mu.Unlock()
	if !ok {
		http.Error(w, "invalid or used ticket", http.StatusUnauthorized)
		return
	}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	c, err := up.Upgrade(w, r, nil)
	if err != nil {
		s.logf("websocket upgrade: %v", err)
		return
	}
	wc := &wsConn{c: c, token: token}
	s.mu.Lock()
	select {
	case <-s.closed:
		s.mu.Unlock()
		_ = c.Close()
		return
	default:
	}
	s.accepted++
	n := s.accepted
	wc.n = n
	s.conns = append(s.conns, wc)
	live := 1
	for _, x := range s.conns {
		if x.ready && !x.draining && !x.dead {
			live++
		}
	}
	s.wg.Add(2)
	s.mu.Unlock()
	c.SetPongHandler(func(string) error { s.mu.Lock(); s.pongs++; s.mu.Unlock(); return nil })
	go s.readLoop(wc)
	go s.pingLoop(wc)

	hello := obj{"type": "hello", "num_connections": live,
		"debug_info":      obj{"host": "slackserver-local", "build_number": 1, "approximate_connection_time": 18060},
		"connection_info": obj{"app_id": AppID}}
	if err := wc.write(hello); err != nil {
		s.dropConn(wc)
		return
	}
	s.mu.Lock()
	wc.ready = true
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()
	s.logf("connection %d open, hello sent, %d queued envelope(s)", n, len(pending))
	for _, e := range pending {
		_ = s.deliver(e)
	}
}

func (s *Server) readLoop(wc *wsConn) {
	defer s.wg.Done()
	defer s.dropConn(wc)
	for {
		_, data, err := wc.c.ReadMessage()
		if err != nil {
			return
		}
		var a struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if json.Unmarshal(data, &a) != nil || a.EnvelopeID == "" {
			s.logf("ignoring unexpected frame %q", data)
			continue
		}
		if string(a.Payload) == "null" {
			a.Payload = nil
		}
		now := time.Now()
		s.mu.Lock()
		ack := Ack{EnvelopeID: a.EnvelopeID, Payload: a.Payload, Received: now}
		if e := s.envs[a.EnvelopeID]; e != nil && !e.sent.IsZero() {
			ack.Latency = now.Sub(e.sent)
		}
		s.acks = append(s.acks, ack)
		s.markAckedLocked(s.envs[a.EnvelopeID])
		if a.Payload != nil {
			s.noteLocked(string(a.Payload))
			s.receiptLocked(s.envs[a.EnvelopeID], a.Payload, now)
		}
		onAck := s.onAck
		s.mu.Unlock()
		if onAck != nil {
			onAck(ack)
		}
		s.logf("ack %s after %v payload=%s", ack.EnvelopeID, ack.Latency, ack.Payload)
	}
}

// receiptLocked records the ephemeral message a slash command's ack
// payload shows its user (Slack shows it in the command's channel, to that
// user only, with a ts of its own).
func (s *Server) receiptLocked(e *envelope, payload json.RawMessage, now time.Time) {
	if e == nil || e.typ != "slash_commands" {
		return
	}
	var p struct {
		Text         string          `json:"text"`
		Blocks       json.RawMessage `json:"blocks"`
		ResponseType string          `json:"response_type"`
	}
	if json.Unmarshal(payload, &p) != nil || p.Text == "" && len(p.Blocks) == 0 {
		return
	}
	if string(p.Blocks) == "null" {
		p.Blocks = nil
	}
	m := &Message{Channel: e.channel, TS: s.nextTSLocked(), User: e.user,
		Text: p.Text, Blocks: p.Blocks, Posted: now, Source: "ack", ResponseType: p.ResponseType}
	s.receipts[e.user] = append(s.receipts[e.user], m)
	s.watchers.changed()
	if id := responseID(e); id != "" {
		if t, ok := s.responses[id]; ok {
			t.original = m
			s.responses[id] = t
		}
	}
}

// responseID is the id of a slash command envelope's response_url.
func responseID(e *envelope) string {
	if e == nil || e.typ != "slash_commands" {
		return ""
	}
	return e.respID
}

// markAckedLocked notes that slash command e was acked, for its
// response_url.
func (s *Server) markAckedLocked(e *envelope) {
	if id := responseID(e); id != "" {
		if t, ok := s.responses[id]; ok {
			t.acked = true
			s.responses[id] = t
		}
	}
}

// findEphemeralLocked finds an ephemeral message (a receipt, a
// chat.postEphemeral or a response_url post) that user can see.
func (s *Server) findEphemeralLocked(user, channel, ts string) *Message {
	for _, list := range [][]*Message{s.receipts[user], s.ephemerals[user]} {
		for _, m := range list {
			if m.Channel == channel && m.TS == ts {
				return m
			}
		}
	}
	return nil
}

func (s *Server) pingLoop(wc *wsConn) {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
		}
		s.mu.Lock()
		dead := wc.dead
		s.mu.Unlock()
		if dead {
			return
		}
		if err := wc.c.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(time.Second)); err != nil {
			return // the read loop notices the broken connection
		}
		s.mu.Lock()
		s.pings++
		s.mu.Unlock()
	}
}

// deliver writes the envelope to a live connection picked at random, or
// queues it until the next hello if there is none. A first delivery may be
// followed by a second (Options.Redeliver).
func (s *Server) deliver(e *envelope) error {
	for {
		s.mu.Lock()
		select {
		case <-s.closed:
			s.mu.Unlock()
			return ErrClosed
		default:
		}
		c := s.liveConnLocked(e.conn)
		if c == nil {
			s.pending = append(s.pending, e)
			s.mu.Unlock()
			s.logf("no live connection, queued envelope %s", e.id)
			return nil
		}
		e.sent = time.Now()
		e.conn = c
		s.deliveries = append(s.deliveries, Delivery{EnvelopeID: e.id, Conn: c.n, Attempt: e.attempt, At: e.sent})
		wire := obj{"envelope_id": e.id, "type": e.typ, "payload": e.payload,
			"accepts_response_payload": e.typ != "events_api", "retry_attempt": e.attempt, "retry_reason": e.reason}
		again := e.attempt == 0 && s.opts.Redeliver > 0 && s.rnd.Float64() < s.opts.Redeliver
		if again {
			s.wg.Add(1) // the connection's loops hold the count above 0
		}
		s.mu.Unlock()
		s.logf("sending %s envelope %s (attempt %d) on connection %d", e.typ, e.id, e.attempt, c.n)
		if err := c.write(wire); err != nil {
			s.logf("write envelope %s: %v", e.id, err)
			s.dropConn(c)
			if again {
				s.wg.Done()
			}
			continue
		}
		if again {
			go s.redeliverLater(e)
		}
		return nil
	}
}

// redeliverLater is Options.Redeliver's second delivery.
func (s *Server) redeliverLater(e *envelope) {
	defer s.wg.Done()
	t := time.NewTimer(s.opts.RedeliverAfter)
	defer t.Stop()
	select {
	case <-s.closed:
		return
	case <-t.C:
	}
	s.mu.Lock()
	e.attempt++
	e.reason = "timeout"
	s.mu.Unlock()
	_ = s.deliver(e)
}

func (s *Server) nextIDLocked(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%d", prefix, s.seq)
}

// envelopeID is a new envelope id as Slack makes them: a random UUID
// ("dbdd0ef3-1543-4f94-bfb4-133d0e6c1545"). Not a counter: an app that
// keys a store by envelope id sees random keys, as it will in production,
// not ones that sort in the order they came.
func envelopeID() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// send delivers an envelope of typ with payload; respID is a slash
// command's response_url id.
func (s *Server) send(typ string, payload obj, respID string) (string, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	e := &envelope{id: envelopeID(), typ: typ, payload: b, respID: respID}
	if typ == "slash_commands" {
		e.user, _ = payload["user_id"].(string)
		e.channel, _ = payload["channel_id"].(string)
	}
	s.envs[e.id] = e
	s.mu.Unlock()
	return e.id, s.deliver(e)
}

// newResponseURLLocked makes a response_url for user in channel; it
// returns the URL, its id and a trigger id.
func (s *Server) newResponseURLLocked(user, channel string) (string, string, string) {
	id := s.nextIDLocked("r")
	s.responses[id] = responseTarget{user: user, channel: channel, made: time.Now()}
	trigger := fmt.Sprintf("%d.%d.trigger", time.Now().Unix(), s.seq)
	return s.URL() + "/response/" + id, id, trigger
}

// SendSlashCommand delivers a slash_commands envelope without waiting for the ack.
func (s *Server) SendSlashCommand(c SlashCommand) (envelopeID string, err error) {
	s.mu.Lock()
	if c.UserName == "" {
		c.UserName = s.users[c.UserID].Name
	}
	respURL, respID, trigger := s.newResponseURLLocked(c.UserID, c.ChannelID)
	t := s.responses[respID]
	t.slash = true
	s.responses[respID] = t
	p := obj{"command": c.Command, "text": c.Text, "user_id": c.UserID, "user_name": c.UserName,
		"channel_id": c.ChannelID, "channel_name": s.channels[c.ChannelID], "team_id": TeamID,
		"team_domain": "test", "is_enterprise_install": false, "response_url": respURL,
		"trigger_id": trigger, "api_app_id": AppID}
	s.mu.Unlock()
	return s.send("slash_commands", p, respID)
}

// SlashCommand delivers a slash command and waits for its ack.
func (s *Server) SlashCommand(ctx context.Context, c SlashCommand) (Ack, error) {
	id, err := s.SendSlashCommand(c)
	if err != nil {
		return Ack{}, err
	}
	return s.WaitAck(ctx, id)
}

// SendClick delivers a block_actions interactive envelope without waiting.
// As Slack does, the payload names the message the button is on: a channel
// message (container is_ephemeral false, with "message" and "channel"), or
// an ephemeral one the clicking user can see, such as a slash command's
// receipt (container is_ephemeral true, "channel", and no "message": Slack
// does not send an ephemeral message's content). A click on a message the
// server does not know is delivered as a channel message with only its ts.
func (s *Server) SendClick(c Click) (envelopeID string, err error) {
	s.mu.Lock()
	respURL, _, trigger := s.newResponseURLLocked(c.UserID, c.ChannelID)
	now := time.Now()
	actionTS := fmt.Sprintf("%d.%06d", now.Unix(), now.Nanosecond()/1000)
	action := obj{"action_id": c.ActionID, "block_id": c.BlockID, "value": c.Value, "type": "button", "action_ts": actionTS}
	container := obj{"type": "message", "message_ts": c.MessageTS, "channel_id": c.ChannelID, "is_ephemeral": false}
	var message obj = obj{"type": "message", "ts": c.MessageTS}
	m := s.findLocked(c.ChannelID, c.MessageTS)
	if m == nil {
		if m = s.findEphemeralLocked(c.UserID, c.ChannelID, c.MessageTS); m != nil {
			container["is_ephemeral"] = true
			message = nil
		}
	} else {
		message = wireMessage(m)
	}
	if m != nil {
		if m.ThreadTS != "" {
			container["thread_ts"] = m.ThreadTS
		}
		if blockID, el := findAction(m.Blocks, c.ActionID); el != nil {
			if c.BlockID == "" {
				action["block_id"] = blockID
			}
			if v, ok := el["value"].(string); ok && c.Value == "" {
				action["value"] = v
			}
			if t, ok := el["text"]; ok {
				action["text"] = t
			}
		}
	}
	name := s.users[c.UserID].Name
	p := obj{"type": "block_actions", "api_app_id": AppID, "trigger_id": trigger, "response_url": respURL,
		"user":      obj{"id": c.UserID, "username": name, "name": name, "team_id": TeamID},
		"team":      obj{"id": TeamID, "domain": "test"},
		"channel":   obj{"id": c.ChannelID, "name": s.channels[c.ChannelID]},
		"container": container, "state": obj{"values": obj{}},
		"actions": []obj{action}, "is_enterprise_install": false}
	if message != nil {
		p["message"] = message
	}
	s.mu.Unlock()
	return s.send("interactive", p, "")
}

// ClickButton delivers a button click and waits for its ack.
func (s *Server) ClickButton(ctx context.Context, c Click) (Ack, error) {
	id, err := s.SendClick(c)
	if err != nil {
		return Ack{}, err
	}
	return s.WaitAck(ctx, id)
}

// SendEvent delivers an events_api envelope whose event_callback wraps event
// (e.g. an app_mention or message event object) and returns its envelope ID.
func (s *Server) SendEvent(event any) (envelopeID string, err error) {
	s.mu.Lock()
	evID := s.nextIDLocked("Ev")
	s.mu.Unlock()
	return s.send("events_api", obj{"token": "", "team_id": TeamID, "api_app_id": AppID, "event": event,
		"type": "event_callback", "event_id": evID, "event_time": time.Now().Unix()}, "")
}

// Redeliver sends the same envelope again with retry_attempt+1 and
// retry_reason "timeout", and waits for an ack that arrives after it.
func (s *Server) Redeliver(ctx context.Context, envelopeID string) (Ack, error) {
	s.mu.Lock()
	e := s.envs[envelopeID]
	if e == nil {
		s.mu.Unlock()
		return Ack{}, fmt.Errorf("slackserver: unknown envelope %q", envelopeID)
	}
	e.attempt++
	e.reason = "timeout"
	n := s.countAcksLocked(envelopeID)
	s.mu.Unlock()
	if err := s.deliver(e); err != nil {
		return Ack{}, err
	}
	return s.waitAck(ctx, envelopeID, n)
}

func (s *Server) countAcksLocked(id string) int {
	n := 0
	for _, a := range s.acks {
		if a.EnvelopeID == id {
			n++
		}
	}
	return n
}

// WaitAck waits for the first ack of envelopeID.
func (s *Server) WaitAck(ctx context.Context, envelopeID string) (Ack, error) {
	return s.waitAck(ctx, envelopeID, 0)
}

func (s *Server) waitAck(ctx context.Context, id string, index int) (Ack, error) {
	var ack Ack
	err := s.WaitFor(ctx, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		k := 0
		for _, a := range s.acks {
			if a.EnvelopeID == id {
				if k == index {
					ack = a
					return true
				}
				k++
			}
		}
		return false
	})
	return ack, err
}

// SetOnAck makes f be called with each ack as soon as it is read, after
// it is recorded (nil: none). f runs on the connection's read loop, so it
// must not block; a load driver uses it instead of polling WaitAck.
func (s *Server) SetOnAck(f func(Ack)) { s.mu.Lock(); s.onAck = f; s.mu.Unlock() }

// ExpireResponseURLs makes every response_url handed out so far answer as
// one past Slack's 30 minutes does (HTTP 404, expired_url), as if that
// long had passed; URLs of later envelopes are fresh.
func (s *Server) ExpireResponseURLs() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range s.responses {
		t.expired = true
		s.responses[id] = t
	}
}

// Acks returns every ack received so far, in arrival order.
func (s *Server) Acks() []Ack { s.mu.Lock(); defer s.mu.Unlock(); return slices.Clone(s.acks) }

// RevokeAppToken revokes the app-level token: every Socket Mode connection
// it opened is closed at once, and apps.connections.open with it answers
// invalid_auth from now on (the call is still counted). Other app tokens
// (a newly issued one) go on working.
func (s *Server) RevokeAppToken(token string) {
	s.mu.Lock()
	s.revoked[token] = true
	var conns []*wsConn
	for _, c := range s.conns {
		if c.token == token {
			conns = append(conns, c)
		}
	}
	s.mu.Unlock()
	for _, c := range conns {
		s.dropConn(c)
	}
	s.logf("app token revoked; %d connection(s) closed", len(conns))
}

// Disconnect sends {"type":"disconnect","reason":reason} to every live
// connection. Those connections get no further envelopes; envelopes sent
// before the client reconnects are queued.
func (s *Server) Disconnect(reason string) {
	s.mu.Lock()
	var targets []*wsConn
	for _, c := range s.conns {
		if c.ready && !c.draining && !c.dead {
			c.draining = true
			targets = append(targets, c)
		}
	}
	s.mu.Unlock()
	for _, c := range targets {
		if err := c.write(obj{"type": "disconnect", "reason": reason, "debug_info": obj{"host": "slackserver-local"}}); err != nil {
			s.dropConn(c)
		}
	}
	s.logf("disconnect (%s) sent to %d connection(s)", reason, len(targets))
}

// WaitConnected waits until some connection has been sent hello and is live
// (not closed, not asked to disconnect).
func (s *Server) WaitConnected(ctx context.Context) error {
	return s.WaitFor(ctx, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.liveConnLocked(nil) != nil })
}

// Connections is the number of WebSocket connections accepted so far.
func (s *Server) Connections() int { s.mu.Lock(); defer s.mu.Unlock(); return s.accepted }

// LiveConnections is the number of open connections not asked to disconnect.
func (s *Server) LiveConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.conns {
		if c.ready && !c.draining && !c.dead {
			n++
		}
	}
	return n
}

// PingsSent is the number of WebSocket pings written, over all connections.
func (s *Server) PingsSent() int { s.mu.Lock(); defer s.mu.Unlock(); return s.pings }

// PongsReceived is the number of WebSocket pongs received from clients.
func (s *Server) PongsReceived() int { s.mu.Lock(); defer s.mu.Unlock(); return s.pongs }

// WaitFor polls cond every 10ms until it is true, ctx ends or the server closes.
func (s *Server) WaitFor(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closed:
			return ErrClosed
		case <-t.C:
		}
	}
}

// ---- Web API ----

func truthy(v string) bool { return v == "1" || v == "true" }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func errObj(code string) obj { return obj{"ok": false, "error": code} }

// gate counts the call and applies SetDown / RateLimitNext. It reports
// whether the request should be processed further.
func (s *Server) gate(w http.ResponseWriter, method string) bool {
	s.mu.Lock()
	s.calls[method] = append(s.calls[method], time.Now())
	down := s.down
	retry := 0
	if rl := s.limits[method]; rl != nil && rl.n > 0 && !down {
		rl.n--
		retry = rl.secs
	}
	s.mu.Unlock()
	switch {
	case down:
		s.logf("%s: 503 (down)", method)
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "<html><body>503 Service Unavailable</body></html>")
		return false
	case retry > 0:
		s.logf("%s: 429 (retry after %ds)", method, retry)
		w.Header().Set("Retry-After", strconv.Itoa(retry))
		writeJSON(w, http.StatusTooManyRequests, errObj("ratelimited"))
		return false
	}
	return true
}

func readParams(r *http.Request) (url.Values, error) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		if err := r.ParseForm(); err != nil {
			return nil, err
		}
		return r.Form, nil
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, err
		}
	}
	v := r.URL.Query()
	for k, raw := range m {
		var str string
		if json.Unmarshal(raw, &str) == nil {
			v.Set(k, str)
		} else {
			v.Set(k, string(raw))
		}
	}
	return v, nil
}

func (s *Server) handleAPI(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	p, perr := readParams(r)
	if perr == nil {
		s.mu.Lock()
		for _, k := range slices.Sorted(maps.Keys(p)) {
			if k != "token" {
				s.noteLocked(k + "=" + strings.Join(p[k], ","))
			}
		}
		s.mu.Unlock()
	}
	if !s.gate(w, method) || s.hangIfArmed(r, method) || !s.waitDelay(r, method) {
		return
	}
	if perr != nil {
		writeJSON(w, http.StatusOK, errObj("invalid_form_data"))
		return
	}
	token := p.Get("token")
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		token = strings.TrimPrefix(h, "Bearer ")
	}
	want := "xoxb-"
	if method == "apps.connections.open" {
		want = "xapp-"
	}
	s.mu.Lock()
	revoked := s.revoked[token] && method == "apps.connections.open"
	s.mu.Unlock()
	if !strings.HasPrefix(token, want) || revoked {
		s.logf("%s: invalid_auth", method)
		writeJSON(w, http.StatusOK, errObj("invalid_auth"))
		return
	}
	if code := s.injectedError(method, p); code != "" {
		s.logf("%s: %s (injected)", method, code)
		writeJSON(w, http.StatusOK, errObj(code))
		return
	}

	var resp obj
	switch method {
	case "auth.test":
		resp = obj{"ok": true, "url": WorkspaceURL, "team": "Test Team", "user": "bot", "team_id": TeamID,
			"user_id": BotUserID, "bot_id": BotID, "is_enterprise_install": false}
	case "apps.connections.open":
		s.mu.Lock()
		t := s.nextIDLocked("ticket-")
		s.tickets[t] = token
		s.mu.Unlock()
		resp = obj{"ok": true, "url": "ws://" + s.ln.Addr().String() + "/link/?ticket=" + t}
	case "chat.postMessage":
		resp = s.postMessage(p)
	case "chat.update":
		resp = s.update(p)
	case "chat.postEphemeral":
		resp = s.postEphemeral(p)
	case "chat.getPermalink":
		resp = s.permalink(p)
	case "usergroups.users.list":
		s.mu.Lock()
		if g, ok := s.groups[p.Get("usergroup")]; ok {
			resp = obj{"ok": true, "users": append([]string{}, g...)}
		} else {
			resp = errObj("no_such_subteam")
		}
		s.mu.Unlock()
	case "conversations.history":
		ch, oldest := p.Get("channel"), p.Get("oldest")
		resp = s.conversation(ch, true, p, func(m *Message) bool {
			return m.Channel == ch && m.ThreadTS == "" && (oldest == "" || m.TS > oldest)
		})
	case "conversations.replies":
		ch, ts, oldest := p.Get("channel"), p.Get("ts"), p.Get("oldest")
		resp = s.conversation(ch, false, p, func(m *Message) bool {
			return m.Channel == ch && (m.TS == ts || m.ThreadTS == ts) &&
				(oldest == "" || m.TS > oldest || (truthy(p.Get("inclusive")) && m.TS == oldest))
		})
	case "users.info":
		s.mu.Lock()
		if u, ok := s.users[p.Get("user")]; ok {
			// Slack's user object: the role flags are always present for
			// a member; a single-channel guest is both restricted and
			// ultra-restricted.
			resp = obj{"ok": true, "user": obj{"id": u.ID, "team_id": TeamID, "name": u.Name, "real_name": u.RealName,
				"deleted": false, "is_bot": false, "is_app_user": false,
				"is_admin": false, "is_owner": false, "is_primary_owner": false,
				"is_restricted": u.Restricted || u.UltraRestricted, "is_ultra_restricted": u.UltraRestricted,
				"profile": obj{"email": u.Email, "real_name": u.RealName,
					"real_name_normalized": u.RealName, "display_name": u.Name, "display_name_normalized": u.Name}}}
		} else {
			resp = errObj("user_not_found")
		}
		s.mu.Unlock()
	default:
		s.mu.Lock()
		s.unknown = append(s.unknown, method)
		s.mu.Unlock()
		resp = errObj("unknown_method")
	}
	if resp["ok"] != true {
		s.logf("%s: %v", method, resp["error"])
	} else {
		s.logf("%s: ok", method)
		if strings.HasPrefix(method, "chat.") {
			s.watchers.changed()
		}
	}
	if s.loseIfArmed(w, method) {
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) noteLocked(text string) {
	s.text = append(s.text, text)
}

// conversation answers conversations.history (newest first) and
// conversations.replies (oldest first) with the messages keep accepts, a
// page at a time as Slack does: at most limit (default 100) and at most
// Options.PageSize, with has_more and response_metadata.next_cursor when
// more follow. The cursor is opaque to the client; here it names the last
// message of the page, so messages posted between two pages neither
// repeat nor push others out of the next one. A cursor not of this server
// is invalid_cursor.
func (s *Server) conversation(ch string, newestFirst bool, p url.Values, keep func(*Message) bool) obj {
	metadata := truthy(p.Get("include_all_metadata"))
	page := 100
	if n, err := strconv.Atoi(p.Get("limit")); err == nil && n > 0 {
		page = n
	}
	after := ""
	if c := p.Get("cursor"); c != "" {
		raw, err := base64.StdEncoding.DecodeString(c)
		if err != nil || !strings.HasPrefix(string(raw), "ts:") {
			return errObj("invalid_cursor")
		}
		after = strings.TrimPrefix(string(raw), "ts:")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.knownChannelLocked(ch) {
		return errObj("channel_not_found")
	}
	page = min(page, s.opts.PageSize)
	msgs, last, more := []any{}, "", false
	for i := range s.msgs {
		m := s.msgs[i]
		if newestFirst {
			m = s.msgs[len(s.msgs)-1-i]
		}
		if !keep(m) || after != "" && (newestFirst && m.TS >= after || !newestFirst && m.TS <= after) {
			continue
		}
		if len(msgs) == page {
			more = true
			break
		}
		o := wireMessage(m)
		if metadata && m.Metadata != nil {
			o["metadata"] = m.Metadata
		}
		msgs, last = append(msgs, o), m.TS
	}
	next := ""
	if more {
		next = base64.StdEncoding.EncodeToString([]byte("ts:" + last))
	}
	return obj{"ok": true, "messages": msgs, "has_more": more, "response_metadata": obj{"next_cursor": next}}
}

func (s *Server) nextTSLocked() string {
	s.tsSeq++
	n := s.tsSeq * 100
	return fmt.Sprintf("%d.%06d", baseTS+n/1000000, n%1000000)
}

func (s *Server) knownChannelLocked(ch string) bool {
	_, c := s.channels[ch]
	_, u := s.users[ch]
	return ch != "" && (c || u)
}

func (s *Server) findLocked(channel, ts string) *Message {
	for _, m := range s.msgs {
		if m.Channel == channel && m.TS == ts {
			return m
		}
	}
	return nil
}

// blocksParam returns the blocks field (nil if absent) and whether it is valid.
func blocksParam(p url.Values) (json.RawMessage, bool) {
	b := strings.TrimSpace(p.Get("blocks"))
	if b == "" || b == "null" {
		return nil, true
	}
	if !json.Valid([]byte(b)) || b[0] != '[' {
		return nil, false
	}
	return json.RawMessage(b), true
}

func wireMessage(m *Message) obj {
	o := obj{"type": "message", "user": m.User, "text": m.Text, "ts": m.TS, "team": TeamID}
	if m.User == BotUserID {
		o["bot_id"], o["app_id"] = BotID, AppID
	}
	if m.ThreadTS != "" {
		o["thread_ts"] = m.ThreadTS
	}
	if m.Blocks != nil {
		o["blocks"] = m.Blocks
	}
	if m.Edits > 0 {
		o["edited"] = obj{"user": m.User, "ts": fmt.Sprintf("%d.000000", m.Updated.Unix())}
	}
	return o
}

func (s *Server) postMessage(p url.Values) obj {
	blocks, ok := blocksParam(p)
	if !ok {
		return errObj("invalid_blocks")
	}
	ch := p.Get("channel")
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.knownChannelLocked(ch) {
		return errObj("channel_not_found")
	}
	if p.Get("text") == "" && blocks == nil && p.Get("attachments") == "" {
		return errObj("no_text")
	}
	if code := checkText(p.Get("text")) + checkBlocks(blocks); code != "" {
		return errObj(code)
	}
	m := &Message{Channel: ch, TS: s.nextTSLocked(), ThreadTS: p.Get("thread_ts"), User: BotUserID,
		Text: escapeText(p.Get("text")), Blocks: blocks, Posted: time.Now(), Source: "chat.postMessage"}
	if md := strings.TrimSpace(p.Get("metadata")); md != "" && json.Valid([]byte(md)) {
		m.Metadata = json.RawMessage(md)
	}
	s.msgs = append(s.msgs, m)
	return obj{"ok": true, "channel": ch, "ts": m.TS, "message": wireMessage(m)}
}

func (s *Server) update(p url.Values) obj {
	blocks, ok := blocksParam(p)
	if !ok {
		return errObj("invalid_blocks")
	}
	ch, ts := p.Get("channel"), p.Get("ts")
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.knownChannelLocked(ch) {
		return errObj("channel_not_found")
	}
	m := s.findLocked(ch, ts)
	switch {
	case m == nil:
		return errObj("message_not_found")
	case m.User != BotUserID:
		return errObj("cant_update_message")
	}
	if code := checkText(p.Get("text")) + checkBlocks(blocks); code != "" {
		return errObj(code)
	}
	m.History = append(m.History, m.Text)
	if p.Has("text") {
		m.Text = escapeText(p.Get("text"))
	}
	if blocks != nil {
		m.Blocks = blocks
	}
	m.Edits++
	m.Updated = time.Now()
	return obj{"ok": true, "channel": ch, "ts": ts, "text": m.Text, "message": wireMessage(m)}
}

func (s *Server) postEphemeral(p url.Values) obj {
	blocks, ok := blocksParam(p)
	if !ok {
		return errObj("invalid_blocks")
	}
	ch, user := p.Get("channel"), p.Get("user")
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.knownChannelLocked(ch) {
		return errObj("channel_not_found")
	}
	if _, ok := s.users[user]; !ok {
		return errObj("user_not_found")
	}
	if code := checkText(p.Get("text")) + checkBlocks(blocks); code != "" {
		return errObj(code)
	}
	m := &Message{Channel: ch, TS: s.nextTSLocked(), ThreadTS: p.Get("thread_ts"), User: user,
		Text: escapeText(p.Get("text")), Blocks: blocks, Posted: time.Now(), Source: "chat.postEphemeral"}
	s.ephemerals[user] = append(s.ephemerals[user], m)
	return obj{"ok": true, "message_ts": m.TS}
}

func (s *Server) permalink(p url.Values) obj {
	ch, ts := p.Get("channel"), p.Get("message_ts")
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.knownChannelLocked(ch) {
		return errObj("channel_not_found")
	}
	m := s.findLocked(ch, ts)
	if m == nil {
		return errObj("message_not_found")
	}
	link := WorkspaceURL + "archives/" + ch + "/p" + strings.Replace(ts, ".", "", 1)
	if m.ThreadTS != "" {
		link += "?thread_ts=" + m.ThreadTS + "&cid=" + ch
	}
	return obj{"ok": true, "channel": ch, "permalink": link}
}

func (s *Server) handleResponse(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/response/")
	body, err := io.ReadAll(r.Body)
	s.mu.Lock()
	s.noteLocked(string(body))
	s.mu.Unlock()
	if !s.gate(w, "response_url") {
		return
	}
	var msg struct {
		Text            string          `json:"text"`
		Blocks          json.RawMessage `json:"blocks"`
		ThreadTS        string          `json:"thread_ts"`
		ResponseType    string          `json:"response_type"`
		ReplaceOriginal bool            `json:"replace_original"`
		DeleteOriginal  bool            `json:"delete_original"`
	}
	if err != nil || json.Unmarshal(body, &msg) != nil {
		writeJSON(w, http.StatusBadRequest, errObj("invalid_payload"))
		return
	}
	if string(msg.Blocks) == "null" {
		msg.Blocks = nil
	}
	if msg.ReplaceOriginal {
		// The app wrote its ack before this post, but this server may not
		// have read it yet (another goroutine): Slack has it by then, so
		// wait (bounded) until the ack is read and the receipt it shows is
		// known.
		deadline := time.Now().Add(2 * time.Second)
		for {
			s.mu.Lock()
			t := s.responses[id]
			s.mu.Unlock()
			if !t.slash || t.acked || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	code, answer := s.respond(id, msg.Text, msg.Blocks, msg.ThreadTS, msg.ResponseType, msg.ReplaceOriginal, msg.DeleteOriginal)
	if code == http.StatusOK && s.loseIfArmed(w, "response_url") {
		return // carried out, answer dropped (LoseNext("response_url", n))
	}
	writeJSON(w, code, answer)
}

// respond carries out a post to response_url id, taking s.mu; it
// returns the HTTP status and the answer.
func (s *Server) respond(id, text string, blocks json.RawMessage, threadTS, responseType string, replace, del bool) (int, obj) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.responses[id]
	if !ok || t.expired || time.Since(t.made) > responseURLLifetime {
		return http.StatusNotFound, errObj("expired_url")
	}
	if t.uses >= responseURLUses {
		return http.StatusNotFound, errObj("used_url")
	}
	t.uses++
	s.responses[id] = t
	if t.original != nil && replace && responseType != "in_channel" {
		// The receipt (the command's ephemeral ack) is replaced in place,
		// as Slack does: same ts, new text and blocks, no new message.
		t.original.History = append(t.original.History, t.original.Text)
		t.original.Text, t.original.Blocks, t.original.Replaced = text, blocks, t.original.Replaced+1
		t.original.Updated = time.Now()
		s.watchers.changed()
		return http.StatusOK, obj{"ok": true}
	}
	m := &Message{Channel: t.channel, TS: s.nextTSLocked(), ThreadTS: threadTS, User: t.user, Text: text,
		Blocks: blocks, Posted: time.Now(), Source: "response_url", ResponseType: responseType,
		ReplaceOriginal: replace, DeleteOriginal: del}
	s.ephemerals[t.user] = append(s.ephemerals[t.user], m)
	s.watchers.changed()
	return http.StatusOK, obj{"ok": true}
}

// findAction looks for the element with action_id in a blocks array and
// returns it with the block_id of the enclosing top-level block.
func findAction(blocks json.RawMessage, actionID string) (string, map[string]any) {
	var bl []map[string]any
	if len(blocks) == 0 || json.Unmarshal(blocks, &bl) != nil {
		return "", nil
	}
	var walk func(v any) map[string]any
	walk = func(v any) map[string]any {
		switch x := v.(type) {
		case map[string]any:
			if x["action_id"] == actionID {
				return x
			}
			for _, c := range x {
				if f := walk(c); f != nil {
					return f
				}
			}
		case []any:
			for _, c := range x {
				if f := walk(c); f != nil {
					return f
				}
			}
		}
		return nil
	}
	for _, b := range bl {
		if el := walk(b); el != nil {
			id, _ := b["block_id"].(string)
			return id, el
		}
	}
	return "", nil
}

// ---- records ----

func copyMsgs(ms []*Message, keep func(*Message) bool) []Message {
	var out []Message
	for _, m := range ms {
		if keep(m) {
			c := *m
			c.History = slices.Clone(m.History)
			out = append(out, c)
		}
	}
	return out
}

// Messages returns the channel's top-level messages in post order, each in
// its current version.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return copyMsgs(s.msgs, func(m *Message) bool { return m.Channel == channel && m.ThreadTS == "" })
}

// Thread returns the replies to ts in channel, in post order.
func (s *Server) Thread(channel, ts string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return copyMsgs(s.msgs, func(m *Message) bool { return m.Channel == channel && m.ThreadTS == ts })
}

// Receipts returns the ephemeral messages that slash commands' ack payloads
// showed userID (Source "ack"), in order.
func (s *Server) Receipts(userID string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return copyMsgs(s.receipts[userID], func(*Message) bool { return true })
}

// Ephemerals returns chat.postEphemeral and response_url messages for userID, in order.
func (s *Server) Ephemerals(userID string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return copyMsgs(s.ephemerals[userID], func(*Message) bool { return true })
}

// Calls is the number of calls of a Web API method (or "response_url"),
// including rejected ones.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls[method])
}

// CallTimes returns the arrival time of every call of method.
func (s *Server) CallTimes(method string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls[method])
}

// UnknownMethods returns the names of unknown Web API methods called, in order.
func (s *Server) UnknownMethods() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.unknown)
}

// AllText returns everything the bot ever sent that was recorded: every Web
// API parameter except the token (texts, blocks JSON, ephemerals, ...),
// every response_url body and every ack payload, one per line. Use it to scan
// for leaked secrets.
func (s *Server) AllText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.text) == 0 {
		return ""
	}
	return strings.Join(s.text, "\n") + "\n"
}
