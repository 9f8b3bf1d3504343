package directory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	netmail "net/mail"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// FileDirectory is a directory read from a YAML file:
//
//	mail_domain: example.com        # optional: email defaults to org_username@mail_domain
//	people:
//	  - org_username: jdoe          # the IAM user name (required)
//	    email: jdoe@example.com
//	    name: Jane Doe
//	    public_gpg_key: mQINBF...   # base64 of the binary key, or ASCII-armored
//	    slack_user: U012AB3CD       # optional explicit mapping
//	    user_file: /teams/foo/users/jdoe.yml   # optional
//	mappings:                       # optional: Slack user ID -> org_username
//	  U045EF6GH: jdoe
//
// It is immutable once loaded and safe for concurrent use.
type FileDirectory struct {
	people  []Person
	byOrg   map[string]int // lower-cased org username -> index
	byLocal map[string]int // lower-cased e-mail local part -> index
	slack   map[string]int // Slack user ID -> index
}

type fileFormat struct {
	MailDomain string            `yaml:"mail_domain"`
	People     []filePerson      `yaml:"people"`
	Mappings   map[string]string `yaml:"mappings"`
}

type filePerson struct {
	OrgUsername  string `yaml:"org_username"`
	Email        string `yaml:"email"`
	Name         string `yaml:"name"`
	PublicGPGKey string `yaml:"public_gpg_key"`
	SlackUser    string `yaml:"slack_user"`
	UserFile     string `yaml:"user_file"`
}

var (
	// IAM user names: letters, digits and +=,.@_- , 1 to 64 characters.
	orgUsernameRE = regexp.MustCompile(`^[A-Za-z0-9+=,.@_-]{1,64}$`)
	slackUserRE   = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
)

// LoadFile reads a FileDirectory from path.
func LoadFile(path string) (*FileDirectory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading user directory: %w", err)
	}
	d, err := ParseFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

// ParseFile reads a FileDirectory from YAML (e.g. an embedded default).
// Unknown keys, duplicates and dangling mappings are errors that name the
// entry at fault.
func ParseFile(data []byte) (*FileDirectory, error) {
	var f fileFormat
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parsing user directory: %w", err)
	}
	d := &FileDirectory{byOrg: map[string]int{}, byLocal: map[string]int{}, slack: map[string]int{}}
	for i, fp := range f.People {
		where := fmt.Sprintf("people[%d]", i)
		if fp.OrgUsername != "" {
			where += " (" + fp.OrgUsername + ")"
		}
		if !orgUsernameRE.MatchString(fp.OrgUsername) {
			return nil, fmt.Errorf("user directory %s: org_username %q must be an IAM user name (1-64 of A-Z a-z 0-9 +=,.@_-)", where, fp.OrgUsername)
		}
		email := fp.Email
		if email == "" && f.MailDomain != "" {
			email = fp.OrgUsername + "@" + f.MailDomain
		}
		if email == "" {
			return nil, fmt.Errorf("user directory %s: email is missing (or set mail_domain)", where)
		}
		if a, err := netmail.ParseAddress(email); err != nil || a.Address != email {
			return nil, fmt.Errorf("user directory %s: email %q must be a bare mail address", where, email)
		}
		org := strings.ToLower(fp.OrgUsername)
		if j, dup := d.byOrg[org]; dup {
			return nil, fmt.Errorf("user directory %s: org_username also used by people[%d]", where, j)
		}
		local := strings.ToLower(email[:strings.LastIndexByte(email, '@')])
		if j, dup := d.byLocal[local]; dup {
			return nil, fmt.Errorf("user directory %s: e-mail local part %q also used by people[%d], so e-mail matching would be ambiguous", where, local, j)
		}
		d.byOrg[org], d.byLocal[local] = len(d.people), len(d.people)
		d.people = append(d.people, Person{
			OrgUsername:  fp.OrgUsername,
			Email:        email,
			Name:         fp.Name,
			PublicGPGKey: strings.TrimSpace(fp.PublicGPGKey),
			UserFile:     fp.UserFile,
		})
		if fp.SlackUser != "" {
			if err := d.addSlack(fp.SlackUser, fp.OrgUsername, where+" slack_user"); err != nil {
				return nil, err
			}
		}
	}
	for id, org := range f.Mappings {
		if err := d.addSlack(id, org, "mappings."+id); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func (d *FileDirectory) addSlack(id, org, where string) error {
	if !slackUserRE.MatchString(id) {
		return fmt.Errorf("user directory %s: %q is not a Slack user ID (like U012AB3CD)", where, id)
	}
	i, ok := d.byOrg[strings.ToLower(org)]
	if !ok {
		return fmt.Errorf("user directory %s: maps to org_username %q, which is not in people", where, org)
	}
	if j, dup := d.slack[id]; dup && j != i {
		return fmt.Errorf("user directory %s: Slack user %s is already mapped to %q", where, id, d.people[j].OrgUsername)
	}
	d.slack[id] = i
	return nil
}

// ByOrgUsername finds a person by org (IAM) username, ignoring case.
func (d *FileDirectory) ByOrgUsername(_ context.Context, name string) (*Person, error) {
	return d.lookup(d.byOrg, strings.ToLower(name), "org username", name)
}

// ByEmailLocalPart finds a person by the part of their e-mail before the @,
// ignoring case.
func (d *FileDirectory) ByEmailLocalPart(_ context.Context, local string) (*Person, error) {
	return d.lookup(d.byLocal, strings.ToLower(local), "e-mail local part", local)
}

func (d *FileDirectory) lookup(index map[string]int, key, what, shown string) (*Person, error) {
	i, ok := index[key]
	if !ok {
		return nil, fmt.Errorf("user directory has no person with %s %q: %w", what, shown, ErrNotFound)
	}
	p := d.people[i]
	return &p, nil
}

// BySlackUser finds the person explicitly mapped to a Slack user ID
// (slack_user or mappings).
func (d *FileDirectory) BySlackUser(id string) (*Person, bool) {
	i, ok := d.slack[id]
	if !ok {
		return nil, false
	}
	p := d.people[i]
	return &p, true
}

// Mappings returns a copy of the explicit Slack user ID -> org username
// mappings, e.g. for Resolver.Mappings.
func (d *FileDirectory) Mappings() map[string]string {
	out := make(map[string]string, len(d.slack))
	for id, i := range d.slack {
		out[id] = d.people[i].OrgUsername
	}
	return out
}

// Len is the number of people.
func (d *FileDirectory) Len() int { return len(d.people) }
