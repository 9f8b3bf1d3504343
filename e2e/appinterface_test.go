package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/osio/osio-bot/app"
	"github.com/osio/osio-bot/config"
	"github.com/osio/osio-bot/demo"
	gitlabserver "github.com/osio/osio-bot/testservers/gitlab"
	"github.com/osio/osio-bot/testservers/qontract"
	"github.com/osio/osio-bot/testservers/testenv"
)

const (
	userPath    = demo.UserPath
	devRole     = demo.DevRole
	accountPath = demo.AccountPath
	accountFile = demo.AccountFile
)

// userFile is the app-interface user file of dana, with key.
func userFile(key string) string { return demo.UserFile(key) }

// aiWorld is a reset world with app-interface: GraphQL data, the files in
// GitLab, and dana in osio-dev's IAM with no access keys.
func aiWorld(t *testing.T, o testenv.Options) (*world, person) {
	t.Helper()
	o.AppInterface = true
	dana := newPerson(t, "dana", "")
	w := resetWorld(t, []person{dana}, o)
	demo.SeedAppInterface(w.Qontract, w.GitLab, dana.PublicGPGKey)
	return w, dana
}

// reconciler plays app-interface's terraform-users and reset integration:
// on each merge it makes IAM match the files on master.
func reconciler(t *testing.T, w *world, deleteUser bool) {
	c := iam.NewFromConfig(w.Dev)
	w.GitLab.OnMerge(func(gitlabserver.MR) {
		if err := demo.Reconcile(w.ctx, c, w.GitLab, deleteUser); err != nil {
			t.Errorf("reconciler: %v", err)
		}
	})
}

func (w *world) waitMRs(n int) []gitlabserver.MR {
	w.t.Helper()
	if err := w.Slack.WaitFor(w.ctx, func() bool { return len(w.GitLab.MRs()) >= n }); err != nil {
		w.t.Fatalf("never saw %d MRs: %v", n, err)
	}
	return w.GitLab.MRs()
}

func (w *world) merge(iid int64) {
	w.t.Helper()
	if err := w.GitLab.Merge(iid); err != nil {
		w.t.Fatal(err)
	}
}

// lineDiff returns the lines only in a and the lines only in b.
func lineDiff(a, b string) (onlyA, onlyB []string) {
	count := map[string]int{}
	for _, l := range strings.Split(a, "\n") {
		count[l]++
	}
	for _, l := range strings.Split(b, "\n") {
		count[l]--
	}
	for l, n := range count {
		for ; n > 0; n-- {
			onlyA = append(onlyA, l)
		}
		for ; n < 0; n++ {
			onlyB = append(onlyB, l)
		}
	}
	return
}

// Issue 5, acceptance 1: the recreate flow end to end.
func TestResetRecreateViaAppInterface(t *testing.T) {
	w, _ := aiWorld(t, testenv.Options{})
	reconciler(t, w, true)
	w.start(app.Options{})
	ack, id := w.resetRequest(testenv.Requester, "dana")
	if id == "" {
		t.Fatalf("refused: %s", ack)
	}
	card := cardState(t, w, id)
	for _, want := range []string{"Reset in place (user has resources)", "Recreate via app-interface (no resources)", "app-interface resetPasswords (recommended)",
		"managed by app-interface (`" + userPath + "`", devRole, "Access keys:* 0"} {
		if !strings.Contains(card, want) {
			t.Errorf("card lacks %q:\n%s", want, card)
		}
	}
	original, _ := w.GitLab.File("master", "data"+userPath)
	w.clickValue(testenv.Approver, "approve", id+"/recreate", id)
	mrs := w.waitMRs(1)
	old, nw, err := w.GitLab.Diff(mrs[0].IID)
	if err != nil {
		t.Fatal(err)
	}
	gone, added := lineDiff(string(old["data"+userPath]), string(nw["data"+userPath]))
	if len(added) != 0 || len(gone) != 1 || gone[0] != "- $ref: "+devRole {
		t.Errorf("MR 1 diff: removed %q, added %q; want exactly the %s line removed", gone, added, devRole)
	}
	if !strings.HasPrefix(mrs[0].Title, "[osio-bot] ") || !strings.Contains(mrs[0].Description, "http://slack.local/archives/") || !mrs[0].RemoveSourceBranch || !contains(mrs[0].Labels, "bot/automerge") {
		t.Errorf("MR 1 conventions: %+v", mrs[0])
	}
	w.merge(mrs[0].IID)
	mrs = w.waitMRs(2)
	old, nw, err = w.GitLab.Diff(mrs[1].IID)
	if err != nil {
		t.Fatal(err)
	}
	gone, added = lineDiff(string(old["data"+userPath]), string(nw["data"+userPath]))
	if len(gone) != 0 || len(added) != 1 || added[0] != "- $ref: "+devRole {
		t.Errorf("MR 2 diff: removed %q, added %q; want exactly the %s line restored", gone, added, devRole)
	}
	w.merge(mrs[1].IID)
	w.waitThread(id, "was recreated in osio-dev")
	if final, _ := w.GitLab.File("master", "data"+userPath); string(final) != string(original) {
		t.Errorf("user file after both MRs differs from the original:\n%s", final)
	}
	th := w.ThreadText(id)
	for _, want := range []string{mrs[0].WebURL, mrs[1].WebURL, "is gone from osio-dev", "app-interface sends the invitation mail"} {
		if !strings.Contains(th, want) {
			t.Errorf("thread lacks %q:\n%s", want, th)
		}
	}
	if n := len(w.SMTP.Messages()); n != 0 {
		t.Errorf("the bot mailed %d messages; app-interface mails the invitation", n)
	}
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// Issue 5, acceptance 2: the resetPasswords flow, the appended entry
// checked byte for byte.
func TestResetPasswordsViaAppInterface(t *testing.T) {
	w, _ := aiWorld(t, testenv.Options{})
	reconciler(t, w, true)
	w.start(app.Options{})
	_, id := w.resetRequest(testenv.Requester, "dana --method resetpasswords")
	if id == "" {
		t.Fatal("refused")
	}
	w.clickValue(testenv.Approver, "approve", id+"/resetpasswords", id)
	mrs := w.waitMRs(1)
	_, nw, err := w.GitLab.Diff(mrs[0].IID)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(accountFile, "  requestId: APPSRE-999\n",
		"  requestId: APPSRE-999\n- user: {$ref: "+userPath+"}\n  requestId: "+id+"\n", 1)
	if got := string(nw["data"+accountPath]); got != want {
		t.Errorf("account file after the MR:\n%s\nwant:\n%s", got, want)
	}
	w.merge(mrs[0].IID)
	w.waitThread(id, "was reset by app-interface (login profile recreated at")
	if n := len(w.GitLab.MRs()); n != 1 {
		t.Errorf("%d MRs, want 1", n)
	}
}

// Issue 5, acceptance 3: MR 1 closed unmerged fails the job; MR 2 never
// opens.
func TestRecreateMRClosed(t *testing.T) {
	w, _ := aiWorld(t, testenv.Options{})
	reconciler(t, w, true)
	w.start(app.Options{})
	_, id := w.resetRequest(testenv.Requester, "dana --method recreate")
	w.clickValue(testenv.Approver, "approve", id+"/recreate", id)
	mrs := w.waitMRs(1)
	if err := w.GitLab.CloseMR(mrs[0].IID); err != nil {
		t.Fatal(err)
	}
	w.waitThread(id, "* failed: ")
	if th := w.ThreadText(id); !strings.Contains(th, fmt.Sprintf("MR 1 <%s|!%d> was closed without being merged", mrs[0].WebURL, mrs[0].IID)) {
		t.Errorf("thread:\n%s", th)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(w.GitLab.MRs()); n != 1 {
		t.Errorf("%d MRs, want only MR 1", n)
	}
}

// Issue 5, acceptance 4: the user never disappears; the wait times out
// naming the MR and what was expected.
func TestRecreateUserNeverDisappears(t *testing.T) {
	w, _ := aiWorld(t, testenv.Options{Tweak: func(c *config.Config) { c.AppInterface.IAMTimeout = config.Duration(time.Second) }})
	reconciler(t, w, false) // the reconciler does not run
	w.start(app.Options{})
	_, id := w.resetRequest(testenv.Requester, "dana --method recreate")
	w.clickValue(testenv.Approver, "approve", id+"/recreate", id)
	mrs := w.waitMRs(1)
	w.merge(mrs[0].IID)
	w.waitThread(id, "* failed: ")
	th := w.ThreadText(id)
	for _, want := range []string{"`dana` was not deleted in osio-dev within 1s after <" + mrs[0].WebURL, "it still exists", "expected app-interface's reconciler"} {
		if !strings.Contains(th, want) {
			t.Errorf("thread lacks %q:\n%s", want, th)
		}
	}
	if n := len(w.GitLab.MRs()); n != 1 {
		t.Errorf("%d MRs, want 1", n)
	}
}

// Issue 5, acceptance 5: SIGKILL after MR 1 is opened and after MR 2;
// no duplicate MR and the flow completes.
func TestRecreateKilledAfterEachMR(t *testing.T) {
	w, _ := aiWorld(t, testenv.Options{})
	reconciler(t, w, true)
	bin := buildBot(t)
	p := startProc(t, w, bin, 1)
	_, id := w.resetRequest(testenv.Requester, "dana --method recreate")
	w.clickValue(testenv.Approver, "approve", id+"/recreate", id)
	for i := 1; i <= 2; i++ {
		w.waitThread(id, fmt.Sprintf("MR %d opened", i))
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = p.cmd.Wait()
		p = startProc(t, w, bin, i+1)
		time.Sleep(500 * time.Millisecond) // the restarted job polls the open MR
		mrs := w.GitLab.MRs()
		if len(mrs) != i {
			t.Fatalf("after restart %d: %d MRs, want %d", i, len(mrs), i)
		}
		w.merge(mrs[i-1].IID)
	}
	w.waitThread(id, "was recreated in osio-dev")
	if n := len(w.GitLab.MRs()); n != 2 {
		t.Errorf("%d MRs, want 2", n)
	}
	th := w.ThreadText(id)
	for i := 1; i <= 2; i++ {
		if n := strings.Count(th, fmt.Sprintf("MR %d opened", i)); n != 1 {
			t.Errorf("'MR %d opened' said %d times", i, n)
		}
	}
}

// Issue 5, acceptance 6: a user with no role granting the account, or
// unknown to app-interface, is refused before approval.
func TestAppInterfaceRefusals(t *testing.T) {
	w, _ := aiWorld(t, testenv.Options{People: []testenv.Person{}})
	eve := newPerson(t, "eve", "")
	frank := newPerson(t, "frank", "")
	// eve is in app-interface without a dev role; frank is not there at all.
	w.Qontract.AddUser(qontract.User{Path: "/teams/osio/users/eve.yml", OrgUsername: "eve", PublicGPGKey: eve.PublicGPGKey,
		Roles: []string{"/teams/osio/roles/osio-prod-readonly.yml"}})
	c := iam.NewFromConfig(w.Dev)
	for _, u := range []string{"eve", "frank"} {
		if _, err := c.CreateUser(w.ctx, &iam.CreateUserInput{UserName: aws.String(u)}); err != nil {
			t.Fatal(err)
		}
	}
	w.rewritePeople(t, eve, frank)
	w.start(app.Options{})
	for _, c := range []struct{ text, want string }{
		{"eve --method recreate", "no role of `eve` in app-interface grants account osio-dev"},
		{"eve --method resetpasswords", "no role of `eve` in app-interface grants account osio-dev"},
		{"frank --method recreate", "app-interface does not know `frank`"},
	} {
		ack, id := w.resetRequest(testenv.Requester, c.text)
		if id != "" || !strings.Contains(ack, c.want) {
			t.Errorf("%s: id %q reply %q, want a refusal with %q", c.text, id, ack, c.want)
		}
	}
	if n := len(w.GitLab.MRs()) + len(w.Slack.Messages(testenv.Channel)); n != 0 {
		t.Errorf("refusals left %d MRs or cards", n)
	}
}
