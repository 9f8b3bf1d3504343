// Package mail sends plain-text mail over SMTP: STARTTLS (required unless it
// is switched off explicitly for a local relay), AUTH PLAIN or LOGIN, RFC 5322
// messages, errors classified as temporary (4xx, network) or permanent (5xx),
// and retries with backoff for the temporary ones.
//
// The package never logs, and no error it returns contains the SMTP password.
package mail

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/smtp"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
)

// DefaultTimeout bounds one delivery attempt when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Config says how to reach the SMTP server.
type Config struct {
	// Addr is the server's host:port, e.g. smtp.example.com:587.
	Addr string
	// From is the sender, a bare address or "Name <address>".
	From string
	// Username and Password enable AUTH (PLAIN, else LOGIN). The password is
	// never put in an error or logged.
	Username string
	Password string
	// StartTLS requires STARTTLS before anything else is sent: a server that
	// does not offer it is an error. Set it to false only for a local relay
	// (the explicit switch); then AUTH, if configured, goes in clear text.
	// The zero Config has it false: start from DefaultConfig.
	StartTLS bool
	// InsecureSkipVerify skips certificate verification (test servers only).
	InsecureSkipVerify bool
	// ServerName is the name the relay's certificate must carry; the host
	// of Addr when empty (set it when Addr is an IP or an internal alias).
	ServerName string
	// RootCAs verifies the server certificate; nil means the system roots.
	RootCAs *x509.CertPool
	// Timeout bounds one whole attempt (connect to QUIT); 0 = DefaultTimeout.
	Timeout time.Duration
	// LocalName is the name given in EHLO; "" means "localhost".
	LocalName string
}

// DefaultConfig returns a Config with STARTTLS required and the default
// timeout; the caller fills in Addr, From and the credentials.
func DefaultConfig() Config {
	return Config{StartTLS: true, Timeout: DefaultTimeout}
}

// String describes c without the password, so that a Config is safe to print.
func (c Config) String() string {
	pw := ""
	if c.Password != "" {
		pw = "[REDACTED]"
	}
	return fmt.Sprintf("mail.Config{Addr:%q From:%q Username:%q Password:%q StartTLS:%t InsecureSkipVerify:%t Timeout:%s}",
		c.Addr, c.From, c.Username, pw, c.StartTLS, c.InsecureSkipVerify, c.Timeout)
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

// Validate checks c and names the field at fault.
func (c Config) Validate() error {
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("mail: Addr %q must be host:port, e.g. smtp.example.com:587", c.Addr)
	}
	if _, err := netmail.ParseAddress(c.From); err != nil {
		return fmt.Errorf("mail: From %q is not a mail address: %v", c.From, err)
	}
	if c.Password != "" && c.Username == "" {
		return errors.New("mail: a Password is set without a Username")
	}
	if c.Timeout < 0 {
		return fmt.Errorf("mail: Timeout %s is negative", c.Timeout)
	}
	if strings.ContainsAny(c.LocalName, " \r\n") {
		return fmt.Errorf("mail: LocalName %q is not a host name", c.LocalName)
	}
	return nil
}

// Message is one plain-text mail to one recipient.
type Message struct {
	// To is the recipient, a bare address or "Name <address>".
	To      string
	Subject string
	// Body is UTF-8 text; line ends are converted to CRLF.
	Body string
	// Headers are extra header fields (e.g. X-Osio-Request-Id,
	// Auto-Submitted). They may not replace the ones the sender writes.
	Headers map[string]string
}

// Mailer sends one message; *Sender is one.
type Mailer interface {
	Send(ctx context.Context, m Message) error
}

// Sender delivers messages with one SMTP conversation per message.
type Sender struct {
	cfg  Config
	from *netmail.Address
	host string
	now  func() time.Time
}

// New checks cfg and returns a Sender.
func New(cfg Config) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	from, _ := netmail.ParseAddress(cfg.From)
	host, _, _ := net.SplitHostPort(cfg.Addr)
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.LocalName == "" {
		cfg.LocalName = "localhost"
	}
	return &Sender{cfg: cfg, from: from, host: host, now: time.Now}, nil
}

// Send delivers m. A returned error is an *Error: IsTemporary tells whether
// trying again later may help. Once the server has accepted the message
// (250 after DATA), Send returns nil even if QUIT then fails. A connection
// lost after the message was sent but before that answer is a temporary
// error, so a retry may deliver the message twice (as with any SMTP client).
func (s *Sender) Send(ctx context.Context, m Message) error {
	to, raw, err := s.compose(m)
	if err != nil {
		return &Error{msg: "mail: " + err.Error(), err: err}
	}
	if err := ctx.Err(); err != nil {
		return s.classify(ctx, "sending mail", err)
	}
	deadline := time.Now().Add(s.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	dialer := net.Dialer{Deadline: deadline}
	conn, err := dialer.DialContext(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return s.classify(ctx, "connecting", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return s.classify(ctx, "connecting", err)
	}
	// Cancelling ctx unblocks whatever read or write is in progress.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		return s.classify(ctx, "reading the greeting", err)
	}
	defer c.Close()
	if err := c.Hello(s.cfg.LocalName); err != nil {
		return s.classify(ctx, "EHLO", err)
	}
	if s.cfg.StartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return &Error{msg: fmt.Sprintf("mail: smtp server %s does not offer STARTTLS, which is required (switch StartTLS off only for a local relay)", s.cfg.Addr)}
		}
		tlsCfg := &tls.Config{
			ServerName:         cmp.Or(s.cfg.ServerName, s.host),
			RootCAs:            s.cfg.RootCAs,
			InsecureSkipVerify: s.cfg.InsecureSkipVerify, //nolint:gosec // explicit, for test servers
			MinVersion:         tls.VersionTLS12,
		}
		if err := c.StartTLS(tlsCfg); err != nil {
			return s.classify(ctx, "STARTTLS", err)
		}
	}
	if s.cfg.Username != "" {
		ok, mechs := c.Extension("AUTH")
		if !ok {
			return &Error{msg: fmt.Sprintf("mail: smtp server %s does not offer AUTH, but a username is configured", s.cfg.Addr)}
		}
		auth, err := s.auth(mechs)
		if err != nil {
			return &Error{msg: "mail: " + err.Error()}
		}
		if err := c.Auth(auth); err != nil {
			return s.classify(ctx, fmt.Sprintf("authenticating as %q", s.cfg.Username), err)
		}
	}
	if err := c.Mail(s.from.Address); err != nil {
		return s.classify(ctx, "MAIL FROM", err)
	}
	if err := c.Rcpt(to.Address); err != nil {
		return s.classify(ctx, fmt.Sprintf("RCPT TO <%s>", to.Address), err)
	}
	w, err := c.Data()
	if err != nil {
		return s.classify(ctx, "DATA", err)
	}
	if _, err := w.Write(raw); err != nil {
		return s.classify(ctx, "sending the message", err)
	}
	if err := w.Close(); err != nil {
		return s.classify(ctx, "ending the message", err)
	}
	_ = c.Quit() // accepted: a failing QUIT changes nothing
	return nil
}

// auth picks PLAIN, else LOGIN, from the mechanisms the server offers.
func (s *Sender) auth(offered string) (smtp.Auth, error) {
	mechs := strings.Fields(strings.ToUpper(offered))
	for _, want := range []string{sasl.Plain, sasl.Login} {
		for _, m := range mechs {
			if m == want {
				var c sasl.Client
				if want == sasl.Plain {
					c = sasl.NewPlainClient("", s.cfg.Username, s.cfg.Password)
				} else {
					c = sasl.NewLoginClient(s.cfg.Username, s.cfg.Password)
				}
				return saslAuth{c}, nil
			}
		}
	}
	return nil, fmt.Errorf("smtp server %s offers AUTH %s, but only PLAIN and LOGIN are supported", s.cfg.Addr, offered)
}

// saslAuth adapts a go-sasl client to net/smtp. The TLS policy is the
// Sender's (StartTLS), not net/smtp's PlainAuth host check.
type saslAuth struct{ c sasl.Client }

func (a saslAuth) Start(*smtp.ServerInfo) (string, []byte, error) { return a.c.Start() }

func (a saslAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	return a.c.Next(fromServer)
}

func newMessageID(domain string) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("making Message-ID: %w", err)
	}
	if domain == "" {
		domain = "localhost"
	}
	return "<" + hex.EncodeToString(b[:]) + "@" + domain + ">", nil
}
