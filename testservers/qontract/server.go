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
//   - The arguments path (both fields), name (awsaccounts_v1) and filter,
//     given literally or as $variables. filter is a JSON object of
//     conditions on the type's own fields, all of which must hold, as
//     qontract-server's generic filter has them: field: "value" (equal),
//     field: null (null or absent), field: {ne: "value"} and field: {in:
//     ["a", "b"]}. A field the type lacks is refused the way
//     qontract-server refuses it: HTTP 200, the root field null, and the
//     error `Field "X" does not exist on type "User_v1"` (AWSAccount_v1 for
//     accounts).
//   - A role a user refers to that was never added is a GraphQL error (a
//     dangling $ref), as is an account a group or policy names that was
//     never added.
//   - Options.Token: when set, "Authorization: Bearer TOKEN" (or the bare
//     TOKEN) is required; anything else answers 401.
//   - FailNext makes the next n requests answer an HTTP status.
//   - Options.Latency (or SetLatency) delays every answer to an
//     authenticated, well-formed request, as a slow or loaded server would;
//     a client that goes away ends the wait.
//   - Queries lists every root field asked for, with its filter, so that a
//     test can count queries per field (Count) and see what they asked.
//
// What it does NOT model (be careful what a passing test proves): it does
// not parse GraphQL beyond finding the root fields and their arguments, and
// it does not honour selection sets: every field it knows is returned
// whatever the query selects (so a query asking for a field the real schema
// lacks still passes here). Only the fields above exist: a filter on a
// field the real User_v1 has but this server does not model (slack_username,
// quay_username, labels...) is refused as unknown. Filters on lists and
// references (list equality, {filter: {...}} into a $ref) are refused with a
// "not modelled" error, not answered. No fragments, directives,
// introspection, mutations, schema versions/bundle SHAs, searchable-field
// arguments other than those above, or GET requests.
package qontract

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
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

// Query is one root field of one request the server received: users_v1
// or awsaccounts_v1 (the field's name, not its alias), with its filter
// argument (nil when none was given) and its other arguments, variables
// resolved.
type Query struct {
	Field  string
	Filter map[string]any
	Args   map[string]any
}

// Options configures a Server.
type Options struct {
	// Token, when set, is required as "Authorization: Bearer TOKEN" (or the
	// bare TOKEN, as qontract-reconcile sends it).
	Token string
	// Latency delays every answer by this long (0: none).
	Latency time.Duration
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
	queries  []Query
	failN    int
	failCode int
	latency  time.Duration
}

// New starts a server on 127.0.0.1 on a free port.
func New(opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, ln: ln, roles: map[string]Role{}, latency: opts.Latency}
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

// SetLatency changes how long every answer is delayed (0: none).
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	s.latency = d
	s.mu.Unlock()
}

// Queries returns the root fields asked for so far, in the order the
// requests arrived (a request with two root fields adds two), each as soon
// as its request arrives, before Latency. A request the
// server refused before reading its query (401, a body that is not JSON,
// a syntax error) adds none; one refused by FailNext adds its fields.
func (s *Server) Queries() []Query {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.queries)
}

// Count is how many of Queries ask for field (users_v1, awsaccounts_v1).
func (s *Server) Count(field string) int {
	n := 0
	for _, q := range s.Queries() {
		if q.Field == field {
			n++
		}
	}
	return n
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

type obj = map[string]any

type gqlError struct {
	Message string   `json:"message"`
	Path    []string `json:"path,omitempty"`
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

	// A query counts when it arrives; then the server takes its time.
	fields, perr := rootFields(body.Query)
	s.mu.Lock()
	for _, f := range fields {
		s.queries = append(s.queries, f.query(body.Variables))
	}
	latency := s.latency
	s.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failN > 0 {
		s.failN--
		return s.failCode, errResp("injected failure")
	}
	if perr != nil {
		return http.StatusBadRequest, errResp("Syntax Error: %v", perr)
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
	var errs []gqlError
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
			// As graphql-js does with a resolver's error: the field is null,
			// the error names it.
			data[f.alias] = nil
			errs = append(errs, gqlError{Message: err.Error(), Path: []string{f.alias}})
			continue
		}
		data[f.alias] = v
	}
	if len(errs) > 0 {
		return http.StatusOK, obj{"data": data, "errors": errs}
	}
	return http.StatusOK, obj{"data": data}
}

func orNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// schemaType is what the server knows of a root field's type: its GraphQL
// name and the fields a filter may name, its string fields and its
// references.
type schemaType struct {
	name    string
	strings []string
	refs    []string
}

func typeOf(field string) schemaType {
	switch field {
	case "users_v1":
		return schemaType{name: "User_v1",
			strings: []string{"path", "name", "org_username", "github_username", "public_gpg_key"}, refs: []string{"roles"}}
	case "awsaccounts_v1":
		return schemaType{name: "AWSAccount_v1", strings: []string{"path", "name", "uid"}}
	}
	return schemaType{}
}

// matcher turns a root field's arguments into a test on one object's
// fields, or refuses them: the filter's fields must exist on the type.
func (t schemaType) matcher(args map[string]any, searchable []string) (func(obj) bool, error) {
	var conds []func(obj) bool
	for _, k := range slices.Sorted(maps.Keys(args)) {
		v := args[k]
		switch {
		case k == "filter":
			if v == nil {
				continue
			}
			f, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("filter must be an object, got %T", v)
			}
			for _, fk := range slices.Sorted(maps.Keys(f)) {
				switch {
				case slices.Contains(t.refs, fk):
					return nil, fmt.Errorf("qontract test server: filters on the reference field %q are not modelled", fk)
				case !slices.Contains(t.strings, fk):
					return nil, fmt.Errorf("Field %q does not exist on type %q", fk, t.name)
				}
				c, err := condition(fk, f[fk])
				if err != nil {
					return nil, err
				}
				conds = append(conds, c)
			}
		case slices.Contains(searchable, k):
			if v == nil {
				continue // name: null matches all, as qontract-server has it
			}
			conds = append(conds, func(o obj) bool { return o[k] == v })
		default:
			return nil, fmt.Errorf("Unknown argument %q", k)
		}
	}
	return func(o obj) bool {
		for _, c := range conds {
			if !c(o) {
				return false
			}
		}
		return true
	}, nil
}

// condition is one filter condition on a string field: "value", null,
// {ne: "value" or null}, {in: ["a", ...]}.
func condition(field string, cond any) (func(obj) bool, error) {
	notModelled := fmt.Errorf("qontract test server: the condition %v on %q is not modelled", cond, field)
	switch c := cond.(type) {
	case nil:
		return func(o obj) bool { return o[field] == nil }, nil
	case string:
		return func(o obj) bool { return o[field] == c }, nil
	case map[string]any:
		if len(c) != 1 {
			return nil, notModelled
		}
		if arg, ok := c["ne"]; ok {
			if _, str := arg.(string); arg != nil && !str {
				return nil, notModelled
			}
			return func(o obj) bool { return o[field] != arg }, nil
		}
		if arg, ok := c["in"].([]any); ok {
			for _, x := range arg {
				if _, str := x.(string); !str {
					return nil, notModelled
				}
			}
			return func(o obj) bool { return o[field] != nil && slices.Contains(arg, o[field]) }, nil
		}
	}
	return nil, notModelled
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
	match, err := typeOf("users_v1").matcher(args, []string{"path"})
	if err != nil {
		return nil, err
	}
	out := []obj{}
	for _, u := range s.users {
		fields := obj{"path": u.Path, "name": u.Name, "org_username": u.OrgUsername, "github_username": orNil(u.GithubUsername),
			"public_gpg_key": orNil(u.PublicGPGKey)}
		if !match(fields) {
			continue
		}
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
	match, err := typeOf("awsaccounts_v1").matcher(args, []string{"path", "name"})
	if err != nil {
		return nil, err
	}
	out := []obj{}
	for _, a := range s.accounts {
		fields := obj{"path": a.Path, "name": a.Name, "uid": a.UID}
		if match(fields) {
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

// query is what Queries records of f: its arguments with variables
// resolved, the filter apart.
func (f field) query(vars map[string]any) Query {
	q := Query{Field: f.name}
	args, err := f.resolveArgs(vars)
	if err != nil {
		return q
	}
	if fl, ok := args["filter"].(map[string]any); ok {
		q.Filter = fl
	}
	delete(args, "filter")
	if len(args) > 0 {
		q.Args = args
	}
	return q
}

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
