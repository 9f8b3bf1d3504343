package passwordreset

import (
	"fmt"

	"github.com/osio/osio-bot/actions"
)

// History is what RefuseResend reads of the store.
type History interface {
	List(keep func(*actions.Request) bool) ([]*actions.Request, error)
	LoadCheckpoint(id, key string, v any) (bool, error)
}

// SupersededBy returns the newest later reset of the same account and
// user that may have changed the user's console password, or nil. A
// Resend of q would then mail a password that no longer works.
//
// A later request counts when it was created after q, is a reset of the
// same account and IAM user, and:
//   - in place: its checkpoint holds a ciphertext. From then on it may
//     have called UpdateLoginProfile ("set" recorded or not: a lost answer
//     or a failed save leaves the password changed without "set").
//   - recreate or resetPasswords: it was approved (whatever its state
//     now). Once approved it may have opened an MR, even one whose answer
//     was lost, and a merged MR deletes or resets the login profile.
//
// Requests that were never approved (pending, denied, cancelled, expired)
// and in-place ones that failed before generating a password do not count.
// It errs on the side of refusing: a refused Resend costs a new request; a
// wrong one mails a stale password.
func SupersededBy(h History, q *actions.Request) (*actions.Request, error) {
	var a Args
	if err := q.DecodeArgs(&a); err != nil {
		return nil, err
	}
	later, err := h.List(func(o *actions.Request) bool {
		if o.ID == q.ID || o.Kind != Kind || !o.CreatedAt.After(q.CreatedAt) || o.Decision == nil || o.Decision.Action != "approved" {
			return false
		}
		var b Args
		return o.DecodeArgs(&b) == nil && b.Account == a.Account && b.User == a.User
	})
	if err != nil {
		return nil, fmt.Errorf("listing later resets of %s in %s: %w", a.User, a.Account, err)
	}
	for _, o := range later { // newest first
		switch o.Choice {
		case Recreate, ResetPasswords:
			return o, nil
		}
		var st inPlaceState
		ok, err := h.LoadCheckpoint(o.ID, "inplace", &st)
		if err != nil {
			return nil, fmt.Errorf("reading the checkpoint of %s: %w", o.ID, err)
		}
		if ok && st.Ciphertext != "" {
			return o, nil
		}
	}
	return nil, nil
}

// RefuseResend says why q must not be resent, or "" when it may: a later
// reset of the same user may have set a new password (SupersededBy).
// Whether another request holds q's lock is decided atomically when the
// retry is recorded (the store's LockConflict).
func RefuseResend(h History, q *actions.Request) (string, error) {
	o, err := SupersededBy(h, q)
	if err != nil || o == nil {
		return "", err
	}
	var a Args
	_ = q.DecodeArgs(&a)
	how := "set a newer password"
	switch o.Choice {
	case Recreate:
		how = "recreates the user through app-interface"
	case ResetPasswords:
		how = "resets the password through app-interface"
	}
	return fmt.Sprintf("%s cannot be resent: the password it would mail may no longer work, because a later reset of `%s` in %s, %s (%s), %s. Nothing was mailed; ask for a new reset if the user still needs one.",
		q.ID, a.User, a.Account, o.ID, o.State, how), nil
}
