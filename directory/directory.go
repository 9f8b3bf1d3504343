// Package directory maps a Slack user to a person: the org username (which is
// the IAM user name), the mail address and the public GPG key. Two sources are
// provided: a local YAML file (FileDirectory) and app-interface's GraphQL API
// (AppInterface, through the actions/appinterface GraphQL client). A Resolver picks the person for a Slack user, by an
// explicit mapping first, else by the local part of the Slack profile e-mail
// when its domain is one of the configured EmailDomains.
package directory

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrNotFound is returned (wrapped) when no person matches.
var ErrNotFound = errors.New("person not found")

// Person is someone whose console password can be reset.
type Person struct {
	// OrgUsername is the IAM user name.
	OrgUsername string
	// Email is where the encrypted password is mailed.
	Email string
	Name  string
	// PublicGPGKey is base64 of the binary key (app-interface) or an
	// ASCII-armored key; "" when the person has none.
	PublicGPGKey string
	// UserFile is the app-interface path of the user file, e.g.
	// /teams/foo/users/jdoe.yml; "" when unknown.
	UserFile string
}

// Directory finds people.
type Directory interface {
	ByOrgUsername(ctx context.Context, name string) (*Person, error)
	ByEmailLocalPart(ctx context.Context, local string) (*Person, error)
}

// SlackMapper is implemented by directories that know Slack user IDs
// themselves (FileDirectory); Resolver consults it after its own Mappings.
type SlackMapper interface {
	BySlackUser(id string) (*Person, bool)
}

// Resolver finds the person behind a Slack user.
type Resolver struct {
	Dir Directory
	// Mappings maps Slack user IDs to org usernames; they win over e-mail.
	Mappings map[string]string
	// EmailDomains are the only Slack e-mail domains whose local part is
	// trusted to be an org username (config directory.email_domains), each
	// matched whole and ignoring case: a contractor's jdoe@gmail.com, or
	// jdoe@eng.example.com, must not match the employee jdoe. Empty turns
	// e-mail matching off: only Mappings and the directory's own mappings
	// resolve.
	EmailDomains []string
}

// Resolve returns the person for a Slack user: an explicit mapping (Mappings,
// then the directory's own if it is a SlackMapper), else the directory entry
// for the local part of slackEmail, if its domain is one of EmailDomains. It wraps ErrNotFound when nobody matches.
func (r *Resolver) Resolve(ctx context.Context, slackUserID, slackEmail string) (*Person, error) {
	if r.Dir == nil {
		return nil, errors.New("resolving Slack user: no directory configured")
	}
	if name, ok := r.Mappings[slackUserID]; ok {
		p, err := r.Dir.ByOrgUsername(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("Slack user %s is mapped to %q: %w", slackUserID, name, err)
		}
		return p, nil
	}
	if m, ok := r.Dir.(SlackMapper); ok {
		if p, ok := m.BySlackUser(slackUserID); ok {
			return p, nil
		}
	}
	at := strings.LastIndexByte(slackEmail, '@')
	if slackEmail == "" || at <= 0 || at == len(slackEmail)-1 {
		return nil, fmt.Errorf("Slack user %s has no mapping and no usable e-mail in their profile: %w", slackUserID, ErrNotFound)
	}
	local, domain := slackEmail[:at], slackEmail[at+1:]
	if len(r.EmailDomains) == 0 {
		return nil, fmt.Errorf("Slack user %s has no mapping, and matching by e-mail is off (directory.email_domains is empty): %w",
			slackUserID, ErrNotFound)
	}
	if !containsFold(r.EmailDomains, domain) {
		return nil, fmt.Errorf("Slack user %s has no mapping, and the e-mail domain %q is not one of %s: %w",
			slackUserID, domain, strings.Join(r.EmailDomains, ", "), ErrNotFound)
	}
	p, err := r.Dir.ByEmailLocalPart(ctx, local)
	if err != nil {
		return nil, fmt.Errorf("Slack user %s (e-mail %s): %w", slackUserID, slackEmail, err)
	}
	return p, nil
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
