package appinterface

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
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
		Accounts: []Account{
			{Path: "/aws/osio-dev/account.yml", Name: "osio-dev", UID: "619539278362"},
			{Path: "/aws/osio/account.yml", Name: "osio", UID: "386414299200"},
			{Path: "/aws/app-sre/account.yml", Name: "app-sre", UID: "111111111111"},
		},
	}
	for _, tc := range []struct {
		name string
		opts []ClientOption
	}{
		{"all users, filtered on the client", []ClientOption{WithAllUsers()}},
		{"server-side filter (the default)", nil},
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
			if a, ok := u.GrantedAccount("osio"); !ok || a.Path != "/aws/osio/account.yml" {
				t.Fatalf("GrantedAccount(osio) = %+v, %v", a, ok)
			}
			if _, ok := u.GrantedAccount("other"); ok {
				t.Fatal("GrantedAccount(other) found one")
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
	// Each client asked once per user: the all-users one without a
	// filter, the default one with a filter naming the user.
	want3 := func(filter bool) []qontract.Query {
		var out []qontract.Query
		for _, name := range []string{"jdoe", "bob", "nobody"} {
			q := qontract.Query{Field: "users_v1"}
			if filter {
				q.Filter = map[string]any{"org_username": name}
			}
			out = append(out, q)
		}
		return out
	}
	if got := s.Queries(); !reflect.DeepEqual(got, append(want3(false), want3(true)...)) {
		t.Fatalf("queries: %+v", got)
	}
}

// fakeClock is a clock that moves when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// A found user is kept for the cache's TTL: the lookups of one check make
// one query, and a later one, after the TTL, asks again. Unknown users and
// failures are not kept; what a caller gets is its own copy.
func TestClientUserCache(t *testing.T) {
	s := newQontract(t)
	clock := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	c := NewClient(s.URL(), qtoken, WithClock(clock.Now), WithUserCache(30*time.Second, 10))
	ctx := context.Background()
	lookup := func() *User {
		t.Helper()
		u, err := c.User(ctx, "jdoe")
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	first := lookup()
	first.Roles[0].Accounts[0] = "changed by a caller"
	first.Accounts = nil
	clock.Advance(29 * time.Second)
	if again := lookup(); again.Roles[0].Accounts[0] != "osio-dev" || len(again.Accounts) != 3 {
		t.Fatalf("a caller's change reached the cache: %+v", again)
	}
	if n := s.Count("users_v1"); n != 1 {
		t.Fatalf("two lookups within the TTL made %d queries, want 1", n)
	}
	clock.Advance(time.Second)
	lookup()
	if n := s.Count("users_v1"); n != 2 {
		t.Fatalf("a lookup after the TTL made %d queries in all, want 2", n)
	}

	for range 2 {
		if _, err := c.User(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
	}
	s.FailNext(1, 502)
	if _, err := c.User(ctx, "bob"); err == nil {
		t.Fatal("an injected 502 answered")
	}
	if _, err := c.User(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if n := s.Count("users_v1"); n != 6 {
		t.Fatalf("%d queries in all, want 6: unknown users and failures are not kept", n)
	}

	off := NewClient(s.URL(), qtoken, WithUserCache(0, 0))
	for range 2 {
		if _, err := off.User(ctx, "jdoe"); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Count("users_v1"); n != 8 {
		t.Fatalf("%d queries in all, want 8: a cache of TTL 0 keeps nothing", n)
	}
}

// The cache holds at most its size: stale entries go first, then the
// oldest.
func TestClientUserCacheBounded(t *testing.T) {
	s := newQontract(t)
	for _, name := range []string{"u1", "u2", "u3", "u4"} {
		s.AddUser(qontract.User{Path: "/teams/x/users/" + name + ".yml", Name: name, OrgUsername: name})
	}
	clock := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	c := NewClient(s.URL(), qtoken, WithClock(clock.Now), WithUserCache(30*time.Second, 2))
	ctx := context.Background()
	for _, name := range []string{"u1", "u2", "u3"} {
		clock.Advance(time.Second)
		if _, err := c.User(ctx, name); err != nil {
			t.Fatal(err)
		}
		if n := c.cacheLen(); n > 2 {
			t.Fatalf("the cache holds %d users, want at most 2", n)
		}
	}
	before := s.Count("users_v1")
	for _, name := range []string{"u3", "u2"} { // kept
		if _, err := c.User(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Count("users_v1") - before; n != 0 {
		t.Fatalf("the two newest users cost %d queries, want 0", n)
	}
	if _, err := c.User(ctx, "u1"); err != nil { // the oldest, dropped
		t.Fatal(err)
	}
	if n := s.Count("users_v1") - before; n != 1 {
		t.Fatalf("the dropped user cost %d queries, want 1", n)
	}
}

// Twenty concurrent lookups of one user make one query. Each caller waits
// only as long as its own context lets it: one with a 50 ms deadline
// returns by then while the shared query takes a second, and its leaving
// does not cancel the query for the others.
func TestClientUserSharedQuery(t *testing.T) {
	s := newQontract(t)
	s.SetLatency(time.Second)
	c := NewClient(s.URL(), qtoken)

	type result struct {
		u    *User
		err  error
		took time.Duration
	}
	// The impatient caller comes first, so the query starts on its call.
	impatient := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		u, err := c.User(ctx, "jdoe")
		impatient <- result{u, err, time.Since(start)}
	}()
	for s.Count("users_v1") == 0 { // the query has reached the server
		time.Sleep(time.Millisecond)
	}
	const n = 20
	results := make(chan result, n)
	start := time.Now()
	for range n {
		go func() {
			u, err := c.User(context.Background(), "jdoe")
			results <- result{u, err, time.Since(start)}
		}()
	}
	r := <-impatient
	if !errors.Is(r.err, context.DeadlineExceeded) || r.took > 400*time.Millisecond {
		t.Fatalf("the caller with a 50ms deadline got %v, %v after %s; want DeadlineExceeded by about 50ms", r.u, r.err, r.took)
	}
	t.Logf("the caller with a 50ms deadline returned after %s", r.took.Round(time.Millisecond))
	var slowest time.Duration
	for range n {
		r := <-results
		if r.err != nil || r.u.Path != "/teams/devtools/users/jdoe.yml" {
			t.Fatalf("a patient caller got %+v, %v", r.u, r.err)
		}
		slowest = max(slowest, r.took)
	}
	if slowest < 500*time.Millisecond {
		t.Fatalf("the patient callers returned after %s: they did not wait for the shared query", slowest)
	}
	if got := s.Count("users_v1"); got != 1 {
		t.Fatalf("%d concurrent lookups of one user made %d queries, want 1", n+1, got)
	}
	t.Logf("%d patient callers shared one query; the last returned after %s", n, slowest.Round(time.Millisecond))
}

// A shared query is bounded on its own: a server that never answers costs
// the query timeout, not forever, even for callers without a deadline.
func TestClientUserQueryTimeout(t *testing.T) {
	s := newQontract(t)
	s.SetLatency(time.Minute)
	c := NewClient(s.URL(), qtoken, WithQueryTimeout(100*time.Millisecond))
	start := time.Now()
	_, err := c.User(context.Background(), "jdoe")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("got %v after %s, want DeadlineExceeded after about 100ms", err, time.Since(start))
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
