package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ProtonMail/gopenpgp/v2/crypto"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"gopkg.in/yaml.v3"

	"github.com/osio/osio-bot/actions/reset"
	"github.com/osio/osio-bot/app"
	"github.com/osio/osio-bot/store"
	"github.com/osio/osio-bot/testservers/testenv"
)

// person is a directory entry with its private key, made by the test.
type person struct {
	testenv.Person
	priv *crypto.Key
}

func newPerson(t *testing.T, user, slack string) person {
	t.Helper()
	k, err := crypto.GenerateKey(user, user+"@example.com", "x25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := k.GetPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	// app-interface's form: base64 of the binary key.
	return person{Person: testenv.Person{OrgUsername: user, Email: user + "@example.com", Name: user, SlackUser: slack,
		PublicGPGKey: base64.StdEncoding.EncodeToString(pub)}, priv: k}
}

// entityKey makes keys in states gopenpgp will not generate.
func entityKey(t *testing.T, created time.Time, lifetime time.Duration, signOnly bool) string {
	t.Helper()
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: func() time.Time { return created }, KeyLifetimeSecs: uint32(lifetime / time.Second)}
	e, err := openpgp.NewEntity("Sam", "", "sam@example.com", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if signOnly {
		e.Subkeys = nil
	}
	var bin bytes.Buffer
	if err := e.Serialize(&bin); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(bin.Bytes())
}

const strictPolicyLength = 32

// resetWorld is a world with the reset command on, an IAM user per person
// in osio-dev, and a strict password policy there.
func resetWorld(t *testing.T, people []person, o testenv.Options) *world {
	t.Helper()
	for _, p := range people {
		o.People = append(o.People, p.Person)
	}
	w := newWorld(t, o)
	c := iam.NewFromConfig(w.Dev)
	if _, err := c.UpdateAccountPasswordPolicy(w.ctx, &iam.UpdateAccountPasswordPolicyInput{
		MinimumPasswordLength: aws.Int32(strictPolicyLength), RequireSymbols: true, RequireNumbers: true,
		RequireUppercaseCharacters: true, RequireLowercaseCharacters: true,
	}); err != nil {
		t.Fatal(err)
	}
	for _, p := range people {
		if _, err := c.CreateUser(w.ctx, &iam.CreateUserInput{UserName: aws.String(p.OrgUsername)}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateLoginProfile(w.ctx, &iam.CreateLoginProfileInput{UserName: aws.String(p.OrgUsername), Password: aws.String("Old-Password-1234567890-abcdefgh!")}); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

var armoredRe = regexp.MustCompile(`(?s)-----BEGIN PGP MESSAGE-----.*?-----END PGP MESSAGE-----`)

// decrypt finds the armored message in a mail and decrypts it.
func decrypt(t *testing.T, raw []byte, k *crypto.Key) string {
	t.Helper()
	armored := armoredRe.Find(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")))
	if armored == nil {
		t.Fatalf("no PGP message in the mail:\n%s", raw)
	}
	ring, err := crypto.NewKeyRing(k)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := crypto.NewPGPMessageFromArmored(string(armored))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := ring.Decrypt(msg, nil, 0)
	if err != nil {
		t.Fatalf("decrypting: %v", err)
	}
	return plain.GetString()
}

// gpgDecrypt decrypts with the GnuPG command-line tool, as users do.
func gpgDecrypt(t *testing.T, raw []byte, k *crypto.Key) string {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("gpg is not installed")
		}
		t.Skip("gpg is not installed")
	}
	home := t.TempDir()
	priv, err := k.Armor()
	if err != nil {
		t.Fatal(err)
	}
	imp := exec.Command("gpg", "--homedir", home, "--batch", "--import")
	imp.Stdin = strings.NewReader(priv)
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	f := filepath.Join(t.TempDir(), "password.asc")
	armored := armoredRe.Find(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")))
	if err := os.WriteFile(f, armored, 0o600); err != nil {
		t.Fatal(err)
	}
	dec := exec.Command("gpg", "--homedir", home, "--batch", "--quiet", "-d", f)
	var stderr bytes.Buffer
	dec.Stderr = &stderr
	out, err := dec.Output()
	if err != nil {
		t.Fatalf("gpg -d: %v\n%s", err, stderr.String())
	}
	return string(out)
}

// motoPassword is the console password moto holds for user: what IAM has
// set last.
func motoPassword(t *testing.T, w *world, user string) string {
	t.Helper()
	_, pw, err := w.IAMUser(w.ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	return pw
}

func strictPolicy() reset.Policy {
	return reset.Policy{MinLength: strictPolicyLength, RequireSymbols: true, RequireNumbers: true, RequireUppercase: true, RequireLowercase: true}
}

func (w *world) resetRequest(user, text string) (string, string) {
	w.t.Helper()
	ack, id, err := w.Slash(w.ctx, user, "/osio-reset-password", text)
	if err != nil {
		w.t.Fatal(err)
	}
	return ack, id
}

func (w *world) clickValue(user, action, value, id string) {
	w.t.Helper()
	card, err := w.Card(w.ctx, id)
	if err != nil {
		w.t.Fatal(err)
	}
	block := map[string]string{"approve": "decide", "deny": "decide", "retry": "retry"}[action]
	if _, err := w.Slack.ClickButton(w.ctx, slackClick(user, card.TS, action, block, value)); err != nil {
		w.t.Fatal(err)
	}
}

// Issue 4, acceptance 1, 2 and 6: the end-to-end in-place reset; the
// password decrypts (gopenpgp and gpg) to one meeting a strict policy and
// is the one IAM holds; it never appears in logs, the store, Slack or an
// error; clicks by the requester or a non-approver are refused.
func TestResetInPlace(t *testing.T) {
	dana := newPerson(t, "dana", "")
	w := resetWorld(t, []person{dana}, testenv.Options{})
	w.start(app.Options{})

	ack, id := w.resetRequest(testenv.Requester, "") // own user: dana@example.com -> dana
	if id == "" {
		t.Fatalf("refused: %s", ack)
	}
	card := cardState(t, w, id)
	for _, want := range []string{"osio-dev (619539278362)", "`dana` (exists; has a console password", "Password last used:* never", "Access keys:* 0", "d***@example.com", "Reset in place (user has resources)"} {
		if !strings.Contains(card, want) {
			t.Errorf("card lacks %q:\n%s", want, card)
		}
	}
	w.clickValue(testenv.Requester, "approve", id+"/inplace", id)
	if got := told(w, testenv.Requester, "you cannot approve it"); !strings.Contains(got, "you cannot approve it") {
		t.Errorf("requester told %q", got)
	}
	w.clickValue(testenv.Outsider, "approve", id+"/inplace", id)
	if got := told(w, testenv.Outsider, "Only members of"); !strings.Contains(got, "Only members of") {
		t.Errorf("outsider told %q", got)
	}
	if n := len(w.SMTP.Messages()); n != 0 {
		t.Fatalf("refused clicks sent %d mails", n)
	}
	w.clickValue(testenv.Approver, "approve", id+"/inplace", id)
	w.waitThread(id, "Done: the console password of `dana`")
	msgs := w.SMTP.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d mails, want 1", len(msgs))
	}
	m := msgs[0]
	if !m.TLS || m.AuthUser != testenv.SMTPUser || m.To[0] != "dana@example.com" {
		t.Errorf("mail TLS=%v auth=%q to=%v", m.TLS, m.AuthUser, m.To)
	}
	for _, want := range []string{"https://619539278362.signin.aws.amazon.com/console", "User name:   dana", "gpg -d password.asc", "http://slack.local/archives/"} {
		if !strings.Contains(string(m.Data), want) {
			t.Errorf("mail lacks %q", want)
		}
	}
	pw := decrypt(t, m.Data, dana.priv)
	if err := reset.Meets(strictPolicy(), []byte(pw)); err != nil || len(pw) < strictPolicyLength {
		t.Errorf("password (len %d) does not meet the strict policy: %v", len(pw), err)
	}
	if got := gpgDecrypt(t, m.Data, dana.priv); got != pw {
		t.Errorf("gpg decrypts to a different text")
	}
	if got := motoPassword(t, w, "dana"); got != pw {
		t.Errorf("IAM holds a different password than the mailed one")
	}
	w.waitThread(id, "Request finished")
	w.stop()

	// The plaintext is nowhere: logs, store, Slack, errors.
	var logs strings.Builder
	for _, e := range w.logs.All() {
		logs.WriteString(e.Message)
		b, _ := json.Marshal(e.ContextMap())
		logs.Write(b)
	}
	store, err := os.ReadFile(w.Config.Store.Path)
	if err != nil {
		t.Fatal(err)
	}
	for name, hay := range map[string][]byte{"logs": []byte(logs.String()), "store": store, "slack": []byte(w.Slack.AllText()), "mail body outside the ciphertext": armoredRe.ReplaceAll(m.Data, nil)} {
		if bytes.Contains(hay, []byte(pw)) {
			t.Errorf("the plaintext password appears in the %s", name)
		}
	}
	for _, secret := range []string{testenv.SMTPPassword, testenv.BotToken, testenv.AppToken} {
		if strings.Contains(logs.String(), secret) || bytes.Contains(store, []byte(secret)) || strings.Contains(w.Slack.AllText(), secret) {
			t.Errorf("a secret (%.6s…) leaked", secret)
		}
	}
	if !strings.Contains(logs.String(), "request decided") || !strings.Contains(logs.String(), "job succeeded") {
		t.Errorf("the captured logs miss the job's own lines; scanned:\n%s", logs.String())
	}
}

// Issue 4, acceptance 3: refusals before approval.
func TestResetRefusals(t *testing.T) {
	now := time.Now()
	ok := newPerson(t, "okuser", "")
	nokey := newPerson(t, "nokey", "")
	nokey.PublicGPGKey = ""
	expired := newPerson(t, "expired", "")
	expired.PublicGPGKey = entityKey(t, now.Add(-30*24*time.Hour), 10*24*time.Hour, false)
	signonly := newPerson(t, "signonly", "")
	signonly.PublicGPGKey = entityKey(t, now.Add(-time.Hour), 0, true)
	ghost := newPerson(t, "ghost", "")
	w := resetWorld(t, []person{ok, nokey, expired, signonly}, testenv.Options{People: []testenv.Person{ghost.Person}})
	w.start(app.Options{})
	cases := []struct{ name, text, want string }{
		{"unknown IAM user", "ghost", "There is no IAM user `ghost` in account osio-dev (619539278362)"},
		{"not in the directory", "nobody", "`nobody` is not in the people directory"},
		{"no key", "nokey", "`nokey` has no public GPG key"},
		{"expired key", "expired", "expired on " + now.Add(-20*24*time.Hour).UTC().Format("2006-01-02")},
		{"sign-only key", "signonly", "cannot encrypt"},
		{"bad account", "okuser --account prod", "`prod` is not an account I know"},
		{"bad option", "okuser --force", "Unknown option `--force`"},
		{"app-interface not configured", "okuser --method recreate", "app-interface is not configured"},
	}
	for _, c := range cases {
		ack, id := w.resetRequest(testenv.Requester, c.text)
		if id != "" {
			t.Errorf("%s: request %s created", c.name, id)
		}
		if !strings.Contains(ack, c.want) {
			t.Errorf("%s: reply %q lacks %q", c.name, ack, c.want)
		}
	}
	if n := len(w.Slack.Messages(testenv.Channel)); n != 0 {
		t.Errorf("%d approval messages posted", n)
	}
	if ack, id := w.resetRequest(testenv.Requester, "okuser"); id == "" {
		t.Errorf("a valid request was refused: %s", ack)
	}
}

// Issue 4, acceptance 5: a 4xx is retried and delivered; a 5xx ends the
// request with Resend, and Resend delivers the same ciphertext.
func TestResetMailFailures(t *testing.T) {
	dana := newPerson(t, "dana", "")
	erin := newPerson(t, "erin", "")
	w := resetWorld(t, []person{dana, erin}, testenv.Options{})
	w.start(app.Options{})

	w.SMTP.FailNext(2, 451, "4.3.0 Try again later")
	_, id := w.resetRequest(testenv.Requester, "dana")
	w.clickValue(testenv.Approver, "approve", id+"/inplace", id)
	w.waitThread(id, "Done:")
	if msgs := w.SMTP.Messages(); len(msgs) != 1 || decrypt(t, msgs[0].Data, dana.priv) != motoPassword(t, w, "dana") {
		t.Fatalf("after two 451s: %d mails delivered, want 1 with the set password", len(msgs))
	}

	w.SMTP.FailNext(1, 550, "5.1.1 Mailbox unavailable")
	_, id2 := w.resetRequest(testenv.Requester, "erin")
	w.clickValue(testenv.Approver, "approve", id2+"/inplace", id2)
	w.waitThread(id2, "* failed: ")
	if th := w.ThreadText(id2); !strings.Contains(th, "550") || !strings.Contains(th, "Resend") {
		t.Errorf("5xx thread:\n%s", th)
	}
	if err := w.Slack.WaitFor(w.ctx, func() bool { return strings.Contains(cardState(t, w, id2), `"retry"`) }); err != nil {
		t.Fatalf("no Resend button: %s", cardState(t, w, id2))
	}
	if n := len(w.SMTP.Messages()); n != 1 {
		t.Fatalf("%d mails after the 550", n)
	}
	// Only approvers may resend.
	w.clickValue(testenv.Outsider, "retry", id2, id2)
	if got := told(w, testenv.Outsider, "Only members of"); !strings.Contains(got, "Only members of") {
		t.Errorf("outsider resend told %q", got)
	}
	w.clickValue(testenv.Approver, "retry", id2, id2)
	w.waitThread(id2, "Done:")
	msgs := w.SMTP.Messages()
	if len(msgs) != 2 {
		t.Fatalf("%d mails after Resend, want 2", len(msgs))
	}
	if got := decrypt(t, msgs[1].Data, erin.priv); got != motoPassword(t, w, "erin") {
		t.Error("the resent mail does not hold the password IAM has")
	}
	// The resent ciphertext is the one stored before the 550, byte for byte.
	w.waitThread(id2, "Request finished")
	w.stop()
	st, err := store.Open(w.Config.Store.Path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var cp struct {
		Ciphertext string `json:"ciphertext"`
		Generation int    `json:"generation"`
	}
	if ok, err := st.LoadCheckpoint(id2, "inplace", &cp); !ok || err != nil {
		t.Fatalf("no checkpoint: %v", err)
	}
	mailed := string(armoredRe.Find(bytes.ReplaceAll(msgs[1].Data, []byte("\r\n"), []byte("\n"))))
	if cp.Generation != 1 || strings.TrimSpace(cp.Ciphertext) != mailed {
		t.Errorf("resend mailed another ciphertext (generation %d)", cp.Generation)
	}
}

// Issue 4, acceptance 4: SIGKILL at each of the three checkpoints, then a
// restart; the user ends with exactly one readable password, the one set
// last.
func TestResetKilledAtCheckpoints(t *testing.T) {
	bin := buildBot(t)
	for _, fp := range []string{"inplace.encrypted", "inplace.set", "inplace.mailed"} {
		t.Run(fp, func(t *testing.T) {
			dana := newPerson(t, "dana", "")
			w := resetWorld(t, []person{dana}, testenv.Options{})
			w.Vars["OSIO_BOT_FAILPOINT"] = fp
			p1 := startProc(t, w, bin, 1)
			_, id := w.resetRequest(testenv.Requester, "dana")
			w.clickValue(testenv.Approver, "approve", id+"/inplace", id)
			if err := w.Slack.WaitFor(w.ctx, func() bool {
				b, _ := os.ReadFile(p1.log)
				return strings.Contains(string(b), "failpoint reached")
			}); err != nil {
				t.Fatal(err)
			}
			if err := p1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = p1.cmd.Wait()
			delete(w.Vars, "OSIO_BOT_FAILPOINT")
			startProc(t, w, bin, 2)
			w.waitThread(id, "Request finished")
			time.Sleep(300 * time.Millisecond)
			msgs := w.SMTP.Messages()
			if len(msgs) != 1 {
				t.Fatalf("%d mails, want exactly 1", len(msgs))
			}
			if got := decrypt(t, msgs[0].Data, dana.priv); got != motoPassword(t, w, "dana") {
				t.Error("the mailed password is not the one IAM holds")
			}
			th := w.ThreadText(id)
			if fp == "inplace.encrypted" && !strings.Contains(th, "discarded") {
				t.Errorf("thread does not say the unconfirmed password was discarded:\n%s", th)
			}
		})
	}
}

// rewritePeople adds people to the directory file before the bot starts.
func (w *world) rewritePeople(t *testing.T, extra ...person) {
	t.Helper()
	data, err := os.ReadFile(w.Config.Directory.File)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		People []testenv.Person `yaml:"people"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range extra {
		doc.People = append(doc.People, p.Person)
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.Config.Directory.File, out, 0o600); err != nil {
		t.Fatal(err)
	}
}
