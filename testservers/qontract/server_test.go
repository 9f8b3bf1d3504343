package qontract

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRootFields(t *testing.T) {
	tests := []struct {
		q       string
		want    []field
		wantErr string
	}{
		{q: `{ users_v1 { path } }`, want: []field{{alias: "users_v1", name: "users_v1"}}},
		{q: "# c\nquery Users {\n users: users_v1 { path roles { path } }\n accts: awsaccounts_v1 { name } }",
			want: []field{{alias: "users", name: "users_v1"}, {alias: "accts", name: "awsaccounts_v1"}}},
		{q: `query U($f: JSON, $p: String = "x") { users_v1(filter: $f, path: "/a b\"}.yml") { path } }`,
			want: []field{{alias: "users_v1", name: "users_v1", args: map[string]any{"filter": variable("f"), "path": `/a b"}.yml`}}}},
		{q: `{ users_v1(filter: {org_username: "jdoe", n: 3, ok: true, no: null, l: [1, "a"]}) { path } }`,
			want: []field{{alias: "users_v1", name: "users_v1", args: map[string]any{"filter": map[string]any{
				"org_username": "jdoe", "n": "3", "ok": true, "no": nil, "l": []any{"1", "a"}}}}}},
		{q: `mutation { x }`, wantErr: "only query"},
		{q: `{ }`, wantErr: "empty"},
		{q: `{ users_v1 { path }`, wantErr: "end"},
		{q: `{ users_v1 } { x }`, wantErr: "one operation"},
		{q: `{ users_v1(path: "x) { path } }`, wantErr: "unterminated"},
	}
	for _, tc := range tests {
		got, err := rootFields(tc.q)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err = %v, want %q", tc.q, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.q, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q:\n got %#v\nwant %#v", tc.q, got, tc.want)
		}
	}
}

func post(t *testing.T, url, auth, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func gql(q string, vars map[string]any) string {
	b, _ := json.Marshal(map[string]any{"query": q, "variables": vars})
	return string(b)
}

func TestServer(t *testing.T) {
	s, err := New(Options{Token: "qtok"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.AddAccount(Account{Path: "/aws/osio/account.yml", Name: "osio", UID: "386414299200"})
	s.AddAccount(Account{Path: "/aws/osio-dev/account.yml", Name: "osio-dev", UID: "619539278362"})
	s.AddRole(Role{Path: "/r/osio.yml", Name: "osio",
		AWSGroups:    []Ref{{Path: "/aws/osio/groups/devs.yml", Name: "devs", Account: "osio"}},
		UserPolicies: []Ref{{Path: "/aws/osio-dev/policies/p.yml", Name: "p", Account: "osio-dev"}}})
	s.AddRole(Role{Path: "/r/empty.yml", Name: "empty"})
	s.AddUser(User{Path: "/u/jdoe.yml", Name: "Jane", OrgUsername: "jdoe", GithubUsername: "janedoe",
		PublicGPGKey: "mQINB", Roles: []string{"/r/osio.yml", "/r/empty.yml"}})
	s.AddUser(User{Path: "/u/bob.yml", Name: "Bob", OrgUsername: "bob"})

	const usersQ = `query { users_v1(filter: $f) { path name org_username public_gpg_key roles { path name aws_groups { account { name } } user_policies { account { name } } } } }`

	t.Run("auth", func(t *testing.T) {
		if code, _ := post(t, s.URL(), "", gql(usersQ, nil)); code != 401 {
			t.Fatalf("no token: %d", code)
		}
		if code, _ := post(t, s.URL(), "Bearer nope", gql(usersQ, nil)); code != 401 {
			t.Fatalf("bad token: %d", code)
		}
		if code, _ := post(t, s.URL(), "qtok", gql(usersQ, nil)); code != 200 {
			t.Fatalf("bare token: %d", code)
		}
	})

	t.Run("users filtered", func(t *testing.T) {
		code, out := post(t, s.URL(), "Bearer qtok", gql(usersQ, map[string]any{"f": map[string]any{"org_username": "jdoe"}}))
		if code != 200 {
			t.Fatalf("%d %v", code, out)
		}
		want := map[string]any{"data": map[string]any{"users_v1": []any{map[string]any{
			"path": "/u/jdoe.yml", "name": "Jane", "org_username": "jdoe", "github_username": "janedoe", "public_gpg_key": "mQINB",
			"roles": []any{
				map[string]any{"path": "/r/osio.yml", "name": "osio",
					"aws_groups": []any{map[string]any{"path": "/aws/osio/groups/devs.yml", "name": "devs",
						"account": map[string]any{"path": "/aws/osio/account.yml", "name": "osio", "uid": "386414299200"}}},
					"user_policies": []any{map[string]any{"path": "/aws/osio-dev/policies/p.yml", "name": "p",
						"account": map[string]any{"path": "/aws/osio-dev/account.yml", "name": "osio-dev", "uid": "619539278362"}}}},
				map[string]any{"path": "/r/empty.yml", "name": "empty", "aws_groups": nil, "user_policies": nil},
			}}}}}
		if !reflect.DeepEqual(out, want) {
			t.Fatalf("got  %v\nwant %v", out, want)
		}
	})

	t.Run("all users, null fields", func(t *testing.T) {
		_, out := post(t, s.URL(), "Bearer qtok", gql(`{ users_v1 { path } }`, nil))
		users := out["data"].(map[string]any)["users_v1"].([]any)
		if len(users) != 2 {
			t.Fatalf("%v", users)
		}
		bob := users[1].(map[string]any)
		if bob["roles"] != nil || bob["public_gpg_key"] != nil || bob["github_username"] != nil {
			t.Fatalf("bob: %v", bob)
		}
	})

	t.Run("accounts by name literal, alias", func(t *testing.T) {
		_, out := post(t, s.URL(), "Bearer qtok", gql(`{ a: awsaccounts_v1(name: "osio-dev") { path name uid } }`, nil))
		want := map[string]any{"data": map[string]any{"a": []any{map[string]any{"path": "/aws/osio-dev/account.yml", "name": "osio-dev", "uid": "619539278362"}}}}
		if !reflect.DeepEqual(out, want) {
			t.Fatalf("%v", out)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			body string
			code int
			msg  string
		}{
			{gql(`{ clusters_v1 { name } }`, nil), 400, "Cannot query field"},
			{gql(`{ users_v1(org_username: "x") { path } }`, nil), 400, "Unknown argument"},
			{gql(`{ users_v1(filter: {email: "x"}) { path } }`, nil), 200, `Field \"email\" does not exist on type \"User_v1\"`},
			{gql(`{ awsaccounts_v1(filter: {org_username: "x"}) { path } }`, nil), 200, `Field \"org_username\" does not exist on type \"AWSAccount_v1\"`},
			{gql(`{ users_v1(filter: {roles: {filter: {name: "osio"}}}) { path } }`, nil), 200, "not modelled"},
			{gql(`{ users_v1(filter: {name: {like: "J%"}}) { path } }`, nil), 200, "not modelled"},
			{`{"query": 3}`, 400, "JSON"},
			{gql(`{ users_v1 { path }`, nil), 400, "Syntax Error"},
		} {
			code, out := post(t, s.URL(), "Bearer qtok", tc.body)
			b, _ := json.Marshal(out)
			if code != tc.code || !bytes.Contains(b, []byte(tc.msg)) {
				t.Errorf("%s: %d %s", tc.body, code, b)
			}
		}
	})

	t.Run("filter conditions", func(t *testing.T) {
		for _, tc := range []struct {
			filter any
			want   []any
		}{
			{map[string]any{"org_username": "jdoe"}, []any{"/u/jdoe.yml"}},
			{map[string]any{"org_username": "nobody"}, []any{}},
			{map[string]any{"org_username": "jdoe", "name": "Bob"}, []any{}},
			{map[string]any{"github_username": nil}, []any{"/u/bob.yml"}},
			{map[string]any{"public_gpg_key": map[string]any{"ne": nil}}, []any{"/u/jdoe.yml"}},
			{map[string]any{"name": map[string]any{"ne": "Jane"}}, []any{"/u/bob.yml"}},
			{map[string]any{"org_username": map[string]any{"in": []any{"bob", "jdoe", "x"}}}, []any{"/u/jdoe.yml", "/u/bob.yml"}},
			{map[string]any{}, []any{"/u/jdoe.yml", "/u/bob.yml"}},
			{nil, []any{"/u/jdoe.yml", "/u/bob.yml"}},
		} {
			code, out := post(t, s.URL(), "Bearer qtok", gql(`query U($f: JSON) { users_v1(filter: $f) { path } }`, map[string]any{"f": tc.filter}))
			data, _ := out["data"].(map[string]any)
			users, _ := data["users_v1"].([]any)
			got := []any{}
			for _, u := range users {
				got = append(got, u.(map[string]any)["path"])
			}
			if code != 200 || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("filter %v: %d %v, want %v", tc.filter, code, out, tc.want)
			}
		}
	})

	t.Run("dangling role", func(t *testing.T) {
		s.AddUser(User{Path: "/u/eve.yml", OrgUsername: "eve", Roles: []string{"/r/missing.yml"}})
		defer s.AddUser(User{Path: "/u/eve.yml", OrgUsername: "eve"})
		_, out := post(t, s.URL(), "Bearer qtok", gql(`{ users_v1 { path } }`, nil))
		if b, _ := json.Marshal(out); !bytes.Contains(b, []byte("dangling")) {
			t.Fatalf("%s", b)
		}
	})

	t.Run("FailNext and Requests", func(t *testing.T) {
		s.FailNext(1, 503)
		if code, _ := post(t, s.URL(), "Bearer qtok", gql(`{ users_v1 { path } }`, nil)); code != 503 {
			t.Fatalf("%d", code)
		}
		if code, _ := post(t, s.URL(), "Bearer qtok", gql(`{ users_v1 { path } }`, nil)); code != 200 {
			t.Fatalf("%d", code)
		}
		reqs := s.Requests()
		last := reqs[len(reqs)-1]
		if last.Status != 200 || last.Authorization != "Bearer qtok" || !strings.Contains(last.Query, "users_v1") {
			t.Fatalf("%+v", last)
		}
	})

	t.Run("GET refused", func(t *testing.T) {
		resp, err := http.Get(s.URL())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 {
			t.Fatal(resp.StatusCode)
		}
	})
}

func TestQueriesAndLatency(t *testing.T) {
	s, err := New(Options{Latency: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.AddAccount(Account{Path: "/aws/osio/account.yml", Name: "osio", UID: "1"})
	s.AddUser(User{Path: "/u/jdoe.yml", Name: "Jane", OrgUsername: "jdoe"})

	start := time.Now()
	post(t, s.URL(), "", gql(`query U($f: JSON) { u: users_v1(filter: $f) { path } a: awsaccounts_v1(name: "osio") { path } }`,
		map[string]any{"f": map[string]any{"org_username": "jdoe"}}))
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Errorf("answered in %s, want at least the 100ms latency", took)
	}
	s.SetLatency(0)
	s.FailNext(1, 502)
	post(t, s.URL(), "", gql(`{ users_v1 { path } }`, nil))
	post(t, s.URL(), "", gql(`{ users_v1 { path }`, nil)) // a syntax error is no query
	want := []Query{
		{Field: "users_v1", Filter: map[string]any{"org_username": "jdoe"}},
		{Field: "awsaccounts_v1", Args: map[string]any{"name": "osio"}},
		{Field: "users_v1"},
	}
	if got := s.Queries(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Queries() = %+v\nwant %+v", got, want)
	}
	if n := s.Count("users_v1"); n != 2 {
		t.Fatalf("Count(users_v1) = %d", n)
	}

	// A client that gives up ends the server's wait.
	s.SetLatency(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL(), strings.NewReader(gql(`{ users_v1 { path } }`, nil)))
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("a 10s latency answered within 50ms")
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the server still waits for a client that left")
	}
}
