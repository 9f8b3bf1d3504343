// Package demo is the embedded default's world, set up for people to try
// the bot in: the local Slack server with a developer, two interrupt
// catchers and a stranger; moto with the production and dev accounts; the
// Data Pipeline, GitLab, GraphQL (qontract) and SMTP test servers; the
// developer in the dev account's IAM and in app-interface, with a GPG key
// whose private half the world holds so that mailed passwords can be read;
// a reconciler that plays app-interface's integrations on every merge; and
// the real bot running against all of it.
//
// cmd/osio-demo runs its flows in a World; the playground (--ui) serves a
// page on the same World. It is a view on the test servers, not a second
// implementation of them.
package demo

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/gopenpgp/v2/crypto"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/osio/osio-bot/app"
	"github.com/osio/osio-bot/config"
	gitlabserver "github.com/osio/osio-bot/testservers/gitlab"
	"github.com/osio/osio-bot/testservers/qontract"
	"github.com/osio/osio-bot/testservers/testenv"
)

// The world's people, tables and app-interface paths.
const (
	// Developer is the developer's Slack user; in the directory and IAM
	// (account osio-dev) they are DevUser.
	Developer = testenv.Requester
	DevUser   = "dana"
	// Catcher and Catcher2 are the interrupt catchers (the approvers'
	// user group); Stranger is in neither.
	Catcher  = testenv.Approver
	Catcher2 = testenv.Approver2
	Stranger = testenv.Outsider

	// Table is the production table the Data Pipeline export takes;
	// NativeTable has point-in-time recovery on, for the native export
	// and /osio-restore.
	Table       = "prod_txlog"
	NativeTable = "prod_accounts"

	UserPath    = "/teams/osio/users/dana.yml"
	DevRole     = "/teams/osio/roles/osio-dev-developers.yml"
	AccountPath = "/aws/osio-dev/account.yml"
)

// Options tune Start.
type Options struct {
	// Dir is the working directory (store, config, logs); a temporary
	// one, removed by Close, when empty.
	Dir string
	// Log receives the bot's log as JSON lines (nil: discarded).
	Log io.Writer
	// Items is how many items each table gets (0: 100).
	Items int
	// Tweak changes the bot's configuration before it starts.
	Tweak func(*config.Config)
}

// World is the running world and bot.
type World struct {
	*testenv.Env
	Bot *testenv.Bot
	// Key is the developer's GPG key, private half included.
	Key *crypto.Key

	ctx     context.Context
	cancel  context.CancelFunc
	tempDir string
	mu      sync.Mutex
	merges  []error // what the reconciler could not do
}

// Start brings up the world and the bot. ctx bounds the world's life as
// well as its start: when it ends the bot and the reconciler stop; Close
// ends it sooner.
func Start(ctx context.Context, o Options) (w *World, err error) {
	w = &World{}
	w.ctx, w.cancel = context.WithCancel(ctx)
	defer func() {
		if err != nil {
			w.Close()
			w = nil
		}
	}()
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "osio-demo-"); err != nil {
			return nil, err
		}
		w.tempDir = dir
	}
	if w.Key, err = crypto.GenerateKey(DevUser, DevUser+"@example.com", "x25519", 0); err != nil {
		return nil, fmt.Errorf("making the developer's GPG key: %w", err)
	}
	pub, err := w.Key.GetPublicKey()
	if err != nil {
		return nil, err
	}
	key := base64.StdEncoding.EncodeToString(pub) // app-interface's form
	if w.Env, err = testenv.Start(ctx, dir, testenv.Options{
		People: []testenv.Person{{OrgUsername: DevUser, Email: DevUser + "@example.com", Name: "Dana Developer", PublicGPGKey: key}},
		// The AWS proxy sees what the bot sends to IAM (the password it
		// sets), as an observer; it injects nothing unless asked.
		Proxies:      testenv.Proxies{AWS: true},
		AppInterface: true,
		Tweak:        o.Tweak,
	}); err != nil {
		return nil, err
	}
	items := o.Items
	if items == 0 {
		items = 100
	}
	if err := w.CreateTable(ctx, Table, items); err != nil {
		return nil, err
	}
	if err := w.CreateRichTable(ctx, NativeTable, items, true); err != nil {
		return nil, err
	}
	if err := w.seedIAM(ctx); err != nil {
		return nil, err
	}
	SeedAppInterface(w.Qontract, w.GitLab, key)
	w.GitLab.OnMerge(w.reconcile)

	log := zap.NewNop()
	if o.Log != nil {
		log = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(o.Log), zap.DebugLevel))
	}
	if w.Bot, err = w.StartBot(w.ctx, log, app.Options{}); err != nil {
		return nil, err
	}
	return w, nil
}

// Close stops the bot and the world, and removes a temporary directory.
func (w *World) Close() {
	if w.Bot != nil {
		_ = w.Bot.Stop()
	}
	w.cancel()
	if w.Env != nil {
		w.CloseAll()
	}
	if w.tempDir != "" {
		os.RemoveAll(w.tempDir)
	}
}

// ReconcileErrors are what the reconciler could not do on a merge.
func (w *World) ReconcileErrors() []error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]error(nil), w.merges...)
}

const startPassword = "Old-Password-1234567890-abcdefgh!"

// seedIAM gives osio-dev a strict password policy and the developer a user
// with a console password.
func (w *World) seedIAM(ctx context.Context) error {
	c := iam.NewFromConfig(w.Dev)
	if _, err := c.UpdateAccountPasswordPolicy(ctx, &iam.UpdateAccountPasswordPolicyInput{
		MinimumPasswordLength: aws.Int32(32), RequireSymbols: true, RequireNumbers: true,
		RequireUppercaseCharacters: true, RequireLowercaseCharacters: true,
	}); err != nil {
		return fmt.Errorf("setting osio-dev's password policy: %w", err)
	}
	if _, err := c.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(DevUser)}); err != nil {
		return fmt.Errorf("creating IAM user %s: %w", DevUser, err)
	}
	if _, err := c.CreateLoginProfile(ctx, &iam.CreateLoginProfileInput{UserName: aws.String(DevUser), Password: aws.String(startPassword)}); err != nil {
		return fmt.Errorf("giving %s a console password: %w", DevUser, err)
	}
	return nil
}

// SeedAppInterface puts the developer (with GPG key key, app-interface's
// base64 form), their roles and the accounts into GraphQL, and their user
// file and the dev account's file into GitLab.
func SeedAppInterface(q *qontract.Server, g *gitlabserver.Server, key string) {
	q.AddAccount(qontract.Account{Path: AccountPath, Name: "osio-dev", UID: testenv.DevAccount})
	q.AddAccount(qontract.Account{Path: "/aws/osio/account.yml", Name: "osio", UID: testenv.ProdAccount})
	q.AddRole(qontract.Role{Path: "/teams/osio/roles/osio-prod-readonly.yml", Name: "osio-prod-readonly",
		AWSGroups: []qontract.Ref{{Path: "/aws/osio/groups/readonly.yml", Name: "readonly", Account: "osio"}}})
	q.AddRole(qontract.Role{Path: DevRole, Name: "osio-dev-developers",
		AWSGroups:    []qontract.Ref{{Path: "/aws/osio-dev/groups/developers.yml", Name: "developers", Account: "osio-dev"}},
		UserPolicies: []qontract.Ref{{Path: "/aws/osio-dev/policies/dynamodb.yml", Name: "dynamodb", Account: "osio-dev"}}})
	q.AddRole(qontract.Role{Path: "/teams/devtools/roles/devtools.yml", Name: "devtools"})
	q.AddUser(qontract.User{Path: UserPath, Name: "Dana Developer", OrgUsername: DevUser, GithubUsername: "dana-dev",
		PublicGPGKey: key, Roles: []string{"/teams/osio/roles/osio-prod-readonly.yml", DevRole, "/teams/devtools/roles/devtools.yml"}})
	g.SeedFile("master", "data"+UserPath, []byte(UserFile(key)))
	g.SeedFile("master", "data"+AccountPath, []byte(AccountFile))
}

// reconcile plays app-interface's terraform-users and reset integrations
// after a merge: IAM is made to match the files on master. A user whose
// dev role was removed is deleted; one whose role is back is created with
// a password; a resetPasswords entry naming a request gives the user a
// new login profile.
func (w *World) reconcile(gitlabserver.MR) {
	ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
	defer cancel()
	if err := Reconcile(ctx, iam.NewFromConfig(w.Dev), w.GitLab, true); err != nil {
		w.mu.Lock()
		w.merges = append(w.merges, err)
		w.mu.Unlock()
	}
}

// Reconcile makes the developer's IAM user in c's account match the files
// on g's master (see reconcile); with deleteUser false a user whose role
// was removed is left alone, as when app-interface's integration does not
// run.
func Reconcile(ctx context.Context, c *iam.Client, g *gitlabserver.Server, deleteUser bool) error {
	user, _ := g.File("master", "data"+UserPath)
	acct, _ := g.File("master", "data"+AccountPath)
	_, err := c.GetUser(ctx, &iam.GetUserInput{UserName: aws.String(DevUser)})
	var nse *iamtypes.NoSuchEntityException
	if err != nil && !errors.As(err, &nse) {
		return fmt.Errorf("reconciler: reading %s: %w", DevUser, err)
	}
	exists := err == nil
	granted := strings.Contains(string(user), DevRole)
	recreate := func(password string) error {
		_, _ = c.DeleteLoginProfile(ctx, &iam.DeleteLoginProfileInput{UserName: aws.String(DevUser)})
		_, _ = c.DeleteUser(ctx, &iam.DeleteUserInput{UserName: aws.String(DevUser)})
		if _, err := c.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(DevUser)}); err != nil {
			return fmt.Errorf("reconciler: creating %s: %w", DevUser, err)
		}
		if _, err := c.CreateLoginProfile(ctx, &iam.CreateLoginProfileInput{UserName: aws.String(DevUser), Password: aws.String(password), PasswordResetRequired: true}); err != nil {
			return fmt.Errorf("reconciler: giving %s a password: %w", DevUser, err)
		}
		return nil
	}
	switch {
	case !granted && exists && deleteUser:
		_, _ = c.DeleteLoginProfile(ctx, &iam.DeleteLoginProfileInput{UserName: aws.String(DevUser)})
		if _, err := c.DeleteUser(ctx, &iam.DeleteUserInput{UserName: aws.String(DevUser)}); err != nil {
			return fmt.Errorf("reconciler: deleting %s: %w", DevUser, err)
		}
		return nil
	case granted && !exists:
		return recreate("Recreated-Pass-1234567890-ABCDEFG!")
	}
	if strings.Contains(string(acct), "requestId: R-") && exists {
		// moto 5.2.1 reports a login profile's CreateDate as the user's,
		// so the user is recreated to move it; AWS only recreates the
		// profile. CreateDate has one-second resolution.
		time.Sleep(1100 * time.Millisecond)
		return recreate("Reset-Pass-1234567890-ABCDEFGHIJ!")
	}
	return nil
}

// UserFile is a realistic app-interface user file for the developer:
// comments, several roles, a key.
func UserFile(key string) string {
	return `---
$schema: /access/user-1.yml

labels: {}

name: Dana Developer
org_username: dana
github_username: dana-dev
quay_username: danadev

# Dana works on the osio services.
roles:
- $ref: /teams/osio/roles/osio-prod-readonly.yml
# dev account access, requested in APPSRE-1234
- $ref: ` + DevRole + `
- $ref: /teams/devtools/roles/devtools.yml # chat-ops

public_gpg_key: ` + key + `
`
}

// AccountFile is osio-dev's app-interface account file, with one
// resetPasswords entry already there.
const AccountFile = `---
$schema: /aws/account-1.yml

labels: {}

name: osio-dev
description: osio development account
consoleUrl: https://619539278362.signin.aws.amazon.com/console
uid: "619539278362"
resourcesDefaultRegion: us-east-1
supportedDeploymentRegions: null
terraformUsername: terraform
sso: false
# password resets handled by the reset integration
resetPasswords:
- user: {$ref: /teams/osio/users/olduser.yml}
  requestId: APPSRE-999
premiumSupport: false
`
