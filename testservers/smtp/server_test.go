package smtpserver

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

const body = "Subject: hi\r\n\r\nline one\r\n.dot line\r\n"

type clientOpts struct {
	tls      bool
	auth     sasl.Client
	from, to string
}

// send runs one transaction with go-smtp's client and returns its error.
func send(t *testing.T, s *Server, o clientOpts) error {
	t.Helper()
	var (
		c   *smtp.Client
		err error
	)
	if o.tls {
		c, err = smtp.DialStartTLS(s.Addr(), &tls.Config{RootCAs: s.CertPool(), ServerName: "127.0.0.1"})
	} else {
		c, err = smtp.Dial(s.Addr())
	}
	if err != nil {
		return err
	}
	defer c.Close()
	if o.auth != nil {
		if err := c.Auth(o.auth); err != nil {
			return err
		}
	}
	if o.from == "" {
		o.from = "bot@example.com"
	}
	if o.to == "" {
		o.to = "jdoe@example.com"
	}
	if err := c.SendMail(o.from, []string{o.to}, strings.NewReader(body)); err != nil {
		return err
	}
	return c.Quit()
}

func code(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func TestServer(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		client   clientOpts
		prepare  func(s *Server)
		wantCode int // 0 = success
		wantErr  string
		check    func(t *testing.T, m Message)
	}{
		{
			name:   "plain, no auth",
			client: clientOpts{},
			check: func(t *testing.T, m Message) {
				if m.TLS || m.AuthUser != "" {
					t.Errorf("TLS=%v AuthUser=%q", m.TLS, m.AuthUser)
				}
			},
		},
		{
			name:   "STARTTLS and AUTH PLAIN",
			opts:   Options{Username: "bot", Password: "pw", RequireTLS: true},
			client: clientOpts{tls: true, auth: sasl.NewPlainClient("", "bot", "pw")},
			check: func(t *testing.T, m Message) {
				if !m.TLS || m.AuthUser != "bot" {
					t.Errorf("TLS=%v AuthUser=%q", m.TLS, m.AuthUser)
				}
			},
		},
		{
			name:   "AUTH LOGIN",
			opts:   Options{Username: "bot", Password: "pw", AuthMechanisms: []string{"LOGIN"}},
			client: clientOpts{tls: true, auth: sasl.NewLoginClient("bot", "pw")},
			check: func(t *testing.T, m Message) {
				if m.AuthUser != "bot" {
					t.Errorf("AuthUser=%q", m.AuthUser)
				}
			},
		},
		{name: "PLAIN not offered", opts: Options{Username: "bot", Password: "pw", AuthMechanisms: []string{"LOGIN"}},
			client: clientOpts{tls: true, auth: sasl.NewPlainClient("", "bot", "pw")}, wantCode: 504},
		{name: "wrong password", opts: Options{Username: "bot", Password: "pw"},
			client: clientOpts{tls: true, auth: sasl.NewPlainClient("", "bot", "nope")}, wantCode: 535},
		{name: "auth required", opts: Options{Username: "bot", Password: "pw"}, client: clientOpts{tls: true}, wantCode: 530},
		{name: "TLS required", opts: Options{RequireTLS: true}, client: clientOpts{}, wantCode: 530},
		{name: "AUTH refused before TLS", opts: Options{Username: "bot", Password: "pw", RequireTLS: true},
			client: clientOpts{auth: sasl.NewPlainClient("", "bot", "pw")}, wantCode: 523},
		{name: "no STARTTLS offered", opts: Options{NoTLS: true}, client: clientOpts{tls: true}, wantErr: "STARTTLS"},
		{name: "451 at DATA", prepare: func(s *Server) { s.FailNext(1, 451, "try again later") }, wantCode: 451},
		{name: "550 at DATA", prepare: func(s *Server) { s.FailNext(1, 550, "mailbox unavailable") }, wantCode: 550},
		{name: "550 at RCPT", prepare: func(s *Server) { s.FailNextRcpt(1, 550, "no such user") }, wantCode: 550},
		{name: "failure cleared", prepare: func(s *Server) { s.FailNext(1, 451, "x"); s.FailNext(0, 0, "") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if tt.prepare != nil {
				tt.prepare(s)
			}
			err = send(t, s, tt.client)
			switch {
			case tt.wantCode != 0 || tt.wantErr != "":
				if err == nil {
					t.Fatal("send succeeded, want failure")
				}
				if tt.wantCode != 0 && code(err) != tt.wantCode {
					t.Fatalf("error %v, want code %d", err, tt.wantCode)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				if n := len(s.Messages()); n != 0 {
					t.Fatalf("%d messages recorded after a failure", n)
				}
				return
			case err != nil:
				t.Fatalf("send: %v", err)
			}
			msgs := s.Messages()
			if len(msgs) != 1 {
				t.Fatalf("%d messages, want 1", len(msgs))
			}
			m := msgs[0]
			if m.From != "bot@example.com" || len(m.To) != 1 || m.To[0] != "jdoe@example.com" || string(m.Data) != body {
				t.Errorf("recorded %+v", m)
			}
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

func TestFailNextCountsDown(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.FailNext(2, 451, "busy")
	for i, want := range []int{451, 451, 0, 0} {
		if got := code(send(t, s, clientOpts{})); got != want {
			t.Fatalf("attempt %d: code %d, want %d", i+1, got, want)
		}
	}
	if n := len(s.Messages()); n != 2 {
		t.Fatalf("%d messages, want 2", n)
	}
}

func TestAuthAttempts(t *testing.T) {
	s, err := New(Options{Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_ = send(t, s, clientOpts{tls: true, auth: sasl.NewPlainClient("", "u", "bad")})
	_ = send(t, s, clientOpts{tls: true, auth: sasl.NewLoginClient("u", "p")})
	if tries, fails := s.AuthAttempts(); tries != 2 || fails != 1 {
		t.Fatalf("AuthAttempts = %d, %d; want 2, 1", tries, fails)
	}
}

func TestWaitMessages(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.WaitMessages(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitMessages on an idle server = %v, want deadline exceeded", err)
	}

	done := make(chan error, 1)
	go func() {
		for i := 0; i < 3; i++ {
			if err := send(t, s, clientOpts{}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := s.WaitMessages(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want 3", len(msgs))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Messages returns copies.
	msgs[0].Data[0] = 'X'
	if s.Messages()[0].Data[0] == 'X' {
		t.Error("Messages shares its buffers with the caller")
	}
}

func TestCloseTwice(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close()
	if _, err := smtp.Dial(s.Addr()); err == nil {
		t.Fatal("dial after Close succeeded")
	}
}

// A stalled DATA answers nothing: the client's deadline ends it, nothing is
// recorded, and the next transaction goes through.
func TestStallNext(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.StallNext(1, 5*time.Second)
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.CommandTimeout = 300 * time.Millisecond
	c.SubmissionTimeout = 300 * time.Millisecond
	start := time.Now()
	err = c.SendMail("bot@example.com", []string{"jdoe@example.com"}, strings.NewReader(body))
	if err == nil {
		t.Fatal("a stalled DATA was answered")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the client waited %s", d)
	}
	if n := len(s.Messages()); n != 0 || s.Stalls() != 1 {
		t.Fatalf("%d messages recorded, %d stalls", n, s.Stalls())
	}
	if err := send(t, s, clientOpts{}); err != nil {
		t.Fatalf("after the stall: %v", err)
	}
}

// The stall's bound drops the connection without an answer.
func TestStallBound(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.StallNext(1, 200*time.Millisecond)
	err = send(t, s, clientOpts{})
	if err == nil || code(err) != 0 {
		t.Fatalf("want the connection dropped without a reply, got %v", err)
	}
	if n := len(s.Messages()); n != 0 {
		t.Fatalf("%d messages recorded", n)
	}
}

// A lost answer: the message is accepted and recorded, but the client
// never reads the 250.
func TestLoseNext(t *testing.T) {
	s, err := New(Options{Username: "bot", Password: "pw", RequireTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.LoseNext(1)
	o := clientOpts{tls: true, auth: sasl.NewPlainClient("", "bot", "pw")}
	err = send(t, s, o)
	if err == nil || code(err) != 0 {
		t.Fatalf("want the connection dropped without a reply, got %v", err)
	}
	if msgs := s.Messages(); len(msgs) != 1 || !msgs[0].TLS || !strings.Contains(string(msgs[0].Data), "line one") {
		t.Fatalf("the lost transaction was not recorded: %+v", msgs)
	}
	if err := send(t, s, o); err != nil {
		t.Fatalf("after the lost answer: %v", err)
	}
	if n := len(s.Messages()); n != 2 {
		t.Fatalf("%d messages, want 2", n)
	}
}
