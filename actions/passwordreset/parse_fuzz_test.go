package passwordreset

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/osio/osio-bot/config"
)

// Fuzzing /osio-reset-password's argument parsing and the IAM user-name
// check (issue 8, "Bad input, fuzzed").
//
// Run: go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 10s ./actions/passwordreset

// iamUserName is IAM's own rule for user names, written independently of
// iamUserRe: 1 to 64 of letters, digits and +=,.@_- (ASCII only).
var iamUserName = regexp.MustCompile(`^[A-Za-z0-9+=,.@_-]{1,64}$`)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "dana", "dana --account osio", "--account=osio-dev --method=inplace dana", "dana --method recreate",
		"--account", "--method", "dana bob", "--force", "-x", "dana --account prod", "dana --method ftp",
		"a@b.c+d=e,f_g-h", strings.Repeat("a", 64), strings.Repeat("a", 65), "jdöe", "ＡＢＣ", "da`na", "<!channel>",
		"--account= dana", "--method= --account=osio", "dana\t--account\nosio", "\u00a0dana", "--account --method",
	} {
		f.Add(s)
	}
	cfg := config.Defaults()
	cfg.Accounts = []config.Account{{Name: "osio"}, {Name: "osio-dev"}}
	r := New(cfg, Deps{})
	f.Fuzz(func(t *testing.T, text string) {
		// Slack's text is split as the bot splits it.
		if err := checkParse(r.Parse, strings.Fields(text), cfg); err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if got, want := iamUserRe(text), iamUserName.MatchString(text); got != want {
			t.Fatalf("iamUserRe(%q) = %v, IAM's rule says %v", text, got, want)
		}
	})
}

// checkParse holds parse to the usage "[IAM_USER] [--account NAME]
// [--method inplace|recreate|resetpasswords]": what it accepts is exactly
// what the usage allows, and it refuses everything else with a message.
func checkParse(parse func([]string) (Request, string), args []string, cfg config.Config) error {
	q, msg := parse(slices.Clone(args))
	// A reference reading of the usage.
	want := Request{Account: cfg.Reset.DefaultAccount}
	ok := true
	var users []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(a, "=")
		switch {
		case (name == "--account" || name == "--method") && !hasValue:
			if i+1 == len(args) {
				ok = false
				continue
			}
			i++
			value = args[i]
			fallthrough
		case (name == "--account" || name == "--method") && hasValue:
			if name == "--account" {
				want.Account = value
			} else {
				want.Method = value
			}
		case strings.HasPrefix(a, "-"):
			ok = false
		default:
			users = append(users, a)
		}
	}
	if len(users) > 1 {
		ok = false
	}
	if len(users) == 1 {
		want.User = users[0]
		ok = ok && iamUserName.MatchString(want.User)
	}
	if _, known := cfg.Account(want.Account); !known {
		ok = false
	}
	switch want.Method {
	case "", InPlace, Recreate, ResetPasswords:
	default:
		ok = false
	}
	switch {
	case ok && msg != "":
		return fmt.Errorf("refused %q (%s), which the usage allows", args, msg)
	case !ok && msg == "":
		return fmt.Errorf("accepted %q as %+v, which the usage does not allow", args, q)
	case ok && q != want:
		return fmt.Errorf("parsed %q as %+v, want %+v", args, q, want)
	case !ok && strings.TrimSpace(msg) == "":
		return fmt.Errorf("refused %q with an empty message", args)
	}
	return nil
}

// TestParseCheckCatchesBrokenParsers shows that checkParse, the fuzz
// target's check, fails a parser with one deliberate fault.
func TestParseCheckCatchesBrokenParsers(t *testing.T) {
	cfg := config.Defaults()
	cfg.Accounts = []config.Account{{Name: "osio"}, {Name: "osio-dev"}}
	r := New(cfg, Deps{})
	if err := checkParse(r.Parse, []string{"dana", "--account", "osio"}, cfg); err != nil {
		t.Fatalf("the real Parse: %v", err)
	}
	broken := map[string]struct {
		parse func([]string) (Request, string)
		args  []string
	}{
		"takes the last user named": {func(a []string) (Request, string) {
			if len(a) == 2 {
				return Request{User: a[1], Account: "osio-dev"}, ""
			}
			return r.Parse(a)
		}, []string{"dana", "bob"}},
		"lets a space-free non-ASCII name through": {func(a []string) (Request, string) {
			q, msg := r.Parse(a)
			if msg != "" && len(a) == 1 {
				return Request{User: a[0], Account: "osio-dev"}, ""
			}
			return q, msg
		}, []string{"jdöe"}},
		"ignores --method's value": {func(a []string) (Request, string) {
			q, msg := r.Parse(a)
			q.Method = ""
			return q, msg
		}, []string{"dana", "--method", "recreate"}},
		"refuses a 64-character name": {func(a []string) (Request, string) {
			if len(a) == 1 && len(a[0]) == 64 {
				return Request{}, "too long"
			}
			return r.Parse(a)
		}, []string{strings.Repeat("a", 64)}},
	}
	for name, b := range broken {
		if err := checkParse(b.parse, b.args, cfg); err == nil {
			t.Errorf("a parser that %s: not caught", name)
		} else {
			t.Logf("a parser that %s: %v", name, err)
		}
	}
}
