// Package smtpserver is a real SMTP server, in-process, for tests: it is built
// on github.com/emersion/go-smtp, listens on 127.0.0.1 on a free port and
// records every message it accepts.
//
// What it models:
//
//   - ESMTP with PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES (go-smtp's).
//   - STARTTLS with a self-signed ECDSA certificate made at start for
//     127.0.0.1, ::1 and localhost; clients trust it through CertPool().
//     Options.NoTLS turns STARTTLS off (a server that does not offer it), and
//     Options.RequireTLS answers 530 to MAIL before STARTTLS.
//   - AUTH PLAIN (go-sasl) and AUTH LOGIN with one configured username and
//     password (Options.AuthMechanisms limits which are offered); a wrong
//     password answers 535 and AuthAttempts counts tries. When a username is
//     configured, MAIL before AUTH answers 530. With RequireTLS, AUTH before
//     STARTTLS answers 523; otherwise it is accepted in clear text too.
//   - Failure injection: FailNext answers the next n DATA commands with a
//     given code (e.g. 451 or 550) after reading the message; FailNextRcpt
//     does the same at RCPT. A failed transaction records nothing.
//     StallNext holds the next n DATA commands after reading the message,
//     answering nothing, for a given time (a timeout: the client must give
//     up on its own), then drops the connection; nothing is recorded.
//     LoseNext records the next n messages (the mail is accepted and will
//     be delivered) and then drops the connection before the final 250 (a
//     lost answer).
//
// What it does NOT model (be careful what a passing test proves):
//
//   - No delivery, relaying, queues, bounces or DSNs; a message is "accepted"
//     once DATA answers 250 and only recorded here.
//   - No implicit TLS (port 465), no client certificates, no SMTPUTF8; the
//     CHUNKING/BDAT and PIPELINING behaviour is go-smtp's own.
//   - No SPF/DKIM/DMARC, no header or MIME validation: Data is recorded byte
//     for byte (after the SMTP layer removed dot-stuffing).
//   - No greylisting or rate limits beyond what FailNext/FailNextRcpt inject;
//     injected failures apply to transactions in arrival order, across
//     connections.
//   - Only one user; no per-recipient failures within one transaction.
package smtpserver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options configure a Server.
type Options struct {
	// Username and Password enable AUTH; with a Username set, MAIL needs a
	// successful AUTH first.
	Username, Password string
	// RequireTLS refuses MAIL (530) and AUTH before STARTTLS.
	RequireTLS bool
	// NoTLS makes the server not offer STARTTLS at all.
	NoTLS bool
	// AuthMechanisms limits the AUTH mechanisms offered (from "PLAIN" and
	// "LOGIN"); nil means both.
	AuthMechanisms []string
}

// Message is one accepted message.
type Message struct {
	From string
	To   []string
	// Data is the message as received (headers and body, CRLF line ends,
	// dot-stuffing removed).
	Data []byte
	// TLS says the message came over a STARTTLS-protected connection.
	TLS bool
	// AuthUser is the user who authenticated, "" if none did.
	AuthUser string
}

// Server is a running SMTP server. Its methods are safe for concurrent use.
type Server struct {
	opts     Options
	srv      *smtp.Server
	ln       net.Listener
	pool     *x509.CertPool
	serveErr chan error

	mu        sync.Mutex
	messages  []Message
	changed   chan struct{} // closed and replaced whenever messages grows
	failData  failure
	failRcpt  failure
	stall     int
	stallFor  time.Duration
	stalls    int
	lose      int
	closed    chan struct{}
	authTries int
	authFails int
	closeOnce sync.Once
}

type failure struct {
	n    int
	code int
	msg  string
}

// take consumes one injected failure, if any is pending.
func (f *failure) take() error {
	if f.n <= 0 {
		return nil
	}
	f.n--
	return &smtp.SMTPError{
		Code:         f.code,
		EnhancedCode: smtp.EnhancedCode{f.code / 100, 0, 0},
		Message:      f.msg,
	}
}

// New starts a server on 127.0.0.1 on a free port. Close it when done.
func New(opts Options) (*Server, error) {
	s := &Server{opts: opts, changed: make(chan struct{}), serveErr: make(chan error, 1), closed: make(chan struct{})}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "localhost"
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.MaxMessageBytes = 10 << 20
	srv.MaxRecipients = 50
	srv.AllowInsecureAuth = !opts.RequireTLS
	srv.ErrorLog = log.New(io.Discard, "", 0)
	if !opts.NoTLS {
		cert, pool, err := selfSigned()
		if err != nil {
			return nil, fmt.Errorf("smtp test server: making certificate: %w", err)
		}
		s.pool = pool
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("smtp test server: listening: %w", err)
	}
	s.srv, s.ln = srv, ln
	go func() { s.serveErr <- srv.Serve(ln) }()
	return s, nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// CertPool holds the server's self-signed certificate, for clients' RootCAs.
// It is nil when Options.NoTLS is set.
func (s *Server) CertPool() *x509.CertPool { return s.pool }

// Close stops the server and closes open connections.
// Close may be called more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		_ = s.srv.Close()
		_ = s.ln.Close() // in case Serve had not registered it yet
		<-s.serveErr
	})
}

// FailNext makes the next n DATA commands fail with code and msg (e.g. 451
// "try again later", 550 "mailbox unavailable"). n <= 0 clears it.
func (s *Server) FailNext(n, code int, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failData = failure{n: n, code: code, msg: msg}
}

// FailNextRcpt makes the next n RCPT commands fail with code and msg.
func (s *Server) FailNextRcpt(n, code int, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failRcpt = failure{n: n, code: code, msg: msg}
}

// StallNext makes the next n DATA commands hang after the message was
// read: no answer for d (or until Close), then the connection is dropped.
// Nothing is recorded. n <= 0 clears it.
func (s *Server) StallNext(n int, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stall, s.stallFor = n, d
}

// Stalls counts DATA commands StallNext held.
func (s *Server) Stalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stalls
}

// LoseNext makes the next n accepted messages lose their answer: each is
// recorded, then the connection is dropped before the final 250.
// n <= 0 clears it.
func (s *Server) LoseNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lose = n
}

// AuthAttempts counts completed AUTH exchanges, and AuthFailures those
// with wrong credentials.
func (s *Server) AuthAttempts() (attempts, failures int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authTries, s.authFails
}

// Messages returns a copy of the messages accepted so far, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	for i, m := range s.messages {
		m.To = append([]string(nil), m.To...)
		m.Data = bytes.Clone(m.Data)
		out[i] = m
	}
	return out
}

// WaitMessages waits until at least n messages were accepted and returns
// them, or returns ctx's error.
func (s *Server) WaitMessages(ctx context.Context, n int) ([]Message, error) {
	for {
		s.mu.Lock()
		got, changed := len(s.messages), s.changed
		s.mu.Unlock()
		if got >= n {
			return s.Messages(), nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %d messages, have %d: %w", n, got, ctx.Err())
		}
	}
}

func (s *Server) record(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = append(s.messages, m)
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	return &session{s: s, c: c, tls: isTLS}, nil
}

type session struct {
	s        *Server
	c        *smtp.Conn
	tls      bool
	authUser string
	from     string
	to       []string
}

var (
	errTLSRequired  = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Must issue a STARTTLS command first"}
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
)

func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.Username == "" {
		return nil
	}
	if ss.s.opts.AuthMechanisms != nil {
		return ss.s.opts.AuthMechanisms
	}
	return []string{sasl.Plain, sasl.Login}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	offered := false
	for _, m := range ss.AuthMechanisms() {
		offered = offered || m == mech
	}
	if !offered {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	check := func(username, password string) error {
		ss.s.mu.Lock()
		defer ss.s.mu.Unlock()
		ss.s.authTries++
		if username != ss.s.opts.Username || password != ss.s.opts.Password {
			ss.s.authFails++
			return smtp.ErrAuthFailed
		}
		ss.authUser = username
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return smtp.ErrAuthFailed
			}
			return check(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.opts.RequireTLS && !ss.tls {
		return errTLSRequired
	}
	if ss.s.opts.Username != "" && ss.authUser == "" {
		return errAuthRequired
	}
	ss.from, ss.to = from, nil
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	err := ss.s.failRcpt.take()
	ss.s.mu.Unlock()
	if err != nil {
		return err
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	err = ss.s.failData.take()
	stall, stallFor, lose := false, ss.s.stallFor, false
	if err == nil && ss.s.stall > 0 {
		ss.s.stall--
		ss.s.stalls++
		stall = true
	} else if err == nil && ss.s.lose > 0 {
		ss.s.lose--
		lose = true
	}
	ss.s.mu.Unlock()
	if err != nil {
		return err
	}
	if stall {
		t := time.NewTimer(stallFor)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ss.s.closed:
		}
		_ = ss.c.Conn().Close()
		return errDropped
	}
	ss.s.record(Message{From: ss.from, To: append([]string(nil), ss.to...), Data: data, TLS: ss.tls, AuthUser: ss.authUser})
	if lose {
		_ = ss.c.Conn().Close()
		return errDropped
	}
	return nil
}

// errDropped is answered on a connection already closed: the client never
// reads it.
var errDropped = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Connection dropped"}

func (ss *session) Reset()        { ss.from, ss.to = "", nil }
func (ss *session) Logout() error { return nil }

// loginServer is the server side of the (obsolete, still common) LOGIN
// mechanism, which go-sasl only implements for clients.
type loginServer struct {
	check    func(username, password string) error
	username *string
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch {
	case l.username == nil && response == nil:
		return []byte("Username:"), false, nil
	case l.username == nil:
		u := string(response)
		l.username = &u
		return []byte("Password:"), false, nil
	default:
		return nil, true, l.check(*l.username, string(response))
	}
}

func selfSigned() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "smtpserver test"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}
