package directory

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/osio/osio-bot/actions/appinterface"
)

// UserLookup is the app-interface call the directory needs; the
// qontract-server client in actions/appinterface provides it.
type UserLookup interface {
	User(ctx context.Context, orgUsername string) (*appinterface.User, error)
}

// AppInterface is a directory over app-interface's users_v1, read through
// the same GraphQL client the app-interface reset uses. Mail addresses are
// org_username@MailDomain; public_gpg_key is base64 of the binary key.
type AppInterface struct {
	Users      UserLookup
	MailDomain string
}

// ByOrgUsername finds a user by org_username (the IAM user name).
func (d *AppInterface) ByOrgUsername(ctx context.Context, name string) (*Person, error) {
	if d.MailDomain == "" {
		return nil, errors.New("app-interface directory: MailDomain is not configured")
	}
	u, err := d.Users.User(ctx, name)
	if errors.Is(err, appinterface.ErrNotFound) {
		return nil, fmt.Errorf("app-interface has no user with org_username %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up %s in app-interface: %w", name, err)
	}
	return &Person{OrgUsername: u.OrgUsername, Email: u.OrgUsername + "@" + d.MailDomain, Name: u.Name,
		PublicGPGKey: strings.TrimSpace(u.PublicGPGKey), UserFile: u.Path}, nil
}

// ByEmailLocalPart finds a user by the local part of their mail address,
// which app-interface makes from org_username.
func (d *AppInterface) ByEmailLocalPart(ctx context.Context, local string) (*Person, error) {
	return d.ByOrgUsername(ctx, local)
}
