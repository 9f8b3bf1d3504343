package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/ProtonMail/gopenpgp/v2/crypto"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	gitlabserver "github.com/osio/osio-bot/testservers/gitlab"
	slackserver "github.com/osio/osio-bot/testservers/slack"
	"github.com/osio/osio-bot/testservers/testenv"
)

// Flow is one walk through the bot, as people do it: commands typed in
// Slack, buttons clicked, merge requests merged. It prints what the bot
// showed (the thread and the requester's ephemeral replies) and returns an
// error naming what did not happen.
type Flow struct {
	Name  string
	About string
	// Default flows are run when no flow is named.
	Default bool
	Run     func(w *World, ctx context.Context, out io.Writer) error
}

// Flows are the demo's flows in the order they run: the five of issue 12
// and, not run by default, the common mistakes and the bot's replies.
func Flows() []Flow {
	return []Flow{
		{"datapipeline", "/osio-export " + Table + ": the Data Pipeline export into the dev bucket, approved by the interrupt catcher", true, (*World).DataPipeline},
		{"native", "/osio-export --native " + NativeTable + ", then /osio-restore of that export into a new table in the dev account", true, (*World).Native},
		{"reset", "/osio-reset-password in place: the password is mailed encrypted, decrypted with the developer's key and checked against IAM", true, (*World).ResetInPlace},
		{"recreate", "/osio-reset-password by app-interface recreate: MR 1 removes the role, the user goes, MR 2 brings it back", true, (*World).Recreate},
		{"resetpasswords", "/osio-reset-password --method resetpasswords: one app-interface MR, the login profile is recreated", true, (*World).ResetPasswords},
		{"mistakes", "the common mistakes (missing words, unknown names, refused clicks) and the bot's replies", false, (*World).Mistakes},
	}
}

// FlowNamed finds a flow by name.
func FlowNamed(name string) (Flow, bool) {
	for _, f := range Flows() {
		if f.Name == name {
			return f, true
		}
	}
	return Flow{}, false
}

// RestoredTable is the dev table the native flow restores into.
const RestoredTable = "dev_accounts"

// DataPipeline types "/osio-export prod_txlog" as the developer, approves
// it as the interrupt catcher, waits for the follow-up and checks the
// export's folder in the dev bucket.
func (w *World) DataPipeline(ctx context.Context, out io.Writer) error {
	mark := w.mark(Developer)
	id, err := w.request(ctx, out, Developer, "/osio-export", Table)
	if err != nil {
		return err
	}
	if err := w.approve(ctx, out, Catcher, id, "", "Approve"); err != nil {
		return err
	}
	if err := w.finish(ctx, id, "Good luck!"); err != nil {
		return err
	}
	w.PrintThreadOf(out, id)
	w.printEphemerals(out, mark)
	keys, size, err := w.devObjects(ctx, "backups/"+Table+"/")
	if err != nil {
		return err
	}
	if !hasSuffix(keys, "/_SUCCESS") {
		return fmt.Errorf("%s: the dev bucket has no finished export under backups/%s/ (keys: %v)", id, Table, keys)
	}
	step(out, "check: s3://%s/backups/%s/ in osio-dev holds %d objects, %d bytes, with the _SUCCESS marker", testenv.Bucket, Table, len(keys), size)
	return nil
}

// Native exports prod_accounts with DynamoDB's native export, then
// restores that export into a new table in the dev account and checks the
// new table holds every item.
func (w *World) Native(ctx context.Context, out io.Writer) error {
	mark := w.mark(Developer)
	id, err := w.request(ctx, out, Developer, "/osio-export", "--native "+NativeTable)
	if err != nil {
		return err
	}
	if err := w.approve(ctx, out, Catcher, id, "", "Approve"); err != nil {
		return err
	}
	if err := w.finish(ctx, id, "Good luck!"); err != nil {
		return err
	}
	w.PrintThreadOf(out, id)
	rid, err := w.request(ctx, out, Developer, "/osio-restore", id+" "+NativeTable+" "+RestoredTable)
	if err != nil {
		return err
	}
	if err := w.approve(ctx, out, Catcher, rid, "", "Approve"); err != nil {
		return err
	}
	if err := w.finish(ctx, rid, "is ready in osio-dev"); err != nil {
		return err
	}
	w.PrintThreadOf(out, rid)
	w.printEphemerals(out, mark)
	src, err := testenv.Scan(ctx, dynamodb.NewFromConfig(w.Prod), NativeTable)
	if err != nil {
		return fmt.Errorf("reading %s in osio: %w", NativeTable, err)
	}
	dst, err := testenv.Scan(ctx, dynamodb.NewFromConfig(w.Dev), RestoredTable)
	if err != nil {
		return fmt.Errorf("%s: reading the restored table %s in osio-dev: %w", rid, RestoredTable, err)
	}
	if len(dst) != len(src) || len(dst) == 0 {
		return fmt.Errorf("%s: %s in osio-dev has %d items; %s in osio has %d", rid, RestoredTable, len(dst), NativeTable, len(src))
	}
	step(out, "check: %s in osio-dev (%s) has %d items, as %s in osio has", RestoredTable, testenv.DevAccount, len(dst), NativeTable)
	return nil
}

// ResetInPlace asks for the developer's own console password to be reset,
// the approver picks "in place" on the card; the mailed password is
// decrypted with the developer's key and "signed in" with: moto has no
// console sign-in, so the check is against the password moto's IAM holds
// for the user (moto_server's /moto-api/data.json, the state IAM would
// check a sign-in against), which is stricter than the UpdateLoginProfile
// body the bot sent.
func (w *World) ResetInPlace(ctx context.Context, out io.Writer) error {
	mark := w.mark(Developer)
	mails := len(w.SMTP.Messages())
	id, err := w.request(ctx, out, Developer, "/osio-reset-password", "")
	if err != nil {
		return err
	}
	if err := w.approve(ctx, out, Catcher, id, "inplace", "Reset in place"); err != nil {
		return err
	}
	if err := w.finish(ctx, id, "Done: the console password of `"+DevUser+"`"); err != nil {
		return err
	}
	w.PrintThreadOf(out, id)
	w.printEphemerals(out, mark)
	mctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	msgs, err := w.SMTP.WaitMessages(mctx, mails+1)
	if err != nil {
		return fmt.Errorf("%s: no mail reached %s@example.com: %w", id, DevUser, err)
	}
	m := msgs[mails]
	printMail(out, m.To, m.Data)
	pw, err := Decrypt(m.Data, w.Key)
	if err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	step(out, "%s decrypts the mail with their key: a %d-character password", DevUser, len(pw))
	held, err := w.IAMPassword(ctx, DevUser)
	if err != nil {
		return err
	}
	if held != pw {
		return fmt.Errorf("%s: signing in fails: IAM holds another password for %s than the one mailed", id, DevUser)
	}
	step(out, "check: signing in as %s with it works (IAM in osio-dev holds exactly that password)", DevUser)
	return nil
}

// Recreate asks for the reset and the approver picks app-interface's
// recreate: the bot opens MR 1 (the dev role removed), the SRE merges it,
// the reconciler deletes the user, the bot sees IAM drop it and opens MR 2
// (the role back), which is merged, and the user is back: a new IAM user
// with a console password.
func (w *World) Recreate(ctx context.Context, out io.Writer) error {
	before, _, err := w.iamUser(ctx, DevUser)
	if err != nil {
		return err
	}
	id, err := w.viaAppInterface(ctx, out, "", "recreate", "Recreate via app-interface", 2, "was recreated in osio-dev")
	if err != nil {
		return err
	}
	after, pw, err := w.iamUser(ctx, DevUser)
	if err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	if after == before || pw == "" {
		return fmt.Errorf("%s: %s in osio-dev is not a new user with a console password (user id %s, was %s)", id, DevUser, after, before)
	}
	step(out, "check: %s is a new IAM user in osio-dev, with a console password", DevUser)
	return nil
}

// ResetPasswords asks for the reset by app-interface's resetPasswords: one
// MR appends the user to the account file, the SRE merges it, and the
// reconciler recreates the login profile with a new password.
func (w *World) ResetPasswords(ctx context.Context, out io.Writer) error {
	_, old, err := w.iamUser(ctx, DevUser)
	if err != nil {
		return err
	}
	id, err := w.viaAppInterface(ctx, out, "--method resetpasswords", "resetpasswords", "app-interface resetPasswords", 1, "was reset by app-interface")
	if err != nil {
		return err
	}
	if _, pw, err := w.iamUser(ctx, DevUser); err != nil || pw == "" || pw == old {
		return fmt.Errorf("%s: %s has no new console password in osio-dev (%v)", id, DevUser, err)
	}
	step(out, "check: %s has a new console password in osio-dev", DevUser)
	return nil
}

// viaAppInterface types /osio-reset-password with text, the approver picks
// method, and the bot's merge requests (mrs of them) are merged one by
// one as they open; the thread must end saying done.
func (w *World) viaAppInterface(ctx context.Context, out io.Writer, text, method, label string, mrs int, done string) (string, error) {
	mark := w.mark(Developer)
	id, err := w.request(ctx, out, Developer, "/osio-reset-password", text)
	if err != nil {
		return "", err
	}
	before := len(w.GitLab.MRs())
	if err := w.approve(ctx, out, Catcher, id, method, label); err != nil {
		return "", err
	}
	for i := 1; i <= mrs; i++ {
		if err := w.mergeNext(ctx, out, id, before+i); err != nil {
			return "", err
		}
	}
	if err := w.finish(ctx, id, done); err != nil {
		return "", err
	}
	w.PrintThreadOf(out, id)
	w.printEphemerals(out, mark)
	if n := len(w.GitLab.MRs()) - before; n != mrs {
		return "", fmt.Errorf("%s: %d merge requests opened, want %d", id, n, mrs)
	}
	return id, nil
}

// Mistakes types the common mistakes and clicks where one should not, and
// prints each reply. It runs after the five flows (it clicks on the first
// request again).
func (w *World) Mistakes(ctx context.Context, out io.Writer) error {
	for _, c := range []struct{ user, cmd, text string }{
		{Developer, "/osio-export", ""},
		{Developer, "/osio-export", "prod_nosuchtable"},
		{Developer, "/osio-export", "help"},
		{Developer, "/osio-export", "--frobnicate " + Table},
		{Developer, "/osio-restore", "R-999999 " + NativeTable + " dev_copy"},
		{Developer, "/osio-restore", NativeTable},
		{Developer, "/osio-reset-password", "nobody"},
		{Stranger, "/osio-reset-password", ""},
	} {
		if _, _, err := w.slash(ctx, out, c.user, c.cmd, c.text); err != nil {
			return err
		}
	}

	// A pending request: refused clicks, then Deny, then a late Approve.
	id, err := w.request(ctx, out, Developer, "/osio-export", Table)
	if err != nil {
		return err
	}
	for _, c := range []struct {
		user, action string
		refused      bool
	}{
		{Stranger, "approve", true}, {Developer, "approve", true}, {Stranger, "cancel", true}, {Catcher, "deny", false},
	} {
		if err := w.clickTold(ctx, out, c.user, c.action, id, c.refused, ""); err != nil {
			return err
		}
	}
	if err := w.finish(ctx, id, ""); err != nil {
		return err
	}
	for _, c := range []struct{ user, action string }{{Catcher2, "approve"}, {Catcher, "deny"}} {
		if err := w.clickTold(ctx, out, c.user, c.action, id, true, "already"); err != nil {
			return err
		}
	}
	w.PrintThreadOf(out, id)

	// The requester cancels their own request.
	cid, err := w.request(ctx, out, Developer, "/osio-export", Table)
	if err != nil {
		return err
	}
	if err := w.clickTold(ctx, out, Developer, "cancel", cid, false, ""); err != nil {
		return err
	}
	if err := w.finish(ctx, cid, ""); err != nil {
		return err
	}
	w.PrintThreadOf(out, cid)

	// An export whose pipeline run fails: the failure in the thread and on
	// the card.
	w.DP.FailNext(Table, "EMR cluster terminated: Bootstrap failure (NO_SLAVE_LEFT)")
	fid, err := w.request(ctx, out, Developer, "/osio-export", Table)
	if err != nil {
		return err
	}
	if err := w.approve(ctx, out, Catcher, fid, "", "Approve"); err != nil {
		return err
	}
	if err := w.finish(ctx, fid, ""); err != nil {
		return err
	}
	w.PrintThreadOf(out, fid)

	// A reset whose mail is refused: it fails with Resend; a stranger's
	// Resend is refused, the interrupt catcher's mails the password.
	w.SMTP.FailNext(1, 550, "5.1.1 Mailbox unavailable")
	rid, err := w.request(ctx, out, Developer, "/osio-reset-password", "")
	if err != nil {
		return err
	}
	if err := w.approve(ctx, out, Catcher, rid, "inplace", "Reset in place"); err != nil {
		return err
	}
	if err := w.finish(ctx, rid, ""); err != nil {
		return err
	}
	if err := w.clickTold(ctx, out, Stranger, "retry", rid, true, ""); err != nil {
		return err
	}
	if err := w.clickTold(ctx, out, Catcher, "retry", rid, false, ""); err != nil {
		return err
	}
	if err := w.finish(ctx, rid, "Done: the console password of `"+DevUser+"`"); err != nil {
		return err
	}
	w.PrintThreadOf(out, rid)

	// A second Approve on a request that has finished (the first flow's).
	first := "R-000001"
	if w.hasCard(first) {
		for _, u := range []string{Catcher, Catcher2} {
			if err := w.clickTold(ctx, out, u, "approve", first, true, "already"); err != nil {
				return err
			}
		}
	}

	// Asking where things stand: a request waiting for a decision, the
	// pending list as its requester and as an approver, the status of
	// one request and of recent ones.
	pid, err := w.request(ctx, out, Developer, "/osio-export", NativeTable)
	if err != nil {
		return err
	}
	// The lists link to its card: the card's first reply is posted after
	// the card's link is stored.
	if err := w.WaitThread(ctx, pid, "Requested by"); err != nil {
		return err
	}
	for _, c := range []struct{ user, cmd, text string }{
		{Developer, "/osio-pending", ""},
		{Catcher, "/osio-pending", ""},
		{Stranger, "/osio-pending", ""},
		{Developer, "/osio-export", "status " + first},
		{Developer, "/osio-export", "status"},
		{Developer, "/osio-reset-password", "status"},
	} {
		if _, _, err := w.slash(ctx, out, c.user, c.cmd, c.text); err != nil {
			return err
		}
	}
	return nil
}

// hasCard says request id has an approval card now.
func (w *World) hasCard(id string) bool {
	for _, m := range w.Slack.Messages(testenv.Channel) {
		if bytes.Contains(m.Blocks, []byte(id)) {
			return true
		}
	}
	return false
}

// step prints one thing that happens.
func step(out io.Writer, format string, args ...any) {
	fmt.Fprintf(out, "==> "+format+"\n", args...)
}

var people = map[string]string{
	Developer: "the developer",
	Catcher:   "the interrupt catcher",
	Catcher2:  "the other interrupt catcher",
	Stranger:  "a stranger, not an approver",
}

// who names a Slack user for the transcript.
func who(user string) string { return fmt.Sprintf("<@%s> (%s)", user, people[user]) }

// slash types a command and prints it and the reply.
func (w *World) slash(ctx context.Context, out io.Writer, user, cmd, text string) (string, string, error) {
	typed := strings.TrimSpace(cmd + " " + text)
	step(out, "%s types: %s", who(user), typed)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ack, id, err := w.Slash(cctx, user, cmd, text)
	if err != nil {
		return "", "", fmt.Errorf("%s: no reply: %w", typed, err)
	}
	fmt.Fprintf(out, "    only %s sees: %s\n", user, indent(ack, "    "))
	return ack, id, nil
}

// request types a command that must create a request and waits for its
// card.
func (w *World) request(ctx context.Context, out io.Writer, user, cmd, text string) (string, error) {
	ack, id, err := w.slash(ctx, out, user, cmd, text)
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", fmt.Errorf("%s %s: no request was created; the bot said: %s", cmd, text, ack)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := w.Card(cctx, id); err != nil {
		return "", fmt.Errorf("%s: no approval card in #osio-approvals: %w", id, err)
	}
	return id, nil
}

// approve clicks an Approve button of id's card as user, through its
// confirm dialog; method picks the button whose value is id/method (empty:
// the only one), label names it in the transcript.
func (w *World) approve(ctx context.Context, out io.Writer, user, id, method, label string) error {
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	value := id
	if method != "" {
		value += "/" + method
	}
	if err := w.Slack.WaitFor(cctx, func() bool {
		card, _ := w.Card(cctx, id)
		return bytes.Contains(card.Blocks, []byte(`"value":"`+value+`"`))
	}); err != nil {
		return fmt.Errorf("%s: the card has no %q button: %w", id, label, err)
	}
	card, err := w.Card(cctx, id)
	if err != nil {
		return err
	}
	step(out, "%s clicks %q on %s and confirms; the card's buttons were:", who(user), label, id)
	printButtons(out, card.Blocks)
	if _, err := w.Slack.ClickButton(cctx, slackserver.Click{UserID: user, ChannelID: testenv.Channel, MessageTS: card.TS,
		ActionID: "approve", BlockID: "decide", Value: value}); err != nil {
		return fmt.Errorf("%s: clicking %s: %w", id, label, err)
	}
	return nil
}

// clickTold clicks action on id as user and prints what the user is told
// only for them. A refused click must be answered (with a text containing
// want); an effective one (refused false) may be answered in the thread
// only, so it waits for the bot to fall quiet instead.
func (w *World) clickTold(ctx context.Context, out io.Writer, user, action, id string, refused bool, want string) error {
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	n := len(w.Slack.Ephemerals(user))
	step(out, "%s clicks %s on %s", who(user), strings.ToUpper(action[:1])+action[1:], id)
	if _, err := w.Click(cctx, user, action, id); err != nil {
		return fmt.Errorf("%s: clicking %s as %s: %w", id, action, user, err)
	}
	told := func() []string {
		var t []string
		es := w.Slack.Ephemerals(user)
		for _, e := range es[min(n, len(es)):] {
			if replacesReceipt(e) {
				t = append(t, "(their receipt now reads) "+e.Text)
			} else {
				t = append(t, e.Text)
			}
		}
		return t
	}
	if refused {
		if err := w.Slack.WaitFor(cctx, func() bool {
			t := told()
			return len(t) > 0 && strings.Contains(strings.Join(t, "\n"), want)
		}); err != nil {
			return fmt.Errorf("%s: %s clicked %s and was never told %q (told %q)", id, user, action, want, told())
		}
	} else if err := w.settle(cctx); err != nil {
		return err
	}
	t := told()
	if len(t) == 0 {
		fmt.Fprintf(out, "    (nothing only for %s)\n", user)
	}
	for _, s := range t {
		fmt.Fprintf(out, "    only %s sees: %s\n", user, indent(s, "    "))
	}
	return nil
}

// finish waits until id's thread says substr (when given) and the request
// has ended, and its card's last edit has landed.
func (w *World) finish(ctx context.Context, id, substr string) error {
	cctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if substr != "" {
		if err := w.WaitThread(cctx, id, substr); err != nil {
			return err
		}
	}
	// A job's end is also said in the thread ("Request finished."); a
	// decision (denied, cancelled) only on the card and in its reply.
	ended := regexp.MustCompile(`: (succeeded|failed|denied|cancelled|canceled|expired|refused)$`)
	ran := regexp.MustCompile(`: (succeeded|failed)$`)
	if err := w.Slack.WaitFor(cctx, func() bool {
		card, _ := w.Card(cctx, id)
		if ran.MatchString(card.Text) {
			th := w.ThreadText(id)
			return strings.Contains(th, "Request finished") || strings.Contains(th, "* failed: ")
		}
		return ended.MatchString(card.Text)
	}); err != nil {
		card, _ := w.Card(cctx, id)
		return fmt.Errorf("%s never ended (card: %q); its thread says:\n%s", id, card.Text, w.ThreadText(id))
	}
	// The status message and the requester's receipt are edited last.
	return w.settle(cctx)
}

// settle waits until the Slack server has seen no call for a while.
func (w *World) settle(ctx context.Context) error {
	const quiet = 300 * time.Millisecond
	for {
		last := w.lastCall()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(quiet):
		}
		if w.lastCall() == last {
			return nil
		}
	}
}

func (w *World) lastCall() int {
	n := 0
	for _, m := range []string{"chat.postMessage", "chat.update", "chat.postEphemeral", "response_url"} {
		n += w.Slack.Calls(m)
	}
	return n
}

// mergeNext waits for the n-th merge request, prints it and merges it as
// the SRE who reviews it.
func (w *World) mergeNext(ctx context.Context, out io.Writer, id string, n int) error {
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var mr gitlabserver.MR
	if err := w.Slack.WaitFor(cctx, func() bool {
		mrs := w.GitLab.MRs()
		if len(mrs) >= n {
			mr = mrs[n-1]
			return true
		}
		return false
	}); err != nil {
		return fmt.Errorf("%s: merge request %d never opened; the thread says:\n%s", id, n, w.ThreadText(id))
	}
	step(out, "the bot opened MR !%d %q", mr.IID, mr.Title)
	if old, nw, err := w.GitLab.Diff(mr.IID); err == nil {
		for path, b := range nw {
			gone, added := lineDiff(string(old[path]), string(b))
			for _, l := range gone {
				fmt.Fprintf(out, "    %s: - %s\n", path, l)
			}
			for _, l := range added {
				fmt.Fprintf(out, "    %s: + %s\n", path, l)
			}
		}
	}
	step(out, "the SRE reviewing app-interface merges !%d; the reconciler runs", mr.IID)
	if err := w.GitLab.Merge(mr.IID); err != nil {
		return fmt.Errorf("%s: merging !%d: %w", id, mr.IID, err)
	}
	if errs := w.ReconcileErrors(); len(errs) > 0 {
		return fmt.Errorf("%s: after !%d the reconciler failed: %w", id, mr.IID, errors.Join(errs...))
	}
	return nil
}

// lineDiff returns the lines only in a and the lines only in b, in order.
func lineDiff(a, b string) (onlyA, onlyB []string) {
	count := map[string]int{}
	for _, l := range strings.Split(b, "\n") {
		count[l]++
	}
	for _, l := range strings.Split(a, "\n") {
		if count[l] > 0 {
			count[l]--
		} else {
			onlyA = append(onlyA, l)
		}
	}
	count = map[string]int{}
	for _, l := range strings.Split(a, "\n") {
		count[l]++
	}
	for _, l := range strings.Split(b, "\n") {
		if count[l] > 0 {
			count[l]--
		} else {
			onlyB = append(onlyB, l)
		}
	}
	return onlyA, onlyB
}

// devObjects lists the dev bucket under prefix.
func (w *World) devObjects(ctx context.Context, prefix string) ([]string, int64, error) {
	c := s3.NewFromConfig(w.Dev, func(o *s3.Options) { o.UsePathStyle = true })
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var keys []string
	var size int64
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(testenv.Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(cctx)
		if err != nil {
			return nil, 0, fmt.Errorf("listing s3://%s/%s in osio-dev: %w", testenv.Bucket, prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
			size += aws.ToInt64(o.Size)
		}
	}
	return keys, size, nil
}

func hasSuffix(keys []string, suffix string) bool {
	for _, k := range keys {
		if strings.HasSuffix(k, suffix) {
			return true
		}
	}
	return false
}

// IAMPassword is the console password moto's IAM holds for user in the dev
// account ("" when the user has none): what a console sign-in would be
// checked against. moto has no sign-in, so this reads moto_server's own
// state (/moto-api/data.json).
func (w *World) IAMPassword(ctx context.Context, user string) (string, error) {
	_, pw, err := w.iamUser(ctx, user)
	return pw, err
}

// iamUser is testenv's IAMUser: user's id in osio-dev and the password
// moto holds for it.
func (w *World) iamUser(ctx context.Context, user string) (id, password string, err error) {
	return w.IAMUser(ctx, user)
}

var armoredRe = regexp.MustCompile(`(?s)-----BEGIN PGP MESSAGE-----.*?-----END PGP MESSAGE-----`)

// Decrypt finds the armored message in a mail and decrypts it with key.
func Decrypt(mail []byte, key *crypto.Key) (string, error) {
	armored := armoredRe.Find(bytes.ReplaceAll(mail, []byte("\r\n"), []byte("\n")))
	if armored == nil {
		return "", errors.New("the mail holds no PGP message")
	}
	ring, err := crypto.NewKeyRing(key)
	if err != nil {
		return "", err
	}
	msg, err := crypto.NewPGPMessageFromArmored(string(armored))
	if err != nil {
		return "", fmt.Errorf("reading the mail's PGP message: %w", err)
	}
	plain, err := ring.Decrypt(msg, nil, 0)
	if err != nil {
		return "", fmt.Errorf("decrypting the mailed password: %w", err)
	}
	return plain.GetString(), nil
}

// printMail prints a mail's recipients, subject and body; the armored
// message is shown by its first line only.
func printMail(out io.Writer, to []string, data []byte) {
	text := strings.ReplaceAll(string(data), "\r\n", "\n")
	head, body, _ := strings.Cut(text, "\n\n")
	subject := ""
	for _, l := range strings.Split(head, "\n") {
		if s, ok := strings.CutPrefix(l, "Subject: "); ok {
			subject = s
		}
	}
	body = armoredRe.ReplaceAllString(body, "-----BEGIN PGP MESSAGE----- (the password, encrypted) -----END PGP MESSAGE-----")
	step(out, "mail to %s, subject %q:", strings.Join(to, ", "), subject)
	fmt.Fprintf(out, "    │ %s\n", strings.ReplaceAll(strings.TrimRight(body, "\n"), "\n", "\n    │ "))
}

// printButtons prints the buttons of a message and their confirm dialogs.
func printButtons(out io.Writer, blocks []byte) {
	for _, l := range RenderBlocks(blocks, "") {
		if strings.HasPrefix(l, "(buttons)") || strings.HasPrefix(l, "  [") {
			fmt.Fprintf(out, "    %s\n", l)
		}
	}
}

func indent(s, pad string) string { return strings.ReplaceAll(s, "\n", "\n"+pad) }
