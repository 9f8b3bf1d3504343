package actions_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/osio/osio-bot/actions"
)

// Issue 12 part 4, item 6: a failed request's last reply is a sentence
// that says what failed, on what, and what to do next, with the technical
// detail after it in a code span, clipped (no raw "Request failed: <Go
// error chain>"); the card's summary (Request.Failure) is that sentence.
func TestFailureReadsAsASentence(t *testing.T) {
	chain := fmt.Errorf("verifying s3://b/p/ from account osio-dev: %w", errors.New("operation error S3: ListObjectsV2, `AccessDenied`\n"+strings.Repeat("x", 600)))
	for _, tc := range []struct {
		name, what string
		err        error
		want       string // the reply up to " Detail: "
		detail     bool
		summary    string
	}{
		{"plain error", "export of `prod_txlog` by AWS Data Pipeline (runbook)", chain,
			":x: *%s* failed: the export of `prod_txlog` by AWS Data Pipeline (runbook) did not complete. Nothing more runs. Ask again once the cause is fixed; the bot's on-call can help.",
			true, "the export of `prod_txlog` by AWS Data Pipeline (runbook) did not complete"},
		{"worded failure, retryable", "console password reset of `dana` in osio-dev",
			&actions.Retryable{Label: "Resend", Err: &actions.Failure{Text: "the password of `dana` is set, but the mail to d***@example.com failed; the encrypted copy is kept", Err: errors.New("550 5.1.1 Mailbox unavailable")}},
			":x: *%s* failed: the password of `dana` is set, but the mail to d***@example.com failed; the encrypted copy is kept. An approver can press Resend on its card to try again.",
			true, "the password of `dana` is set, but the mail to d***@example.com failed; the encrypted copy is kept"},
		{"worded failure with its own next step", "", &actions.Failure{Text: "MR 1 was closed without being merged", Next: "Reopen and merge it, or ask again."},
			":x: *%s* failed: MR 1 was closed without being merged. Reopen and merge it, or ask again.", false, "MR 1 was closed without being merged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, filepath.Join(t.TempDir(), "s.db"))
			r := actions.NewRunner(s, nopNotifier{}, map[string]actions.Job{
				"test": jobFunc(func(context.Context, *actions.JobContext) error { return tc.err }),
			}, zaptest.NewLogger(t))
			ctx, cancel := context.WithCancel(t.Context())
			defer func() { cancel(); r.Wait() }()
			if err := r.Start(ctx); err != nil {
				t.Fatal(err)
			}
			res, err := s.Create(&actions.Request{Kind: "test", State: actions.Approved, What: tc.what}, "")
			if err != nil {
				t.Fatal(err)
			}
			id := res.Request.ID
			r.Run(id)
			waitState(t, s, id, actions.Failed, 10*time.Second)
			evs, err := s.Events(id)
			if err != nil {
				t.Fatal(err)
			}
			last := ""
			for _, e := range evs {
				if e.Kind == actions.Message {
					last = e.Text
				}
			}
			want := fmt.Sprintf(tc.want, id)
			head, detail, hasDetail := strings.Cut(last, " Detail: ")
			if head != want {
				t.Errorf("the failure reads\n%q\nwant\n%q", head, want)
			}
			if hasDetail != tc.detail {
				t.Errorf("detail shown: %t, want %t (%q)", hasDetail, tc.detail, last)
			}
			if hasDetail {
				if !strings.HasPrefix(detail, "`") || !strings.HasSuffix(detail, "`") || (len(tc.err.Error()) > 400 && !strings.HasSuffix(detail, "…`")) || strings.Count(detail, "`") != 2 || strings.Contains(detail, "\n") {
					t.Errorf("the detail is not one clipped code span: %q", detail)
				}
				if n := len([]rune(detail)); n > 402 {
					t.Errorf("the detail has %d characters; want it clipped to 400", n)
				}
			}
			q, _ := s.Get(id)
			if q.Failure != tc.summary {
				t.Errorf("Failure = %q, want %q", q.Failure, tc.summary)
			}
			if q.Error != tc.err.Error() {
				t.Errorf("Error = %q, want the technical detail %q", q.Error, tc.err.Error())
			}
		})
	}
}
