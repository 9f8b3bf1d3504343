package slackserver

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits Slack enforces on chat.postMessage / chat.update, as documented:
// text is refused past 40,000 characters (msg_too_long); a message holds at
// most 50 blocks, a section's text at most 3,000 characters and a header's
// at most 150 (invalid_blocks).
const (
	MaxTextChars        = 40000
	MaxBlocks           = 50
	MaxSectionTextChars = 3000
	MaxHeaderTextChars  = 150
)

// faults holds injected failures; guarded by Server.mu.
type faults struct {
	errs     map[string][]string // method -> error codes still to answer, in order
	channels map[string]string   // channel -> error code every call naming it gets
	lose     map[string]int      // method -> calls still to carry out and then drop unanswered
	hang     map[string]int      // method -> calls still to hang unanswered
	lost     map[string]int      // method -> answers dropped so far
}

func (f *faults) init() {
	if f.errs == nil {
		f.errs, f.channels = map[string][]string{}, map[string]string{}
		f.lose, f.hang, f.lost = map[string]int{}, map[string]int{}, map[string]int{}
	}
}

// FailNext makes the next n calls of method answer as Slack answers a method
// error: HTTP 200 with {"ok":false,"error":code}, and nothing done. Codes
// queue up behind codes injected earlier.
func (s *Server) FailNext(method, code string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.init()
	for range n {
		s.faults.errs[method] = append(s.faults.errs[method], code)
	}
}

// SetChannelError makes every Web API call that names channel (chat.*,
// conversations.*) answer code, the way Slack answers for a channel the bot
// cannot use: "channel_not_found" (deleted, or private without the bot),
// "is_archived", "not_in_channel". An empty code clears it.
func (s *Server) SetChannelError(channel, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.init()
	if code == "" {
		delete(s.faults.channels, channel)
		return
	}
	s.faults.channels[channel] = code
}

// LoseNext makes the next n calls of method lost answers: the call is
// carried out and recorded (a post is in the channel), and then the
// connection is closed without an HTTP response, as when a proxy or the
// network drops Slack's answer. method "response_url" loses the answers
// of posts to response URLs that were carried out.
func (s *Server) LoseNext(method string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.init()
	s.faults.lose[method] += n
}

// Lost is how many answers to method were dropped by LoseNext.
func (s *Server) Lost(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults.lost[method]
}

// HangNext makes the next n calls of method hang: nothing is done and no
// answer comes until the client gives up (its deadline) or the server
// closes, as with a stalled connection.
func (s *Server) HangNext(method string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.init()
	s.faults.hang[method] += n
}

// hangIfArmed blocks a call of method armed by HangNext until the client
// goes away or the server closes; it reports whether it did.
func (s *Server) hangIfArmed(r *http.Request, method string) bool {
	s.mu.Lock()
	armed := s.faults.hang[method] > 0
	if armed {
		s.faults.hang[method]--
	}
	s.mu.Unlock()
	if !armed {
		return false
	}
	s.logf("%s: hanging", method)
	start := time.Now()
	select {
	case <-r.Context().Done():
	case <-s.closed:
	}
	s.logf("%s: hung for %v, client gone", method, time.Since(start))
	return true
}

// injectedError returns the error code an injected fault makes this call
// answer, or "".
func (s *Server) injectedError(method string, p url.Values) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.faults.errs[method]; len(q) > 0 {
		s.faults.errs[method] = q[1:]
		return q[0]
	}
	if strings.HasPrefix(method, "chat.") || strings.HasPrefix(method, "conversations.") {
		if code := s.faults.channels[p.Get("channel")]; code != "" {
			return code
		}
	}
	return ""
}

// loseIfArmed drops the answer of a call of method armed by LoseNext; it
// reports whether it did (the caller must then write nothing).
func (s *Server) loseIfArmed(w http.ResponseWriter, method string) bool {
	s.mu.Lock()
	armed := s.faults.lose[method] > 0
	if armed {
		s.faults.lose[method]--
		s.faults.lost[method]++
	}
	s.mu.Unlock()
	if !armed {
		return false
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		return false
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return false
	}
	s.logf("%s: done, answer dropped", method)
	_ = conn.Close()
	return true
}

// checkText answers msg_too_long for text past Slack's limit.
func checkText(text string) string {
	if utf8.RuneCountInString(text) > MaxTextChars {
		return "msg_too_long"
	}
	return ""
}

// escapeText stores text as Slack does: &, < and > become &amp;, &lt; and
// &gt;, except in the control sequences Slack keeps (<@U…>, <#C…>, <!here>,
// <!subteam^S…>, <http…|label>, <mailto:…>) and in entities already escaped.
// What conversations.history/replies return is this escaped text.
func escapeText(text string) string {
	var b strings.Builder
	for i := 0; i < len(text); {
		c := text[i]
		switch c {
		case '&':
			rest := text[i:]
			if strings.HasPrefix(rest, "&amp;") || strings.HasPrefix(rest, "&lt;") || strings.HasPrefix(rest, "&gt;") {
				b.WriteByte('&')
			} else {
				b.WriteString("&amp;")
			}
			i++
		case '<':
			if end := strings.IndexByte(text[i+1:], '>'); end >= 0 && isControl(text[i+1:i+1+end]) {
				b.WriteString(text[i : i+2+end])
				i += 2 + end
				continue
			}
			b.WriteString("&lt;")
			i++
		case '>':
			b.WriteString("&gt;")
			i++
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

func isControl(inner string) bool {
	if inner == "" || strings.ContainsAny(inner, "<\n") {
		return false
	}
	switch inner[0] {
	case '@', '#', '!':
		return len(inner) > 1
	}
	for _, scheme := range []string{"http://", "https://", "mailto:"} {
		if strings.HasPrefix(inner, scheme) {
			return true
		}
	}
	return false
}

// checkBlocks answers invalid_blocks for blocks past Slack's limits: more
// than 50 blocks, a section's text (or a field) past 3,000 characters, a
// header's past 150.
func checkBlocks(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	var blocks []struct {
		Type string `json:"type"`
		Text *struct {
			Text string `json:"text"`
		} `json:"text"`
		Fields []struct {
			Text string `json:"text"`
		} `json:"fields"`
	}
	if json.Unmarshal(raw, &blocks) != nil {
		return "invalid_blocks"
	}
	if len(blocks) > MaxBlocks {
		return "invalid_blocks"
	}
	for _, bl := range blocks {
		limit := MaxSectionTextChars
		if bl.Type == "header" {
			limit = MaxHeaderTextChars
		}
		if bl.Text != nil && utf8.RuneCountInString(bl.Text.Text) > limit {
			return "invalid_blocks"
		}
		for _, f := range bl.Fields {
			if utf8.RuneCountInString(f.Text) > 2000 {
				return "invalid_blocks"
			}
		}
	}
	return ""
}
