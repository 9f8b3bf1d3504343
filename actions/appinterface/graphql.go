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
	"time"
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

// RepoPath is where a GraphQL path lives in the app-interface repository:
// the data files are under data/ ("/aws/osio/account.yml" ->
// "data/aws/osio/account.yml").
func RepoPath(graphqlPath string) string {
	return "data/" + strings.TrimPrefix(graphqlPath, "/")
}

// Client queries app-interface's GraphQL API (qontract-server).
type Client struct {
	endpoint     string
	token        string
	hc           *http.Client
	serverFilter bool
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithHTTPClient sets the HTTP client (default: one with a 30 s timeout).
func WithHTTPClient(hc *http.Client) ClientOption { return func(c *Client) { c.hc = hc } }

// WithServerFilter makes User ask the server for the one user, with
// users_v1(filter: {org_username: ...}), as qontract-server versions with
// the generic filter argument allow. Without it the client fetches all users
// and picks the one, which every schema version supports. Either way the
// answer is checked on the client.
func WithServerFilter() ClientOption { return func(c *Client) { c.serverFilter = true } }

// NewClient returns a client for the GraphQL endpoint (e.g.
// "https://app-interface.example.com/graphql"). token, when not empty, goes
// into the Authorization header: as "Bearer TOKEN", or as it is when it
// already names its scheme ("Basic ...", "Bearer ..."). It is never logged
// nor put into errors.
func NewClient(endpoint, token string, opts ...ClientOption) *Client {
	c := &Client{endpoint: endpoint, token: token, hc: &http.Client{Timeout: 30 * time.Second}}
	for _, o := range opts {
		o(c)
	}
	return c
}

const (
	usersQuery = `query Users {
  users_v1 {
    path name org_username public_gpg_key
    roles { path name aws_groups { account { name } } user_policies { account { name } } }
  }
}`
	userQueryFiltered = `query User($filter: JSON) {
  users_v1(filter: $filter) {
    path name org_username public_gpg_key
    roles { path name aws_groups { account { name } } user_policies { account { name } } }
  }
}`
	accountsQuery = `query Accounts {
  awsaccounts_v1 { path name uid }
}`
)

type gqlAccountRef struct {
	Account *struct {
		Name string `json:"name"`
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
func (c *Client) User(ctx context.Context, orgUsername string) (*User, error) {
	if orgUsername == "" {
		return nil, errors.New("looking up an app-interface user: empty org_username")
	}
	query, vars := usersQuery, map[string]any(nil)
	if c.serverFilter {
		query, vars = userQueryFiltered, map[string]any{"filter": map[string]any{"org_username": orgUsername}}
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
