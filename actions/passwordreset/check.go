// Package passwordreset is the /osio-reset-password job: the runbook's two
// console password resets. In place (user has resources): a generated
// password, encrypted to the user's GPG key and mailed. Through
// app-interface (user has no resources): merge requests that remove and
// restore the user's role, or one that adds a resetPasswords entry.
package passwordreset

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/osio/osio-bot/actions/appinterface"
	"github.com/osio/osio-bot/actions/reset"
	"github.com/osio/osio-bot/bot/mrkdwn"
	"github.com/osio/osio-bot/config"
)

// Kind is the request kind of password resets.
const Kind = "reset-password"

// The methods an approver can choose.
const (
	InPlace        = "inplace"
	Recreate       = "recreate"
	ResetPasswords = "resetpasswords"
)

// MethodLabel is how a method is shown on the card.
func MethodLabel(m string) string {
	switch m {
	case InPlace:
		return "Reset in place (user has resources)"
	case Recreate:
		return "Recreate via app-interface (no resources)"
	case ResetPasswords:
		return "app-interface resetPasswords"
	}
	return m
}

// IAM is what a reset needs of one account's IAM.
type IAM interface {
	GetUser(ctx context.Context, in *iam.GetUserInput, optFns ...func(*iam.Options)) (*iam.GetUserOutput, error)
	GetLoginProfile(ctx context.Context, in *iam.GetLoginProfileInput, optFns ...func(*iam.Options)) (*iam.GetLoginProfileOutput, error)
	CreateLoginProfile(ctx context.Context, in *iam.CreateLoginProfileInput, optFns ...func(*iam.Options)) (*iam.CreateLoginProfileOutput, error)
	UpdateLoginProfile(ctx context.Context, in *iam.UpdateLoginProfileInput, optFns ...func(*iam.Options)) (*iam.UpdateLoginProfileOutput, error)
	ListAccessKeys(ctx context.Context, in *iam.ListAccessKeysInput, optFns ...func(*iam.Options)) (*iam.ListAccessKeysOutput, error)
	ListGroupsForUser(ctx context.Context, in *iam.ListGroupsForUserInput, optFns ...func(*iam.Options)) (*iam.ListGroupsForUserOutput, error)
	ListAttachedUserPolicies(ctx context.Context, in *iam.ListAttachedUserPoliciesInput, optFns ...func(*iam.Options)) (*iam.ListAttachedUserPoliciesOutput, error)
	GetAccountPasswordPolicy(ctx context.Context, in *iam.GetAccountPasswordPolicyInput, optFns ...func(*iam.Options)) (*iam.GetAccountPasswordPolicyOutput, error)
}

// Person is who a reset is for.
type Person struct {
	OrgUsername, Email, Name, PublicGPGKey string
}

// ErrNoPerson is returned by a Directory for someone it does not know.
var ErrNoPerson = errors.New("no such person")

// Directory finds people.
type Directory interface {
	Person(ctx context.Context, orgUsername string) (*Person, error)
	ForSlackUser(ctx context.Context, slackUserID, slackEmail string) (*Person, error)
}

// AppInterface is what the reset needs of app-interface's GraphQL API.
type AppInterface interface {
	User(ctx context.Context, orgUsername string) (*appinterface.User, error)
	Account(ctx context.Context, name string) (*appinterface.Account, error)
}

// Args are a reset request's arguments and the facts shown to approvers,
// resolved before approval. Nothing in here is secret (the public key and
// the mail address are not).
type Args struct {
	Account          string     `json:"account"`
	AccountID        string     `json:"account_id"`
	User             string     `json:"user"`
	Email            string     `json:"email"`
	PublicKey        string     `json:"public_key"`
	Fingerprint      string     `json:"fingerprint"`
	KeyExpires       time.Time  `json:"key_expires,omitempty"`
	HasLoginProfile  bool       `json:"has_login_profile"`
	PasswordLastUsed *time.Time `json:"password_last_used,omitempty"`
	AccessKeys       int        `json:"access_keys"`
	Groups           []string   `json:"groups,omitempty"`
	Policies         []string   `json:"policies,omitempty"`
	// App-interface facts; UserFile is empty when it does not manage the
	// user.
	UserFile    string   `json:"user_file,omitempty"`
	RoleRefs    []string `json:"role_refs,omitempty"`
	AccountFile string   `json:"account_file,omitempty"`
	Methods     []string `json:"methods"`
	Recommended string   `json:"recommended"`
	NotOffered  []string `json:"not_offered,omitempty"`
}

// Resetter checks and runs password resets.
type Resetter struct {
	cfg      config.Config
	iam      map[string]IAM
	dir      Directory
	ai       AppInterface // nil: app-interface methods off
	repo     Repo         // nil: app-interface methods off
	mailer   Mailer
	now      func() time.Time
	aiConfig config.AppInterface
	// callTimeout bounds each AWS call of a check (aws.call_timeout).
	callTimeout time.Duration
}

// Deps are a Resetter's collaborators; IAM maps account names to clients.
type Deps struct {
	IAM          map[string]IAM
	Directory    Directory
	AppInterface AppInterface
	Repo         Repo
	Mailer       Mailer
	Now          func() time.Time
}

// New builds a Resetter.
func New(cfg config.Config, d Deps) *Resetter {
	r := &Resetter{cfg: cfg, iam: d.IAM, dir: d.Directory, ai: d.AppInterface, repo: d.Repo, mailer: d.Mailer, now: d.Now,
		aiConfig: cfg.AppInterface, callTimeout: cfg.AWS.CallTimeout.D()}
	if r.now == nil {
		r.now = time.Now
	}
	if r.callTimeout <= 0 {
		r.callTimeout = DefaultCallTimeout
	}
	return r
}

// DefaultCallTimeout bounds each AWS call of a check when aws.call_timeout
// is not set.
const DefaultCallTimeout = 30 * time.Second

// call is the context of one AWS call of a check: ctx, bounded by the call
// timeout.
func (r *Resetter) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.callTimeout)
}

// Request is what the requester typed, parsed.
type Request struct {
	User, Account, Method string
}

// Parse reads "[IAM_USER] [--account NAME] [--method M]"; a non-empty
// string is a message for the requester.
func (r *Resetter) Parse(args []string) (Request, string) {
	q := Request{Account: r.cfg.Reset.DefaultAccount}
	usage := "Usage: `/osio-reset-password [IAM_USER] [--account " + strings.Join(r.accountNames(), "|") + "] [--method inplace|recreate|resetpasswords]`."
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--account" || a == "--method":
			if i+1 >= len(args) {
				return q, fmt.Sprintf("`%s` needs a value. %s", a, usage)
			}
			i++
			if a == "--account" {
				q.Account = args[i]
			} else {
				q.Method = args[i]
			}
		case strings.HasPrefix(a, "--account="):
			q.Account = strings.TrimPrefix(a, "--account=")
		case strings.HasPrefix(a, "--method="):
			q.Method = strings.TrimPrefix(a, "--method=")
		case strings.HasPrefix(a, "-"):
			return q, fmt.Sprintf("Unknown option `%s`. %s", clip(a), usage)
		case q.User == "":
			q.User = a
		default:
			return q, "Name one IAM user at most. " + usage
		}
	}
	if _, ok := r.cfg.Account(q.Account); !ok {
		return q, fmt.Sprintf("`%s` is not an account I know; use %s.", clip(q.Account), strings.Join(r.accountNames(), " or "))
	}
	switch q.Method {
	case "", InPlace, Recreate, ResetPasswords:
	default:
		return q, fmt.Sprintf("`%s` is not a method. %s", clip(q.Method), usage)
	}
	if q.User != "" && !iamUserRe(q.User) {
		return q, fmt.Sprintf("`%s` is not a valid IAM user name (1 to 64 of a-z A-Z 0-9 and +=,.@_-).", clip(q.User))
	}
	return q, ""
}

func iamUserRe(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("+=,.@_-", c)) {
			return false
		}
	}
	return true
}

// clip is user text for inside a code span: clipped, escaped.
func clip(s string) string {
	return mrkdwn.Escape(mrkdwn.Clip(strings.ReplaceAll(s, "`", "'"), 60))
}

func (r *Resetter) accountNames() []string {
	var out []string
	for _, a := range r.cfg.Accounts {
		out = append(out, a.Name)
	}
	return out
}

// Check resolves a reset request into Args, or returns a message for the
// requester. An error means AWS, the directory or app-interface failed.
// ctx bounds the whole check; each AWS call is bounded by aws.call_timeout
// too. With app-interface as the directory, the person and the
// app-interface facts come from one GraphQL query (the client keeps the
// user for its cache's TTL), and the account file's path comes with the
// user's roles.
func (r *Resetter) Check(ctx context.Context, q Request, requester, requesterEmail string) (Args, string, error) {
	acct, _ := r.cfg.Account(q.Account)
	client := r.iam[acct.Name]
	var person *Person
	var err error
	if q.User == "" {
		person, err = r.dir.ForSlackUser(ctx, requester, requesterEmail)
		if errors.Is(err, ErrNoPerson) {
			return Args{}, fmt.Sprintf("I cannot tell who you are in the directory (your Slack e-mail is `%s`). Name the IAM user: `/osio-reset-password IAM_USER`.", clip(requesterEmail)), nil
		}
	} else {
		person, err = r.dir.Person(ctx, q.User)
		if errors.Is(err, ErrNoPerson) {
			return Args{}, fmt.Sprintf("`%s` is not in the people directory, so I have no mail address or GPG key for them. Nothing was requested.", q.User), nil
		}
	}
	if err != nil {
		return Args{}, "", fmt.Errorf("looking up the person: %w", err)
	}
	a := Args{Account: acct.Name, AccountID: acct.ID, User: person.OrgUsername, Email: person.Email}
	cctx, cancel := r.call(ctx)
	u, err := client.GetUser(cctx, &iam.GetUserInput{UserName: aws.String(a.User)})
	cancel()
	var nse *iamtypes.NoSuchEntityException
	if errors.As(err, &nse) {
		return Args{}, fmt.Sprintf("There is no IAM user `%s` in account %s (%s). Check the name or the account (`--account`). Nothing was requested.", a.User, acct.Name, acct.ID), nil
	}
	if err != nil {
		return Args{}, "", fmt.Errorf("getting IAM user %s: %w", a.User, err)
	}
	a.PasswordLastUsed = u.User.PasswordLastUsed
	if strings.TrimSpace(person.PublicGPGKey) == "" {
		return Args{}, fmt.Sprintf("`%s` has no public GPG key in the directory, so the new password cannot be sent encrypted. Add one (app-interface: `public_gpg_key` in the user file) and ask again.", a.User), nil
	}
	_, info, err := reset.ParseKey(person.PublicGPGKey)
	if err != nil {
		return Args{}, fmt.Sprintf("The public GPG key of `%s` cannot be read: %v. Fix it in the directory and ask again.", a.User, err), nil
	}
	if msg := reset.CheckKey(info, r.now()); msg != "" {
		return Args{}, fmt.Sprintf("Cannot reset `%s`'s password: %s", a.User, msg), nil
	}
	a.PublicKey, a.Fingerprint, a.KeyExpires = person.PublicGPGKey, info.Fingerprint, info.Expires
	if err := r.facts(ctx, client, &a); err != nil {
		return Args{}, "", err
	}

	aiWhy := ""
	if r.ai == nil || r.repo == nil {
		aiWhy = "app-interface is not configured"
	} else {
		u, err := r.ai.User(ctx, a.User)
		switch {
		case errors.Is(err, appinterface.ErrNotFound):
			aiWhy = fmt.Sprintf("app-interface does not know `%s`", a.User)
		case err != nil:
			return Args{}, "", fmt.Errorf("looking up %s in app-interface: %w", a.User, err)
		default:
			for _, role := range u.RolesGranting(acct.Name) {
				a.RoleRefs = append(a.RoleRefs, role.Path)
			}
			if len(a.RoleRefs) == 0 {
				aiWhy = fmt.Sprintf("no role of `%s` in app-interface grants account %s", a.User, acct.Name)
			} else if acc, ok := u.GrantedAccount(acct.Name); ok && acc.Path != "" {
				// The roles' account, read with the user: no second query.
				a.UserFile, a.AccountFile = u.Path, acc.Path
			} else {
				acc, err := r.ai.Account(ctx, acct.Name)
				if errors.Is(err, appinterface.ErrNotFound) {
					aiWhy = fmt.Sprintf("app-interface has no account %s", acct.Name)
				} else if err != nil {
					return Args{}, "", fmt.Errorf("looking up account %s in app-interface: %w", acct.Name, err)
				} else {
					a.UserFile, a.AccountFile = u.Path, acc.Path
				}
			}
		}
	}
	a.Methods = []string{InPlace}
	if aiWhy == "" {
		a.Methods = append(a.Methods, Recreate, ResetPasswords)
	} else {
		a.NotOffered = append(a.NotOffered, "app-interface methods: "+aiWhy)
	}
	a.Recommended = InPlace
	if aiWhy == "" && a.AccessKeys == 0 && len(a.Policies) == 0 {
		a.Recommended = ResetPasswords
	}
	if q.Method != "" {
		if !contains(a.Methods, q.Method) {
			return Args{}, fmt.Sprintf("Cannot reset `%s` by %s: %s. Nothing was requested.", a.User, MethodLabel(q.Method), aiWhy), nil
		}
		a.Methods, a.Recommended = []string{q.Method}, q.Method
	}
	return a, "", nil
}

// facts reads the user's login profile, access keys, groups and attached
// policies. The four calls run at once, each bounded by the call timeout.
func (r *Resetter) facts(ctx context.Context, client IAM, a *Args) error {
	user := aws.String(a.User)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	run := func(i int, f func(ctx context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := r.call(ctx)
			defer cancel()
			errs[i] = f(cctx)
		}()
	}
	run(0, func(ctx context.Context) error {
		_, err := client.GetLoginProfile(ctx, &iam.GetLoginProfileInput{UserName: user})
		var nse *iamtypes.NoSuchEntityException
		switch {
		case err == nil:
			a.HasLoginProfile = true
		case !errors.As(err, &nse):
			return fmt.Errorf("getting the login profile of %s: %w", a.User, err)
		}
		return nil
	})
	// IAM's lists come a page at a time, and "might return fewer than the
	// MaxItems number of results even when there are more results
	// available": every page is read (the call timeout bounds them all).
	run(1, func(ctx context.Context) error {
		err := eachPage(ctx, iam.NewListAccessKeysPaginator(client, &iam.ListAccessKeysInput{UserName: user}), func(o *iam.ListAccessKeysOutput) {
			a.AccessKeys += len(o.AccessKeyMetadata)
		})
		if err != nil {
			return fmt.Errorf("listing access keys of %s: %w", a.User, err)
		}
		return nil
	})
	run(2, func(ctx context.Context) error {
		err := eachPage(ctx, iam.NewListGroupsForUserPaginator(client, &iam.ListGroupsForUserInput{UserName: user}), func(o *iam.ListGroupsForUserOutput) {
			for _, g := range o.Groups {
				a.Groups = append(a.Groups, aws.ToString(g.GroupName))
			}
		})
		if err != nil {
			return fmt.Errorf("listing groups of %s: %w", a.User, err)
		}
		return nil
	})
	run(3, func(ctx context.Context) error {
		err := eachPage(ctx, iam.NewListAttachedUserPoliciesPaginator(client, &iam.ListAttachedUserPoliciesInput{UserName: user}), func(o *iam.ListAttachedUserPoliciesOutput) {
			for _, p := range o.AttachedPolicies {
				a.Policies = append(a.Policies, aws.ToString(p.PolicyName))
			}
		})
		if err != nil {
			return fmt.Errorf("listing policies of %s: %w", a.User, err)
		}
		return nil
	})
	wg.Wait()
	return errors.Join(errs...)
}

// iamPages is one of the IAM SDK's paginators.
type iamPages[O any] interface {
	HasMorePages() bool
	NextPage(ctx context.Context, optFns ...func(*iam.Options)) (O, error)
}

// eachPage hands every page of p to f, in order.
func eachPage[O any](ctx context.Context, p iamPages[O], f func(O)) error {
	for p.HasMorePages() {
		o, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		f(o)
	}
	return nil
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// Mask shows a mail address as d***@example.com.
func Mask(email string) string {
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" {
		return "***"
	}
	return local[:1] + "***@" + domain
}

// Facts are the card lines for a.
func Facts(a Args) []string {
	last := "never"
	if a.PasswordLastUsed != nil {
		last = a.PasswordLastUsed.UTC().Format("2006-01-02 15:04 UTC")
	}
	expires := "never expires"
	if !a.KeyExpires.IsZero() {
		expires = "expires " + a.KeyExpires.UTC().Format("2006-01-02")
	}
	profile := "has a console password (login profile)"
	if !a.HasLoginProfile {
		profile = "has no console password yet (a login profile will be created)"
	}
	managed := "not managed by app-interface"
	if a.UserFile != "" {
		managed = fmt.Sprintf("managed by app-interface (`%s`; roles granting %s: `%s`)", a.UserFile, a.Account, strings.Join(a.RoleRefs, "`, `"))
	}
	out := []string{
		fmt.Sprintf("*Account:* %s (%s) · *IAM user:* `%s` (exists; %s)", a.Account, a.AccountID, a.User, profile),
		fmt.Sprintf("*Password last used:* %s · *Access keys:* %d · *Groups:* %s · *Attached policies:* %s", last, a.AccessKeys, list(a.Groups), list(a.Policies)),
		fmt.Sprintf("*GPG key:* `%s` (%s) · *Mail to:* %s", a.Fingerprint, expires, Mask(a.Email)),
		"*app-interface:* " + managed,
	}
	for _, n := range a.NotOffered {
		out = append(out, "_Not offered: "+n+"_")
	}
	return out
}

func list(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return "`" + strings.Join(xs, "`, `") + "`"
}
