package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	testAppToken = "xapp-1-A0TEST-123456789-mainsecretapp"
	testBotToken = "xoxb-123456789-987654321-mainsecretbot"
)

const validConfig = `slack:
  approvals_channel: C0123ABCD
  approver_groups: [S0123ABCD]
accounts:
  - name: osio
    id: "386414299200"
    role_arn: arn:aws:iam::386414299200:role/osio-bot
    region: us-east-1
  - name: osio-dev
    id: "619539278362"
    role_arn: arn:aws:iam::619539278362:role/osio-bot
    region: us-east-1
export:
  bucket: dynamodb-migration-backups-osio
store:
  path: /var/lib/osio-bot/test.db
`

// invalidConfig has three bad keys.
const invalidConfig = `slack:
  approvals_channel: "#approvals"
  approver_groups: [S0123ABCD]
accounts:
  - name: osio
    id: "386414299200"
    role_arn: arn:aws:iam::386414299200:role/osio-bot
    region: us-east-1
  - name: osio-dev
    id: "123"
    role_arn: arn:aws:iam::619539278362:role/osio-bot
    region: us-east-1
export:
  bucket: s3://x
store:
  path: /var/lib/osio-bot/test.db
`

func setTokens(t *testing.T) {
	t.Setenv("SLACK_APP_TOKEN", testAppToken)
	t.Setenv("SLACK_BOT_TOKEN", testBotToken)
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func noTokens(t *testing.T, name, s string) {
	t.Helper()
	for _, tok := range []string{testAppToken, testBotToken} {
		if strings.Contains(s, tok) {
			t.Errorf("%s contains a token:\n%s", name, s)
		}
	}
}

func TestRun(t *testing.T) {
	setTokens(t)
	valid := writeConfig(t, validConfig)
	invalid := writeConfig(t, invalidConfig)
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	unknownKey := writeConfig(t, validConfig+"metrix:\n  listen: :1\n")
	tokenInFile := writeConfig(t, strings.Replace(validConfig, "slack:\n", "slack:\n  bot_token: "+testBotToken+"\n", 1))

	tests := []struct {
		name       string
		args       []string
		code       int
		stdoutHas  []string
		stdoutNot  []string
		stderrHas  []string
		stderrNot  []string
		stdoutNone bool
	}{
		{
			name:      "check-config valid",
			args:      []string{"check-config", "--config", valid},
			code:      0,
			stdoutHas: []string{"app_token: (redacted)", "bot_token: (redacted)", "approvals_channel: C0123ABCD", "poll_interval: 30s", "path: /var/lib/osio-bot/test.db"},
			stderrHas: []string{valid + " is valid"},
			stderrNot: []string{"invalid:"},
		},
		{
			name:      "check-config valid, single-dash flag",
			args:      []string{"check-config", "-config=" + valid},
			code:      0,
			stdoutHas: []string{"(redacted)"},
		},
		{
			name:      "check-config invalid",
			args:      []string{"check-config", "--config", invalid},
			code:      1,
			stdoutHas: []string{"(redacted)"},
			stderrHas: []string{
				"invalid: slack.approvals_channel: ", "invalid: accounts[1].id: ", "invalid: accounts[1].role_arn: ", "invalid: export.bucket: ",
				"fix:", "4 problem(s) in " + invalid,
			},
			stderrNot: []string{"is valid"},
		},
		{
			name:       "check-config missing file",
			args:       []string{"check-config", "--config", missing},
			code:       1,
			stderrHas:  []string{"reading config", "nope.yaml"},
			stdoutNone: true,
		},
		{
			name:       "check-config unknown key",
			args:       []string{"check-config", "--config", unknownKey},
			code:       1,
			stderrHas:  []string{"metrix"},
			stdoutNone: true,
		},
		{
			name:       "check-config token in file",
			args:       []string{"check-config", "--config", tokenInFile},
			code:       1,
			stderrHas:  []string{"must not be in the file"},
			stdoutNone: true,
		},
		{
			name:      "check-config bad flag",
			args:      []string{"check-config", "--nope"},
			code:      2,
			stderrHas: []string{"nope"},
		},
		{
			name:      "unknown subcommand",
			args:      []string{"serve", "--config", valid},
			code:      2,
			stderrHas: []string{`unknown command "serve"`, "usage:"},
		},
		{name: "no arguments", args: nil, code: 0, stdoutHas: []string{"usage:", "check-config"}},
		{name: "help", args: []string{"help"}, code: 0, stdoutHas: []string{"usage:", "check-config", "SLACK_APP_TOKEN"}},
		{name: "-h", args: []string{"-h"}, code: 0, stdoutHas: []string{"usage:"}},
		{name: "--help", args: []string{"--help"}, code: 0, stdoutHas: []string{"usage:"}},
		{
			// run validates before touching Slack or AWS.
			name:      "run invalid config",
			args:      []string{"run", "--config", invalid},
			code:      1,
			stderrHas: []string{"cannot start"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(tt.args...)
			if code != tt.code {
				t.Errorf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			for _, s := range tt.stdoutHas {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tt.stdoutNot {
				if strings.Contains(stdout, s) {
					t.Errorf("stdout has %q:\n%s", s, stdout)
				}
			}
			for _, s := range tt.stderrHas {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			for _, s := range tt.stderrNot {
				if strings.Contains(stderr, s) {
					t.Errorf("stderr has %q:\n%s", s, stderr)
				}
			}
			if tt.stdoutNone && stdout != "" {
				t.Errorf("stdout not empty:\n%s", stdout)
			}
			noTokens(t, "stdout", stdout)
			noTokens(t, "stderr", stderr)
		})
	}
}

// TestCheckConfigEachProblemHasFix checks that every "invalid:" line of
// check-config names a key and carries a fix.
func TestCheckConfigEachProblemHasFix(t *testing.T) {
	setTokens(t)
	code, _, stderr := runCmd("check-config", "--config", writeConfig(t, invalidConfig))
	if code != 1 {
		t.Fatalf("exit code = %d, want 1", code)
	}
	var n int
	for _, l := range strings.Split(stderr, "\n") {
		if !strings.HasPrefix(l, "invalid: ") {
			continue
		}
		n++
		key, rest, ok := strings.Cut(strings.TrimPrefix(l, "invalid: "), ": ")
		if !ok || key == "" || !strings.Contains(rest, "; fix: ") || strings.HasSuffix(rest, "; fix: ") {
			t.Errorf("malformed problem line %q", l)
		}
	}
	if n != 4 {
		t.Errorf("%d problem lines, want 4:\n%s", n, stderr)
	}
}

func TestCheckConfigTokens(t *testing.T) {
	path := writeConfig(t, validConfig)
	tests := []struct {
		name     string
		app, bot string // "" unset
		code     int
		keys     []string
	}{
		{"both set", testAppToken, testBotToken, 0, nil},
		{"app token missing", "", testBotToken, 1, []string{"invalid: SLACK_APP_TOKEN: is missing"}},
		{"bot token missing", testAppToken, "", 1, []string{"invalid: SLACK_BOT_TOKEN: is missing"}},
		{"tokens swapped", testBotToken, testAppToken, 1, []string{"invalid: SLACK_APP_TOKEN: does not start with xapp-", "invalid: SLACK_BOT_TOKEN: does not start with xoxb-"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range map[string]string{"SLACK_APP_TOKEN": tt.app, "SLACK_BOT_TOKEN": tt.bot} {
				t.Setenv(k, v) // restores the old value afterwards
				if v == "" {
					os.Unsetenv(k)
				}
			}
			code, stdout, stderr := runCmd("check-config", "--config", path)
			if code != tt.code {
				t.Errorf("exit code = %d, want %d\nstderr:\n%s", code, tt.code, stderr)
			}
			for _, k := range tt.keys {
				if !strings.Contains(stderr, k) {
					t.Errorf("stderr lacks %q:\n%s", k, stderr)
				}
			}
			noTokens(t, "stdout", stdout)
			noTokens(t, "stderr", stderr)
		})
	}
}

// TestUnknownSubcommandWithoutConfig: run must look at the subcommand before
// it loads the config, so an unknown subcommand without
// --config exits 1 ("reading config") unless /etc/osio-bot/config.yaml
// exists, instead of 2 with the usage.
func TestUnknownSubcommandWithoutConfig(t *testing.T) {
	if _, err := os.Stat("/etc/osio-bot/config.yaml"); err == nil {
		t.Skip("/etc/osio-bot/config.yaml exists")
	}
	code, _, stderr := runCmd("serve")
	if code != 2 {
		t.Errorf("unknown subcommand without --config exits %d, want 2; stderr: %q", code, stderr)
	}
	if !strings.Contains(stderr, `unknown command "serve"`) {
		t.Errorf("stderr lacks the unknown command:\n%s", stderr)
	}
}

// Issue 13 part 3: a Slack user mapped in directory.mappings and in the
// people file to different people is a check-config warning naming the
// one that wins; agreeing places say nothing.
func TestCheckConfigWarnsOnDisagreeingMappings(t *testing.T) {
	setTokens(t)
	t.Setenv("SMTP_PASSWORD", "pw")
	dir := t.TempDir()
	people := filepath.Join(dir, "people.yaml")
	if err := os.WriteFile(people, []byte("people:\n  - org_username: jdoe\n    email: jdoe@example.com\n    slack_user: U0JDOE\n  - org_username: asmith\n    email: asmith@example.com\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reset := "reset:\n  enabled: true\nmail:\n  addr: smtp.example.com:587\n  from: osio-bot@example.com\n  username: osio-bot\ndirectory:\n  file: " + people + "\n  mappings:\n"
	for _, tt := range []struct{ mappings, warn string }{
		{"    U0JDOE: asmith\n", `Slack user U0JDOE is mapped to "asmith" in directory.mappings and to "jdoe" in ` + people + `; directory.mappings wins`},
		{"    U0JDOE: jdoe\n", ""},
	} {
		code, _, stderr := runCmd("check-config", "--config", writeConfig(t, validConfig+reset+tt.mappings))
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if tt.warn != "" && !strings.Contains(stderr, "warning: "+tt.warn) {
			t.Errorf("no warning %q in:\n%s", tt.warn, stderr)
		}
		if tt.warn == "" && strings.Contains(stderr, "warning:") {
			t.Errorf("a warning where the places agree:\n%s", stderr)
		}
	}
}
