package passwordreset

import (
	"strings"
	"testing"

	"github.com/osio/osio-bot/config"
)

func TestParse(t *testing.T) {
	cfg := config.Defaults()
	cfg.Accounts = []config.Account{{Name: "osio"}, {Name: "osio-dev"}}
	r := New(cfg, Deps{})
	tests := []struct {
		args []string
		want Request
		msg  string
	}{
		{nil, Request{Account: "osio-dev"}, ""},
		{[]string{"jdoe"}, Request{User: "jdoe", Account: "osio-dev"}, ""},
		{[]string{"jdoe", "--account", "osio"}, Request{User: "jdoe", Account: "osio"}, ""},
		{[]string{"--account=osio", "jdoe", "--method", "recreate"}, Request{User: "jdoe", Account: "osio", Method: "recreate"}, ""},
		{[]string{"jdoe", "--account"}, Request{}, "`--account` needs a value"},
		{[]string{"jdoe", "--account", "prod"}, Request{}, "`prod` is not an account I know; use osio or osio-dev"},
		{[]string{"jdoe", "--method", "nuke"}, Request{}, "`nuke` is not a method"},
		{[]string{"jdoe", "bob"}, Request{}, "Name one IAM user at most"},
		{[]string{"jdoe", "-f"}, Request{}, "Unknown option `-f`"},
		{[]string{"j;doe"}, Request{}, "is not a valid IAM user name"},
		{[]string{strings.Repeat("a", 65)}, Request{}, "is not a valid IAM user name"},
	}
	for _, tc := range tests {
		got, msg := r.Parse(tc.args)
		if tc.msg != "" {
			if !strings.Contains(msg, tc.msg) {
				t.Errorf("Parse(%q) message = %q, want %q", tc.args, msg, tc.msg)
			}
			continue
		}
		if msg != "" || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %q; want %+v", tc.args, got, msg, tc.want)
		}
	}
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"dana@example.com": "d***@example.com",
		"x@y.z":            "x***@y.z",
		"no-at-sign":       "***",
		"@example.com":     "***",
	} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}
