package directory

import (
	"context"
	"errors"
	"testing"

	"github.com/osio/osio-bot/actions/appinterface"
	"github.com/osio/osio-bot/testservers/qontract"
)

func TestAppInterfaceDirectory(t *testing.T) {
	srv, err := qontract.New(qontract.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.AddUser(qontract.User{Path: "/teams/osio/users/jdoe.yml", Name: "Jane Doe", OrgUsername: "jdoe", PublicGPGKey: "  bUFJTktFWQ==\n"})
	d := &AppInterface{Users: appinterface.NewClient(srv.URL(), ""), MailDomain: "example.com"}
	ctx := context.Background()
	for _, get := range []func(context.Context, string) (*Person, error){d.ByOrgUsername, d.ByEmailLocalPart} {
		p, err := get(ctx, "jdoe")
		if err != nil {
			t.Fatal(err)
		}
		want := Person{OrgUsername: "jdoe", Email: "jdoe@example.com", Name: "Jane Doe", PublicGPGKey: "bUFJTktFWQ==", UserFile: "/teams/osio/users/jdoe.yml"}
		if *p != want {
			t.Errorf("person = %+v, want %+v", *p, want)
		}
	}
	// Both lookups, and the resolver's below, share one query for the one
	// user (the client keeps found users briefly).
	if got := srv.Queries(); len(got) != 1 || got[0].Filter["org_username"] != "jdoe" {
		t.Errorf("two lookups of jdoe made the queries %+v, want one for jdoe", got)
	}
	if _, err := d.ByOrgUsername(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown user: %v, want ErrNotFound", err)
	}
	if _, err := (&AppInterface{Users: d.Users}).ByOrgUsername(ctx, "jdoe"); err == nil {
		t.Error("a directory without MailDomain answered")
	}
	// The resolver finds a Slack user by the local part of their e-mail.
	r := &Resolver{Dir: d, EmailDomains: []string{"example.com"}}
	if p, err := r.Resolve(ctx, "U1", "jdoe@example.com"); err != nil || p.OrgUsername != "jdoe" {
		t.Errorf("Resolve = %+v, %v", p, err)
	}
}
