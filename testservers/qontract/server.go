// Package qontract is a minimal stand-in for app-interface's GraphQL API
// (qontract-server), for tests: an HTTP server on 127.0.0.1 that answers
// POST /graphql with {query, variables} from in-memory users, roles and AWS
// accounts added with AddUser, AddRole and AddAccount.
//
// What it models:
//
//   - The root fields users_v1 and awsaccounts_v1 (aliases allowed, several
//     root fields in one query allowed), answered as {"data": {...}} in the
//     documented shapes:
//     users_v1: [{path, name, org_username, github_username, public_gpg_key,
//     roles: [{path, name, aws_groups: [{path, name, account: {path, name,
//     uid}}], user_policies: [{path, name, account: {...}}]}]}];
//     awsaccounts_v1: [{path, name, uid}].
//     Absent lists and strings are null, as qontract-server gives them.
//   - The arguments path (both fields), name (awsaccounts_v1) and filter (a
//     JSON object of field: value equalities, e.g. {org_username: "jdoe"}),
//     given literally or as $variables.
//   - A role a user refers to that was never added is a GraphQL error (a
//     dangling $ref), as is an account a group or policy names that was
//     never added.
//   - Options.Token: when set, "Authorization: Bearer TOKEN" (or the bare
//     TOKEN) is required; anything else answers 401.
//   - FailNext makes the next n requests answer an HTTP status.
//
// What it does NOT model (be careful what a passing test proves): it does
// not parse GraphQL beyond finding the root fields and their arguments, and
// it does not honour selection sets: every field it knows is returned
// whatever the query selects (so a query asking for a field the real schema
// lacks still passes here). No fragments, directives, introspection,
// mutations, schema versions/bundle SHAs, filter operators other than
// equality, or GET requests.
package qontract

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"unicode"
)

// Account is an AWS account (/aws/account-1.yml).
type Account struct {
	Path, Name, UID string
}

// Ref is one of a role's aws_groups or user_policies: its file's path and
// name, and the name of the account it belongs to.
type Ref struct {
	Path, Name string
	Account    string
}

// Role is a role file (/access/role-1.yml).
type Role struct {
	Path, Name   string
	AWSGroups    []Ref
	UserPolicies []Ref
}

// User is a user file (/access/user-1.yml). Roles are role paths.
type User struct {
	Path, Name, OrgUsername, GithubUsername string
	PublicGPGKey                            string
	Roles                                   []string
}

// Request is one request the server answered (or refused).
type Request struct {
	Query         string
	Variables     map[string]any
	Authorization string
	Status        int
}

// Options configures a Server.
type Options struct {
	// Token, when set, is required as "Authorization: Bearer TOKEN" (or the
	// bare TOKEN, as qontract-reconcile sends it).
	Token string
}

// Server is the GraphQL test server. Its methods are safe for concurrent use.
type Server struct {
	opts Options
	ln   net.Listener
	srv  *http.Server

	mu       sync.Mutex
	users    []User
	roles    map[string]Role
	accounts []Account
	requests []Request
	failN    int
	failCode int
}

// New starts a server on 127.0.0.1 on a free port.
func New(opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, ln: ln, roles: map[string]Role{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/graphql", s.handle)
	s.srv = &http.Server{Handler: mux}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is the GraphQL endpoint, http://127.0.0.1:PORT/graphql.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + "/graphql" }

// Close stops the server.
func (s *Server) Close() { _ = s.srv.Close() }

// AddUser adds or replaces (by OrgUsername) a user.
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u.Roles = slices.Clone(u.Roles)
	for i := range s.users {
		if s.users[i].OrgUsername == u.OrgUsername {
			s.users[i] = u
			return
		}
	}
	s.users = append(s.users, u)
}

// AddRole adds or replaces (by Path) a role.
func (s *Server) AddRole(r Role) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.AWSGroups, r.UserPolicies = slices.Clone(r.AWSGroups), slices.Clone(r.UserPolicies)
	s.roles[r.Path] = r
}

// AddAccount adds or replaces (by Name) an AWS account.
func (s *Server) AddAccount(a Account) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.accounts {
		if s.accounts[i].Name == a.Name {
			s.accounts[i] = a
			return
		}
	}
	s.accounts = append(s.accounts, a)
}

// FailNext makes the next n requests answer HTTP status code (after
// authentication) with a GraphQL error body.
func (s *Server) FailNext(n, code int) {
	s.mu.Lock()
	s.failN, s.failCode = n, code
	s.mu.Unlock()
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

type obj = map[string]any

type gqlError struct {
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	rec := Request{Authorization: r.Header.Get("Authorization")}
	code, resp := s.answer(r, &rec)
	rec.Status = code
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
	if code == http.StatusUnauthorized {
		http.Error(w, "Unauthorized", code)
		return
	}
	writeJSON(w, code, resp)
}

func errResp(msg string, args ...any) obj {
	return obj{"errors": []gqlError{{Message: fmt.Sprintf(msg, args...)}}}
}

func (s *Server) answer(r *http.Request, rec *Request) (int, obj) {
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, errResp("only POST is served")
	}
	if t := s.opts.Token; t != "" {
		if a := r.Header.Get("Authorization"); a != "Bearer "+t && a != t {
			return http.StatusUnauthorized, nil
		}
	}
	var body struct {
		Query     string         `json:"query"`
		Variables map[string]any `json:"variables"`
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return http.StatusBadRequest, errResp("reading the body: %v", err)
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return http.StatusBadRequest, errResp("the body is not a JSON {query, variables} object: %v", err)
	}
	rec.Query, rec.Variables = body.Query, body.Variables

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failN > 0 {
		s.failN--
		return s.failCode, errResp("injected failure")
	}
	fields, err := rootFields(body.Query)
	if err != nil {
		return http.StatusBadRequest, errResp("Syntax Error: %v", err)
	}
	allowed := map[string][]string{"users_v1": {"path", "filter"}, "awsaccounts_v1": {"path", "name", "filter"}}
	for _, f := range fields {
		known, ok := allowed[f.name]
		if !ok {
			return http.StatusBadRequest, errResp("Cannot query field %q on type \"Query\".", f.name)
		}
		for k := range f.args {
			if !slices.Contains(known, k) {
				return http.StatusBadRequest, errResp("Unknown argument %q on field \"Query.%s\".", k, f.name)
			}
		}
	}
	data := obj{}
	for _, f := range fields {
		args, err := f.resolveArgs(body.Variables)
		if err != nil {
			return http.StatusBadRequest, errResp("%v", err)
		}
		var v any
		switch f.name {
		case "users_v1":
			v, err = s.users1(args)
		case "awsaccounts_v1":
			v, err = s.accounts1(args)
		default:
			return http.StatusBadRequest, errResp("Cannot query field %q on type \"Query\".", f.name)
		}
		if err != nil {
			return http.StatusOK, obj{"data": nil, "errors": []gqlError{{Message: err.Error()}}}
		}
		data[f.alias] = v
	}
	return http.StatusOK, obj{"data": data}
}

func orNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// match applies path/name/filter arguments to an object's fields.
func match(args map[string]any, allowed []string, fields obj) (bool, error) {
	for k, v := range args {
		switch {
		case k == "filter":
			if v == nil {
				continue
			}
			f, ok := v.(map[string]any)
			if !ok {
				return false, fmt.Errorf("filter must be an object, got %T", v)
			}
			for fk, fv := range f {
				got, known := fields[fk]
				if !known {
					return false, fmt.Errorf("qontract test server: unsupported filter field %q", fk)
				}
				if _, scalar := fv.(string); !scalar {
					return false, fmt.Errorf("qontract test server: only string equality filters are modelled (field %q)", fk)
				}
				if got != fv {
					return false, nil
				}
			}
		case slices.Contains(allowed, k):
			if v != nil && fields[k] != v {
				return false, nil
			}
		default:
			return false, fmt.Errorf("Unknown argument %q", k)
		}
	}
	return true, nil
}

func (s *Server) accountObj(name string) (obj, error) {
	for _, a := range s.accounts {
		if a.Name == name {
			return obj{"path": a.Path, "name": a.Name, "uid": a.UID}, nil
		}
	}
	return nil, fmt.Errorf("dangling reference: account %q does not exist", name)
}

func (s *Server) refs(list []Ref) (any, error) {
	if len(list) == 0 {
		return nil, nil
	}
	out := make([]obj, len(list))
	for i, r := range list {
		a, err := s.accountObj(r.Account)
		if err != nil {
			return nil, err
		}
		out[i] = obj{"path": r.Path, "name": r.Name, "account": a}
	}
	return out, nil
}

func (s *Server) users1(args map[string]any) ([]obj, error) {
	out := []obj{}
	for _, u := range s.users {
		fields := obj{"path": u.Path, "name": u.Name, "org_username": u.OrgUsername, "github_username": orNil(u.GithubUsername)}
		ok, err := match(args, []string{"path"}, fields)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		fields["public_gpg_key"] = orNil(u.PublicGPGKey)
		var roles []obj
		for _, p := range u.Roles {
			r, ok := s.roles[p]
			if !ok {
				return nil, fmt.Errorf("dangling reference: %s refers to role %s, which does not exist", u.Path, p)
			}
			groups, err := s.refs(r.AWSGroups)
			if err != nil {
				return nil, err
			}
			policies, err := s.refs(r.UserPolicies)
			if err != nil {
				return nil, err
			}
			roles = append(roles, obj{"path": r.Path, "name": r.Name, "aws_groups": groups, "user_policies": policies})
		}
		if roles != nil {
			fields["roles"] = roles
		} else {
			fields["roles"] = nil
		}
		out = append(out, fields)
	}
	return out, nil
}

func (s *Server) accounts1(args map[string]any) ([]obj, error) {
	out := []obj{}
	for _, a := range s.accounts {
		fields := obj{"path": a.Path, "name": a.Name, "uid": a.UID}
		ok, err := match(args, []string{"path", "name"}, fields)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, fields)
		}
	}
	return out, nil
}

// field is one root field of a query: its name, the key it answers under,
// and its arguments (values are literals or *variable).
type field struct {
	alias, name string
	args        map[string]any
}

type variable string

func (f field) resolveArgs(vars map[string]any) (map[string]any, error) {
	var resolve func(v any) (any, error)
	resolve = func(v any) (any, error) {
		switch v := v.(type) {
		case variable:
			val, ok := vars[string(v)]
			if !ok {
				return nil, nil // an unset nullable variable
			}
			return val, nil
		case map[string]any:
			out := map[string]any{}
			for k, x := range v {
				r, err := resolve(x)
				if err != nil {
					return nil, err
				}
				out[k] = r
			}
			return out, nil
		}
		return v, nil
	}
	out := map[string]any{}
	for k, v := range f.args {
		r, err := resolve(v)
		if err != nil {
			return nil, err
		}
		out[k] = r
	}
	return out, nil
}

// lexer is just enough of GraphQL's lexical grammar to find root fields.
type lexer struct {
	s   string
	pos int
}

func (l *lexer) skip() {
	for l.pos < len(l.s) {
		c := l.s[l.pos]
		switch {
		case c == '#':
			for l.pos < len(l.s) && l.s[l.pos] != '\n' {
				l.pos++
			}
		case c == ',' || unicode.IsSpace(rune(c)):
			l.pos++
		default:
			return
		}
	}
}

func (l *lexer) peek() byte {
	l.skip()
	if l.pos >= len(l.s) {
		return 0
	}
	return l.s[l.pos]
}

func isNameByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func (l *lexer) name() (string, error) {
	l.skip()
	start := l.pos
	for l.pos < len(l.s) && isNameByte(l.s[l.pos]) {
		l.pos++
	}
	if start == l.pos {
		return "", fmt.Errorf("expected a name at offset %d", start)
	}
	return l.s[start:l.pos], nil
}

func (l *lexer) expect(c byte) error {
	if l.peek() != c {
		return fmt.Errorf("expected %q at offset %d", c, l.pos)
	}
	l.pos++
	return nil
}

// skipBlock skips a balanced (...) or {...} group, strings included.
func (l *lexer) skipBlock(open, close byte) error {
	if err := l.expect(open); err != nil {
		return err
	}
	depth := 1
	for l.pos < len(l.s) {
		c := l.s[l.pos]
		switch c {
		case '"':
			if _, err := l.str(); err != nil {
				return err
			}
			continue
		case '#':
			l.skip()
			continue
		case open:
			depth++
		case close:
			depth--
			if depth == 0 {
				l.pos++
				return nil
			}
		}
		l.pos++
	}
	return fmt.Errorf("unbalanced %q", open)
}

func (l *lexer) str() (string, error) {
	l.skip()
	if l.pos >= len(l.s) || l.s[l.pos] != '"' {
		return "", fmt.Errorf("expected a string at offset %d", l.pos)
	}
	start := l.pos
	l.pos++
	for l.pos < len(l.s) {
		switch l.s[l.pos] {
		case '\\':
			l.pos += 2
			continue
		case '"':
			l.pos++
			var v string
			if err := json.Unmarshal([]byte(l.s[start:l.pos]), &v); err != nil {
				return "", fmt.Errorf("bad string at offset %d", start)
			}
			return v, nil
		}
		l.pos++
	}
	return "", errors.New("unterminated string")
}

// value reads an argument value: $variable, "string", {object}, [list],
// or a bare word (number, true/false/null, enum).
func (l *lexer) value() (any, error) {
	switch c := l.peek(); {
	case c == '$':
		l.pos++
		n, err := l.name()
		return variable(n), err
	case c == '"':
		return l.str()
	case c == '{':
		l.pos++
		out := map[string]any{}
		for l.peek() != '}' {
			k, err := l.name()
			if err != nil {
				return nil, err
			}
			if err := l.expect(':'); err != nil {
				return nil, err
			}
			v, err := l.value()
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		l.pos++
		return out, nil
	case c == '[':
		l.pos++
		var out []any
		for l.peek() != ']' {
			v, err := l.value()
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		l.pos++
		return out, nil
	default:
		start := l.pos
		for l.pos < len(l.s) && (isNameByte(l.s[l.pos]) || l.s[l.pos] == '-' || l.s[l.pos] == '.') {
			l.pos++
		}
		if start == l.pos {
			return nil, fmt.Errorf("unexpected %q at offset %d", c, start)
		}
		switch w := l.s[start:l.pos]; w {
		case "null":
			return nil, nil
		case "true":
			return true, nil
		case "false":
			return false, nil
		default:
			return w, nil
		}
	}
}

// rootFields finds the root fields of a query operation (anonymous "{...}"
// or "query Name($v: T) {...}").
func rootFields(q string) ([]field, error) {
	l := &lexer{s: q}
	if l.peek() != '{' {
		op, err := l.name()
		if err != nil {
			return nil, err
		}
		if op != "query" {
			return nil, fmt.Errorf("only query operations are served, not %q", op)
		}
		if isNameByte(l.peek()) {
			if _, err := l.name(); err != nil {
				return nil, err
			}
		}
		if l.peek() == '(' {
			if err := l.skipBlock('(', ')'); err != nil {
				return nil, err
			}
		}
	}
	if err := l.expect('{'); err != nil {
		return nil, err
	}
	var out []field
	for l.peek() != '}' {
		if l.peek() == 0 {
			return nil, errors.New("unexpected end of query")
		}
		n, err := l.name()
		if err != nil {
			return nil, err
		}
		f := field{alias: n, name: n}
		if l.peek() == ':' {
			l.pos++
			if f.name, err = l.name(); err != nil {
				return nil, err
			}
		}
		if l.peek() == '(' {
			l.pos++
			f.args = map[string]any{}
			for l.peek() != ')' {
				k, err := l.name()
				if err != nil {
					return nil, err
				}
				if err := l.expect(':'); err != nil {
					return nil, err
				}
				if f.args[k], err = l.value(); err != nil {
					return nil, err
				}
			}
			l.pos++
		}
		if l.peek() == '{' {
			if err := l.skipBlock('{', '}'); err != nil {
				return nil, err
			}
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, errors.New("empty selection set")
	}
	if rest := strings.TrimSpace(l.s[l.pos+1:]); rest != "" {
		return nil, errors.New("only one operation per request is served")
	}
	return out, nil
}
