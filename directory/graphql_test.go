package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// usersAnswer is shaped like qontract-server's answer to usersQuery.
const usersAnswer = `{
  "data": {
    "users": [
      {
        "path": "/teams/osio/users/jdoe.yml",
        "name": "Jane Doe",
        "org_username": "jdoe",
        "github_username": "janedoe",
        "public_gpg_key": "mDMEawiHLBYJKwYBBAHaRw8BAQdAWhJcWpf4Q+iHGN5gx9EtwLdWU8cEq0r7xJk2NAF2DOi0\n",
        "roles": [
          {"path": "/teams/osio/roles/osio-dev.yml"},
          {"path": "/teams/osio/roles/osio-prod-readonly.yml"}
        ]
      },
      {
        "path": "/teams/osio/users/bsmith.yml",
        "name": "Bob Smith",
        "org_username": "bsmith",
        "github_username": "bobsmith",
        "public_gpg_key": null,
        "roles": []
      },
      {
        "path": "/teams/other/users/ckent.yml",
        "name": "Clark Kent",
        "org_username": "ckent",
        "github_username": "ckent",
        "public_gpg_key": "mQINBGH...",
        "roles": null
      }
    ]
  }
}`

type gqlServer struct {
	*httptest.Server
	requests atomic.Int32
	lastAuth atomic.Value // string
}

func newGQLServer(t *testing.T, status int, answer string) *gqlServer {
	t.Helper()
	g := &gqlServer{}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.requests.Add(1)
		g.lastAuth.Store(r.Header.Get("Authorization"))
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want POST application/json", http.StatusBadRequest)
			return
		}
		var req struct {
			Query     string         `json:"query"`
			Variables map[string]any `json:"variables"`
		}
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &req); err != nil || !strings.Contains(req.Query, "users_v1") ||
			!strings.Contains(req.Query, "org_username") || !strings.Contains(req.Query, "public_gpg_key") ||
			!strings.Contains(req.Query, "roles") {
			http.Error(w, "bad query", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	t.Cleanup(g.Close)
	return g
}

func TestGraphQLDirectory(t *testing.T) {
	srv := newGQLServer(t, http.StatusOK, usersAnswer)
	d := &GraphQLDirectory{Endpoint: srv.URL, MailDomain: "example.com"}
	ctx := context.Background()
	tests := []struct {
		name   string
		lookup func() (*Person, error)
		want   *Person
	}{
		{"by org username", func() (*Person, error) { return d.ByOrgUsername(ctx, "jdoe") }, &Person{
			OrgUsername: "jdoe", Email: "jdoe@example.com", Name: "Jane Doe",
			PublicGPGKey: "mDMEawiHLBYJKwYBBAHaRw8BAQdAWhJcWpf4Q+iHGN5gx9EtwLdWU8cEq0r7xJk2NAF2DOi0",
			UserFile:     "/teams/osio/users/jdoe.yml"}},
		{"other case", func() (*Person, error) { return d.ByOrgUsername(ctx, "JDoe") }, &Person{
			OrgUsername: "jdoe", Email: "jdoe@example.com", Name: "Jane Doe",
			PublicGPGKey: "mDMEawiHLBYJKwYBBAHaRw8BAQdAWhJcWpf4Q+iHGN5gx9EtwLdWU8cEq0r7xJk2NAF2DOi0",
			UserFile:     "/teams/osio/users/jdoe.yml"}},
		{"no key", func() (*Person, error) { return d.ByEmailLocalPart(ctx, "bsmith") }, &Person{
			OrgUsername: "bsmith", Email: "bsmith@example.com", Name: "Bob Smith", UserFile: "/teams/osio/users/bsmith.yml"}},
		{"unknown", func() (*Person, error) { return d.ByOrgUsername(ctx, "nobody") }, nil},
		{"github username is not an org username", func() (*Person, error) { return d.ByOrgUsername(ctx, "janedoe") }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.lookup()
			if tt.want == nil {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("got %+v, %v; want ErrNotFound", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != *tt.want {
				t.Errorf("got %+v\nwant %+v", *got, *tt.want)
			}
		})
	}
	if auth := srv.lastAuth.Load(); auth != "" {
		t.Errorf("Authorization sent without one configured: %q", auth)
	}
}

func TestGraphQLAuthorization(t *testing.T) {
	tests := []struct{ configured, sent string }{
		{"s3cr3t-token", "Bearer s3cr3t-token"},
		{"Basic dXNlcjpzM2NyM3Q=", "Basic dXNlcjpzM2NyM3Q="},
		{"Bearer abc.def", "Bearer abc.def"},
	}
	for _, tt := range tests {
		t.Run(tt.configured, func(t *testing.T) {
			srv := newGQLServer(t, http.StatusOK, usersAnswer)
			d := &GraphQLDirectory{Endpoint: srv.URL, MailDomain: "example.com", Authorization: tt.configured}
			if _, err := d.ByOrgUsername(context.Background(), "jdoe"); err != nil {
				t.Fatal(err)
			}
			if got := srv.lastAuth.Load(); got != tt.sent {
				t.Errorf("Authorization = %q, want %q", got, tt.sent)
			}
			if s := fmt.Sprint(d); strings.Contains(s, tt.configured) || !strings.Contains(s, "REDACTED") {
				t.Errorf("String() = %q", s)
			}
		})
	}
}

func TestGraphQLErrors(t *testing.T) {
	const token = "tok-s3cr3t"
	tests := []struct {
		name, answer string
		status       int
		dir          func(d *GraphQLDirectory)
		want         string
	}{
		{name: "HTTP 401", status: 401, answer: `{"message":"bad token tok-s3cr3t"}`, want: "HTTP 401"},
		{name: "HTTP 500", status: 500, answer: strings.Repeat("x", 1000), want: "HTTP 500"},
		{name: "GraphQL errors", status: 200, answer: `{"errors":[{"message":"Cannot query field \"users_v1\""},{"message":"second"}]}`, want: "Cannot query field"},
		{name: "not JSON", status: 200, answer: `<html>proxy login</html>`, want: "decoding"},
		{name: "no data", status: 200, answer: `{}`, want: "no data"},
		{name: "no mail domain", status: 200, answer: usersAnswer, dir: func(d *GraphQLDirectory) { d.MailDomain = "" }, want: "MailDomain"},
		{name: "no endpoint", status: 200, answer: usersAnswer, dir: func(d *GraphQLDirectory) { d.Endpoint = "" }, want: "Endpoint"},
		{name: "unreachable", status: 200, answer: usersAnswer, dir: func(d *GraphQLDirectory) { d.Endpoint = "http://127.0.0.1:1/graphql" }, want: "querying"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newGQLServer(t, tt.status, tt.answer)
			d := &GraphQLDirectory{Endpoint: srv.URL, MailDomain: "example.com", Authorization: token}
			if tt.dir != nil {
				tt.dir(d)
			}
			p, err := d.ByOrgUsername(context.Background(), "jdoe")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %+v, %v; want error with %q", p, err, tt.want)
			}
			if errors.Is(err, ErrNotFound) {
				t.Errorf("a failing directory must not say not found: %v", err)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("error shows the token: %v", err)
			}
			if len(err.Error()) > 400 {
				t.Errorf("error is %d bytes long", len(err.Error()))
			}
		})
	}
}

func TestGraphQLCancelAndCache(t *testing.T) {
	srv := newGQLServer(t, http.StatusOK, usersAnswer)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d := &GraphQLDirectory{Endpoint: srv.URL, MailDomain: "example.com"}
	if _, err := d.ByOrgUsername(ctx, "jdoe"); err == nil {
		t.Fatal("lookup with a cancelled context succeeded")
	}

	before := srv.requests.Load()
	for i := 0; i < 3; i++ {
		if _, err := d.ByOrgUsername(context.Background(), "jdoe"); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.requests.Load() - before; n != 3 {
		t.Errorf("without a cache: %d requests, want 3", n)
	}

	d.CacheFor = time.Hour
	before = srv.requests.Load()
	for _, name := range []string{"jdoe", "bsmith", "ckent", "nobody"} {
		_, _ = d.ByOrgUsername(context.Background(), name)
	}
	if n := srv.requests.Load() - before; n != 1 {
		t.Errorf("with a cache: %d requests, want 1", n)
	}
}
