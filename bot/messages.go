package bot

import (
	"fmt"
	"strings"
	"time"

	"github.com/osio/osio-bot/actions"
)

// Every text the bot posts in Slack, in one place, so that they can be
// read and reviewed together: short, exact and kind. Each says what
// happened, to what (request id, table, user) and what to do next.
// Style: a sentence with a capital and a full stop; an emoji first only
// where it carries the outcome (✅ done, ❌ failed, ⛔ refused, ⚠️ look
// at this); ids in bold, AWS names in code; times in UTC.
//
// User text that goes into a message is escaped (mrkdwn.Code/Escape) by
// the caller; these functions only put sentences around it.

// ---- the thread's status message (see statusPrefix) ----

// statusFinished is an ended request's status message: its outcome and
// when, in the past tense, above the last steps.
func statusFinished(s actions.State, at time.Time) string {
	return fmt.Sprintf("%s%s at %s UTC; the last steps follow.", outcomeIcon(s), stateWord(s), at.UTC().Format("15:04:05"))
}

// outcomeIcon is the icon of an ended request's outcome.
func outcomeIcon(s actions.State) string {
	switch s {
	case actions.Succeeded:
		return ":white_check_mark: "
	case actions.Failed:
		return ":x: "
	}
	return ":no_entry_sign: "
}

// stateWord is a state as the first word of a sentence.
func stateWord(s actions.State) string {
	w := string(s)
	if w == "" {
		return w
	}
	return strings.ToUpper(w[:1]) + w[1:]
}
