package directory

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// failingDir is a directory whose backend is down.
type failingDir struct{}

func (failingDir) ByOrgUsername(context.Context, string) (*Person, error) {
	return nil, errors.New("app-interface unreachable")
}
func (failingDir) ByEmailLocalPart(context.Context, string) (*Person, error) {
	return nil, errors.New("app-interface unreachable")
}

func TestResolver(t *testing.T) {
	fd, err := ParseFile([]byte(sampleFile))
	if err != nil {
		t.Fatal(err)
	}
	// The same people without the file's own Slack mappings, as a plain
	// Directory (like AppInterface, which knows no Slack IDs).
	type plain struct{ Directory }
	tests := []struct {
		name     string
		r        Resolver
		id       string
		email    string
		want     string // org username; "" = error
		notFound bool
		errHas   string
	}{
		{name: "email local part", r: Resolver{Dir: fd, EmailDomains: []string{"example.com"}}, id: "U999", email: "jane.doe@example.com", want: "jdoe"},
		{name: "resolver mapping wins over email", r: Resolver{Dir: fd, Mappings: map[string]string{"U999": "bsmith"}},
			id: "U999", email: "jane.doe@example.com", want: "bsmith"},
		{name: "resolver mapping wins over directory mapping", r: Resolver{Dir: fd, Mappings: map[string]string{"U012AB3CD": "CKent"}},
			id: "U012AB3CD", email: "jane.doe@example.com", want: "CKent"},
		{name: "directory slack_user wins over email", r: Resolver{Dir: fd}, id: "U012AB3CD", email: "bsmith@example.com", want: "jdoe"},
		{name: "directory mappings entry", r: Resolver{Dir: fd}, id: "W0SHARED1", email: "", want: "bsmith"},
		{name: "plain directory ignores slack mappings", r: Resolver{Dir: plain{fd}, EmailDomains: []string{"example.com"}}, id: "U012AB3CD", email: "bsmith@example.com", want: "bsmith"},
		{name: "mapping to unknown user", r: Resolver{Dir: fd, Mappings: map[string]string{"U999": "ghost"}},
			id: "U999", email: "jane.doe@example.com", notFound: true, errHas: `mapped to "ghost"`},
		{name: "unknown email", r: Resolver{Dir: fd, EmailDomains: []string{"example.com"}}, id: "U999", email: "stranger@example.com", notFound: true, errHas: "stranger"},
		{name: "no email", r: Resolver{Dir: fd}, id: "U999", notFound: true, errHas: "no usable e-mail"},
		{name: "malformed email", r: Resolver{Dir: fd}, id: "U999", email: "@example.com", notFound: true},
		{name: "allowed domain", r: Resolver{Dir: fd, EmailDomains: []string{"example.com"}}, id: "U999", email: "jane.doe@EXAMPLE.com", want: "jdoe"},
		{name: "foreign domain", r: Resolver{Dir: fd, EmailDomains: []string{"example.com"}}, id: "U999", email: "jane.doe@gmail.com",
			notFound: true, errHas: "gmail.com"},
		// Issue 8 item 4: without configured domains nobody is matched by
		// e-mail, and a domain is matched whole, not as a suffix.
		{name: "no domains: e-mail matching is off", r: Resolver{Dir: fd}, id: "U999", email: "jane.doe@example.com",
			notFound: true, errHas: "directory.email_domains"},
		{name: "no domains: a guest's address is not an employee's", r: Resolver{Dir: fd}, id: "U999", email: "jane.doe@gmail.com",
			notFound: true, errHas: "directory.email_domains"},
		{name: "subdomain is another domain", r: Resolver{Dir: fd, EmailDomains: []string{"example.com"}}, id: "U999", email: "jane.doe@evil.example.com",
			notFound: true, errHas: "evil.example.com"},
		{name: "domain as a prefix", r: Resolver{Dir: fd, EmailDomains: []string{"example.com"}}, id: "U999", email: "jane.doe@example.com.evil.org",
			notFound: true, errHas: "example.com.evil.org"},
		{name: "quoted local part with an @", r: Resolver{Dir: fd, EmailDomains: []string{"example.com"}}, id: "U999", email: `"jane.doe@example.com"@gmail.com`,
			notFound: true, errHas: "gmail.com"},
		{name: "mapping without domains", r: Resolver{Dir: fd, Mappings: map[string]string{"U999": "jdoe"}},
			id: "U999", email: "jane.doe@gmail.com", want: "jdoe"},
		{name: "mapping ignores domains", r: Resolver{Dir: fd, EmailDomains: []string{"example.com"}, Mappings: map[string]string{"U999": "jdoe"}},
			id: "U999", email: "jane.doe@gmail.com", want: "jdoe"},
		{name: "directory failure is not not-found", r: Resolver{Dir: failingDir{}, EmailDomains: []string{"example.com"}}, id: "U999", email: "jdoe@example.com", errHas: "unreachable"},
		{name: "no directory", r: Resolver{}, id: "U999", email: "jdoe@example.com", errHas: "no directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.r.Resolve(context.Background(), tt.id, tt.email)
			if tt.want != "" {
				if err != nil {
					t.Fatalf("Resolve: %v", err)
				}
				if p.OrgUsername != tt.want {
					t.Fatalf("Resolve = %s, want %s", p.OrgUsername, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Resolve = %+v, want error", p)
			}
			if errors.Is(err, ErrNotFound) != tt.notFound {
				t.Errorf("errors.Is(ErrNotFound) = %v, want %v: %v", !tt.notFound, tt.notFound, err)
			}
			if !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("error %q, want %q", err, tt.errHas)
			}
		})
	}
}
