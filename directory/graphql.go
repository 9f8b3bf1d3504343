package directory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// usersQuery asks qontract-server for every user; filtering is done here.
const usersQuery = `query OsioBotUsers {
  users: users_v1 {
    path
    name
    org_username
    github_username
    public_gpg_key
    roles {
      path
    }
  }
}`

// maxResponseBytes bounds the GraphQL answer (all users with their keys).
const maxResponseBytes = 64 << 20

// GraphQLDirectory looks people up in app-interface through qontract-server's
// GraphQL endpoint. The mail address is org_username@MailDomain. It is safe
// for concurrent use.
type GraphQLDirectory struct {
	// Endpoint is the GraphQL URL, e.g. https://app-interface.example.com/graphql.
	Endpoint string
	// Authorization is optional: a full header value ("Basic ...",
	// "Bearer ...") or a bare token, which is sent as "Bearer TOKEN". It is
	// never logged or put in an error.
	Authorization string
	// MailDomain makes the mail address: org_username@MailDomain.
	MailDomain string
	// Client is the HTTP client; nil means one with a 30 s timeout.
	Client *http.Client
	// CacheFor keeps the user list this long; 0 asks the server every time.
	CacheFor time.Duration

	mu       sync.Mutex
	cached   []gqlUser
	cachedAt time.Time
}

type gqlUser struct {
	Path           string `json:"path"`
	Name           string `json:"name"`
	OrgUsername    string `json:"org_username"`
	GithubUsername string `json:"github_username"`
	PublicGPGKey   string `json:"public_gpg_key"`
	Roles          []struct {
		Path string `json:"path"`
	} `json:"roles"`
}

type gqlResponse struct {
	Data *struct {
		Users []gqlUser `json:"users"`
	} `json:"data"`
	Errors []struct {
		Message string `json:"message"`
	} `json:"errors"`
}

// String describes d without its Authorization value.
func (d *GraphQLDirectory) String() string {
	auth := ""
	if d.Authorization != "" {
		auth = " Authorization:[REDACTED]"
	}
	return fmt.Sprintf("directory.GraphQLDirectory{Endpoint:%q MailDomain:%q%s}", d.Endpoint, d.MailDomain, auth)
}

// ByOrgUsername finds the app-interface user whose org_username is name,
// ignoring case.
func (d *GraphQLDirectory) ByOrgUsername(ctx context.Context, name string) (*Person, error) {
	users, err := d.users(ctx)
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		if strings.EqualFold(u.OrgUsername, name) {
			return d.person(u)
		}
	}
	return nil, fmt.Errorf("app-interface has no user with org_username %q: %w", name, ErrNotFound)
}

// ByEmailLocalPart finds a user by the local part of their mail address,
// which app-interface makes from org_username.
func (d *GraphQLDirectory) ByEmailLocalPart(ctx context.Context, local string) (*Person, error) {
	return d.ByOrgUsername(ctx, local)
}

func (d *GraphQLDirectory) person(u gqlUser) (*Person, error) {
	if d.MailDomain == "" {
		return nil, errors.New("app-interface directory: MailDomain is not configured")
	}
	return &Person{
		OrgUsername:  u.OrgUsername,
		Email:        u.OrgUsername + "@" + d.MailDomain,
		Name:         u.Name,
		PublicGPGKey: strings.TrimSpace(u.PublicGPGKey),
		UserFile:     u.Path,
	}, nil
}

func (d *GraphQLDirectory) users(ctx context.Context) ([]gqlUser, error) {
	if d.CacheFor > 0 {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.cached != nil && time.Since(d.cachedAt) < d.CacheFor {
			return d.cached, nil
		}
	}
	users, err := d.fetch(ctx)
	if err != nil {
		return nil, err
	}
	if d.CacheFor > 0 {
		d.cached, d.cachedAt = users, time.Now()
	}
	return users, nil
}

func (d *GraphQLDirectory) fetch(ctx context.Context) ([]gqlUser, error) {
	if d.Endpoint == "" {
		return nil, errors.New("app-interface directory: Endpoint is not configured")
	}
	body, err := json.Marshal(map[string]any{"query": usersQuery, "variables": map[string]any{}})
	if err != nil {
		return nil, fmt.Errorf("encoding GraphQL query: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("querying app-interface users: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if a := d.Authorization; a != "" {
		if !strings.Contains(a, " ") {
			a = "Bearer " + a
		}
		req.Header.Set("Authorization", a)
	}
	client := d.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("querying app-interface users: %s", d.redact(err.Error()))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading app-interface users: %w", err)
	}
	if len(data) > maxResponseBytes {
		return nil, fmt.Errorf("app-interface users: answer larger than %d bytes", maxResponseBytes)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("querying app-interface users: HTTP %d: %s", resp.StatusCode, d.redact(snippet(data)))
	}
	var out gqlResponse
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("decoding app-interface users: %w", err)
	}
	if len(out.Errors) > 0 {
		msgs := make([]string, len(out.Errors))
		for i, e := range out.Errors {
			msgs[i] = e.Message
		}
		return nil, fmt.Errorf("app-interface GraphQL errors: %s", d.redact(strings.Join(msgs, "; ")))
	}
	if out.Data == nil {
		return nil, errors.New("app-interface GraphQL answer has no data")
	}
	return out.Data.Users, nil
}

// redact removes the Authorization value (and its token part) from s.
func (d *GraphQLDirectory) redact(s string) string {
	a := d.Authorization
	if a == "" {
		return s
	}
	s = strings.ReplaceAll(s, a, "[REDACTED]")
	if i := strings.LastIndexByte(a, ' '); i >= 0 && i < len(a)-1 {
		s = strings.ReplaceAll(s, a[i+1:], "[REDACTED]")
	}
	return s
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
