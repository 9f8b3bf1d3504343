package mail

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	netmail "net/mail"
	"net/textproto"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// The header fields compose writes itself; Message.Headers may not set them.
var reservedHeaders = map[string]bool{
	"Date": true, "From": true, "To": true, "Cc": true, "Bcc": true, "Subject": true,
	"Message-Id": true, "Mime-Version": true, "Content-Type": true, "Content-Transfer-Encoding": true,
}

// compose validates m and renders it as an RFC 5322 message with CRLF line
// ends (dot-stuffing is left to the SMTP DATA writer).
func (s *Sender) compose(m Message) (*netmail.Address, []byte, error) {
	to, err := netmail.ParseAddress(m.To)
	if err != nil {
		return nil, nil, fmt.Errorf("recipient %q is not a mail address: %v", m.To, err)
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		return nil, nil, errors.New("the subject contains a line break")
	}
	if !utf8.ValidString(m.Subject) || !utf8.ValidString(m.Body) {
		return nil, nil, errors.New("the subject or body is not valid UTF-8")
	}
	msgID, err := newMessageID(domainOf(s.from.Address))
	if err != nil {
		return nil, nil, err
	}

	var b bytes.Buffer
	header := func(name, value string) { b.WriteString(name + ": " + value + "\r\n") }
	header("Date", s.now().Format(time.RFC1123Z))
	header("From", s.from.String())
	header("To", to.String())
	header("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	header("Message-ID", msgID)
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")

	names := make([]string, 0, len(m.Headers))
	for name := range m.Headers {
		names = append(names, name)
	}
	sort.Strings(names)
	extra := make([]string, 0, len(names))
	for _, name := range names {
		value := m.Headers[name]
		if !validHeaderName(name) {
			return nil, nil, fmt.Errorf("header name %q is not valid", name)
		}
		if reservedHeaders[textproto.CanonicalMIMEHeaderKey(name)] {
			return nil, nil, fmt.Errorf("header %q is written by the sender and cannot be set", name)
		}
		if strings.ContainsAny(value, "\r\n") || !utf8.ValidString(value) {
			return nil, nil, fmt.Errorf("header %q has a line break or invalid UTF-8 in its value", name)
		}
		extra = append(extra, name+": "+mime.QEncoding.Encode("utf-8", value)+"\r\n")
	}

	body := strings.ReplaceAll(strings.ReplaceAll(m.Body, "\r\n", "\n"), "\r", "\n")
	if !strings.HasSuffix(body, "\n") {
		body += "\n"
	}
	if needsQP(body) {
		header("Content-Transfer-Encoding", "quoted-printable")
		for _, e := range extra {
			b.WriteString(e)
		}
		b.WriteString("\r\n")
		qp := quotedprintable.NewWriter(&b)
		if _, err := qp.Write([]byte(body)); err != nil {
			return nil, nil, fmt.Errorf("encoding the body: %w", err)
		}
		if err := qp.Close(); err != nil {
			return nil, nil, fmt.Errorf("encoding the body: %w", err)
		}
	} else {
		header("Content-Transfer-Encoding", "7bit")
		for _, e := range extra {
			b.WriteString(e)
		}
		b.WriteString("\r\n")
		b.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	}
	return to, b.Bytes(), nil
}

// needsQP says whether body cannot go as 7bit: non-ASCII, control
// characters other than tab, or a line over 998 octets.
func needsQP(body string) bool {
	for _, line := range strings.Split(body, "\n") {
		if len(line) > 998 {
			return true
		}
		for i := 0; i < len(line); i++ {
			if c := line[i]; c >= 0x7f || (c < 0x20 && c != '\t') {
				return true
			}
		}
	}
	return false
}

func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}
