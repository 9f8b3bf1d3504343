// Package config holds osio-bot's one typed configuration: a YAML file for
// everything that is not secret, and the environment for the secrets:
// SLACK_APP_TOKEN and SLACK_BOT_TOKEN, and for password resets
// SMTP_PASSWORD, GITLAB_TOKEN and APP_INTERFACE_TOKEN (the AWS SDK reads its
// own variables). Validate names every bad key, what is wrong with it and
// how to fix it.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Secret is a string that never prints: fmt, zap and YAML all see a
// redacted form. Use Reveal where the real value must be passed on.
type Secret string

// Reveal returns the secret value itself.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) String() string {
	if s == "" {
		return "(unset)"
	}
	return "(redacted)"
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return s.String() }

// MarshalYAML redacts the secret in check-config output.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalText redacts the secret in JSON and zap output.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Duration is a time.Duration written as "30s", "5m", "24h" in YAML.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses Go duration syntax.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (use forms like 30s, 5m, 24h)", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML prints the duration in Go syntax.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Config is the whole configuration.
type Config struct {
	Slack    Slack     `yaml:"slack"`
	Approval Approval  `yaml:"approval"`
	Accounts []Account `yaml:"accounts"`
	AWS      AWS       `yaml:"aws"`
	Export   Export    `yaml:"export"`
	Restore  Restore   `yaml:"restore"`
	Reset    Reset     `yaml:"reset"`
	Mail     Mail      `yaml:"mail"`
	// Directory maps Slack users to people (org username, mail, GPG key).
	Directory    Directory    `yaml:"directory"`
	AppInterface AppInterface `yaml:"app_interface"`
	Store        Store        `yaml:"store"`
	Audit        Audit        `yaml:"audit"`
	Log          Log          `yaml:"log"`
	Metrics      Metrics      `yaml:"metrics"`
}

// Slack is how the bot reaches Slack.
type Slack struct {
	// APIURL is the Web API base, https://slack.com/api/ in production; a
	// local Slack server in tests and in the demo.
	APIURL string `yaml:"api_url"`
	// AppToken (xapp-) opens Socket Mode connections. From SLACK_APP_TOKEN.
	AppToken Secret `yaml:"app_token"`
	// BotToken (xoxb-) calls the Web API. From SLACK_BOT_TOKEN.
	BotToken Secret `yaml:"bot_token"`
	// ApprovalsChannel is the channel id where approval messages and
	// their threads live.
	ApprovalsChannel string `yaml:"approvals_channel"`
	// ApproverGroups are user group ids (S...) whose members may approve.
	ApproverGroups []string `yaml:"approver_groups"`
	// ApproverCacheTTL is how long a usergroups.users.list answer is reused.
	ApproverCacheTTL Duration `yaml:"approver_cache_ttl"`
	// MinPostInterval is the least time between two posts to one channel.
	MinPostInterval Duration `yaml:"min_post_interval"`
	// ProgressInterval is the least time between two edits of a thread's
	// status message; faster progress is folded into one edit.
	ProgressInterval Duration `yaml:"progress_interval"`
}

// Approval governs pending requests.
type Approval struct {
	// Expiry is how long a request waits for a decision.
	Expiry Duration `yaml:"expiry"`
	// SweepInterval is how often expired requests are looked for.
	SweepInterval Duration `yaml:"sweep_interval"`
	// CheckTimeout bounds the checks (AWS, users.info, the directory,
	// GraphQL) of a request-making command. They run after the command's
	// ack (its receipt), so Slack's 3 s ack window does not bound them;
	// when they do not finish in time the request is refused and the
	// requester told so.
	CheckTimeout Duration `yaml:"check_timeout"`
}

// Account is one AWS account the bot works in, through an assumed role.
type Account struct {
	Name    string `yaml:"name"`
	ID      string `yaml:"id"`
	RoleARN string `yaml:"role_arn"`
	Region  string `yaml:"region"`
}

// AWS holds SDK settings the standard configuration does not cover.
// Endpoints come from the SDK's own configuration (AWS_ENDPOINT_URL,
// AWS_ENDPOINT_URL_DATA_PIPELINE, ...).
type AWS struct {
	// S3UsePathStyle addresses buckets as host/bucket (needed by local
	// emulators such as moto).
	S3UsePathStyle bool `yaml:"s3_use_path_style"`
	// SessionName names the bot's assumed-role sessions in CloudTrail.
	SessionName string `yaml:"session_name"`
	// CallTimeout bounds each attempt of every AWS call (connect, send,
	// wait for the answer, read it): a stalled peer costs this long, then
	// the SDK retries (a retry of a call with a ClientToken is idempotent).
	// It also bounds each Data Pipeline call around an activation, which
	// is never retried by the SDK, and each AWS call of a request's checks
	// (DescribeTable, DescribeContinuousBackups, the reset's IAM reads), SDK
	// retries included. Default 30s.
	CallTimeout Duration `yaml:"call_timeout"`
}

// EMR sizes the Data Pipeline's EMR cluster.
type EMR struct {
	ReleaseLabel       string `yaml:"release_label"`
	MasterInstanceType string `yaml:"master_instance_type"`
	CoreInstanceType   string `yaml:"core_instance_type"`
	CoreInstanceCount  int    `yaml:"core_instance_count"`
	TerminateAfter     string `yaml:"terminate_after"`
}

// Export configures /osio-export.
type Export struct {
	// Method is datapipeline (the runbook's) or native.
	Method        string `yaml:"method"`
	SourceAccount string `yaml:"source_account"`
	DestAccount   string `yaml:"dest_account"`
	Bucket        string `yaml:"bucket"`
	BackupsPrefix string `yaml:"backups_prefix"`
	LogsPrefix    string `yaml:"logs_prefix"`
	// ReadThroughputRatio is the share of the table's read capacity the
	// export may use (myDDBReadThroughputRatio).
	ReadThroughputRatio float64 `yaml:"read_throughput_ratio"`
	EMR                 EMR     `yaml:"emr"`
	// PollInterval is the first wait between two status checks of a run;
	// each wait is PollBackoff times the last, up to PollMaxInterval.
	PollInterval    Duration `yaml:"poll_interval"`
	PollMaxInterval Duration `yaml:"poll_max_interval"`
	PollBackoff     float64  `yaml:"poll_backoff"`
	// RunTimeout bounds one table's run.
	RunTimeout Duration `yaml:"run_timeout"`
	// MaxTables bounds one request.
	MaxTables int `yaml:"max_tables"`
}

// Restore configures /osio-restore, which writes only to the dev account.
type Restore struct {
	// RequireApproval makes restores wait for an approver like exports.
	RequireApproval bool `yaml:"require_approval"`
}

// Reset configures /osio-reset-password.
type Reset struct {
	Enabled bool `yaml:"enabled"`
	// DefaultAccount is the account used without --account.
	DefaultAccount string `yaml:"default_account"`
	// PasswordResetRequired makes the user choose a new password at the
	// first sign-in.
	PasswordResetRequired bool `yaml:"password_reset_required"`
	// MinLength is the least password length, whatever the policy says.
	MinLength int `yaml:"min_length"`
	// MailRetries is how often a temporary (4xx) SMTP failure is retried.
	MailRetries int `yaml:"mail_retries"`
	// MailBackoff is the first wait between retries; it doubles.
	MailBackoff Duration `yaml:"mail_backoff"`
}

// Mail is the SMTP relay the reset mails go through.
type Mail struct {
	Addr     string `yaml:"addr"` // host:port
	From     string `yaml:"from"`
	Username string `yaml:"username"`
	// Password comes from SMTP_PASSWORD.
	Password Secret `yaml:"password,omitempty"`
	// StartTLS is required unless explicitly false (a local relay only).
	StartTLS           bool `yaml:"starttls"`
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// CAFile is a PEM bundle to trust for the relay, besides the system's.
	CAFile string `yaml:"ca_file"`
	// TLSServerName is the name the relay's certificate carries, when it
	// is not the host of Addr (an IP address, an internal alias).
	TLSServerName string `yaml:"tls_server_name"`
}

// Directory configures where people are looked up.
type Directory struct {
	// Source is file (a local YAML file, the default) or app-interface.
	Source string `yaml:"source"`
	File   string `yaml:"file"`
	// MailDomain makes mail addresses org_username@MailDomain for
	// app-interface people.
	MailDomain string `yaml:"mail_domain"`
	// Mappings maps Slack user ids to org usernames. Precedence, when a
	// Slack user is named in more than one place: these mappings win, then
	// the people file's own (slack_user, mappings:), then the e-mail
	// local-part match; check-config warns when two places disagree.
	Mappings map[string]string `yaml:"mappings,omitempty"`
	// EmailDomains are the Slack e-mail domains whose addresses are matched
	// to people by their local part (jdoe@example.com -> jdoe), each
	// matched whole, ignoring case: jdoe@gmail.com or jdoe@eng.example.com
	// never match the employee jdoe. Empty: nobody is matched by e-mail,
	// only by mappings.
	EmailDomains []string `yaml:"email_domains,omitempty"`
}

// AppInterface configures the GitOps repository and its GraphQL API.
type AppInterface struct {
	// GraphQLURL is qontract-server's /graphql; empty disables the
	// app-interface methods.
	GraphQLURL string `yaml:"graphql_url"`
	// GraphQLToken comes from APP_INTERFACE_TOKEN.
	GraphQLToken Secret `yaml:"graphql_token,omitempty"`
	GitLabURL    string `yaml:"gitlab_url"`
	// GitLabToken comes from GITLAB_TOKEN.
	GitLabToken  Secret   `yaml:"gitlab_token,omitempty"`
	Project      string   `yaml:"project"`
	TargetBranch string   `yaml:"target_branch"`
	Labels       []string `yaml:"labels"`
	// PollInterval paces the waits for merges and for IAM.
	PollInterval Duration `yaml:"poll_interval"`
	// MergeTimeout bounds each wait for an MR to merge.
	MergeTimeout Duration `yaml:"merge_timeout"`
	// IAMTimeout bounds each wait for the reconciler to change IAM.
	IAMTimeout Duration `yaml:"iam_timeout"`
}

// Store is where requests, checkpoints and audit events live.
type Store struct {
	// Backend is bolt (one embedded file, one replica: the default) or
	// dynamodb (a shared table, any number of replicas).
	Backend string `yaml:"backend"`
	// Path is the bbolt file (backend bolt).
	Path string `yaml:"path"`
	// DynamoDB is the shared table (backend dynamodb).
	DynamoDB DynamoDB `yaml:"dynamodb"`
	// LeaseTTL is how long a replica's hold on a job or on a channel's
	// deliveries lasts without a renewal: after a replica dies, another
	// takes its jobs over once this has passed. Renewed every third of it.
	LeaseTTL Duration `yaml:"lease_ttl"`
	// Retention removes ended requests (their events, checkpoints and
	// cursor with them) once their last change is older than this, e.g.
	// 9600h (400 days); 0 keeps them for good. bolt only, for now; the
	// file keeps its size until `osio-bot store compact`.
	Retention Duration `yaml:"retention"`
	// ResumeInterval is how often approved or running requests that no
	// job holds are looked for and resumed.
	ResumeInterval Duration `yaml:"resume_interval"`
}

// DynamoDB is the table of the dynamodb store backend. Credentials are
// the bot's base AWS credentials (not an assumed account role).
type DynamoDB struct {
	Table  string `yaml:"table"`
	Region string `yaml:"region"`
	// Endpoint overrides the service URL (a local DynamoDB or moto); empty
	// for AWS.
	Endpoint string `yaml:"endpoint"`
	// CallTimeout bounds each DynamoDB call.
	CallTimeout Duration `yaml:"call_timeout"`
}

// Audit keeps the audit trail beyond the store and Slack.
type Audit struct {
	// S3URI, s3://BUCKET[/PREFIX], is where each ended request's record
	// is written once (PREFIX/R-000123.json); empty: off.
	S3URI string `yaml:"s3_uri"`
	// Account names the account (accounts[].name) whose role writes
	// there; export.dest_account when empty.
	Account string `yaml:"account"`
	// Interval is how often ended requests are looked for (1m).
	Interval Duration `yaml:"interval"`
}

// Log configures zap.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"` // json or console
}

// Metrics configures the Prometheus and health endpoint.
type Metrics struct {
	Listen string `yaml:"listen"` // empty: off
}

// Defaults returns the configuration used for every key a file leaves out.
func Defaults() Config {
	return Config{
		Slack: Slack{
			APIURL:           "https://slack.com/api/",
			ApproverCacheTTL: Duration(time.Minute),
			MinPostInterval:  Duration(time.Second),
			ProgressInterval: Duration(3 * time.Second),
		},
		AWS:      AWS{SessionName: "osio-bot", CallTimeout: Duration(30 * time.Second)},
		Approval: Approval{Expiry: Duration(24 * time.Hour), SweepInterval: Duration(time.Minute), CheckTimeout: Duration(4 * time.Second)},
		Export: Export{
			Method:              "datapipeline",
			SourceAccount:       "osio",
			DestAccount:         "osio-dev",
			BackupsPrefix:       "backups",
			LogsPrefix:          "logs",
			ReadThroughputRatio: 0.25,
			EMR: EMR{
				ReleaseLabel:       "emr-5.23.0",
				MasterInstanceType: "m3.xlarge",
				CoreInstanceType:   "m3.xlarge",
				CoreInstanceCount:  1,
				TerminateAfter:     "12 hours",
			},
			PollInterval:    Duration(30 * time.Second),
			PollMaxInterval: Duration(5 * time.Minute),
			PollBackoff:     1.5,
			RunTimeout:      Duration(12 * time.Hour),
			MaxTables:       20,
		},
		Restore: Restore{RequireApproval: true},
		Reset: Reset{DefaultAccount: "osio-dev", PasswordResetRequired: true, MinLength: 20,
			MailRetries: 5, MailBackoff: Duration(2 * time.Second)},
		Mail:      Mail{StartTLS: true},
		Directory: Directory{Source: "file", File: "/etc/osio-bot/people.yaml"},
		AppInterface: AppInterface{TargetBranch: "master", Labels: []string{"bot/automerge"},
			PollInterval: Duration(30 * time.Second), MergeTimeout: Duration(24 * time.Hour), IAMTimeout: Duration(2 * time.Hour)},
		Store: Store{Backend: "bolt", Path: "/var/lib/osio-bot/osio-bot.db", ResumeInterval: Duration(30 * time.Second),
			LeaseTTL: Duration(30 * time.Second), DynamoDB: DynamoDB{CallTimeout: Duration(5 * time.Second)}},
		Audit:   Audit{Interval: Duration(time.Minute)},
		Log:     Log{Level: "info", Format: "json"},
		Metrics: Metrics{Listen: ":9090"},
	}
}

// Parse reads YAML over the defaults and then takes secrets from env (a
// lookup such as os.LookupEnv). Unknown keys are an error, so a typo does
// not silently fall back to a default.
func Parse(data []byte, env func(string) (string, bool)) (Config, error) {
	c := Defaults()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("parsing config: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("parsing config: the file holds more than one YAML document (line %d); keep everything in one", extra.Line)
	}
	if c.Slack.AppToken != "" || c.Slack.BotToken != "" || c.Mail.Password != "" || c.AppInterface.GitLabToken != "" || c.AppInterface.GraphQLToken != "" {
		return c, fmt.Errorf("parsing config: secrets must not be in the file; set SLACK_APP_TOKEN, SLACK_BOT_TOKEN, SMTP_PASSWORD, GITLAB_TOKEN and APP_INTERFACE_TOKEN in the environment")
	}
	for name, dst := range map[string]*Secret{"SMTP_PASSWORD": &c.Mail.Password, "GITLAB_TOKEN": &c.AppInterface.GitLabToken, "APP_INTERFACE_TOKEN": &c.AppInterface.GraphQLToken} {
		if v, ok := env(name); ok {
			*dst = Secret(strings.TrimSpace(v))
		}
	}
	if v, ok := env("SLACK_APP_TOKEN"); ok {
		c.Slack.AppToken = Secret(strings.TrimSpace(v))
	}
	if v, ok := env("SLACK_BOT_TOKEN"); ok {
		c.Slack.BotToken = Secret(strings.TrimSpace(v))
	}
	return c, nil
}

// Load reads the file at path; see Parse.
func Load(path string, env func(string) (string, bool)) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Defaults(), fmt.Errorf("reading config: %w", err)
	}
	return Parse(data, env)
}

// Problem is one invalid or missing key.
type Problem struct {
	Key, Wrong, Fix string
}

func (p Problem) String() string { return fmt.Sprintf("%s: %s; fix: %s", p.Key, p.Wrong, p.Fix) }

var (
	accountIDRe = regexp.MustCompile(`^[0-9]{12}$`)
	roleARNRe   = regexp.MustCompile(`^arn:aws[a-z-]*:iam::([0-9]{12}):role/[\w+=,.@/-]+$`)
	bucketRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	channelRe   = regexp.MustCompile(`^[CG][A-Z0-9]{2,}$`)
	groupRe     = regexp.MustCompile(`^S[A-Z0-9]{2,}$`)
	prefixRe    = regexp.MustCompile(`^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$`)
	regionRe    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]$`)
	tableRe     = regexp.MustCompile(`^[A-Za-z0-9_.-]{3,255}$`)
	// domainRe is a DNS name of two or more labels, as a mail domain is.
	domainRe = regexp.MustCompile(`^(?i)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// Validate returns every problem in c; none means c is usable.
func (c Config) Validate() []Problem {
	var ps []Problem
	add := func(key, wrong, fix string) { ps = append(ps, Problem{key, wrong, fix}) }

	if !strings.HasPrefix(c.Slack.AppToken.Reveal(), "xapp-") {
		add("SLACK_APP_TOKEN", missingOr(c.Slack.AppToken.Reveal(), "does not start with xapp-"),
			"set SLACK_APP_TOKEN to the app-level token (Basic Information > App-Level Tokens, scope connections:write)")
	}
	if !strings.HasPrefix(c.Slack.BotToken.Reveal(), "xoxb-") {
		add("SLACK_BOT_TOKEN", missingOr(c.Slack.BotToken.Reveal(), "does not start with xoxb-"),
			"set SLACK_BOT_TOKEN to the Bot User OAuth Token (OAuth & Permissions)")
	}
	if !strings.HasPrefix(c.Slack.APIURL, "http://") && !strings.HasPrefix(c.Slack.APIURL, "https://") || !strings.HasSuffix(c.Slack.APIURL, "/") {
		add("slack.api_url", fmt.Sprintf("%q is not an http(s) URL ending in /", c.Slack.APIURL), "use https://slack.com/api/ or leave it out")
	}
	if !channelRe.MatchString(c.Slack.ApprovalsChannel) {
		add("slack.approvals_channel", missingOr(c.Slack.ApprovalsChannel, "is not a channel id"),
			"set the channel id (C0123ABCD, from the channel's details), not its name")
	}
	if len(c.Slack.ApproverGroups) == 0 {
		add("slack.approver_groups", "is missing", "list the interrupt-catcher user group id(s), e.g. [S0123ABCD]")
	}
	for i, g := range c.Slack.ApproverGroups {
		if !groupRe.MatchString(g) {
			add(fmt.Sprintf("slack.approver_groups[%d]", i), fmt.Sprintf("%q is not a user group id", g),
				"use the group id (S0123ABCD), not its @handle")
		}
	}
	positive(&ps, "slack.approver_cache_ttl", c.Slack.ApproverCacheTTL)
	positive(&ps, "slack.min_post_interval", c.Slack.MinPostInterval)
	positive(&ps, "slack.progress_interval", c.Slack.ProgressInterval)
	positive(&ps, "approval.expiry", c.Approval.Expiry)
	positive(&ps, "approval.sweep_interval", c.Approval.SweepInterval)
	positive(&ps, "approval.check_timeout", c.Approval.CheckTimeout)
	positive(&ps, "store.resume_interval", c.Store.ResumeInterval)
	positive(&ps, "aws.call_timeout", c.AWS.CallTimeout)

	names := map[string]bool{}
	if len(c.Accounts) == 0 {
		add("accounts", "is missing", "list the osio and osio-dev accounts with name, id, role_arn and region")
	}
	for i, a := range c.Accounts {
		k := fmt.Sprintf("accounts[%d]", i)
		if a.Name == "" {
			add(k+".name", "is missing", "name the account, e.g. osio")
		} else if names[a.Name] {
			add(k+".name", fmt.Sprintf("%q appears twice", a.Name), "give each account a unique name")
		}
		names[a.Name] = true
		if !accountIDRe.MatchString(a.ID) {
			add(k+".id", missingOr(a.ID, "is not a 12-digit account id"), "use the 12-digit AWS account id, quoted")
		}
		if m := roleARNRe.FindStringSubmatch(a.RoleARN); m == nil {
			add(k+".role_arn", missingOr(a.RoleARN, "is not an IAM role ARN"), "use arn:aws:iam::ACCOUNT_ID:role/NAME")
		} else if m[1] != a.ID {
			add(k+".role_arn", fmt.Sprintf("is in account %s, not %s", m[1], a.ID), "use the role of this account")
		}
		if !regionRe.MatchString(a.Region) {
			add(k+".region", missingOr(a.Region, "is not a region"), "set the region, e.g. us-east-1")
		}
	}
	e := c.Export
	if e.Method != "datapipeline" && e.Method != "native" {
		add("export.method", fmt.Sprintf("%q is not a method", e.Method), "use datapipeline or native")
	}
	if !names[e.SourceAccount] {
		add("export.source_account", fmt.Sprintf("%q is not one of accounts[].name", e.SourceAccount), "name the production account, e.g. osio")
	}
	if !names[e.DestAccount] {
		add("export.dest_account", fmt.Sprintf("%q is not one of accounts[].name", e.DestAccount), "name the development account, e.g. osio-dev")
	}
	if e.SourceAccount == e.DestAccount && e.SourceAccount != "" {
		add("export.dest_account", "is the same as export.source_account", "export from production to development")
	}
	if !bucketRe.MatchString(e.Bucket) {
		add("export.bucket", missingOr(e.Bucket, "is not an S3 bucket name"), "set the bucket name only (no s3://), e.g. dynamodb-migration-backups-osio")
	}
	if !prefixRe.MatchString(e.BackupsPrefix) {
		add("export.backups_prefix", fmt.Sprintf("%q is not a key prefix", e.BackupsPrefix), "use a prefix without leading or trailing slash, e.g. backups")
	}
	if !prefixRe.MatchString(e.LogsPrefix) {
		add("export.logs_prefix", fmt.Sprintf("%q is not a key prefix", e.LogsPrefix), "use a prefix without leading or trailing slash, e.g. logs")
	}
	if !(e.ReadThroughputRatio > 0 && e.ReadThroughputRatio <= 1.5) {
		add("export.read_throughput_ratio", fmt.Sprintf("%g is out of range", e.ReadThroughputRatio), "use a ratio above 0 and at most 1.5, e.g. 0.25")
	}
	if e.EMR.CoreInstanceCount < 1 {
		add("export.emr.core_instance_count", fmt.Sprintf("%d is below 1", e.EMR.CoreInstanceCount), "use at least 1")
	}
	if e.EMR.ReleaseLabel == "" || e.EMR.MasterInstanceType == "" || e.EMR.CoreInstanceType == "" {
		add("export.emr", "release_label, master_instance_type or core_instance_type is empty", "leave them out for the template's defaults")
	}
	positive(&ps, "export.poll_interval", e.PollInterval)
	positive(&ps, "export.run_timeout", e.RunTimeout)
	if e.PollMaxInterval < e.PollInterval {
		add("export.poll_max_interval", "is below export.poll_interval", "make it at least poll_interval")
	}
	if !(e.PollBackoff >= 1 && e.PollBackoff <= 10) {
		add("export.poll_backoff", fmt.Sprintf("%g is out of range", e.PollBackoff), "use 1 (no backoff) to 10, e.g. 1.5")
	}
	if e.MaxTables < 1 || e.MaxTables > 40 {
		add("export.max_tables", fmt.Sprintf("%d is out of range", e.MaxTables), "use 1 to 40")
	}
	if c.Reset.Enabled {
		ps = append(ps, c.validateReset(names)...)
	}
	switch c.Store.Backend {
	case "bolt":
		if c.Store.Path == "" {
			add("store.path", "is missing", "set a file path on a persistent volume, e.g. /var/lib/osio-bot/osio-bot.db")
		}
	case "dynamodb":
		d := c.Store.DynamoDB
		if !tableRe.MatchString(d.Table) {
			add("store.dynamodb.table", missingOr(d.Table, "is not a DynamoDB table name"), "name the table, e.g. osio-bot (created by: osio-bot store init)")
		}
		if !regionRe.MatchString(d.Region) {
			add("store.dynamodb.region", missingOr(d.Region, "is not a region"), "set the table's region, e.g. us-east-1")
		}
		if d.Endpoint != "" {
			if u, err := url.Parse(d.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				add("store.dynamodb.endpoint", fmt.Sprintf("%q is not an http(s) URL", d.Endpoint), "leave it out for AWS, or use e.g. http://127.0.0.1:8000")
			}
		}
		positive(&ps, "store.dynamodb.call_timeout", d.CallTimeout)
	default:
		add("store.backend", fmt.Sprintf("%q is not a backend", c.Store.Backend), "use bolt (one replica, a file) or dynamodb (several replicas, a shared table)")
	}
	positive(&ps, "store.lease_ttl", c.Store.LeaseTTL)
	if c.Store.Retention < 0 {
		add("store.retention", "is negative", "use 0 to keep every request, or e.g. 9600h (400 days)")
	} else if c.Store.Retention > 0 && c.Store.Retention < Duration(24*time.Hour) {
		add("store.retention", "is under a day", "keep ended requests at least a day, e.g. 9600h (400 days)")
	} else if c.Store.Retention > 0 && c.Store.Backend == "dynamodb" {
		add("store.retention", "is not done on the dynamodb store yet", "leave it out (0) with backend dynamodb")
	}
	if c.Store.LeaseTTL > 0 && c.Store.LeaseTTL < Duration(3*time.Second) {
		add("store.lease_ttl", "is below 3s", "use at least 3s (30s is the default): a lease is renewed every third of it")
	}
	if a := c.Audit; a.S3URI != "" {
		if u, err := url.Parse(a.S3URI); err != nil || u.Scheme != "s3" || !bucketRe.MatchString(u.Host) {
			add("audit.s3_uri", fmt.Sprintf("%q is not s3://BUCKET[/PREFIX]", a.S3URI), "e.g. s3://osio-bot-audit/records")
		}
		if a.Account != "" && !names[a.Account] {
			add("audit.account", fmt.Sprintf("%q is not one of accounts[].name", a.Account), "name the account whose role writes the bucket, e.g. osio-dev")
		}
		positive(&ps, "audit.interval", a.Interval)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", fmt.Sprintf("%q is not a level", c.Log.Level), "use debug, info, warn or error")
	}
	if c.Log.Format != "json" && c.Log.Format != "console" {
		add("log.format", fmt.Sprintf("%q is not a format", c.Log.Format), "use json or console")
	}
	return ps
}

func missingOr(v, wrong string) string {
	if v == "" {
		return "is missing"
	}
	return wrong
}

func positive(ps *[]Problem, key string, d Duration) {
	if d <= 0 {
		*ps = append(*ps, Problem{key, "must be a positive duration", "use a value like 30s or 5m, or leave it out"})
	}
}

// Account returns the named account.
func (c Config) Account(name string) (Account, bool) {
	for _, a := range c.Accounts {
		if a.Name == name {
			return a, true
		}
	}
	return Account{}, false
}

// Redacted renders the resolved configuration as YAML, secrets redacted.
func (c Config) Redacted() string {
	out, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Sprintf("(cannot render config: %v)", err)
	}
	return string(out)
}

func (c Config) validateReset(accounts map[string]bool) []Problem {
	var ps []Problem
	add := func(key, wrong, fix string) { ps = append(ps, Problem{key, wrong, fix}) }
	if !accounts[c.Reset.DefaultAccount] {
		add("reset.default_account", fmt.Sprintf("%q is not one of accounts[].name", c.Reset.DefaultAccount), "name the account resets use by default, e.g. osio-dev")
	}
	if c.Reset.MinLength < 20 || c.Reset.MinLength > 128 {
		add("reset.min_length", fmt.Sprintf("%d is out of range", c.Reset.MinLength), "use 20 to 128")
	}
	if c.Reset.MailRetries < 0 {
		add("reset.mail_retries", "is negative", "use 0 or more, e.g. 5")
	}
	positive(&ps, "reset.mail_backoff", c.Reset.MailBackoff)
	if _, _, err := net.SplitHostPort(c.Mail.Addr); err != nil {
		add("mail.addr", missingOr(c.Mail.Addr, "is not host:port"), "set the SMTP relay, e.g. smtp.example.com:587")
	}
	if !strings.Contains(c.Mail.From, "@") {
		add("mail.from", missingOr(c.Mail.From, "is not a mail address"), "set the sender, e.g. osio-bot@example.com")
	}
	if host, _, err := net.SplitHostPort(c.Mail.Addr); err == nil && !loopback(host) {
		if !c.Mail.StartTLS {
			add("mail.starttls", fmt.Sprintf("is false for %s, which is not a loopback address: mail and AUTH would go in clear text", host),
				"remove it (STARTTLS is required), or relay through a local MTA on 127.0.0.1")
		}
		if c.Mail.InsecureSkipVerify {
			add("mail.insecure_skip_verify", fmt.Sprintf("is true for %s, which is not a loopback address: any server could take the mail and the password", host),
				"remove it; trust the relay's CA with mail.ca_file, and give its certificate's name in mail.tls_server_name if it is not the host")
		}
	}
	if n := c.Mail.TLSServerName; n != "" && !domainRe.MatchString(n) && net.ParseIP(n) == nil {
		add("mail.tls_server_name", fmt.Sprintf("%q is not a host name", n), "write the name on the relay's certificate, e.g. smtp.example.com")
	}
	if c.Mail.Username != "" && c.Mail.Password == "" {
		add("SMTP_PASSWORD", "is missing while mail.username is set", "set SMTP_PASSWORD in the environment")
	}
	switch c.Directory.Source {
	case "file":
		if c.Directory.File == "" {
			add("directory.file", "is missing", "point it at the people YAML file")
		}
	case "app-interface":
		if c.AppInterface.GraphQLURL == "" {
			add("app_interface.graphql_url", "is missing while directory.source is app-interface", "set qontract-server's /graphql URL")
		}
		if c.Directory.MailDomain == "" {
			add("directory.mail_domain", "is missing", "set the domain of org_username@DOMAIN addresses")
		}
	default:
		add("directory.source", fmt.Sprintf("%q is not a source", c.Directory.Source), "use file or app-interface")
	}
	seen := map[string]bool{}
	for i, d := range c.Directory.EmailDomains {
		k := fmt.Sprintf("directory.email_domains[%d]", i)
		switch {
		case !domainRe.MatchString(d) || len(d) > 253:
			add(k, missingOr(d, fmt.Sprintf("%q is not a mail domain", d)), "write the domain alone, e.g. example.com (no @, no wildcard)")
		case seen[strings.ToLower(d)]:
			add(k, fmt.Sprintf("%q appears twice", d), "list each domain once")
		}
		seen[strings.ToLower(d)] = true
	}
	if c.AppInterface.GraphQLURL != "" {
		if c.AppInterface.GitLabURL == "" {
			add("app_interface.gitlab_url", "is missing while app_interface.graphql_url is set", "set the GitLab base URL, e.g. https://gitlab.cee.redhat.com")
		}
		if c.AppInterface.Project == "" {
			add("app_interface.project", "is missing", "set the app-interface project path or id, e.g. service/app-interface")
		}
		if c.AppInterface.GitLabToken == "" {
			add("GITLAB_TOKEN", "is missing", "set GITLAB_TOKEN to a token with api scope on the app-interface project")
		}
		positive(&ps, "app_interface.poll_interval", c.AppInterface.PollInterval)
		positive(&ps, "app_interface.merge_timeout", c.AppInterface.MergeTimeout)
		positive(&ps, "app_interface.iam_timeout", c.AppInterface.IAMTimeout)
	}
	return ps
}

// loopback reports whether host is this machine: localhost, 127.0.0.0/8
// or ::1.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
