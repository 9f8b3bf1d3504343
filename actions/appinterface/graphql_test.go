package appinterface

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/osio/osio-bot/testservers/qontract"
)

const qtoken = "qontract-secret-token"

func newQontract(t *testing.T) *qontract.Server {
	t.Helper()
	s, err := qontract.New(qontract.Options{Token: qtoken})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	s.AddAccount(qontract.Account{Path: "/aws/osio/account.yml", Name: "osio", UID: "386414299200"})
	s.AddAccount(qontract.Account{Path: "/aws/osio-dev/account.yml", Name: "osio-dev", UID: "619539278362"})
	s.AddAccount(qontract.Account{Path: "/aws/app-sre/account.yml", Name: "app-sre", UID: "111111111111"})
	s.AddRole(qontract.Role{Path: refOsioDev, Name: "osio-dev",
		AWSGroups: []qontract.Ref{{Path: "/aws/osio-dev/groups/developers.yml", Name: "developers", Account: "osio-dev"}}})
	s.AddRole(qontract.Role{Path: refOsio, Name: "osio",
		AWSGroups: []qontract.Ref{
			{Path: "/aws/osio/groups/console.yml", Name: "console", Account: "osio"},
			{Path: "/aws/osio/groups/readonly.yml", Name: "readonly", Account: "osio"},
		}})
	s.AddRole(qontract.Role{Path: refReadonly, Name: "app-sre-readonly",
		AWSGroups: []qontract.Ref{{Path: "/aws/app-sre/groups/ro.yml", Name: "ro", Account: "app-sre"}}})
	s.AddRole(qontract.Role{Path: refData, Name: "osio-data",
		UserPolicies: []qontract.Ref{
			{Path: "/aws/osio/policies/s3-read.yml", Name: "s3-read", Account: "osio"},
			{Path: "/aws/osio-dev/policies/s3-write.yml", Name: "s3-write", Account: "osio-dev"},
		}})
	s.AddRole(qontract.Role{Path: refViewer, Name: "viewer"})
	s.AddUser(qontract.User{Path: "/teams/devtools/users/jdoe.yml", Name: "Jane Doe", OrgUsername: "jdoe",
		GithubUsername: "janedoe", PublicGPGKey: gpgKey, Roles: userRefs})
	s.AddUser(qontract.User{Path: "/teams/devtools/users/bob.yml", Name: "Bob", OrgUsername: "bob"})
	return s
}

func TestClientUser(t *testing.T) {
	s := newQontract(t)
	want := &User{
		Path: "/teams/devtools/users/jdoe.yml", Name: "Jane Doe", OrgUsername: "jdoe", PublicGPGKey: gpgKey,
		Roles: []Role{
			{Path: refOsioDev, Name: "osio-dev", Accounts: []string{"osio-dev"}},
			{Path: refOsio, Name: "osio", Accounts: []string{"osio"}},
			{Path: refReadonly, Name: "app-sre-readonly", Accounts: []string{"app-sre"}},
			{Path: refData, Name: "osio-data", Accounts: []string{"osio", "osio-dev"}},
			{Path: refViewer, Name: "viewer"},
		},
	}
	for _, tc := range []struct {
		name string
		opts []ClientOption
	}{
		{"all users, filtered on the client", nil},
		{"server-side filter", []ClientOption{WithServerFilter()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewClient(s.URL(), qtoken, tc.opts...)
			u, err := c.User(context.Background(), "jdoe")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(u, want) {
				t.Fatalf("got  %+v\nwant %+v", u, want)
			}
			bob, err := c.User(context.Background(), "bob")
			if err != nil {
				t.Fatal(err)
			}
			if bob.PublicGPGKey != "" || bob.Roles != nil {
				t.Fatalf("bob: %+v", bob)
			}
			_, err = c.User(context.Background(), "nobody")
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("unknown user: %v", err)
			}
		})
	}
	reqs := s.Requests()
	if got := reqs[len(reqs)-1]; got.Authorization != "Bearer "+qtoken || got.Variables["filter"] == nil {
		t.Fatalf("last request: %+v", got)
	}
}

func TestRolesGranting(t *testing.T) {
	u := &User{Roles: []Role{
		{Path: refOsioDev, Accounts: []string{"osio-dev"}},
		{Path: refOsio, Accounts: []string{"osio"}},
		{Path: refData, Accounts: []string{"osio", "osio-dev"}},
		{Path: refViewer},
	}}
	paths := func(rs []Role) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Path)
		}
		return out
	}
	for account, want := range map[string][]string{
		"osio":     {refOsio, refData},
		"osio-dev": {refOsioDev, refData},
		"other":    nil,
	} {
		if got := paths(u.RolesGranting(account)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %q, want %q", account, got, want)
		}
	}
}

func TestClientAccount(t *testing.T) {
	s := newQontract(t)
	c := NewClient(s.URL(), qtoken)
	a, err := c.Account(context.Background(), "osio")
	if err != nil {
		t.Fatal(err)
	}
	if *a != (Account{Path: "/aws/osio/account.yml", Name: "osio", UID: "386414299200"}) {
		t.Fatalf("%+v", a)
	}
	if RepoPath(a.Path) != "data/aws/osio/account.yml" {
		t.Fatal(RepoPath(a.Path))
	}
	if _, err := c.Account(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("%v", err)
	}
}

func TestClientErrors(t *testing.T) {
	s := newQontract(t)
	weird := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/notjson":
			_, _ = w.Write([]byte("<html>" + r.Header.Get("Authorization") + "</html>"))
		case "/nodata":
			_, _ = w.Write([]byte(`{"data": null}`))
		case "/echo":
			// A server that echoes the credentials in its error must not
			// get them into ours.
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"errors": [{"message": "bad auth ` + r.Header.Get("Authorization") + `"}]}`))
		case "/dup":
			_, _ = w.Write([]byte(`{"data": {"users_v1": [{"path": "/a.yml", "org_username": "x"}, {"path": "/b.yml", "org_username": "x"}]}}`))
		case "/slow":
			time.Sleep(200 * time.Millisecond)
		}
	}))
	defer weird.Close()

	tests := []struct {
		name string
		c    *Client
		user string
		want string
	}{
		{"wrong token", NewClient(s.URL(), "wrong-"+qtoken), "jdoe", "HTTP 401"},
		{"no token", NewClient(s.URL(), ""), "jdoe", "HTTP 401"},
		{"not JSON", NewClient(weird.URL+"/notjson", qtoken), "jdoe", "not JSON"},
		{"no data", NewClient(weird.URL+"/nodata", qtoken), "jdoe", "no data"},
		{"GraphQL errors echoing the token", NewClient(weird.URL+"/echo", qtoken), "jdoe", "bad auth Bearer [redacted]"},
		{"two users with one org_username", NewClient(weird.URL+"/dup", qtoken), "x", "two users"},
		{"timeout", NewClient(weird.URL+"/slow", qtoken, WithHTTPClient(&http.Client{Timeout: 50 * time.Millisecond})), "jdoe", "Timeout"},
		{"credentials in the URL", NewClient("http://user:pw@127.0.0.1:1/graphql", qtoken), "jdoe", "http://127.0.0.1:1/graphql"},
		{"empty name", NewClient(s.URL(), qtoken), "", "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.c.User(context.Background(), tc.user)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), qtoken) || strings.Contains(err.Error(), "pw@") {
				t.Fatalf("a secret leaked into %q", err)
			}
		})
	}

	t.Run("server failure then recovery", func(t *testing.T) {
		c := NewClient(s.URL(), qtoken)
		s.FailNext(1, 502)
		if _, err := c.Account(context.Background(), "osio"); err == nil || !strings.Contains(err.Error(), "502") {
			t.Fatalf("%v", err)
		}
		if _, err := c.Account(context.Background(), "osio"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := NewClient(s.URL(), qtoken).User(ctx, "jdoe"); !errors.Is(err, context.Canceled) {
			t.Fatalf("%v", err)
		}
	})

	t.Run("token with its own scheme is sent as is", func(t *testing.T) {
		basic, err := qontract.New(qontract.Options{Token: "Basic dXNlcjpwdw=="})
		if err != nil {
			t.Fatal(err)
		}
		defer basic.Close()
		basic.AddAccount(qontract.Account{Name: "osio"})
		if _, err := NewClient(basic.URL(), "Basic dXNlcjpwdw==").Account(context.Background(), "osio"); err != nil {
			t.Fatal(err)
		}
	})
}
