package e2e

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/osio/osio-bot/app"
	"github.com/osio/osio-bot/config"
	"github.com/osio/osio-bot/testservers/testenv"
)

// Issue 11, acceptance 3: `osio-bot audit export` of a store holding
// requests of two kinds in every end state gives one record each, with
// who, what, the decision and the events; no token, no SMTP password and
// no generated password is anywhere in the output, JSON lines or CSV.
func TestAuditExport(t *testing.T) {
	dana := newPerson(t, "dana", "")
	w := resetWorld(t, []person{dana}, testenv.Options{Tweak: func(c *config.Config) {
		c.Approval.Expiry = config.Duration(6 * time.Second)
	}})
	for _, name := range []string{"prod_ok", "prod_fail", "prod_deny", "prod_cancel", "prod_late"} {
		w.table(name, 2)
	}
	bin := buildBot(t)
	w.start(app.Options{})

	_, reset := w.resetRequest(testenv.Requester, "")
	w.clickValue(testenv.Approver, "approve", reset+"/inplace", reset)
	w.waitThread(reset, "Request finished")
	msgs := w.SMTP.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d mails", len(msgs))
	}
	password := decrypt(t, msgs[0].Data, dana.priv)

	_, ok := w.request(testenv.Requester, "prod_ok")
	w.click(testenv.Approver, "approve", ok)
	w.DP.FailNext("prod_fail", "EMR cluster terminated")
	_, failed := w.request(testenv.Requester, "prod_fail")
	w.click(testenv.Approver, "approve", failed)
	_, denied := w.request(testenv.Requester, "prod_deny")
	w.click(testenv.Approver, "deny", denied)
	_, cancelled := w.request(testenv.Requester, "prod_cancel")
	w.click(testenv.Requester, "cancel", cancelled)
	if refusal, _ := w.request(testenv.Requester, "no_such_table"); !strings.Contains(refusal, "no_such_table") {
		t.Fatalf("refusal: %q", refusal)
	}
	_, late := w.request(testenv.Requester, "prod_late")
	w.waitThread(ok, "Request finished")
	w.waitThread(failed, "* failed: ")
	w.waitThread(late, "expired")
	w.stop() // the bbolt file is the bot's while it runs

	export := func(format string) []byte {
		t.Helper()
		cmd := exec.Command(bin, "audit", "export", "--config", w.ConfigPath, "--format", format, "--since", "2000-01-01")
		cmd.Env = w.Environ()
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("audit export --format %s: %v\n%s", format, err, errb.String())
		}
		return out.Bytes()
	}
	jsonl, csvOut := export("jsonl"), export("csv")

	type rec struct {
		ID, Kind, State, Requester, Decision, Error string
		DecidedBy                                   string `json:"decided_by"`
		Command, Permalink                          string
		Events                                      []struct{ Text string }
	}
	var recs []rec
	sc := bufio.NewScanner(bytes.NewReader(jsonl))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r rec
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	var got []string
	byID := map[string]rec{}
	for _, r := range recs {
		got = append(got, r.Kind+":"+r.State)
		byID[r.ID] = r
	}
	sort.Strings(got)
	want := []string{"export:cancelled", "export:denied", "export:expired", "export:failed", "export:refused", "export:succeeded", "reset-password:succeeded"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("records %v, want one each of %v", got, want)
	}
	if r := byID[ok]; r.Decision != "approved" || r.DecidedBy != testenv.Approver || r.Requester != testenv.Requester ||
		r.Command != "/osio-export prod_ok" || !strings.HasPrefix(r.Permalink, "http://slack.local/") || len(r.Events) < 4 {
		t.Errorf("the succeeded export's record: %+v", r)
	}
	if r := byID[failed]; !strings.Contains(r.Error, "prod_fail") || !strings.Contains(strings.Join(texts(r.Events), "\n"), "EMR cluster terminated") {
		t.Errorf("the failed export's error %q and events %v", r.Error, r.Events)
	}
	if r := byID[denied]; r.Decision != "denied" || r.DecidedBy != testenv.Approver {
		t.Errorf("the denied export's record: %+v", r)
	}
	rows, err := csv.NewReader(bytes.NewReader(csvOut)).ReadAll()
	if err != nil {
		t.Fatalf("csv: %v", err)
	}
	if len(rows) != len(want)+1 || rows[0][0] != "id" {
		t.Errorf("csv has %d rows (want a header and %d)", len(rows), len(want))
	}
	for name, hay := range map[string][]byte{"jsonl": jsonl, "csv": csvOut} {
		for what, secret := range map[string]string{"the generated password": password, "the SMTP password": testenv.SMTPPassword,
			"the bot token": testenv.BotToken, "the app token": testenv.AppToken} {
			if bytes.Contains(hay, []byte(secret)) {
				t.Errorf("%s is in the %s export", what, name)
			}
		}
	}
	t.Logf("%d records, %d bytes of JSON lines, %d of CSV", len(recs), len(jsonl), len(csvOut))
}

func texts(evs []struct{ Text string }) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Text)
	}
	return out
}
