package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"syscall"
)

// Error is a failed delivery attempt.
type Error struct {
	// Code is the SMTP reply code, 0 when the failure was not a reply
	// (network, TLS, a bad message or configuration).
	Code int
	// Temporary says trying again later may succeed: 4xx replies and
	// network failures. 5xx replies, TLS verification failures, missing
	// STARTTLS or AUTH, a bad message and cancellation are permanent.
	Temporary bool
	msg       string
	err       error
}

func (e *Error) Error() string { return e.msg }

// Unwrap gives the cause (e.g. context.Canceled), when it is safe to show.
func (e *Error) Unwrap() error { return e.err }

// IsTemporary says whether err, or an error it wraps, is a temporary *Error.
func IsTemporary(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Temporary
}

// classify turns a failure during op into an *Error with the password
// removed from its text.
func (s *Sender) classify(ctx context.Context, op string, err error) *Error {
	prefix := fmt.Sprintf("mail: smtp %s: %s", s.cfg.Addr, op)
	e := &Error{err: err}
	var (
		tpErr    *textproto.Error
		certErr  *tls.CertificateVerificationError
		authErr  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invalErr x509.CertificateInvalidError
		recErr   tls.RecordHeaderError
		alertErr tls.AlertError
		netErr   net.Error
	)
	switch {
	case ctx.Err() != nil:
		e.err = ctx.Err()
		e.msg = fmt.Sprintf("%s: %v", prefix, ctx.Err())
	case errors.As(err, &tpErr):
		e.Code = tpErr.Code
		e.Temporary = tpErr.Code >= 400 && tpErr.Code < 500
		e.msg = fmt.Sprintf("%s: server answered %d %s", prefix, tpErr.Code, tpErr.Msg)
	case errors.As(err, &certErr), errors.As(err, &authErr), errors.As(err, &hostErr), errors.As(err, &invalErr):
		e.msg = fmt.Sprintf("%s: the server certificate is not trusted: %v", prefix, err)
	case errors.As(err, &recErr), errors.As(err, &alertErr):
		e.msg = fmt.Sprintf("%s: TLS handshake failed: %v", prefix, err)
	case errors.As(err, &netErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE):
		e.Temporary = true
		e.msg = fmt.Sprintf("%s: %v", prefix, err)
	default:
		e.msg = fmt.Sprintf("%s: %v", prefix, err)
	}
	if red := s.redact(e.msg); red != e.msg {
		e.msg, e.err = red, nil // the cause's text carries the secret: drop it
	}
	return e
}

// redact removes the password, in clear and in the base64 forms AUTH PLAIN
// and AUTH LOGIN send, from msg.
func (s *Sender) redact(msg string) string {
	pw := s.cfg.Password
	if pw == "" {
		return msg
	}
	forms := []string{
		pw,
		base64.StdEncoding.EncodeToString([]byte(pw)),
		base64.StdEncoding.EncodeToString([]byte("\x00" + s.cfg.Username + "\x00" + pw)),
	}
	for _, f := range forms {
		msg = strings.ReplaceAll(msg, f, "[REDACTED]")
	}
	return msg
}
