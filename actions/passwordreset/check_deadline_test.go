package passwordreset

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/gopenpgp/v2/crypto"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/osio/osio-bot/config"
)

// stallingIAM answers a check's five IAM calls for one user, except those
// named in stall, which wait until their context ends. It records whether
// each call's context had a deadline.
type stallingIAM struct {
	IAM   // nil: calls a check does not make panic
	stall map[string]bool

	mu        sync.Mutex
	deadlines map[string]bool
}

func (f *stallingIAM) call(ctx context.Context, name string) error {
	_, ok := ctx.Deadline()
	f.mu.Lock()
	if f.deadlines == nil {
		f.deadlines = map[string]bool{}
	}
	f.deadlines[name] = ok
	f.mu.Unlock()
	if f.stall[name] {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (f *stallingIAM) GetUser(ctx context.Context, in *iam.GetUserInput, _ ...func(*iam.Options)) (*iam.GetUserOutput, error) {
	if err := f.call(ctx, "GetUser"); err != nil {
		return nil, err
	}
	return &iam.GetUserOutput{User: &iamtypes.User{UserName: in.UserName}}, nil
}

func (f *stallingIAM) GetLoginProfile(ctx context.Context, _ *iam.GetLoginProfileInput, _ ...func(*iam.Options)) (*iam.GetLoginProfileOutput, error) {
	if err := f.call(ctx, "GetLoginProfile"); err != nil {
		return nil, err
	}
	return &iam.GetLoginProfileOutput{}, nil
}

func (f *stallingIAM) ListAccessKeys(ctx context.Context, _ *iam.ListAccessKeysInput, _ ...func(*iam.Options)) (*iam.ListAccessKeysOutput, error) {
	if err := f.call(ctx, "ListAccessKeys"); err != nil {
		return nil, err
	}
	return &iam.ListAccessKeysOutput{}, nil
}

func (f *stallingIAM) ListGroupsForUser(ctx context.Context, _ *iam.ListGroupsForUserInput, _ ...func(*iam.Options)) (*iam.ListGroupsForUserOutput, error) {
	if err := f.call(ctx, "ListGroupsForUser"); err != nil {
		return nil, err
	}
	return &iam.ListGroupsForUserOutput{Groups: []iamtypes.Group{{GroupName: aws.String("devs")}}}, nil
}

func (f *stallingIAM) ListAttachedUserPolicies(ctx context.Context, _ *iam.ListAttachedUserPoliciesInput, _ ...func(*iam.Options)) (*iam.ListAttachedUserPoliciesOutput, error) {
	if err := f.call(ctx, "ListAttachedUserPolicies"); err != nil {
		return nil, err
	}
	return &iam.ListAttachedUserPoliciesOutput{}, nil
}

// oneperson is a directory that knows one person.
type oneperson struct{ p Person }

func (d oneperson) Person(_ context.Context, name string) (*Person, error) {
	if name != d.p.OrgUsername {
		return nil, ErrNoPerson
	}
	p := d.p
	return &p, nil
}

func (d oneperson) ForSlackUser(ctx context.Context, _, email string) (*Person, error) {
	return d.Person(ctx, strings.TrimSuffix(email, "@example.com"))
}

// danaKey is a new public key of dana@example.com, armored.
func danaKey(t *testing.T) string {
	t.Helper()
	k, err := crypto.GenerateKey("dana", "dana@example.com", "x25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := k.GetArmoredPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// Each AWS call of a check is bounded by aws.call_timeout, even when the
// check's own context has none, and the whole check by its context.
func TestCheckAWSCallDeadlines(t *testing.T) {
	pub := danaKey(t)
	calls := []string{"GetUser", "GetLoginProfile", "ListAccessKeys", "ListGroupsForUser", "ListAttachedUserPolicies"}
	tests := []struct {
		name        string
		stall       string
		callTimeout time.Duration
		checkBound  time.Duration // 0: the check's context has no deadline
		wantWithin  time.Duration
	}{
		{name: "nothing stalls", callTimeout: time.Second, wantWithin: time.Second},
		{name: "GetUser stalls", stall: "GetUser", callTimeout: 50 * time.Millisecond, wantWithin: time.Second},
		{name: "ListAccessKeys stalls", stall: "ListAccessKeys", callTimeout: 50 * time.Millisecond, wantWithin: time.Second},
		{name: "the check's deadline comes first", stall: "GetUser", callTimeout: time.Minute, checkBound: 50 * time.Millisecond, wantWithin: time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Defaults()
			cfg.Accounts = []config.Account{{Name: "osio-dev", ID: "619539278362"}}
			cfg.AWS.CallTimeout = config.Duration(tc.callTimeout)
			fake := &stallingIAM{stall: map[string]bool{tc.stall: true}}
			r := New(cfg, Deps{IAM: map[string]IAM{"osio-dev": fake},
				Directory: oneperson{Person{OrgUsername: "dana", Email: "dana@example.com", PublicGPGKey: pub}}})
			ctx := context.Background()
			if tc.checkBound > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.checkBound)
				defer cancel()
			}
			type result struct {
				a   Args
				msg string
				err error
			}
			done := make(chan result, 1)
			start := time.Now()
			go func() {
				a, msg, err := r.Check(ctx, Request{User: "dana", Account: "osio-dev"}, "UDANA", "dana@example.com")
				done <- result{a, msg, err}
			}()
			var res result
			select {
			case res = <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("the check still runs after 5s with %s stalled", tc.stall)
			}
			took := time.Since(start)
			if took > tc.wantWithin {
				t.Fatalf("the check took %s, want under %s", took, tc.wantWithin)
			}
			if tc.stall == "" {
				if res.err != nil || res.msg != "" || res.a.User != "dana" || !res.a.HasLoginProfile || len(res.a.Groups) != 1 {
					t.Fatalf("got %+v, %q, %v", res.a, res.msg, res.err)
				}
				for _, c := range calls {
					if has, called := fake.deadlines[c]; !called || !has {
						t.Errorf("%s: called %v, with a deadline %v", c, called, has)
					}
				}
				return
			}
			if !errors.Is(res.err, context.DeadlineExceeded) || !strings.Contains(res.err.Error(), "dana") {
				t.Fatalf("got %+v, %q, %v; want an error naming the user, DeadlineExceeded", res.a, res.msg, res.err)
			}
			t.Logf("%s stalled: the check gave up after %s: %v", tc.stall, took.Round(time.Millisecond), res.err)
		})
	}
}
