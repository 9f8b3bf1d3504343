package appinterface

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// ErrNotFound says that app-interface (or the repository) has no such user,
// account or file. Test with errors.Is.
var ErrNotFound = errors.New("not found")

// User is an app-interface user as the GraphQL API gives it.
type User struct {
	// Path is the user file's path in app-interface's data
	// ("/teams/devtools/users/jdoe.yml"); it is what a $ref to the user
	// holds. RepoPath gives the file's path in the repository.
	Path        string
	Name        string
	OrgUsername string
	// PublicGPGKey is base64 of the binary key, on one line (may be empty).
	PublicGPGKey string
	Roles        []Role
	// Accounts are the AWS accounts the roles grant, each once, in order
	// of first appearance, with their files' paths and ids: what Account
	// would answer for each, read in the same query.
	Accounts []Account
}

// Role is one of a user's roles.
type Role struct {
	// Path is the role file's path, as the user file's $ref holds it.
	Path string
	Name string
	// Accounts are the names of the AWS accounts the role grants, through
	// its aws_groups[].account and user_policies[].account, each once, in
	// order of first appearance.
	Accounts []string
}

// Account is an app-interface AWS account.
type Account struct {
	// Path is the account file's path ("/aws/osio/account.yml").
	Path string
	Name string
	// UID is the AWS account id.
	UID string
}

// RolesGranting returns the user's roles that grant the named account.
func (u *User) RolesGranting(account string) []Role {
	var out []Role
	for _, r := range u.Roles {
		for _, a := range r.Accounts {
			if a == account {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// GrantedAccount returns the account named account if one of the user's
// roles grants it.
func (u *User) GrantedAccount(account string) (Account, bool) {
	for _, a := range u.Accounts {
		if a.Name == account {
			return a, true
		}
	}
	return Account{}, false
}

// clone is a deep copy of u: what the cache hands out cannot be changed
// by its callers.
func (u *User) clone() *User {
	c := *u
	c.Roles = slices.Clone(u.Roles)
	for i := range c.Roles {
		c.Roles[i].Accounts = slices.Clone(c.Roles[i].Accounts)
	}
	c.Accounts = slices.Clone(u.Accounts)
	return &c
}

// RepoPath is where a GraphQL path lives in the app-interface repository:
// the data files are under data/ ("/aws/osio/account.yml" ->
// "data/aws/osio/account.yml").
func RepoPath(graphqlPath string) string {
	return "data/" + strings.TrimPrefix(graphqlPath, "/")
}

// Client queries app-interface's GraphQL API (qontract-server).
//
// User asks for one user at a time (users_v1 with a filter on
// org_username), shares one query among concurrent lookups of a user
// (singleflight), and keeps found users for a short while (WithUserCache),
// so that the lookups of one check (the directory's, then the reset's
// app-interface facts) make one query. Its methods are safe for concurrent
// use; no lock is held across a query.
type Client struct {
	endpoint string
	token    string
	hc       *http.Client
	allUsers bool
	now      func() time.Time
	// cacheTTL is how long a found user is kept (0: not at all), cacheMax
	// how many are kept at most.
	cacheTTL time.Duration
	cacheMax int
	// queryTimeout bounds a shared user query, which runs apart from the
	// contexts of the callers waiting for it.
	queryTimeout time.Duration

	flight singleflight.Group
	mu     sync.Mutex
	users  map[string]cachedUser
}

type cachedUser struct {
	u  *User
	at time.Time
}

// Defaults of a Client's user cache and query bound.
const (
	DefaultUserCacheTTL  = 30 * time.Second
	DefaultUserCacheSize = 256
	DefaultQueryTimeout  = 30 * time.Second
)

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithHTTPClient sets the HTTP client (default: one with a 30 s timeout).
func WithHTTPClient(hc *http.Client) ClientOption { return func(c *Client) { c.hc = hc } }

// WithAllUsers makes User fetch every user and pick the one on the client,
// for older qontract-server versions without the generic filter argument
// (users_v1(filter: ...)), which answer a filtered query with `Unknown
// argument "filter"`. It downloads all of users_v1 for each lookup the
// cache does not answer. Either way the answer is checked on the client.
func WithAllUsers() ClientOption { return func(c *Client) { c.allUsers = true } }

// WithUserCache keeps each user that User finds for ttl, at most max of them
// (default DefaultUserCacheTTL, DefaultUserCacheSize). A ttl of 0 turns
// the cache off. Unknown users and failures are never kept.
func WithUserCache(ttl time.Duration, max int) ClientOption {
	return func(c *Client) { c.cacheTTL, c.cacheMax = ttl, max }
}

// WithClock sets the clock the cache reads (default time.Now).
func WithClock(now func() time.Time) ClientOption { return func(c *Client) { c.now = now } }

// WithQueryTimeout bounds each user query (default DefaultQueryTimeout).
// A query is shared by the lookups of one user that arrive while it runs,
// so it is not bound to any one caller's context; each caller still stops
// waiting when its own context ends.
func WithQueryTimeout(d time.Duration) ClientOption { return func(c *Client) { c.queryTimeout = d } }

// NewClient returns a client for the GraphQL endpoint (e.g.
// "https://app-interface.example.com/graphql"). token, when not empty, goes
// into the Authorization header: as "Bearer TOKEN", or as it is when it
// already names its scheme ("Basic ...", "Bearer ..."). It is never logged
// nor put into errors.
func NewClient(endpoint, token string, opts ...ClientOption) *Client {
	c := &Client{endpoint: endpoint, token: token, hc: &http.Client{Timeout: 30 * time.Second}, now: time.Now,
		cacheTTL: DefaultUserCacheTTL, cacheMax: DefaultUserCacheSize, queryTimeout: DefaultQueryTimeout,
		users: map[string]cachedUser{}}
	for _, o := range opts {
		o(c)
	}
	if c.queryTimeout <= 0 {
		c.queryTimeout = DefaultQueryTimeout
	}
	return c
}

const (
	usersQuery = `query Users {
  users_v1 {
    path name org_username public_gpg_key
    roles { path name aws_groups { account { path name uid } } user_policies { account { path name uid } } }
  }
}`
	userQueryFiltered = `query User($filter: JSON) {
  users_v1(filter: $filter) {
    path name org_username public_gpg_key
    roles { path name aws_groups { account { path name uid } } user_policies { account { path name uid } } }
  }
}`
	accountsQuery = `query Accounts {
  awsaccounts_v1 { path name uid }
}`
)

type gqlAccountRef struct {
	Account *struct {
		Path string `json:"path"`
		Name string `json:"name"`
		UID  string `json:"uid"`
	} `json:"account"`
}

type gqlUser struct {
	Path         string  `json:"path"`
	Name         string  `json:"name"`
	OrgUsername  string  `json:"org_username"`
	PublicGPGKey *string `json:"public_gpg_key"`
	Roles        []struct {
		Path         string          `json:"path"`
		Name         string          `json:"name"`
		AWSGroups    []gqlAccountRef `json:"aws_groups"`
		UserPolicies []gqlAccountRef `json:"user_policies"`
	} `json:"roles"`
}

// User returns the user whose org_username is orgUsername, with the
// accounts each role grants. An unknown user is ErrNotFound.
//
// A user found within the cache's TTL is answered without a query.
// Otherwise lookups of one user share one query: it runs on its own
// (bounded by WithQueryTimeout), and each caller waits for it only as long
// as its own ctx lets it.
func (c *Client) User(ctx context.Context, orgUsername string) (*User, error) {
	if orgUsername == "" {
		return nil, errors.New("looking up an app-interface user: empty org_username")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("looking up app-interface user %s: %w", orgUsername, err)
	}
	if u, ok := c.cached(orgUsername); ok {
		return u, nil
	}
	ch := c.flight.DoChan(orgUsername, func() (any, error) {
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.queryTimeout)
		defer cancel()
		u, err := c.queryUser(qctx, orgUsername)
		if err == nil {
			c.keep(orgUsername, u)
		}
		return u, err
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("looking up app-interface user %s: %w", orgUsername, ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*User).clone(), nil
	}
}

// cached returns a copy of the user if the cache holds it, fresh.
func (c *Client) cached(orgUsername string) (*User, bool) {
	if c.cacheTTL <= 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.users[orgUsername]
	if !ok {
		return nil, false
	}
	if age := c.now().Sub(e.at); age < 0 || age >= c.cacheTTL {
		delete(c.users, orgUsername)
		return nil, false
	}
	return e.u.clone(), true
}

// keep puts a found user into the cache; when it is full, stale entries
// go first, then the oldest.
func (c *Client) keep(orgUsername string, u *User) {
	if c.cacheTTL <= 0 || c.cacheMax <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if _, ok := c.users[orgUsername]; !ok && len(c.users) >= c.cacheMax {
		oldest, oldestAt := "", time.Time{}
		for k, e := range c.users {
			if now.Sub(e.at) >= c.cacheTTL {
				delete(c.users, k)
				continue
			}
			if oldest == "" || e.at.Before(oldestAt) {
				oldest, oldestAt = k, e.at
			}
		}
		if len(c.users) >= c.cacheMax {
			delete(c.users, oldest)
		}
	}
	c.users[orgUsername] = cachedUser{u: u.clone(), at: now}
}

// cacheLen is how many users the cache holds.
func (c *Client) cacheLen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.users)
}

// queryUser asks the server for the user: filtered on org_username, or
// among all users (WithAllUsers).
func (c *Client) queryUser(ctx context.Context, orgUsername string) (*User, error) {
	query, vars := userQueryFiltered, map[string]any{"filter": map[string]any{"org_username": orgUsername}}
	if c.allUsers {
		query, vars = usersQuery, nil
	}
	var data struct {
		Users []gqlUser `json:"users_v1"`
	}
	if err := c.do(ctx, query, vars, &data); err != nil {
		return nil, fmt.Errorf("looking up app-interface user %s: %w", orgUsername, err)
	}
	var found *gqlUser
	for i, u := range data.Users {
		if u.OrgUsername != orgUsername {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("looking up app-interface user %s: two users have it (%s, %s)", orgUsername, found.Path, u.Path)
		}
		found = &data.Users[i]
	}
	if found == nil {
		return nil, fmt.Errorf("app-interface user %s: %w", orgUsername, ErrNotFound)
	}
	u := &User{Path: found.Path, Name: found.Name, OrgUsername: found.OrgUsername}
	if found.PublicGPGKey != nil {
		u.PublicGPGKey = *found.PublicGPGKey
	}
	for _, r := range found.Roles {
		role := Role{Path: r.Path, Name: r.Name}
		for _, ref := range append(append([]gqlAccountRef(nil), r.AWSGroups...), r.UserPolicies...) {
			if ref.Account == nil || ref.Account.Name == "" {
				continue
			}
			if !slices.Contains(role.Accounts, ref.Account.Name) {
				role.Accounts = append(role.Accounts, ref.Account.Name)
			}
			if _, ok := u.GrantedAccount(ref.Account.Name); !ok {
				u.Accounts = append(u.Accounts, Account{Path: ref.Account.Path, Name: ref.Account.Name, UID: ref.Account.UID})
			}
		}
		u.Roles = append(u.Roles, role)
	}
	return u, nil
}

// Account returns the AWS account with that name. An unknown account is
// ErrNotFound.
func (c *Client) Account(ctx context.Context, name string) (*Account, error) {
	var data struct {
		Accounts []struct {
			Path string `json:"path"`
			Name string `json:"name"`
			UID  string `json:"uid"`
		} `json:"awsaccounts_v1"`
	}
	if err := c.do(ctx, accountsQuery, nil, &data); err != nil {
		return nil, fmt.Errorf("looking up app-interface account %s: %w", name, err)
	}
	for _, a := range data.Accounts {
		if a.Name == name {
			return &Account{Path: a.Path, Name: a.Name, UID: a.UID}, nil
		}
	}
	return nil, fmt.Errorf("app-interface account %s: %w", name, ErrNotFound)
}

// maxResponse bounds what a GraphQL answer may weigh (all users with their
// roles of a large app-interface are a few MB).
const maxResponse = 64 << 20

// do posts one GraphQL request and decodes its data into out. Errors name
// the endpoint (without credentials) and the server's messages, never the
// token.
func (c *Client) do(ctx context.Context, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(struct {
		Query     string         `json:"query"`
		Variables map[string]any `json:"variables,omitempty"`
	}{query, vars})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("GraphQL endpoint %s: %w", redact(c.endpoint), scrub(err, c.token))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		if strings.Contains(c.token, " ") {
			req.Header.Set("Authorization", c.token)
		} else {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("GraphQL endpoint %s: %w", redact(c.endpoint), scrub(err, c.token))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return fmt.Errorf("GraphQL endpoint %s: reading the answer: %w", redact(c.endpoint), scrub(err, c.token))
	}
	if len(raw) > maxResponse {
		return fmt.Errorf("GraphQL endpoint %s: the answer is larger than %d bytes", redact(c.endpoint), maxResponse)
	}
	var env struct {
		Data   json.RawMessage `json:"data"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	jsonErr := json.Unmarshal(raw, &env)
	if len(env.Errors) > 0 {
		msgs := make([]string, len(env.Errors))
		for i, e := range env.Errors {
			msgs[i] = e.Message
		}
		return fmt.Errorf("GraphQL endpoint %s: HTTP %d: %s", redact(c.endpoint), resp.StatusCode, scrubString(strings.Join(msgs, "; "), c.token))
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GraphQL endpoint %s: HTTP %d", redact(c.endpoint), resp.StatusCode)
	}
	if jsonErr != nil {
		return fmt.Errorf("GraphQL endpoint %s: the answer is not JSON: %w", redact(c.endpoint), jsonErr)
	}
	if len(env.Data) == 0 || string(env.Data) == "null" {
		return fmt.Errorf("GraphQL endpoint %s: the answer has no data", redact(c.endpoint))
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("GraphQL endpoint %s: unexpected data: %w", redact(c.endpoint), err)
	}
	return nil
}

// redact drops credentials and the query from a URL for messages.
func redact(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "(unparseable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// scrub makes sure a secret never leaves inside an error.
func scrub(err error, secret string) error {
	if secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(scrubString(err.Error(), secret))
}

func scrubString(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}
