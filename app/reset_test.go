package app

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ProtonMail/gopenpgp/v2/crypto"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions/passwordreset"
	"github.com/osio/osio-bot/config"
	"github.com/osio/osio-bot/testservers/moto"
	"github.com/osio/osio-bot/testservers/qontract"
)

// A password-reset check wired as the bot wires it, with app-interface as
// the directory, asks GraphQL once: one users_v1 query, filtered on the
// one user (issue 9, acceptance 4). Both the directory's lookup and the
// app-interface facts are answered by it, and the account file's path
// comes with the user's roles.
func TestResetCheckMakesOneGraphQLQuery(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, err := moto.Start(ctx, filepath.Join(t.TempDir(), "moto.log"))
	if errors.Is(err, moto.ErrMissing) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const (
		region = "us-east-1"
		devID  = "619539278362"
	)
	if _, err := iam.NewFromConfig(m.Config(region, devID)).CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("jdoe")}); err != nil {
		t.Fatal(err)
	}

	key, err := crypto.GenerateKey("Jane Doe", "jdoe@example.com", "x25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := key.GetPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	q, err := qontract.New(qontract.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	q.AddAccount(qontract.Account{Path: "/aws/osio-dev/account.yml", Name: "osio-dev", UID: devID})
	q.AddRole(qontract.Role{Path: "/teams/devtools/roles/osio-dev.yml", Name: "osio-dev",
		AWSGroups: []qontract.Ref{{Path: "/aws/osio-dev/groups/developers.yml", Name: "developers", Account: "osio-dev"}}})
	q.AddUser(qontract.User{Path: "/teams/devtools/users/jdoe.yml", Name: "Jane Doe", OrgUsername: "jdoe",
		PublicGPGKey: base64.StdEncoding.EncodeToString(pub), Roles: []string{"/teams/devtools/roles/osio-dev.yml"}})
	for i := range 50 { // others, whom a download of all users would bring along
		name := "user" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		q.AddUser(qontract.User{Path: "/teams/x/users/" + name + ".yml", Name: name, OrgUsername: name})
	}

	cfg := config.Defaults()
	cfg.Accounts = []config.Account{{Name: "osio-dev", ID: devID, RoleARN: "arn:aws:iam::" + devID + ":role/osio-bot", Region: region}}
	cfg.Reset.Enabled = true
	cfg.Directory = config.Directory{Source: "app-interface", MailDomain: "example.com", EmailDomains: []string{"example.com"}}
	cfg.AppInterface.GraphQLURL = q.URL()
	cfg.AppInterface.GitLabURL, cfg.AppInterface.GitLabToken, cfg.AppInterface.Project = "http://127.0.0.1:1", "glpat-test", "service/app-interface"
	cfg.Mail = config.Mail{Addr: "127.0.0.1:1", From: "osio-bot@example.com"}

	for _, tc := range []struct {
		name string
		req  passwordreset.Request
	}{
		{"the requester, found by their Slack e-mail", passwordreset.Request{Account: "osio-dev"}},
		{"a named user", passwordreset.Request{User: "jdoe", Account: "osio-dev"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := buildResetter(ctx, cfg, func(a config.Account) aws.Config { return AccountConfig(m.Base(region), a, "test") }, zap.NewNop(), newMetrics())
			if err != nil {
				t.Fatal(err)
			}
			before := len(q.Queries())
			a, msg, err := r.Check(ctx, tc.req, "UJDOE", "jdoe@example.com")
			if err != nil || msg != "" {
				t.Fatalf("Check: %q, %v", msg, err)
			}
			if a.User != "jdoe" || a.Email != "jdoe@example.com" || a.UserFile != "/teams/devtools/users/jdoe.yml" ||
				a.AccountFile != "/aws/osio-dev/account.yml" || !slices.Contains(a.Methods, passwordreset.ResetPasswords) {
				t.Fatalf("args: %+v", a)
			}
			got := q.Queries()[before:]
			want := []qontract.Query{{Field: "users_v1", Filter: map[string]any{"org_username": "jdoe"}}}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("one check made %d GraphQL queries: %+v\nwant %+v", len(got), got, want)
			}
			t.Logf("one check: %d GraphQL query: %+v", len(got), got)
		})
	}
}
