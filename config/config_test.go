package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const (
	testAppToken = "xapp-1-A0TEST-123456789-abcdefsecretapp"
	testBotToken = "xoxb-123456789-987654321-secretbotvalue"
)

// validYAML is a complete, valid configuration that leaves several keys
// (export.poll_interval, export.read_throughput_ratio, log.*, ...) to the
// defaults.
const validYAML = `
slack:
  approvals_channel: C0123ABCD
  approver_groups: [S0123ABCD]
` + accountsYAML + `export:
  bucket: dynamodb-migration-backups-osio
store:
  path: /var/lib/osio-bot/test.db
`

const accountsYAML = `accounts:
  - name: osio
    id: "386414299200"
    role_arn: arn:aws:iam::386414299200:role/osio-bot
    region: us-east-1
  - name: osio-dev
    id: "619539278362"
    role_arn: arn:aws:iam::619539278362:role/osio-bot
    region: us-east-1
`

// envOf returns a lookup func over m, like os.LookupEnv.
func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func goodEnv() func(string) (string, bool) {
	return envOf(map[string]string{"SLACK_APP_TOKEN": testAppToken, "SLACK_BOT_TOKEN": testBotToken})
}

func mustParse(t *testing.T, data string, env func(string) (string, bool)) Config {
	t.Helper()
	c, err := Parse([]byte(data), env)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestParseValid(t *testing.T) {
	c := mustParse(t, validYAML, goodEnv())
	if ps := c.Validate(); len(ps) != 0 {
		t.Fatalf("Validate() = %v, want no problems", ps)
	}

	tests := []struct {
		name string
		got  any
		want any
	}{
		{"slack.app_token", c.Slack.AppToken.Reveal(), testAppToken},
		{"slack.bot_token", c.Slack.BotToken.Reveal(), testBotToken},
		{"slack.approvals_channel", c.Slack.ApprovalsChannel, "C0123ABCD"},
		{"slack.approver_groups", strings.Join(c.Slack.ApproverGroups, ","), "S0123ABCD"},
		{"accounts", len(c.Accounts), 2},
		{"accounts[0].id", c.Accounts[0].ID, "386414299200"},
		{"accounts[1].role_arn", c.Accounts[1].RoleARN, "arn:aws:iam::619539278362:role/osio-bot"},
		{"export.bucket", c.Export.Bucket, "dynamodb-migration-backups-osio"},
		{"store.path", c.Store.Path, "/var/lib/osio-bot/test.db"},
		{"store.backend", c.Store.Backend, "bolt"},
		{"store.lease_ttl", c.Store.LeaseTTL.D(), 30 * time.Second},
		{"store.dynamodb.call_timeout", c.Store.DynamoDB.CallTimeout.D(), 5 * time.Second},
		// Defaults for left-out keys.
		{"slack.api_url", c.Slack.APIURL, "https://slack.com/api/"},
		{"slack.approver_cache_ttl", c.Slack.ApproverCacheTTL.D(), time.Minute},
		{"approval.expiry", c.Approval.Expiry.D(), 24 * time.Hour},
		{"approval.check_timeout", c.Approval.CheckTimeout.D(), 4 * time.Second},
		{"export.method", c.Export.Method, "datapipeline"},
		{"export.source_account", c.Export.SourceAccount, "osio"},
		{"export.dest_account", c.Export.DestAccount, "osio-dev"},
		{"export.poll_interval", c.Export.PollInterval.D(), 30 * time.Second},
		{"export.poll_max_interval", c.Export.PollMaxInterval.D(), 5 * time.Minute},
		{"export.poll_backoff", c.Export.PollBackoff, 1.5},
		{"export.read_throughput_ratio", c.Export.ReadThroughputRatio, 0.25},
		{"export.emr.core_instance_count", c.Export.EMR.CoreInstanceCount, 1},
		{"export.max_tables", c.Export.MaxTables, 20},
		{"aws.session_name", c.AWS.SessionName, "osio-bot"},
		{"aws.call_timeout", c.AWS.CallTimeout.D(), 30 * time.Second},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "json"},
		{"metrics.listen", c.Metrics.Listen, ":9090"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
			}
		})
	}

	if a, ok := c.Account("osio-dev"); !ok || a.ID != "619539278362" {
		t.Errorf("Account(osio-dev) = %+v, %v", a, ok)
	}
	if _, ok := c.Account("nope"); ok {
		t.Errorf("Account(nope) found")
	}
}

func TestParseOverridesDefaults(t *testing.T) {
	c := mustParse(t, validYAML+`
log:
  level: debug
approval:
  expiry: 2h
`, goodEnv())
	if c.Log.Level != "debug" || c.Log.Format != "json" {
		t.Errorf("log = %+v, want level debug and default format json", c.Log)
	}
	if c.Approval.Expiry.D() != 2*time.Hour || c.Approval.SweepInterval.D() != time.Minute {
		t.Errorf("approval = %+v, want expiry 2h and default sweep 1m", c.Approval)
	}
}

func TestParseEnvTokensTrimmed(t *testing.T) {
	c := mustParse(t, validYAML, envOf(map[string]string{
		"SLACK_APP_TOKEN": "  " + testAppToken + "\n",
		"SLACK_BOT_TOKEN": testBotToken + "\n",
	}))
	if c.Slack.AppToken.Reveal() != testAppToken || c.Slack.BotToken.Reveal() != testBotToken {
		t.Errorf("tokens not trimmed: %q %q", c.Slack.AppToken.Reveal(), c.Slack.BotToken.Reveal())
	}
}

func TestParseEmpty(t *testing.T) {
	for _, data := range []string{"", "# only a comment\n"} {
		c, err := Parse([]byte(data), envOf(nil))
		if err != nil {
			t.Errorf("Parse(%q): %v", data, err)
			continue
		}
		if c.Export.PollInterval.D() != 30*time.Second {
			t.Errorf("Parse(%q): defaults not applied: %+v", data, c.Export)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		wants []string // substrings of the error
	}{
		{"unknown top-level key", validYAML + "metrix:\n  listen: :1\n", []string{"metrix", "not found"}},
		{"unknown nested key", strings.Replace(validYAML, "store:\n  path:", "store:\n  pathh: x\n  path:", 1), []string{"pathh"}},
		{"unknown account key", strings.Replace(validYAML, "    region: us-east-1\n", "    regoin: us-east-1\n", 1), []string{"regoin"}},
		{"bad duration", strings.Replace(validYAML, "export:\n", "export:\n  poll_interval: 5 minutes\n", 1), []string{"5 minutes", "not a duration"}},
		{"numeric duration", strings.Replace(validYAML, "export:\n", "export:\n  run_timeout: 30\n", 1), []string{`"30"`}},
		{"not yaml", "slack: [", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), goodEnv())
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseRejectsTokensInFile(t *testing.T) {
	tests := []struct {
		name, line string
		secret     string
	}{
		{"app_token", "  app_token: xapp-1-file-secret\n", "xapp-1-file-secret"},
		{"bot_token", "  bot_token: xoxb-file-secret\n", "xoxb-file-secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := strings.Replace(validYAML, "slack:\n", "slack:\n"+tt.line, 1)
			_, err := Parse([]byte(data), goodEnv())
			if err == nil {
				t.Fatal("Parse accepted a token in the file")
			}
			for _, w := range []string{"must not be in the file", "SLACK_APP_TOKEN", "SLACK_BOT_TOKEN"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), tt.secret) {
				t.Errorf("error %q leaks the token", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	if _, err := Load(t.TempDir()+"/missing.yaml", goodEnv()); err == nil || !strings.Contains(err.Error(), "reading config") {
		t.Errorf("Load(missing) error = %v, want a reading config error", err)
	}
}

// replace returns validYAML with old replaced by new, failing if old is
// not in it.
func replace(t *testing.T, old, new string) string {
	t.Helper()
	if !strings.Contains(validYAML, old) {
		t.Fatalf("test bug: %q not in validYAML", old)
	}
	return strings.Replace(validYAML, old, new, 1)
}

func TestValidateProblems(t *testing.T) {
	tests := []struct {
		name     string
		old, new string            // edit to validYAML; none when old is ""
		env      map[string]string // nil: both valid tokens
		key      string
	}{
		{name: "app token missing", env: map[string]string{"SLACK_BOT_TOKEN": testBotToken}, key: "SLACK_APP_TOKEN"},
		{name: "app token empty", env: map[string]string{"SLACK_APP_TOKEN": " ", "SLACK_BOT_TOKEN": testBotToken}, key: "SLACK_APP_TOKEN"},
		{name: "app token is a bot token", env: map[string]string{"SLACK_APP_TOKEN": testBotToken, "SLACK_BOT_TOKEN": testBotToken}, key: "SLACK_APP_TOKEN"},
		{name: "bot token missing", env: map[string]string{"SLACK_APP_TOKEN": testAppToken}, key: "SLACK_BOT_TOKEN"},
		{name: "bot token is an app token", env: map[string]string{"SLACK_APP_TOKEN": testAppToken, "SLACK_BOT_TOKEN": testAppToken}, key: "SLACK_BOT_TOKEN"},
		{name: "api url without slash", old: "slack:\n", new: "slack:\n  api_url: https://slack.com/api\n", key: "slack.api_url"},
		{name: "api url not http", old: "slack:\n", new: "slack:\n  api_url: ftp://slack.com/api/\n", key: "slack.api_url"},
		{name: "channel name", old: "approvals_channel: C0123ABCD", new: `approvals_channel: "#approvals"`, key: "slack.approvals_channel"},
		{name: "channel missing", old: "approvals_channel: C0123ABCD", new: `approvals_channel: ""`, key: "slack.approvals_channel"},
		{name: "approver groups missing", old: "approver_groups: [S0123ABCD]", new: "approver_groups: []", key: "slack.approver_groups"},
		{name: "approver group handle", old: "approver_groups: [S0123ABCD]", new: `approver_groups: ["@oncall"]`, key: "slack.approver_groups[0]"},
		{name: "second approver group name", old: "approver_groups: [S0123ABCD]", new: "approver_groups: [S0123ABCD, oncall]", key: "slack.approver_groups[1]"},
		{name: "approver cache ttl zero", old: "slack:\n", new: "slack:\n  approver_cache_ttl: 0s\n", key: "slack.approver_cache_ttl"},
		{name: "min post interval zero", old: "slack:\n", new: "slack:\n  min_post_interval: 0s\n", key: "slack.min_post_interval"},
		{name: "progress interval negative", old: "slack:\n", new: "slack:\n  progress_interval: -1s\n", key: "slack.progress_interval"},
		{name: "approval expiry zero", old: "accounts:\n", new: "approval:\n  expiry: 0s\naccounts:\n", key: "approval.expiry"},
		{name: "sweep interval zero", old: "accounts:\n", new: "approval:\n  sweep_interval: 0s\naccounts:\n", key: "approval.sweep_interval"},
		{name: "aws call timeout zero", old: "accounts:\n", new: "aws:\n  call_timeout: 0s\naccounts:\n", key: "aws.call_timeout"},
		{name: "resume interval zero", old: "store:\n", new: "store:\n  resume_interval: 0s\n", key: "store.resume_interval"},
		{name: "accounts missing", old: accountsYAML, new: "accounts: []\n", key: "accounts"},
		{name: "short account id", old: `id: "619539278362"`, new: `id: "123"`, key: "accounts[1].id"},
		{name: "account id missing", old: `id: "386414299200"`, new: `id: ""`, key: "accounts[0].id"},
		{name: "account name missing", old: "- name: osio-dev", new: `- name: ""`, key: "accounts[1].name"},
		{name: "duplicate account name", old: "- name: osio-dev", new: "- name: osio", key: "accounts[1].name"},
		{name: "role in another account", old: "role_arn: arn:aws:iam::386414299200:role/osio-bot", new: "role_arn: arn:aws:iam::619539278362:role/osio-bot", key: "accounts[0].role_arn"},
		{name: "role not an arn", old: "role_arn: arn:aws:iam::386414299200:role/osio-bot", new: "role_arn: osio-bot", key: "accounts[0].role_arn"},
		{name: "user arn", old: "role_arn: arn:aws:iam::619539278362:role/osio-bot", new: "role_arn: arn:aws:iam::619539278362:user/osio-bot", key: "accounts[1].role_arn"},
		{name: "bad region", old: "region: us-east-1\n  - name: osio-dev", new: "region: useast1\n  - name: osio-dev", key: "accounts[0].region"},
		{name: "unknown method", old: "export:\n", new: "export:\n  method: ftp\n", key: "export.method"},
		{name: "unknown source account", old: "export:\n", new: "export:\n  source_account: prod\n", key: "export.source_account"},
		{name: "unknown dest account", old: "export:\n", new: "export:\n  dest_account: dev\n", key: "export.dest_account"},
		{name: "dest same as source", old: "export:\n", new: "export:\n  dest_account: osio\n", key: "export.dest_account"},
		{name: "bucket url", old: "bucket: dynamodb-migration-backups-osio", new: "bucket: s3://x", key: "export.bucket"},
		{name: "bucket missing", old: "bucket: dynamodb-migration-backups-osio", new: `bucket: ""`, key: "export.bucket"},
		{name: "bucket upper case", old: "bucket: dynamodb-migration-backups-osio", new: "bucket: Backups", key: "export.bucket"},
		{name: "backups prefix trailing slash", old: "export:\n", new: "export:\n  backups_prefix: backups/\n", key: "export.backups_prefix"},
		{name: "logs prefix leading slash", old: "export:\n", new: "export:\n  logs_prefix: /logs\n", key: "export.logs_prefix"},
		{name: "read throughput ratio zero", old: "export:\n", new: "export:\n  read_throughput_ratio: 0\n", key: "export.read_throughput_ratio"},
		{name: "read throughput ratio too high", old: "export:\n", new: "export:\n  read_throughput_ratio: 2\n", key: "export.read_throughput_ratio"},
		{name: "core instance count zero", old: "export:\n", new: "export:\n  emr:\n    core_instance_count: 0\n", key: "export.emr.core_instance_count"},
		{name: "emr release label empty", old: "export:\n", new: "export:\n  emr:\n    release_label: \"\"\n", key: "export.emr"},
		{name: "poll interval zero", old: "export:\n", new: "export:\n  poll_interval: 0s\n", key: "export.poll_interval"},
		{name: "run timeout negative", old: "export:\n", new: "export:\n  run_timeout: -1h\n", key: "export.run_timeout"},
		{name: "poll max below poll interval", old: "export:\n", new: "export:\n  poll_max_interval: 10s\n", key: "export.poll_max_interval"},
		{name: "poll backoff below 1", old: "export:\n", new: "export:\n  poll_backoff: 0.5\n", key: "export.poll_backoff"},
		{name: "max tables zero", old: "export:\n", new: "export:\n  max_tables: 0\n", key: "export.max_tables"},
		{name: "max tables too many", old: "export:\n", new: "export:\n  max_tables: 41\n", key: "export.max_tables"},
		{name: "store path empty", old: "  path: /var/lib/osio-bot/test.db", new: `  path: ""`, key: "store.path"},
		{name: "store backend unknown", old: "  path: /var/lib/osio-bot/test.db", new: "  backend: etcd\n  path: /x.db", key: "store.backend"},
		{name: "dynamodb table missing", old: "  path: /var/lib/osio-bot/test.db", new: "  backend: dynamodb\n  dynamodb: {region: us-east-1}", key: "store.dynamodb.table"},
		{name: "dynamodb table name", old: "  path: /var/lib/osio-bot/test.db", new: "  backend: dynamodb\n  dynamodb: {table: 'a b', region: us-east-1}", key: "store.dynamodb.table"},
		{name: "dynamodb region missing", old: "  path: /var/lib/osio-bot/test.db", new: "  backend: dynamodb\n  dynamodb: {table: osio-bot}", key: "store.dynamodb.region"},
		{name: "dynamodb endpoint", old: "  path: /var/lib/osio-bot/test.db", new: "  backend: dynamodb\n  dynamodb: {table: osio-bot, region: us-east-1, endpoint: 'localhost:8000'}", key: "store.dynamodb.endpoint"},
		{name: "dynamodb call timeout", old: "  path: /var/lib/osio-bot/test.db", new: "  backend: dynamodb\n  dynamodb: {table: osio-bot, region: us-east-1, call_timeout: 0s}", key: "store.dynamodb.call_timeout"},
		{name: "lease ttl short", old: "  path: /var/lib/osio-bot/test.db", new: "  path: /x.db\n  lease_ttl: 1s", key: "store.lease_ttl"},
		{name: "audit uri", old: "store:\n", new: "audit:\n  s3_uri: https://bucket/x\nstore:\n", key: "audit.s3_uri"},
		{name: "audit account", old: "store:\n", new: "audit:\n  s3_uri: s3://osio-audit/records\n  account: nope\nstore:\n", key: "audit.account"},
		{name: "retention short", old: "  path: /var/lib/osio-bot/test.db", new: "  path: /x.db\n  retention: 1h", key: "store.retention"},
		{name: "retention on dynamodb", old: "  path: /var/lib/osio-bot/test.db", new: "  backend: dynamodb\n  dynamodb: {table: osio-bot, region: us-east-1}\n  retention: 9600h", key: "store.retention"},
		{name: "log level", old: "store:\n", new: "log:\n  level: loud\nstore:\n", key: "log.level"},
		{name: "log format", old: "store:\n", new: "log:\n  format: text\nstore:\n", key: "log.format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := validYAML
			if tt.old != "" {
				data = replace(t, tt.old, tt.new)
			}
			env := goodEnv()
			if tt.env != nil {
				env = envOf(tt.env)
			}
			ps := mustParse(t, data, env).Validate()
			var found *Problem
			var keys []string
			for i := range ps {
				keys = append(keys, ps[i].Key)
				if ps[i].Key == tt.key && found == nil {
					found = &ps[i]
				}
			}
			if found == nil {
				t.Fatalf("no problem with key %q; got keys %q", tt.key, keys)
			}
			if found.Fix == "" {
				t.Errorf("problem %q has an empty Fix", found.Key)
			}
			if found.Wrong == "" {
				t.Errorf("problem %q has an empty Wrong", found.Key)
			}
			s := found.String()
			if !strings.HasPrefix(s, tt.key+": ") || !strings.HasSuffix(s, "; fix: "+found.Fix) {
				t.Errorf("Problem.String() = %q", s)
			}
			for _, tok := range []string{testAppToken, testBotToken} {
				if strings.Contains(s, tok) {
					t.Errorf("Problem.String() = %q leaks a token", s)
				}
			}
		})
	}
}

// TestValidateOnlyNamedProblem checks that the simplest edits produce
// exactly the named problems, so the keys above are not matched by accident.
func TestValidateOnlyNamedProblem(t *testing.T) {
	tests := []struct {
		name, old, new string
		keys           string // every problem's key, in order, comma-separated
	}{
		{"approvals channel", "approvals_channel: C0123ABCD", `approvals_channel: "#approvals"`, "slack.approvals_channel"},
		{"approver group", "approver_groups: [S0123ABCD]", `approver_groups: ["@oncall"]`, "slack.approver_groups[0]"},
		// The role ARN no longer matches the id either.
		{"account id", `id: "619539278362"`, `id: "123"`, "accounts[1].id,accounts[1].role_arn"},
		{"bucket", "bucket: dynamodb-migration-backups-osio", "bucket: s3://x", "export.bucket"},
		{"method", "export:\n", "export:\n  method: ftp\n", "export.method"},
		{"ratio", "export:\n", "export:\n  read_throughput_ratio: 0\n", "export.read_throughput_ratio"},
		{"poll max", "export:\n", "export:\n  poll_max_interval: 10s\n", "export.poll_max_interval"},
		{"store path", "  path: /var/lib/osio-bot/test.db", `  path: ""`, "store.path"},
		{"dest same as source", "export:\n", "export:\n  dest_account: osio\n", "export.dest_account"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := mustParse(t, replace(t, tt.old, tt.new), goodEnv()).Validate()
			var keys []string
			for _, p := range ps {
				keys = append(keys, p.Key)
			}
			if got := strings.Join(keys, ","); got != tt.keys {
				t.Errorf("Validate() keys = %q, want %q; problems: %v", got, tt.keys, ps)
			}
		})
	}
	t.Run("role in another account", func(t *testing.T) {
		ps := mustParse(t, replace(t, "role_arn: arn:aws:iam::386414299200:role/osio-bot", "role_arn: arn:aws:iam::619539278362:role/osio-bot"), goodEnv()).Validate()
		if len(ps) != 1 || ps[0].Key != "accounts[0].role_arn" || !strings.Contains(ps[0].Wrong, "619539278362") {
			t.Errorf("Validate() = %v, want one accounts[0].role_arn problem naming 619539278362", ps)
		}
	})
	t.Run("no tokens", func(t *testing.T) {
		ps := mustParse(t, validYAML, envOf(nil)).Validate()
		if len(ps) != 2 || ps[0].Key != "SLACK_APP_TOKEN" || ps[1].Key != "SLACK_BOT_TOKEN" {
			t.Fatalf("Validate() = %v, want SLACK_APP_TOKEN and SLACK_BOT_TOKEN", ps)
		}
		for _, p := range ps {
			if p.Wrong != "is missing" {
				t.Errorf("%s: Wrong = %q, want is missing", p.Key, p.Wrong)
			}
		}
	})
	t.Run("defaults alone", func(t *testing.T) {
		// An empty file with tokens names every required key.
		ps := mustParse(t, "", goodEnv()).Validate()
		want := map[string]bool{"slack.approvals_channel": true, "slack.approver_groups": true, "accounts": true, "export.source_account": true, "export.dest_account": true, "export.bucket": true}
		for _, p := range ps {
			if !want[p.Key] {
				t.Errorf("unexpected problem %v", p)
			}
			delete(want, p.Key)
		}
		for k := range want {
			t.Errorf("missing problem for %s", k)
		}
	})
}

func TestSecretNeverPrints(t *testing.T) {
	c := mustParse(t, validYAML, goodEnv())
	red := c.Redacted()
	if !strings.Contains(red, "(redacted)") {
		t.Errorf("Redacted() has no (redacted):\n%s", red)
	}
	outputs := map[string]string{
		"Redacted":      red,
		"%v":            fmt.Sprintf("%v", c),
		"%+v":           fmt.Sprintf("%+v", c),
		"%#v":           fmt.Sprintf("%#v", c),
		"Sprint":        fmt.Sprint(c),
		"%v pointer":    fmt.Sprintf("%v", &c),
		"%+v slack":     fmt.Sprintf("%+v", c.Slack),
		"%#v slack":     fmt.Sprintf("%#v", c.Slack),
		"%v secret":     fmt.Sprintf("%v", c.Slack.AppToken),
		"%s secret":     fmt.Sprintf("%s", c.Slack.BotToken),
		"%q secret":     fmt.Sprintf("%q", c.Slack.BotToken),
		"%#v secret":    fmt.Sprintf("%#v", c.Slack.BotToken),
		"Sprint secret": fmt.Sprint(c.Slack.AppToken, c.Slack.BotToken),
		"Sprintln cfg":  fmt.Sprintln(c),
	}
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			for _, tok := range []string{testAppToken, testBotToken, "secretapp", "secretbotvalue"} {
				if strings.Contains(out, tok) {
					t.Errorf("output contains %q:\n%s", tok, out)
				}
			}
		})
	}
	t.Run("redacted values", func(t *testing.T) {
		for _, want := range []string{"app_token: (redacted)", "bot_token: (redacted)", "poll_interval: 30s", "read_throughput_ratio: 0.25", "bucket: dynamodb-migration-backups-osio"} {
			if !strings.Contains(red, want) {
				t.Errorf("Redacted() lacks %q:\n%s", want, red)
			}
		}
	})
	t.Run("marshal text", func(t *testing.T) {
		b, err := c.Slack.BotToken.MarshalText()
		if err != nil || string(b) != "(redacted)" {
			t.Errorf("MarshalText = %q, %v", b, err)
		}
	})
}

func TestSecretString(t *testing.T) {
	tests := []struct {
		in   Secret
		want string
	}{
		{"", "(unset)"},
		{"xoxb-1", "(redacted)"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Secret(%q).String() = %q, want %q", tt.in.Reveal(), got, tt.want)
		}
		if got := tt.in.GoString(); got != tt.want {
			t.Errorf("Secret(%q).GoString() = %q, want %q", tt.in.Reveal(), got, tt.want)
		}
	}
}

// TestRedactedRoundTrip checks that check-config output, with the secrets
// removed, parses back to the same configuration.
func TestRedactedRoundTrip(t *testing.T) {
	c := mustParse(t, validYAML, goodEnv())
	var kept []string
	for _, l := range strings.Split(c.Redacted(), "\n") {
		if !strings.Contains(l, "(redacted)") {
			kept = append(kept, l)
		}
	}
	c2 := mustParse(t, strings.Join(kept, "\n"), goodEnv())
	if fmt.Sprintf("%#v", c2) != fmt.Sprintf("%#v", c) || c2.Slack.AppToken != c.Slack.AppToken {
		t.Errorf("round trip differs:\n%#v\n%#v", c, c2)
	}
}

// TestValidateKnownBugs holds inputs that Validate or Parse should reject
// but currently accept. Each is skipped with the reason; remove the skip
// once fixed.
func TestValidateEdgeCases(t *testing.T) {
	tests := []struct {
		name, old, new string // old "": new is appended to validYAML
		key            string // "" means Parse itself should fail
		bug            string
	}{
		{"NaN read throughput ratio", "export:\n", "export:\n  read_throughput_ratio: .nan\n", "export.read_throughput_ratio",
			"Validate's range check `e.ReadThroughputRatio <= 0 || > 1.5` is false for NaN"},
		{"NaN poll backoff", "export:\n", "export:\n  poll_backoff: .nan\n", "export.poll_backoff",
			"Validate's check `e.PollBackoff < 1` is false for NaN"},
		{"second YAML document ignored", "", "---\nlog:\n  levell: loud\n", "",
			"Parse decodes only the first YAML document; later ones are silently dropped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := validYAML + tt.new
			if tt.old != "" {
				data = replace(t, tt.old, tt.new)
			}
			c, err := Parse([]byte(data), goodEnv())
			rejected := err != nil || tt.key != "" && hasKey(c.Validate(), tt.key)
			if !rejected {
				t.Errorf("not rejected: %s", tt.bug)
			}
		})
	}
}

func hasKey(ps []Problem, key string) bool {
	for _, p := range ps {
		if p.Key == key {
			return true
		}
	}
	return false
}

// resetYAML turns the reset on, with what it needs besides the directory.
const resetYAML = `reset:
  enabled: true
mail:
  addr: smtp.example.com:587
  from: osio-bot@example.com
`

// Issue 8 item 4: directory.email_domains is read and checked.
func TestEmailDomains(t *testing.T) {
	c := mustParse(t, validYAML+resetYAML+"directory:\n  email_domains: [example.com, Corp.Example.ORG]\n", goodEnv())
	if got := strings.Join(c.Directory.EmailDomains, ","); got != "example.com,Corp.Example.ORG" {
		t.Errorf("EmailDomains = %q", got)
	}
	if ps := c.Validate(); len(ps) != 0 {
		t.Errorf("Validate() = %v", ps)
	}
	if ps := mustParse(t, validYAML+resetYAML, goodEnv()).Validate(); len(ps) != 0 {
		t.Errorf("without email_domains (e-mail matching off): Validate() = %v", ps)
	}
	for _, tt := range []struct{ domains, key string }{
		{`["@example.com"]`, "directory.email_domains[0]"},
		{`[example.com, "jdoe@example.com"]`, "directory.email_domains[1]"},
		{`["*.example.com"]`, "directory.email_domains[0]"},
		{`[localhost]`, "directory.email_domains[0]"},
		{`[""]`, "directory.email_domains[0]"},
		{`["example.com "]`, "directory.email_domains[0]"},
		{`[example.com, EXAMPLE.com]`, "directory.email_domains[1]"},
	} {
		ps := mustParse(t, validYAML+resetYAML+"directory:\n  email_domains: "+tt.domains+"\n", goodEnv()).Validate()
		if len(ps) != 1 || ps[0].Key != tt.key || ps[0].Fix == "" {
			t.Errorf("email_domains %s: Validate() = %v, want one %s problem", tt.domains, ps, tt.key)
		}
	}
}

// The shipped examples (deploy/config.example.yaml and the ConfigMap's copy)
// parse, validate with the secrets set, and carry directory.email_domains.
func TestShippedExamples(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "deploy", "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join("..", "deploy", "kubernetes", "configmap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		t.Fatal(err)
	}
	env := envOf(map[string]string{"SLACK_APP_TOKEN": testAppToken, "SLACK_BOT_TOKEN": testBotToken,
		"SMTP_PASSWORD": "pw", "GITLAB_TOKEN": "glpat-x", "APP_INTERFACE_TOKEN": "t"})
	for name, data := range map[string]string{"config.example.yaml": string(example), "configmap.yaml": cm.Data["config.yaml"]} {
		c := mustParse(t, data, env)
		if ps := c.Validate(); len(ps) != 0 {
			t.Errorf("%s: %v", name, ps)
		}
		if got := strings.Join(c.Directory.EmailDomains, ","); got != "example.com" {
			t.Errorf("%s: directory.email_domains = %q", name, got)
		}
	}
}

// The dynamodb backend needs a table and a region, not a file path.
func TestValidateDynamoDBStore(t *testing.T) {
	data := replace(t, "  path: /var/lib/osio-bot/test.db", "  backend: dynamodb\n  path: \"\"\n  dynamodb:\n    table: osio-bot\n    region: us-east-1\n    endpoint: http://127.0.0.1:8000")
	c := mustParse(t, data, goodEnv())
	if ps := c.Validate(); len(ps) != 0 {
		t.Fatalf("problems: %v", ps)
	}
	if c.Store.DynamoDB.Table != "osio-bot" || c.Store.DynamoDB.Endpoint != "http://127.0.0.1:8000" {
		t.Errorf("store = %+v", c.Store)
	}
}

// The HA variant's ConfigMap is the single replica's with the dynamodb
// store: it validates, and no other key differs.
func TestShippedHAConfigMap(t *testing.T) {
	read := func(dir string) Config {
		raw, err := os.ReadFile(filepath.Join("..", "deploy", dir, "configmap.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var cm struct {
			Data map[string]string `yaml:"data"`
		}
		if err := yaml.Unmarshal(raw, &cm); err != nil {
			t.Fatal(err)
		}
		env := envOf(map[string]string{"SLACK_APP_TOKEN": testAppToken, "SLACK_BOT_TOKEN": testBotToken,
			"SMTP_PASSWORD": "pw", "GITLAB_TOKEN": "glpat-x", "APP_INTERFACE_TOKEN": "t"})
		return mustParse(t, cm.Data["config.yaml"], env)
	}
	one, ha := read("kubernetes"), read("kubernetes-ha")
	if ps := ha.Validate(); len(ps) != 0 {
		t.Fatalf("kubernetes-ha/configmap.yaml: %v", ps)
	}
	if ha.Store.Backend != "dynamodb" || ha.Store.DynamoDB.Table == "" {
		t.Errorf("HA store = %+v", ha.Store)
	}
	one.Store, ha.Store = Store{}, Store{}
	if !reflect.DeepEqual(one, ha) {
		t.Errorf("the HA ConfigMap differs from the single replica's outside store:")
	}
}

// Issue 13, acceptance 3: STARTTLS off or certificate checks off are
// refused unless the relay is on this machine (loopback); the name on the
// relay's certificate can be given.
func TestMailSafety(t *testing.T) {
	mail := func(extra string) []Problem {
		t.Helper()
		y := strings.Replace(resetYAML, "  from: osio-bot@example.com\n", "  from: osio-bot@example.com\n"+extra, 1)
		return mustParse(t, validYAML+y, goodEnv()).Validate()
	}
	for _, tt := range []struct {
		name, extra string
		key         string // "" = valid
	}{
		{"defaults", "", ""},
		{"starttls off, remote", "  starttls: false\n", "mail.starttls"},
		{"insecure, remote", "  insecure_skip_verify: true\n", "mail.insecure_skip_verify"},
		{"tls server name", "  tls_server_name: relay.corp.example.com\n", ""},
		{"tls server name bad", "  tls_server_name: \"not a name\"\n", "mail.tls_server_name"},
	} {
		ps := mail(tt.extra)
		if tt.key == "" && len(ps) != 0 || tt.key != "" && (len(ps) != 1 || ps[0].Key != tt.key || ps[0].Fix == "") {
			t.Errorf("%s: Validate() = %v, want %q", tt.name, ps, tt.key)
		}
	}
	for _, addr := range []string{"127.0.0.1:25", "localhost:25", "[::1]:25", "127.0.0.53:2525"} {
		y := strings.Replace(resetYAML, "smtp.example.com:587", `"`+addr+`"`, 1)
		y = strings.Replace(y, "  from: osio-bot@example.com\n", "  from: osio-bot@example.com\n  starttls: false\n  insecure_skip_verify: true\n", 1)
		if ps := mustParse(t, validYAML+y, goodEnv()).Validate(); len(ps) != 0 {
			t.Errorf("loopback %s: Validate() = %v", addr, ps)
		}
	}
	for _, addr := range []string{"10.0.0.5:25", "smtp.internal:25", "localhost.example.com:25"} {
		y := strings.Replace(resetYAML, "smtp.example.com:587", `"`+addr+`"`, 1)
		y = strings.Replace(y, "  from: osio-bot@example.com\n", "  from: osio-bot@example.com\n  starttls: false\n", 1)
		if ps := mustParse(t, validYAML+y, goodEnv()).Validate(); !hasKey(ps, "mail.starttls") {
			t.Errorf("remote %s with starttls false accepted: %v", addr, ps)
		}
	}
}
