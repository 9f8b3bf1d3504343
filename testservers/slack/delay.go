package slackserver

import (
	"net/http"
	"time"
)

// SetDelay makes every later Web API call of method ("*": of every
// method) wait d before it is handled and answered as usual: a slow Slack.
// A method's own delay wins over "*"; d <= 0 removes the delay. Socket
// Mode (envelopes and acks) and the response_url endpoint are never
// delayed: the outcome of a command's checks is delivered through its
// response_url.
func (s *Server) SetDelay(method string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.delays == nil {
		s.delays = map[string]time.Duration{}
	}
	if d <= 0 {
		delete(s.delays, method)
		return
	}
	s.delays[method] = d
}

// ClearDelays removes every delay SetDelay set. Calls already waiting go
// on waiting.
func (s *Server) ClearDelays() {
	s.mu.Lock()
	s.delays = nil
	s.mu.Unlock()
}

// waitDelay holds a Web API call of method for its delay. It reports false
// when the client went away or the server closed meanwhile: the call is
// then not handled.
func (s *Server) waitDelay(r *http.Request, method string) bool {
	s.mu.Lock()
	d, ok := s.delays[method]
	if !ok {
		d = s.delays["*"]
	}
	s.mu.Unlock()
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		s.logf("%s: client gone during a %v delay", method, d)
	case <-s.closed:
	}
	return false
}
