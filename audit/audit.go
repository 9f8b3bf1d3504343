// Package audit turns the store into an audit trail that outlives Slack:
// one record per request, with who asked, where and what, the plan shown,
// the decision, every event with its time, the outcome and the thread's
// permalink. It reads only what the store holds, and the store holds no
// secret: no token, no password (a reset's password exists only in memory
// and, encrypted, in the mail), so neither does an export.
package audit

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/osio/osio-bot/actions"
)

// Source is what an export reads: a store, of either backend.
type Source interface {
	List(keep func(*actions.Request) bool) ([]*actions.Request, error)
	Events(id string) ([]actions.Event, error)
}

// Record is one request as the audit trail keeps it.
type Record struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// State is the outcome so far: refused, succeeded, failed, denied,
	// expired, cancelled, or a state still going.
	State     string `json:"state"`
	Requester string `json:"requester"`
	// Channel is where the command was typed.
	Channel string `json:"channel"`
	// Command is the command as typed; What names what it asked for.
	Command string   `json:"command,omitempty"`
	What    string   `json:"what,omitempty"`
	Plan    []string `json:"plan,omitempty"`
	// Decision: approved, denied, cancelled or expired; by whom (a Slack
	// user id; empty when automatic) and when.
	Decision   string     `json:"decision,omitempty"`
	DecidedBy  string     `json:"decided_by,omitempty"`
	DecidedAt  *time.Time `json:"decided_at,omitempty"`
	Choice     string     `json:"choice,omitempty"`
	Error      string     `json:"error,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	Permalink  string     `json:"permalink,omitempty"`
	Events     []Event    `json:"events"`
	Terminated bool       `json:"ended"`
}

// Event is one line of the request's thread, as stored.
type Event struct {
	Seq  uint64    `json:"seq"`
	At   time.Time `json:"at"`
	Kind string    `json:"kind"`
	Text string    `json:"text,omitempty"`
}

// Export reads the records of the requests created in [since, until),
// oldest first.
func Export(src Source, since, until time.Time) ([]Record, error) {
	rs, err := src.List(func(r *actions.Request) bool {
		return !r.CreatedAt.Before(since) && r.CreatedAt.Before(until)
	})
	if err != nil {
		return nil, fmt.Errorf("listing requests: %w", err)
	}
	sort.SliceStable(rs, func(i, j int) bool {
		if !rs[i].CreatedAt.Equal(rs[j].CreatedAt) {
			return rs[i].CreatedAt.Before(rs[j].CreatedAt)
		}
		return rs[i].ID < rs[j].ID
	})
	out := make([]Record, 0, len(rs))
	for _, r := range rs {
		evs, err := src.Events(r.ID)
		if err != nil {
			return nil, fmt.Errorf("reading the events of %s: %w", r.ID, err)
		}
		out = append(out, record(r, evs))
	}
	return out, nil
}

func record(r *actions.Request, evs []actions.Event) Record {
	rec := Record{ID: r.ID, Kind: r.Kind, State: string(r.State), Requester: r.Requester, Channel: r.Origin,
		Command: r.Input, What: r.What, Plan: r.Plan, Choice: r.Choice, Error: r.Error,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), Permalink: r.Thread.Permalink,
		Terminated: r.State.Terminal(), Events: []Event{}}
	if d := r.Decision; d != nil {
		at := d.At.UTC()
		rec.Decision, rec.DecidedBy, rec.DecidedAt = d.Action, d.By, &at
	}
	for _, e := range evs {
		if e.Kind == actions.Card {
			continue // a re-render of the card: no text of its own
		}
		rec.Events = append(rec.Events, Event{Seq: e.Seq, At: e.At.UTC(), Kind: string(e.Kind), Text: e.Text})
	}
	return rec
}

// WriteJSONL writes one JSON object per line.
func WriteJSONL(w io.Writer, recs []Record) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

// csvHeader are the CSV columns; events are one cell, a line each
// ("2006-01-02T15:04:05Z kind: text").
var csvHeader = []string{"id", "kind", "state", "requester", "channel", "command", "what", "plan", "decision", "decided_by",
	"decided_at", "choice", "error", "created_at", "updated_at", "permalink", "events"}

// WriteCSV writes a header and one row per request (RFC 4180), each cell
// made inert for spreadsheets (see inert).
func WriteCSV(w io.Writer, recs []Record) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	for _, r := range recs {
		decided := ""
		if r.DecidedAt != nil {
			decided = r.DecidedAt.Format(time.RFC3339)
		}
		var evs []string
		for _, e := range r.Events {
			evs = append(evs, fmt.Sprintf("%s %s: %s", e.At.Format(time.RFC3339), e.Kind, strings.ReplaceAll(e.Text, "\n", " ")))
		}
		row := []string{r.ID, r.Kind, r.State, r.Requester, r.Channel, r.Command, r.What, strings.Join(r.Plan, "\n"),
			r.Decision, r.DecidedBy, decided, r.Choice, r.Error, r.CreatedAt.Format(time.RFC3339), r.UpdatedAt.Format(time.RFC3339),
			r.Permalink, strings.Join(evs, "\n")}
		for i := range row {
			row[i] = inert(row[i])
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// inert keeps a cell from being read as a formula by a spreadsheet (CSV
// injection: a command typed as "=HYPERLINK(...)"): a cell that starts
// with =, +, -, @, a tab or a carriage return gets a leading apostrophe.
func inert(cell string) string {
	if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
		return "'" + cell
	}
	return cell
}

// Broken is a request whose events no longer form their hash chain.
type Broken struct {
	ID       string
	Problems []string
}

// Verify recomputes every request's event chain and returns those that
// are broken: an event changed, removed or reordered since it was written.
func Verify(src Source) (checked int, broken []Broken, err error) {
	rs, err := src.List(func(*actions.Request) bool { return true })
	if err != nil {
		return 0, nil, fmt.Errorf("listing requests: %w", err)
	}
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].CreatedAt.Before(rs[j].CreatedAt) })
	for _, r := range rs {
		evs, err := src.Events(r.ID)
		if err != nil {
			return checked, broken, fmt.Errorf("reading the events of %s: %w", r.ID, err)
		}
		checked++
		if p := actions.VerifyChain(evs); len(p) > 0 {
			broken = append(broken, Broken{ID: r.ID, Problems: p})
		}
	}
	return checked, broken, nil
}
