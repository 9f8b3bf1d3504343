package passwordreset

import (
	"testing"

	"github.com/osio/osio-bot/actions/appinterface"
)

// Issue 12 part 4, items 3 and 4: the set-password line is a sentence
// (no "…: true."), and every MR line starts "MR", capitalized.
func TestJobTextsReadAsSentences(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{passwordSetText("dana", "osio-dev", "619539278362", false, true),
			"`dana` in osio-dev (619539278362): updated the console password (login profile); they must choose a new one at first sign-in."},
		{passwordSetText("dana", "osio-dev", "619539278362", true, false),
			"`dana` in osio-dev (619539278362): created a console password (login profile)."},
		{mergedText("MR", &appinterface.MR{IID: 3, WebURL: "http://gl/mr/3"}), "MR <http://gl/mr/3|!3> merged."},
	} {
		if c.got != c.want {
			t.Errorf("got  %q\nwant %q", c.got, c.want)
		}
	}
}
