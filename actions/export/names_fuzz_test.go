package export

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/osio/osio-bot/config"
)

// Fuzzing the table-name validator behind /osio-export (issue 8, "Bad
// input, fuzzed").
//
// Run: go test -run '^$' -fuzz '^FuzzCheckNames$' -fuzztime 10s ./actions/export

// dynamoTableName is DynamoDB's rule, written independently of CheckNames:
// 3 to 255 characters of a-z A-Z 0-9 _ - . (ASCII only).
var dynamoTableName = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,255}$`)

func newNameChecker(t testing.TB, maxTables int) *Exporter {
	cfg := config.Defaults()
	cfg.Accounts = []config.Account{{Name: "osio", Region: "us-east-1"}, {Name: "osio-dev", Region: "us-east-1"}}
	cfg.Export.MaxTables = maxTables
	e, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func FuzzCheckNames(f *testing.F) {
	for _, s := range []string{
		"prod_txlog", "prod_txlog prod_txlog", "a.b-c_d ab", "ab", strings.Repeat("t", 255), strings.Repeat("t", 256),
		"tab`le", "<!channel>", "täble", "tables\u00a0x", "", "a b c d e f", "--native x", "x\u200by",
	} {
		f.Add(s, uint8(3))
		f.Add(s, uint8(20))
	}
	f.Fuzz(func(t *testing.T, text string, max uint8) {
		maxTables := int(max%40) + 1
		e := newNameChecker(t, maxTables)
		// As the bot splits Slack's text, and split on commas too, so that
		// names with white space reach the check.
		for _, names := range [][]string{strings.Fields(text), strings.Split(text, ",")} {
			if err := checkNames(e.CheckNames, names, maxTables); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// checkNames holds check to its contract: it accepts a list exactly when
// it is not empty, every name is a DynamoDB table name and there are at most
// maxTables distinct names; it then returns them deduplicated in order of
// first appearance, and otherwise a message.
func checkNames(check func([]string) ([]string, string), names []string, maxTables int) error {
	out, msg := check(slices.Clone(names))
	var want []string
	ok := len(names) > 0
	for _, n := range names {
		if !dynamoTableName.MatchString(n) {
			ok = false
		}
		if !slices.Contains(want, n) {
			want = append(want, n)
		}
	}
	if len(want) > maxTables {
		ok = false
	}
	switch {
	case ok && msg != "":
		return fmt.Errorf("refused %q (%s), which are valid", names, msg)
	case !ok && msg == "":
		return fmt.Errorf("accepted %q as %q", names, out)
	case ok && !slices.Equal(out, want):
		return fmt.Errorf("CheckNames(%q) = %q, want %q", names, out, want)
	case !ok && out != nil:
		return fmt.Errorf("refused %q but returned names %q", names, out)
	}
	return nil
}

// TestCheckNamesCheckCatchesBrokenValidators shows that the fuzz target's
// check fails a validator with one deliberate fault.
func TestCheckNamesCheckCatchesBrokenValidators(t *testing.T) {
	e := newNameChecker(t, 3)
	if err := checkNames(e.CheckNames, []string{"abc", "abc", "def"}, 3); err != nil {
		t.Fatalf("the real CheckNames: %v", err)
	}
	broken := map[string]struct {
		check func([]string) ([]string, string)
		names []string
	}{
		"does not deduplicate": {func(n []string) ([]string, string) { return n, "" }, []string{"abc", "abc"}},
		"counts before deduplicating": {func(n []string) ([]string, string) {
			if len(n) > 3 {
				return nil, "too many"
			}
			return e.CheckNames(n)
		}, []string{"abc", "abc", "abc", "abc"}},
		"lets a Unicode letter through (unicode.IsLetter instead of ASCII)": {func(n []string) ([]string, string) {
			return regexpChecker(`^[\pL0-9_.-]{3,255}$`)(n)
		}, []string{"täble"}},
		"forgets the length limit": {func(n []string) ([]string, string) {
			return regexpChecker(`^[a-zA-Z0-9_.-]{3,}$`)(n)
		}, []string{strings.Repeat("t", 256)}},
	}
	for name, b := range broken {
		if err := checkNames(b.check, b.names, 3); err == nil {
			t.Errorf("a validator that %s: not caught", name)
		} else {
			t.Logf("a validator that %s: %v", name, err)
		}
	}
}

// regexpChecker is CheckNames with another name rule.
func regexpChecker(re string) func([]string) ([]string, string) {
	r := regexp.MustCompile(re)
	return func(names []string) ([]string, string) {
		var out []string
		for _, n := range names {
			if !r.MatchString(n) {
				return nil, "bad name"
			}
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
		if len(out) == 0 {
			return nil, "none"
		}
		return out, ""
	}
}
