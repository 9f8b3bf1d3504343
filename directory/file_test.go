package directory

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sampleFile = `
mail_domain: example.com
people:
  - org_username: jdoe
    email: jane.doe@example.com
    name: Jane Doe
    public_gpg_key: |
      mDMEawiHLBYJKwYBBAHaRw8BAQdAWhJcWpf4Q+iHGN5gx9EtwLdWU8cEq0r7xJk2NAF2DOi0
    slack_user: U012AB3CD
    user_file: /teams/osio/users/jdoe.yml
  - org_username: bsmith
    name: Bob Smith
  - org_username: CKent
    email: ckent@example.org
mappings:
  W0SHARED1: bsmith
  U0ALIAS22: jdoe
`

func TestFileDirectoryLookups(t *testing.T) {
	d, err := ParseFile([]byte(sampleFile))
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 3 {
		t.Fatalf("Len = %d", d.Len())
	}
	ctx := context.Background()
	jane := Person{OrgUsername: "jdoe", Email: "jane.doe@example.com", Name: "Jane Doe",
		PublicGPGKey: "mDMEawiHLBYJKwYBBAHaRw8BAQdAWhJcWpf4Q+iHGN5gx9EtwLdWU8cEq0r7xJk2NAF2DOi0",
		UserFile:     "/teams/osio/users/jdoe.yml"}
	bob := Person{OrgUsername: "bsmith", Email: "bsmith@example.com", Name: "Bob Smith"}
	clark := Person{OrgUsername: "CKent", Email: "ckent@example.org"}

	tests := []struct {
		name   string
		lookup func() (*Person, error)
		want   *Person
	}{
		{"org username", func() (*Person, error) { return d.ByOrgUsername(ctx, "jdoe") }, &jane},
		{"org username, other case", func() (*Person, error) { return d.ByOrgUsername(ctx, "ckent") }, &clark},
		{"email local part", func() (*Person, error) { return d.ByEmailLocalPart(ctx, "jane.doe") }, &jane},
		{"email local part, other case", func() (*Person, error) { return d.ByEmailLocalPart(ctx, "Jane.Doe") }, &jane},
		{"email from mail_domain", func() (*Person, error) { return d.ByEmailLocalPart(ctx, "bsmith") }, &bob},
		{"org username is not a local part", func() (*Person, error) { return d.ByEmailLocalPart(ctx, "jdoe") }, nil},
		{"unknown", func() (*Person, error) { return d.ByOrgUsername(ctx, "nobody") }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.lookup()
			if tt.want == nil {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("got %+v, %v; want ErrNotFound", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != *tt.want {
				t.Errorf("got %+v, want %+v", *got, *tt.want)
			}
		})
	}

	for id, want := range map[string]string{"U012AB3CD": "jdoe", "U0ALIAS22": "jdoe", "W0SHARED1": "bsmith"} {
		p, ok := d.BySlackUser(id)
		if !ok || p.OrgUsername != want {
			t.Errorf("BySlackUser(%s) = %+v, %v; want %s", id, p, ok, want)
		}
	}
	if p, ok := d.BySlackUser("U999"); ok {
		t.Errorf("BySlackUser(unknown) = %+v", p)
	}
	m := d.Mappings()
	if len(m) != 3 || m["U012AB3CD"] != "jdoe" {
		t.Errorf("Mappings = %v", m)
	}
	// Results are copies.
	p, _ := d.ByOrgUsername(ctx, "jdoe")
	p.Email = "evil@example.com"
	if p2, _ := d.ByOrgUsername(ctx, "jdoe"); p2.Email != jane.Email {
		t.Error("a returned Person shares state with the directory")
	}
}

func TestParseFileErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"not YAML", "people: [", "parsing user directory"},
		{"unknown key", "people:\n  - org_username: a\n    email: a@example.com\n    mail: x\n", "field mail not found"},
		{"missing org_username", "people:\n  - email: a@example.com\n", "org_username"},
		{"bad org_username", "people:\n  - org_username: 'a b'\n    email: a@example.com\n", "IAM user name"},
		{"missing email", "people:\n  - org_username: a\n", "email is missing"},
		{"bad email", "people:\n  - org_username: a\n    email: 'A <a@example.com>'\n", "bare mail address"},
		{"duplicate org_username", "mail_domain: example.com\npeople:\n  - org_username: a\n  - org_username: A\n    email: x@example.com\n", "also used by people[0]"},
		{"duplicate local part", "people:\n  - org_username: a\n    email: a@example.com\n  - org_username: b\n    email: a@example.org\n", "ambiguous"},
		{"mapping to unknown", "mail_domain: example.com\npeople:\n  - org_username: a\nmappings:\n  U123: b\n", "not in people"},
		{"bad Slack ID", "mail_domain: example.com\npeople:\n  - org_username: a\n    slack_user: jdoe\n", "not a Slack user ID"},
		{"conflicting mappings", "mail_domain: example.com\npeople:\n  - org_username: a\n    slack_user: U123\n  - org_username: b\nmappings:\n  U123: b\n", "already mapped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseFile([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseFile = %v, %v; want error with %q", d, err, tt.want)
			}
		})
	}
}

func TestParseFileEmpty(t *testing.T) {
	for _, y := range []string{"", "# nothing yet\n", "people: []\n"} {
		d, err := ParseFile([]byte(y))
		if err != nil {
			t.Fatalf("ParseFile(%q): %v", y, err)
		}
		if _, err := d.ByOrgUsername(context.Background(), "x"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("lookup in empty directory: %v", err)
		}
	}
}

func TestLoadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "people.yaml")
	if err := os.WriteFile(path, []byte(sampleFile), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := LoadFile(path)
	if err != nil || d.Len() != 3 {
		t.Fatalf("LoadFile = %v, %v", d, err)
	}
	if _, err := LoadFile(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("LoadFile(missing) succeeded")
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("people:\n  - org_username: a\n"), 0o600)
	if _, err := LoadFile(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("LoadFile(bad) = %v, want the path in the error", err)
	}
}
