// Package actions is the Slack-free core of osio-bot: requests and their
// states, audit events, and the durable job runner. One sub-package per
// job (export, ...) does the AWS work; each declares the narrow SDK
// interfaces it calls.
package actions

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// State is where a request is in its life.
type State string

// The states. pending -> approved -> running -> succeeded | failed;
// pending -> denied | cancelled | expired. A command's intake is
// received -> pending when its checks pass, or received -> refused (with
// the reason in Error) when they do not.
const (
	Received  State = "received"
	Refused   State = "refused"
	Pending   State = "pending"
	Approved  State = "approved"
	Running   State = "running"
	Succeeded State = "succeeded"
	Failed    State = "failed"
	Denied    State = "denied"
	Cancelled State = "cancelled"
	Expired   State = "expired"
)

// Terminal reports whether nothing more happens to a request in s.
func (s State) Terminal() bool {
	switch s {
	case Succeeded, Failed, Denied, Cancelled, Expired, Refused:
		return true
	}
	return false
}

// Thread is the approval message; its replies are the audit trail.
type Thread struct {
	Channel   string `json:"channel"`
	TS        string `json:"ts,omitempty"`
	Permalink string `json:"permalink,omitempty"`
}

// Decision records who approved, denied or cancelled, and when.
type Decision struct {
	Action string    `json:"action"` // approved, denied, cancelled, expired
	By     string    `json:"by,omitempty"`
	At     time.Time `json:"at"`
}

// Request is one slash command's worth of work.
type Request struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"` // "export"
	State     State  `json:"state"`
	Requester string `json:"requester"` // Slack user id
	// Origin is the channel the command was typed in.
	Origin string `json:"origin"`
	// Args are the job's own arguments (for export: tables and method).
	Args json.RawMessage `json:"args"`
	// Plan is what the approver is shown; nil until planned.
	Plan     []string  `json:"plan,omitempty"`
	Planned  bool      `json:"planned,omitempty"`
	Thread   Thread    `json:"thread"`
	Decision *Decision `json:"decision,omitempty"`
	// Choice is the option the approver picked (e.g. a reset method).
	Choice string `json:"choice,omitempty"`
	Error  string `json:"error,omitempty"`
	// Failure says, on a failed request, what failed, on what, for people
	// (the card shows it); Error keeps the technical detail.
	Failure string `json:"failure,omitempty"`
	// Retry, on a failed request, labels the approver action that resumes
	// it (e.g. "Resend"); empty when a retry makes no sense.
	Retry     string    `json:"retry,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// Locks are the resources the request holds until it ends, e.g.
	// "export:prod_txlog".
	Locks []string `json:"locks,omitempty"`
	// Input is the command as typed (e.g. "/osio-export prod_txlog"), for
	// the audit; set on requests taken in by a slash command.
	Input string `json:"input,omitempty"`
	// What names the request for its requester, e.g. "export of
	// `prod_txlog` by AWS Data Pipeline (runbook)".
	What string `json:"what,omitempty"`
	// Told records that the requester was told the outcome of the
	// request's checks (refused, or waiting for approval).
	Told bool `json:"told,omitempty"`
	// Untellable is the Slack error that no retry fixes (is_archived,
	// user_not_found, ...) met telling the requester the outcome of the
	// request's checks: it is not tried again.
	Untellable string `json:"untellable,omitempty"`
	// Runner is the replica whose job last started the request's job, on a
	// store shared by several replicas (empty otherwise): another replica
	// that takes the job over says so in the thread.
	Runner string `json:"runner,omitempty"`
	// Archived is the S3 key of the request's audit record, once written
	// (audit.s3_uri).
	Archived string `json:"archived,omitempty"`
	Version  int64  `json:"version"`
}

// Untold reports whether r was taken in by a slash command and its
// requester has not been told the outcome of its checks yet (a refusal,
// or "waiting for approval"): the tell failed, or its process died first;
// unless Slack said it never can be (Untellable).
func (r *Request) Untold() bool { return r.Input != "" && !r.Told && r.Untellable == "" }

// Active reports whether a periodic scan still has something to do with
// r: it is still going (not terminal), or it has ended (refused, say) but
// its requester has not heard of it (Untold). Stores that index active
// requests (ListActive) keep r there while this holds.
func (r *Request) Active() bool { return !r.State.Terminal() || r.Untold() }

// DecodeArgs unmarshals the job arguments into v.
func (r *Request) DecodeArgs(v any) error {
	if err := json.Unmarshal(r.Args, v); err != nil {
		return fmt.Errorf("decoding arguments of %s: %w", r.ID, err)
	}
	return nil
}

// EventKind says how the reporter delivers an event.
type EventKind string

// Event kinds.
const (
	// Card (re)renders the approval message from the request's state:
	// posted when the request has no thread yet, edited afterwards.
	Card EventKind = "card"
	// Message is a new reply in the thread.
	Message EventKind = "message"
	// Progress edits the thread's one status message; consecutive progress
	// events are folded into one edit.
	Progress EventKind = "progress"
)

// Event is one audit record, stored before it reaches the thread.
type Event struct {
	Seq  uint64    `json:"seq"`
	At   time.Time `json:"at"`
	Kind EventKind `json:"kind"`
	Text string    `json:"text,omitempty"`
	// Prev and Hash chain the request's events (see Chain); set by the
	// store.
	Prev string `json:"prev,omitempty"`
	Hash string `json:"hash,omitempty"`
}

// ErrNotFound is returned for an unknown request id.
var ErrNotFound = errors.New("no such request")

// StateConflict is returned when a compare-and-set finds the request in a
// state other than the ones expected.
type StateConflict struct {
	ID      string
	Current *Request
}

func (e *StateConflict) Error() string {
	return fmt.Sprintf("request %s is %s", e.ID, e.Current.State)
}

// Created is the result of creating a request.
type Created struct {
	Request *Request
	// Duplicate is true when the envelope was seen before; Request is then
	// the request it created.
	Duplicate bool
	// LockedBy maps each lock already held to the request holding it; when
	// not empty, nothing was created.
	LockedBy map[string]*Request
}

// Retryable is a job failure that an approver may retry: the request ends
// failed, and its card offers a button labelled Label that resumes the job
// from its checkpoints.
type Retryable struct {
	Label string
	Err   error
}

func (e *Retryable) Error() string { return e.Err.Error() }
func (e *Retryable) Unwrap() error { return e.Err }

// LockConflict is returned when a request leaving a terminal state (an
// approver's retry, e.g. Resend) cannot take its locks back because other
// requests hold them. Nothing was changed.
type LockConflict struct {
	ID string
	// LockedBy maps each lock held by another request to that request.
	LockedBy map[string]*Request
}

func (e *LockConflict) Error() string {
	locks := make([]string, 0, len(e.LockedBy))
	for l := range e.LockedBy {
		locks = append(locks, l)
	}
	sort.Strings(locks)
	parts := make([]string, len(locks))
	for i, l := range locks {
		h := e.LockedBy[l]
		parts[i] = fmt.Sprintf("%s is held by %s (%s)", l, h.ID, h.State)
	}
	return fmt.Sprintf("request %s cannot take back its locks: %s", e.ID, strings.Join(parts, "; "))
}

// Cursor is how far a request's events have reached its thread.
type Cursor struct {
	Delivered uint64 `json:"delivered"`
	// StatusTS is the ts of the thread's status message, once posted.
	StatusTS string `json:"status_ts,omitempty"`
	// StatusClosed says the status message has its finished form: it is
	// not edited again; a request run again (an approver's retry) gets a
	// new one, below the retry.
	StatusClosed bool `json:"status_closed,omitempty"`
	// LastTS is the ts of the last reply posted to the thread.
	LastTS string `json:"last_ts,omitempty"`
	// ToldExpired and ToldUnreachable record that the requester was told
	// directly (outside the thread) that the request expired, or that its
	// channel cannot be reached, so that each notice goes out once.
	ToldExpired     bool `json:"told_expired,omitempty"`
	ToldUnreachable bool `json:"told_unreachable,omitempty"`
}

// IsConflict reports whether err is a compare-and-set conflict
// (*StateConflict), and returns it.
func IsConflict(err error) (*StateConflict, bool) {
	var c *StateConflict
	ok := errors.As(err, &c)
	return c, ok
}
