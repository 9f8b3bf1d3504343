package passwordreset

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/gopenpgp/v2/crypto"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/config"
	"github.com/osio/osio-bot/mail"
	"github.com/osio/osio-bot/store"
)

// fakeIAM holds one user's console password, as UpdateLoginProfile set it.
type fakeIAM struct {
	IAM // nil: calls the in-place job does not make panic
	mu  sync.Mutex
	set []string
}

func (f *fakeIAM) GetAccountPasswordPolicy(context.Context, *iam.GetAccountPasswordPolicyInput, ...func(*iam.Options)) (*iam.GetAccountPasswordPolicyOutput, error) {
	return nil, &iamtypes.NoSuchEntityException{Message: aws.String("The Password Policy with domain name 619539278362 cannot be found.")}
}

func (f *fakeIAM) UpdateLoginProfile(_ context.Context, in *iam.UpdateLoginProfileInput, _ ...func(*iam.Options)) (*iam.UpdateLoginProfileOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.set = append(f.set, aws.ToString(in.Password))
	return &iam.UpdateLoginProfileOutput{}, nil
}

func (f *fakeIAM) passwords() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.set...)
}

// fakeMailer records mails; fail, when set, answers each Send.
type fakeMailer struct {
	mu   sync.Mutex
	sent []mail.Message
	fail error
}

func (m *fakeMailer) Send(_ context.Context, msg mail.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.sent = append(m.sent, msg)
	return nil
}

func (m *fakeMailer) messages() []mail.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]mail.Message(nil), m.sent...)
}

var errDisk = errors.New("store: write /var/lib/osio-bot/state.db: no space left on device (injected)")

// flakyStore is the real store whose job writes (checkpoints and events)
// fail on cue; the runner's state transitions still work, so the request
// reaches its end state.
type flakyStore struct {
	*store.Store
	mu sync.Mutex
	// mode: "after-set" fails every job write after the one recording
	// "set"; "set" fails the write that records "set"; "mailed" fails the
	// write that records "mailed".
	mode    string
	failing bool
}

func (f *flakyStore) SaveCheckpoint(id, key string, v any) error {
	if f.refuse(v) {
		return errDisk
	}
	return f.Store.SaveCheckpoint(id, key, v)
}

// SaveCheckpointEvents fails as SaveCheckpoint does, writing neither.
func (f *flakyStore) SaveCheckpointEvents(id, key string, v any, events ...actions.Event) error {
	if f.refuse(v) {
		return errDisk
	}
	return f.Store.SaveCheckpointEvents(id, key, v, events...)
}

// refuse says whether the checkpoint write of v fails.
func (f *flakyStore) refuse(v any) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing {
		return true
	}
	if st, ok := v.(*inPlaceState); ok {
		switch {
		case f.mode == "set" && !st.SetAt.IsZero() && st.MailedAt.IsZero():
			return true
		case f.mode == "mailed" && !st.MailedAt.IsZero():
			return true
		}
		if f.mode == "after-set" && !st.SetAt.IsZero() {
			f.failing = true // this write lands; the ones after it fail
		}
	}
	return false
}

func (f *flakyStore) AppendEvents(id string, events ...actions.Event) error {
	f.mu.Lock()
	failing := f.failing
	f.mu.Unlock()
	if failing {
		return errDisk
	}
	return f.Store.AppendEvents(id, events...)
}

func (f *flakyStore) heal() {
	f.mu.Lock()
	f.mode, f.failing = "", false
	f.mu.Unlock()
}

type nopNotifier struct{}

func (nopNotifier) Notify(string) {}

var armored = regexp.MustCompile(`(?s)-----BEGIN PGP MESSAGE-----.*?-----END PGP MESSAGE-----`)

func decryptMail(t *testing.T, m mail.Message, k *crypto.Key) (ciphertext, plain string) {
	t.Helper()
	ct := armored.FindString(m.Body)
	ring, err := crypto.NewKeyRing(k)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := crypto.NewPGPMessageFromArmored(ct)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := ring.Decrypt(msg, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ct, pt.GetString()
}

type inPlaceWorld struct {
	st     *flakyStore
	iam    *fakeIAM
	mailer *fakeMailer
	runner *actions.Runner
	key    *crypto.Key
	id     string
}

func newInPlaceWorld(t *testing.T) *inPlaceWorld {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	k, err := crypto.GenerateKey("dana", "dana@example.com", "x25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := k.GetArmoredPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	w := &inPlaceWorld{st: &flakyStore{Store: s}, iam: &fakeIAM{}, mailer: &fakeMailer{}, key: k}
	cfg := config.Defaults()
	cfg.Accounts = []config.Account{{Name: "osio-dev", ID: "619539278362"}}
	cfg.Reset.MailRetries, cfg.Reset.MailBackoff = 0, config.Duration(time.Millisecond)
	r := New(cfg, Deps{IAM: map[string]IAM{"osio-dev": w.iam}, Mailer: w.mailer})
	w.runner = actions.NewRunner(w.st, nopNotifier{}, map[string]actions.Job{Kind: r}, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); w.runner.Wait() })
	if err := w.runner.Start(ctx); err != nil {
		t.Fatal(err)
	}
	args, _ := json.Marshal(Args{Account: "osio-dev", AccountID: "619539278362", User: "dana", Email: "dana@example.com",
		PublicKey: pub, Fingerprint: k.GetFingerprint(), Methods: []string{InPlace}})
	res, err := s.Create(&actions.Request{Kind: Kind, Requester: "UDEV", Args: args, Choice: InPlace,
		ExpiresAt: time.Now().Add(time.Hour), Locks: []string{"reset:osio-dev:dana"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	w.id = res.Request.ID
	return w
}

// run moves the request from one of from to approved (as an approval or a
// retry does), runs it and waits for its end.
func (w *inPlaceWorld) run(t *testing.T, from actions.State) *actions.Request {
	t.Helper()
	if _, err := w.st.Update(w.id, []actions.State{from}, func(q *actions.Request) error {
		q.State, q.Retry, q.Error = actions.Approved, "", ""
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	w.runner.Run(w.id)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		q, err := w.st.Get(w.id)
		if err != nil {
			t.Fatal(err)
		}
		if q.State.Terminal() {
			return q
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the request never ended")
	return nil
}

// Issue 8, item 3: once the ciphertext is stored and the password is set,
// every failure (a store write, an event for the thread, the mail) ends
// the request failed with Resend; Resend mails the stored ciphertext, the
// password IAM holds, and sets no new one.
func TestInPlaceFailureAfterSetLeavesResend(t *testing.T) {
	for _, c := range []struct {
		name string
		// fault arms the failure; mailsBefore is how many mails went out
		// before the request failed.
		fault       func(w *inPlaceWorld)
		mailsBefore int
		// regenerated: Resend sets a new password (only when "set" itself
		// could not be recorded).
		regenerated bool
	}{
		// The "set" message is written with the "set" checkpoint (one
		// write), so the first write after it is the one recording
		// "mailed", once the mail went out.
		{name: "every job write after set fails", fault: func(w *inPlaceWorld) { w.st.mode = "after-set" }, mailsBefore: 1},
		{name: "mail fails permanently", fault: func(w *inPlaceWorld) {
			w.mailer.fail = errors.New("mail: smtp relay: 550 5.1.1 Mailbox unavailable")
		}},
		{name: "recording mailed fails", fault: func(w *inPlaceWorld) { w.st.mode = "mailed" }, mailsBefore: 1},
		{name: "recording set fails", fault: func(w *inPlaceWorld) { w.st.mode = "set" }, regenerated: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newInPlaceWorld(t)
			c.fault(w)
			q := w.run(t, actions.Pending)
			if q.State != actions.Failed || q.Retry != "Resend" {
				t.Fatalf("ended %s with Retry %q (%s); want failed with Resend", q.State, q.Retry, q.Error)
			}
			if n := len(w.iam.passwords()); n != 1 {
				t.Fatalf("%d passwords set, want 1", n)
			}
			if n := len(w.mailer.messages()); n != c.mailsBefore {
				t.Fatalf("%d mails before Resend, want %d", n, c.mailsBefore)
			}
			var before inPlaceState
			if _, err := w.st.LoadCheckpoint(w.id, "inplace", &before); err != nil {
				t.Fatal(err)
			}

			w.st.heal()
			w.mailer.mu.Lock()
			w.mailer.fail = nil
			w.mailer.mu.Unlock()
			q = w.run(t, actions.Failed)
			if q.State != actions.Succeeded {
				t.Fatalf("after Resend: %s (%s)", q.State, q.Error)
			}
			pws, mails := w.iam.passwords(), w.mailer.messages()
			if len(mails) != c.mailsBefore+1 {
				t.Fatalf("%d mails after Resend, want %d", len(mails), c.mailsBefore+1)
			}
			ct, plain := decryptMail(t, mails[len(mails)-1], w.key)
			if plain != pws[len(pws)-1] {
				t.Fatal("the mailed password is not the one IAM holds")
			}
			if c.regenerated {
				if len(pws) != 2 {
					t.Fatalf("%d passwords set, want a new one (set was never recorded)", len(pws))
				}
				return
			}
			if len(pws) != 1 {
				t.Fatalf("Resend set %d new passwords; it must mail the stored one", len(pws)-1)
			}
			if ct != strings.TrimSpace(before.Ciphertext) {
				t.Fatal("Resend mailed another ciphertext than the stored one")
			}
		})
	}
}
