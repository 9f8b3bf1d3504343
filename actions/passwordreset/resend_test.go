package passwordreset

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/store"
)

// Issue 8, item 2: which later requests make a Resend mail a stale
// password.
func TestSupersededBy(t *testing.T) {
	s, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	add := func(user, choice string, approved bool, ciphertext string) *actions.Request {
		t.Helper()
		args, _ := json.Marshal(Args{Account: "osio-dev", User: user})
		res, err := s.Create(&actions.Request{Kind: Kind, Args: args, ExpiresAt: time.Now().Add(time.Hour)}, "")
		if err != nil {
			t.Fatal(err)
		}
		q := res.Request
		if approved {
			if q, err = s.Transition(q.ID, []actions.State{actions.Pending}, actions.Failed, func(q *actions.Request) {
				q.Choice, q.Decision = choice, &actions.Decision{Action: "approved", By: "UCATCHER", At: time.Now()}
			}); err != nil {
				t.Fatal(err)
			}
		}
		if ciphertext != "" {
			if err := s.SaveCheckpoint(q.ID, "inplace", inPlaceState{Ciphertext: ciphertext, Generation: 1}); err != nil {
				t.Fatal(err)
			}
		}
		return q
	}
	r1 := add("dana", InPlace, true, "-----BEGIN PGP MESSAGE-----")
	check := func(want string) {
		t.Helper()
		got, err := SupersededBy(s, r1)
		if err != nil {
			t.Fatal(err)
		}
		id := ""
		if got != nil {
			id = got.ID
		}
		if id != want {
			t.Fatalf("superseded by %q, want %q", id, want)
		}
	}
	check("")
	add("dana", InPlace, false, "") // pending: never approved
	add("erin", InPlace, true, "x") // another user
	add("dana", InPlace, true, "")  // failed before generating a password
	check("")
	r5 := add("dana", ResetPasswords, true, "") // app-interface: approved is enough
	check(r5.ID)
	r6 := add("dana", InPlace, true, "y") // newest first
	check(r6.ID)
	reason, err := RefuseResend(s, r1)
	if err != nil || !strings.Contains(reason, r6.ID) || !strings.Contains(reason, "no longer work") {
		t.Fatalf("%q %v", reason, err)
	}
	// The newest request itself is superseded by nothing.
	if got, err := SupersededBy(s, r6); err != nil || got != nil {
		t.Fatalf("%+v %v", got, err)
	}
}
