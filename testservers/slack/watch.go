package slackserver

import (
	"context"
	"sync"
)

// watchers are the subscribers to the server's changes. They have a lock
// of their own, so that a change can be told with or without Server.mu
// held; telling never blocks.
type watchers struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

// changed tells every subscriber that something changed. A subscriber
// that has not read the last notice gets no second one: notices are
// coalesced, so a slow reader sees the newest state once.
func (w *watchers) changed() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for c := range w.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// Watch returns a channel that receives a notice after the recorded
// messages change: a message posted or updated by the bot (chat.postMessage,
// chat.update), an ephemeral (chat.postEphemeral, a response_url post, a
// slash command's receipt, a receipt replaced) or a user's message
// (PostUserMessage). Notices are coalesced (at most one is pending); read
// the state (Messages, Thread, Receipts, Ephemerals) after each. The
// channel is closed when ctx ends or the server closes. A view such as the playground uses it
// to update without polling.
func (s *Server) Watch(ctx context.Context) <-chan struct{} {
	c := make(chan struct{}, 1)
	w := &s.watchers
	w.mu.Lock()
	if w.subs == nil {
		w.subs = map[chan struct{}]struct{}{}
	}
	w.subs[c] = struct{}{}
	w.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-s.closed:
		}
		// changed sends only under w.mu to registered channels, so
		// closing after the delete cannot race with a send.
		w.mu.Lock()
		delete(w.subs, c)
		close(c)
		w.mu.Unlock()
	}()
	return c
}
