package bot

import (
	"testing"

	"github.com/osio/osio-bot/actions"
)

// Issue 12 part 4: a late or second click is told in English, and a double
// click by the approver who decided says "you", not their own mention.
func TestAlreadyText(t *testing.T) {
	by := func(s actions.State, who string) *actions.Request {
		return &actions.Request{ID: "R-000007", State: s, Decision: &actions.Decision{Action: "approved", By: who}}
	}
	for _, tt := range []struct {
		r    *actions.Request
		user string
		want string
	}{
		{by(actions.Succeeded, "UCATCH"), "UOTHER", "R-000007 was already approved by <@UCATCH> and has finished; nothing changed."},
		{by(actions.Running, "UCATCH"), "UCATCH", "R-000007 was already approved by you and is running; nothing changed."},
		{by(actions.Failed, "UCATCH"), "UOTHER", "R-000007 was already approved by <@UCATCH> and has failed; nothing changed."},
		{&actions.Request{ID: "R-000007", State: actions.Denied, Decision: &actions.Decision{Action: "denied", By: "UCATCH"}}, "UOTHER", "R-000007 was already denied by <@UCATCH>; nothing changed."},
		{&actions.Request{ID: "R-000007", State: actions.Expired, Decision: &actions.Decision{Action: "expired"}}, "UOTHER", "R-000007 has already expired (nobody decided in time); nothing changed."},
		{&actions.Request{ID: "R-000007", State: actions.Cancelled, Decision: &actions.Decision{Action: "cancelled", By: "UDEV"}}, "UCATCH", "R-000007 was already cancelled by <@UDEV>; nothing changed."},
	} {
		if got := alreadyText(tt.r, tt.user); got != tt.want {
			t.Errorf("got  %q\nwant %q", got, tt.want)
		}
	}
}
