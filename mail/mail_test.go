package mail

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	smtpserver "github.com/osio/osio-bot/testservers/smtp"
)

const (
	user     = "osio-bot"
	password = "pa55-W0rd!s3cret"
)

func newServer(t *testing.T, o smtpserver.Options) *smtpserver.Server {
	t.Helper()
	s, err := smtpserver.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func newSender(t *testing.T, cfg Config) *Sender {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%v): %v", cfg, err)
	}
	return s
}

func baseConfig(s *smtpserver.Server) Config {
	cfg := DefaultConfig()
	cfg.Addr = s.Addr()
	cfg.From = "osio-bot <osio-bot@example.com>"
	cfg.Timeout = 10 * time.Second
	if s.CertPool() != nil {
		cfg.RootCAs = s.CertPool()
	}
	return cfg
}

var testMessage = Message{
	To:      "jdoe@example.com",
	Subject: "Your new AWS console password",
	Body:    "Hello,\n\n-----BEGIN PGP MESSAGE-----\n\nwcBMA=\n=abcd\n-----END PGP MESSAGE-----\n",
	Headers: map[string]string{"X-Osio-Request-Id": "req-42", "Auto-Submitted": "auto-generated"},
}

// assertNoSecret fails if text shows the password in any form AUTH sends.
func assertNoSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, f := range []string{
		password,
		base64.StdEncoding.EncodeToString([]byte(password)),
		base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password)),
	} {
		if strings.Contains(text, f) {
			t.Fatalf("%s shows the password: %q", what, text)
		}
	}
}

func TestSend(t *testing.T) {
	tests := []struct {
		name      string
		server    smtpserver.Options
		config    func(cfg *Config)
		prepare   func(s *smtpserver.Server)
		msg       *Message
		wantErr   string // "" = delivered
		wantCode  int
		wantTemp  bool
		wantTLS   bool
		wantAuth  string
		noAuthTry bool // the password must not have been offered
	}{
		{name: "STARTTLS and AUTH PLAIN", server: smtpserver.Options{Username: user, Password: password, RequireTLS: true},
			config: func(c *Config) { c.Username, c.Password = user, password }, wantTLS: true, wantAuth: user},
		{name: "STARTTLS and AUTH LOGIN", server: smtpserver.Options{Username: user, Password: password, RequireTLS: true, AuthMechanisms: []string{"LOGIN"}},
			config: func(c *Config) { c.Username, c.Password = user, password }, wantTLS: true, wantAuth: user},
		{name: "STARTTLS without AUTH", server: smtpserver.Options{}, wantTLS: true},
		{name: "InsecureSkipVerify", server: smtpserver.Options{},
			config: func(c *Config) { c.RootCAs, c.InsecureSkipVerify = nil, true }, wantTLS: true},
		{name: "explicit plain-text local relay with AUTH", server: smtpserver.Options{Username: user, Password: password},
			config: func(c *Config) { c.StartTLS, c.Username, c.Password = false, user, password }, wantAuth: user},
		{name: "STARTTLS not offered", server: smtpserver.Options{NoTLS: true, Username: user, Password: password},
			config:  func(c *Config) { c.Username, c.Password = user, password },
			wantErr: "does not offer STARTTLS", noAuthTry: true},
		{name: "untrusted certificate", server: smtpserver.Options{Username: user, Password: password},
			config:  func(c *Config) { c.RootCAs, c.Username, c.Password = nil, user, password },
			wantErr: "certificate is not trusted", noAuthTry: true},
		{name: "TLS server name on the certificate", server: smtpserver.Options{},
			config: func(c *Config) { c.ServerName = "localhost" }, wantTLS: true},
		{name: "TLS server name not on the certificate", server: smtpserver.Options{},
			config:  func(c *Config) { c.ServerName = "smtp.example.com" },
			wantErr: "certificate is not trusted"},
		{name: "certificate of another server", server: smtpserver.Options{},
			config:  func(c *Config) { c.RootCAs = newServer(t, smtpserver.Options{}).CertPool() },
			wantErr: "certificate is not trusted"},
		{name: "plain text refused by server", server: smtpserver.Options{RequireTLS: true},
			config: func(c *Config) { c.StartTLS = false }, wantErr: "530", wantCode: 530},
		{name: "wrong password", server: smtpserver.Options{Username: user, Password: "other"},
			config:  func(c *Config) { c.Username, c.Password = user, password },
			wantErr: "535", wantCode: 535},
		{name: "AUTH not offered", server: smtpserver.Options{},
			config:  func(c *Config) { c.Username, c.Password = user, password },
			wantErr: "does not offer AUTH"},
		{name: "451 at DATA is temporary", prepare: func(s *smtpserver.Server) { s.FailNext(1, 451, "try again later") },
			wantErr: "451", wantCode: 451, wantTemp: true},
		{name: "421 at RCPT is temporary", prepare: func(s *smtpserver.Server) { s.FailNextRcpt(1, 421, "closing") },
			wantErr: "RCPT TO <jdoe@example.com>", wantCode: 421, wantTemp: true},
		{name: "550 at DATA is permanent", prepare: func(s *smtpserver.Server) { s.FailNext(1, 550, "mailbox unavailable") },
			wantErr: "550", wantCode: 550},
		{name: "550 at RCPT is permanent", prepare: func(s *smtpserver.Server) { s.FailNextRcpt(1, 550, "no such user") },
			wantErr: "no such user", wantCode: 550},
		{name: "bad recipient is permanent, nothing sent", msg: &Message{To: "not an address"},
			wantErr: "not a mail address"},
		{name: "connection refused is temporary", config: func(c *Config) { c.Addr = closedAddr(t) },
			wantErr: "connecting", wantTemp: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, tt.server)
			cfg := baseConfig(srv)
			if tt.config != nil {
				tt.config(&cfg)
			}
			if tt.prepare != nil {
				tt.prepare(srv)
			}
			msg := testMessage
			if tt.msg != nil {
				msg = *tt.msg
			}
			err := newSender(t, cfg).Send(context.Background(), msg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				msgs := srv.Messages()
				if len(msgs) != 1 {
					t.Fatalf("%d messages delivered, want 1", len(msgs))
				}
				m := msgs[0]
				if m.TLS != tt.wantTLS || m.AuthUser != tt.wantAuth {
					t.Errorf("TLS=%v AuthUser=%q, want %v %q", m.TLS, m.AuthUser, tt.wantTLS, tt.wantAuth)
				}
				if m.From != "osio-bot@example.com" || len(m.To) != 1 || m.To[0] != "jdoe@example.com" {
					t.Errorf("envelope %q -> %q", m.From, m.To)
				}
				return
			}
			if err == nil {
				t.Fatal("Send succeeded, want failure")
			}
			var me *Error
			if !errors.As(err, &me) {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || me.Code != tt.wantCode || IsTemporary(err) != tt.wantTemp {
				t.Errorf("error %q (code %d, temporary %v), want %q (code %d, temporary %v)",
					err, me.Code, IsTemporary(err), tt.wantErr, tt.wantCode, tt.wantTemp)
			}
			assertNoSecret(t, "error", err.Error())
			assertNoSecret(t, "error %+v", fmt.Sprintf("%+v", err))
			if n := len(srv.Messages()); n != 0 {
				t.Errorf("%d messages delivered after a failure", n)
			}
			if tries, _ := srv.AuthAttempts(); tt.noAuthTry && tries != 0 {
				t.Errorf("the client tried AUTH %d times", tries)
			}
		})
	}
}

func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestMessageFormat checks the RFC 5322 message as the server received it.
func TestMessageFormat(t *testing.T) {
	fixed := time.Date(2026, 11, 26, 9, 30, 0, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name     string
		msg      Message
		wantCTE  string
		wantBody string
		check    func(t *testing.T, h netmail.Header)
	}{
		{
			name:     "ASCII, dot lines",
			msg:      Message{To: "Jane Doe <jdoe@example.com>", Subject: "Password reset", Body: "line 1\n.\n..two dots\n.three\r\nlast"},
			wantCTE:  "7bit",
			wantBody: "line 1\r\n.\r\n..two dots\r\n.three\r\nlast\r\n",
			check: func(t *testing.T, h netmail.Header) {
				if got := h.Get("Subject"); got != "Password reset" {
					t.Errorf("Subject = %q", got)
				}
				to, err := h.AddressList("To")
				if err != nil || len(to) != 1 || to[0].Name != "Jane Doe" || to[0].Address != "jdoe@example.com" {
					t.Errorf("To = %v, %v", to, err)
				}
			},
		},
		{
			name:     "non-ASCII subject and body",
			msg:      Message{To: "jdoe@example.com", Subject: "Mot de passe réinitialisé ✓", Body: "Grüße,\nl'équipe"},
			wantCTE:  "quoted-printable",
			wantBody: "Grüße,\r\nl'équipe\r\n",
			check: func(t *testing.T, h netmail.Header) {
				raw := h.Get("Subject")
				if !strings.HasPrefix(raw, "=?utf-8?q?") {
					t.Errorf("Subject not encoded: %q", raw)
				}
				got, err := new(mime.WordDecoder).DecodeHeader(raw)
				if err != nil || got != "Mot de passe réinitialisé ✓" {
					t.Errorf("Subject decodes to %q, %v", got, err)
				}
			},
		},
		{
			name:     "long line",
			msg:      Message{To: "jdoe@example.com", Subject: "x", Body: strings.Repeat("a", 1200)},
			wantCTE:  "quoted-printable",
			wantBody: strings.Repeat("a", 1200) + "\r\n",
		},
		{
			name:    "extra headers",
			msg:     Message{To: "jdoe@example.com", Subject: "x", Body: "b", Headers: map[string]string{"X-Request": "req-1", "X-Name": "Zoë"}},
			wantCTE: "7bit", wantBody: "b\r\n",
			check: func(t *testing.T, h netmail.Header) {
				if h.Get("X-Request") != "req-1" {
					t.Errorf("X-Request = %q", h.Get("X-Request"))
				}
				if got, _ := new(mime.WordDecoder).DecodeHeader(h.Get("X-Name")); got != "Zoë" {
					t.Errorf("X-Name = %q", h.Get("X-Name"))
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, smtpserver.Options{})
			s := newSender(t, baseConfig(srv))
			s.now = func() time.Time { return fixed }
			if err := s.Send(context.Background(), tt.msg); err != nil {
				t.Fatal(err)
			}
			raw := srv.Messages()[0].Data
			if i := strings.Index(strings.ReplaceAll(string(raw), "\r\n", ""), "\n"); i >= 0 {
				t.Fatalf("bare LF at %d in:\n%q", i, raw)
			}
			for _, line := range strings.Split(string(raw), "\r\n") {
				if len(line) > 998 {
					t.Fatalf("line of %d octets", len(line))
				}
			}
			m, err := netmail.ReadMessage(strings.NewReader(string(raw)))
			if err != nil {
				t.Fatal(err)
			}
			h := m.Header
			if d, err := h.Date(); err != nil || !d.Equal(fixed) {
				t.Errorf("Date = %v, %v", d, err)
			}
			if !regexp.MustCompile(`^<[0-9a-f]{32}@example\.com>$`).MatchString(h.Get("Message-ID")) {
				t.Errorf("Message-ID = %q", h.Get("Message-ID"))
			}
			from, err := h.AddressList("From")
			if err != nil || len(from) != 1 || from[0].Name != "osio-bot" || from[0].Address != "osio-bot@example.com" {
				t.Errorf("From = %v, %v", from, err)
			}
			for name, want := range map[string]string{"MIME-Version": "1.0", "Content-Type": "text/plain; charset=utf-8", "Content-Transfer-Encoding": tt.wantCTE} {
				if got := h.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			var body io.Reader = m.Body
			if tt.wantCTE == "quoted-printable" {
				body = quotedprintable.NewReader(body)
			}
			got, err := io.ReadAll(body)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.wantBody {
				t.Errorf("body = %q, want %q", got, tt.wantBody)
			}
			if tt.check != nil {
				tt.check(t, h)
			}
		})
	}
}

func TestComposeRejects(t *testing.T) {
	s := newSender(t, Config{Addr: "127.0.0.1:25", From: "bot@example.com", StartTLS: true})
	tests := []struct {
		name string
		msg  Message
		want string
	}{
		{"no recipient", Message{Subject: "x"}, "not a mail address"},
		{"two recipients", Message{To: "a@example.com, b@example.com"}, "not a mail address"},
		{"subject injection", Message{To: "a@example.com", Subject: "hi\r\nBcc: evil@example.com"}, "line break"},
		{"header value injection", Message{To: "a@example.com", Headers: map[string]string{"X-A": "1\nBcc: evil@example.com"}}, "line break"},
		{"bad header name", Message{To: "a@example.com", Headers: map[string]string{"X A": "1"}}, "not valid"},
		{"reserved header", Message{To: "a@example.com", Headers: map[string]string{"from": "evil@example.com"}}, "cannot be set"},
		{"invalid UTF-8", Message{To: "a@example.com", Body: "\xff"}, "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Send(context.Background(), tt.msg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Send = %v, want %q", err, tt.want)
			}
			if IsTemporary(err) {
				t.Errorf("a bad message is not temporary")
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"ok", Config{Addr: "smtp.example.com:587", From: "bot@example.com"}, ""},
		{"no port", Config{Addr: "smtp.example.com", From: "bot@example.com"}, "host:port"},
		{"bad from", Config{Addr: "h:25", From: "bot"}, "From"},
		{"password without user", Config{Addr: "h:25", From: "bot@example.com", Password: password}, "without a Username"},
		{"negative timeout", Config{Addr: "h:25", From: "bot@example.com", Timeout: -1}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
			if err != nil {
				assertNoSecret(t, "Validate error", err.Error())
			}
		})
	}
	if !DefaultConfig().StartTLS {
		t.Error("DefaultConfig does not require STARTTLS")
	}
}

func TestConfigDoesNotPrintPassword(t *testing.T) {
	cfg := Config{Addr: "h:25", From: "bot@example.com", Username: user, Password: password}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, cfg)
		assertNoSecret(t, format, out)
		if !strings.Contains(out, "REDACTED") {
			t.Errorf("%s: %q does not say the password is set", format, out)
		}
	}
	assertNoSecret(t, "pointer", fmt.Sprintf("%+v", &cfg))
}

// fakeServer runs a hand-written SMTP peer for behaviour the real server
// library will not produce: replies that echo the client, and silence.
func fakeServer(t *testing.T, handle func(conn net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				handle(conn)
			}()
		}
	}()
	return ln.Addr().String()
}

// TestPasswordRedactedFromServerReplies: a server that quotes the client's
// AUTH line back in its error must not get the password into our error.
func TestPasswordRedactedFromServerReplies(t *testing.T) {
	for _, mech := range []string{"PLAIN", "LOGIN"} {
		t.Run(mech, func(t *testing.T) {
			addr := fakeServer(t, func(conn net.Conn) {
				r := bufio.NewReader(conn)
				fmt.Fprintf(conn, "220 fake ESMTP\r\n")
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					line = strings.TrimRight(line, "\r\n")
					switch {
					case strings.HasPrefix(line, "EHLO"):
						fmt.Fprintf(conn, "250-fake\r\n250 AUTH %s\r\n", mech)
					case line == "AUTH LOGIN" || strings.HasPrefix(line, "AUTH LOGIN "):
						fmt.Fprintf(conn, "334 UGFzc3dvcmQ6\r\n")
					case strings.HasPrefix(line, "AUTH PLAIN "):
						fmt.Fprintf(conn, "535 5.7.8 rejected %s (password %s)\r\n", strings.TrimPrefix(line, "AUTH PLAIN "), password)
					case line == "*" || line == "QUIT":
						fmt.Fprintf(conn, "221 bye\r\n")
						return
					default: // the LOGIN password
						fmt.Fprintf(conn, "535 5.7.8 rejected %s\r\n", line)
					}
				}
			})
			cfg := Config{Addr: addr, From: "bot@example.com", Username: user, Password: password, StartTLS: false, Timeout: 5 * time.Second}
			err := newSender(t, cfg).Send(context.Background(), testMessage)
			if err == nil {
				t.Fatal("Send succeeded")
			}
			assertNoSecret(t, "error", err.Error())
			if !strings.Contains(err.Error(), "[REDACTED]") || IsTemporary(err) {
				t.Errorf("error = %q (temporary %v)", err, IsTemporary(err))
			}
			if errors.Unwrap(err) != nil {
				t.Errorf("the unredacted cause is still wrapped: %T", errors.Unwrap(err))
			}
		})
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	silent := fakeServer(t, func(conn net.Conn) { _, _ = io.Copy(io.Discard, conn) })

	start := time.Now()
	cfg := Config{Addr: silent, From: "bot@example.com", StartTLS: true, Timeout: 200 * time.Millisecond}
	err := newSender(t, cfg).Send(context.Background(), testMessage)
	if err == nil || !IsTemporary(err) {
		t.Fatalf("silent server: %v (temporary %v), want a temporary error", err, IsTemporary(err))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("timeout took %s", d)
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	cfg.Timeout = time.Minute
	start = time.Now()
	err = newSender(t, cfg).Send(ctx, testMessage)
	if !errors.Is(err, context.Canceled) || IsTemporary(err) {
		t.Fatalf("cancelled: %v (temporary %v), want context.Canceled, permanent", err, IsTemporary(err))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancel took %s", d)
	}
}

// TestQuitFailureAfterAcceptance: once DATA is answered 250 the message is
// delivered, whatever happens to QUIT.
func TestQuitFailureAfterAcceptance(t *testing.T) {
	addr := fakeServer(t, func(conn net.Conn) {
		r := bufio.NewReader(conn)
		fmt.Fprintf(conn, "220 fake\r\n")
		inData := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\r\n")
			switch {
			case inData && line == ".":
				inData = false
				fmt.Fprintf(conn, "250 queued\r\n")
			case inData:
			case strings.HasPrefix(line, "EHLO"):
				fmt.Fprintf(conn, "250 fake\r\n")
			case line == "DATA":
				inData = true
				fmt.Fprintf(conn, "354 go on\r\n")
			case line == "QUIT":
				return // hang up without 221
			default:
				fmt.Fprintf(conn, "250 ok\r\n")
			}
		}
	})
	cfg := Config{Addr: addr, From: "bot@example.com", StartTLS: false, Timeout: 5 * time.Second}
	if err := newSender(t, cfg).Send(context.Background(), testMessage); err != nil {
		t.Fatalf("Send = %v, want nil after 250 to DATA", err)
	}
}
