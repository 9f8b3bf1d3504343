package actions

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Each request's events form a hash chain (tamper evidence for the audit
// trail): an event stores the hash of its predecessor (Prev) and its own
// (Hash), which covers Prev and the event's content. Changing, removing or
// reordering a stored event breaks the chain at that point, and
// VerifyChain names where. Events written before the chain existed carry
// no hash; the chain starts at the first event that has one.

// Chain sets e's Prev to prev and its Hash; the store calls it as it
// appends e (after setting Seq and At) with the hash of the request's last
// event ("" for the first).
func Chain(prev string, e *Event) {
	e.Prev = prev
	e.Hash = eventHash(*e)
}

func eventHash(e Event) string {
	// A fixed, unambiguous encoding of the covered fields.
	data, _ := json.Marshal(struct {
		Prev string    `json:"p"`
		Seq  uint64    `json:"s"`
		At   time.Time `json:"a"`
		Kind EventKind `json:"k"`
		Text string    `json:"t"`
	}{e.Prev, e.Seq, e.At.UTC(), e.Kind, e.Text})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// VerifyChain checks a request's events as stored, in their stored order,
// and describes each break: an event whose content no longer matches its
// hash (changed), a gap in the sequence (removed), or an event whose Prev
// is not its predecessor's hash (removed or reordered). None: intact.
func VerifyChain(events []Event) []string {
	var problems []string
	prev, chained := "", false
	var lastSeq uint64
	present := map[uint64]bool{}
	for _, e := range events {
		present[e.Seq] = true
	}
	for i, e := range events {
		if i > 0 && e.Seq != lastSeq+1 {
			switch {
			case e.Seq <= lastSeq:
				problems = append(problems, fmt.Sprintf("event %d comes after event %d: reordered", e.Seq, lastSeq))
			case present[lastSeq+1]:
				problems = append(problems, fmt.Sprintf("event %d comes before event %d: reordered", e.Seq, lastSeq+1))
			default:
				problems = append(problems, fmt.Sprintf("events %d to %d are missing: removed", lastSeq+1, e.Seq-1))
			}
		}
		lastSeq = e.Seq
		if e.Hash == "" {
			if chained {
				problems = append(problems, fmt.Sprintf("event %d has no hash after hashed events: replaced", e.Seq))
			}
			continue
		}
		if e.Hash != eventHash(e) {
			problems = append(problems, fmt.Sprintf("event %d does not match its hash: changed", e.Seq))
		}
		if e.Prev != prev {
			problems = append(problems, fmt.Sprintf("event %d does not follow the event before it in the chain: removed or reordered", e.Seq))
		}
		prev, chained = e.Hash, true
	}
	return problems
}
