// Package testenv stands up everything osio-bot talks to, locally: moto_server
// (DynamoDB, S3, IAM, STS) with the production and dev accounts, the Data
// Pipeline test server, and the local Slack server. The end-to-end tests and
// the demo both use it, and run the real bot (package app) against it,
// either in-process or as a separate process.
package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/osio/osio-bot/app"
	"github.com/osio/osio-bot/config"
	"github.com/osio/osio-bot/store/dynamo"
	dpserver "github.com/osio/osio-bot/testservers/datapipeline"
	"github.com/osio/osio-bot/testservers/faultproxy"
	gitlabserver "github.com/osio/osio-bot/testservers/gitlab"
	"github.com/osio/osio-bot/testservers/moto"
	"github.com/osio/osio-bot/testservers/qontract"
	slackserver "github.com/osio/osio-bot/testservers/slack"
	smtpserver "github.com/osio/osio-bot/testservers/smtp"
)

// The fixed identities of the local world; the account ids and bucket are
// the runbook's.
const (
	ProdAccount = "386414299200"
	DevAccount  = "619539278362"
	Bucket      = "dynamodb-migration-backups-osio"
	Region      = "us-east-1"
	Channel     = "CAPPROVALS"
	DevChannel  = "CDEV"
	Group       = "SINTERRUPT"
	Requester   = "UDEV"
	Approver    = "UCATCHER"
	Approver2   = "UCATCHER2"
	Outsider    = "UOUTSIDER"
	AppToken    = "xapp-1-A1-test-app-token"
	BotToken    = "xoxb-test-bot-token"
)

// Env is a running local world.
type Env struct {
	Dir        string
	Moto       *moto.Server
	Slack      *slackserver.Server
	DP         *dpserver.Server
	SMTP       *smtpserver.Server
	GitLab     *gitlabserver.Server
	Qontract   *qontract.Server
	Prod, Dev  aws.Config
	ConfigPath string
	Config     config.Config
	// Vars are the environment variables the bot runs with.
	Vars map[string]string
	// The fault proxies in front of the peers (see Options.Proxies); nil
	// when not asked for. The bot talks to a peer through its proxy; the
	// test's own clients (Prod, Dev, the servers' methods) do not.
	SlackProxy, AWSProxy, DPProxy, GitLabProxy, GraphQLProxy *faultproxy.Proxy
	// StoreTable is the dynamodb store's table (Options.SharedStore).
	StoreTable string
	storeProxy func() // closes the store's proxy to moto
}

// Proxies says which peers get a fault proxy in front of them.
type Proxies struct {
	// Slack: the Web API (slack.api_url); Socket Mode stays direct.
	Slack bool
	// AWS: moto (AWS_ENDPOINT_URL: DynamoDB, S3, IAM, STS).
	AWS bool
	// DP: the Data Pipeline server (AWS_ENDPOINT_URL_DATA_PIPELINE).
	DP bool
	// GitLab: app_interface.gitlab_url (needs AppInterface).
	GitLab bool
	// GraphQL: app_interface.graphql_url, the qontract server (needs
	// AppInterface).
	GraphQL bool
}

// Options tune Start.
type Options struct {
	// Tweak changes the bot's configuration before it is written.
	Tweak func(*config.Config)
	// DPPageSize is the Data Pipeline server's page size (0: its default).
	DPPageSize int
	// DPInstanceDelay is how long a run's objects stay invisible after
	// ActivatePipeline (0: the server's default).
	DPInstanceDelay time.Duration
	// DPClockOffset shifts the Data Pipeline server's clock against the
	// bot's (negative: AWS is behind).
	DPClockOffset time.Duration
	// Moto reuses a running moto_server (its state is reset, unless
	// KeepMoto).
	Moto *moto.Server
	// KeepMoto does not reset a given Moto, so that tests can share it at
	// once; each then uses its own table and user names. The dev bucket
	// is made if it is missing.
	KeepMoto bool
	// Proxies puts fault proxies in front of the chosen peers.
	Proxies Proxies
	// ProxyHoldMax bounds a proxy's Timeout fault (0: the proxy's default).
	ProxyHoldMax time.Duration
	// People turns on /osio-reset-password: they are written to the
	// directory file, and an SMTP server (STARTTLS, AUTH) is started.
	People []Person
	// AppInterface also starts the GitLab and GraphQL test servers.
	AppInterface bool
	// SharedStore runs the bot on the dynamodb store backend: a table of
	// its own in moto, reached through a proxy that hands moto one
	// request at a time (moto's transactions are not isolated: the MOTO
	// GAP in store/dynamo), with short leases, so that several bot
	// processes can share it.
	SharedStore bool
	// SlackRedeliver is the Slack server's Options.Redeliver: the share of
	// envelopes delivered a second time, to another connection.
	SlackRedeliver float64
}

// Person is a directory entry.
type Person struct {
	OrgUsername  string `yaml:"org_username"`
	Email        string `yaml:"email"`
	Name         string `yaml:"name,omitempty"`
	PublicGPGKey string `yaml:"public_gpg_key,omitempty"`
	SlackUser    string `yaml:"slack_user,omitempty"`
}

// SMTP credentials of the test mail relay.
const (
	SMTPUser     = "osio-bot"
	SMTPPassword = "smtp-secret-pw-4711"
	GitLabToken  = "glpat-test-token-0042"
)

// Start brings up moto (unless given), the Data Pipeline and Slack servers,
// creates the dev bucket, and writes the bot's config under dir.
func Start(ctx context.Context, dir string, o Options) (*Env, error) {
	e := &Env{Dir: dir}
	var err error
	if o.Moto != nil {
		e.Moto = o.Moto
		if !o.KeepMoto {
			if err := e.Moto.Reset(); err != nil {
				return nil, fmt.Errorf("resetting moto: %w", err)
			}
		}
	} else if e.Moto, err = moto.Start(ctx, filepath.Join(dir, "moto.log")); err != nil {
		return nil, err
	}
	e.Prod = e.Moto.Config(Region, ProdAccount)
	e.Dev = e.Moto.Config(Region, DevAccount)
	devS3 := s3.NewFromConfig(e.Dev, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := devS3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(Bucket)}); err != nil && !(o.KeepMoto && bucketExists(err)) {
		e.Close()
		return nil, fmt.Errorf("creating bucket in the dev account: %w", err)
	}
	e.DP, err = dpserver.New(dpserver.Options{
		Source: dynamodb.NewFromConfig(e.Prod), Sink: devS3,
		CrossAccountBuckets: []string{Bucket}, PageSize: o.DPPageSize,
		WaitingFor: 300 * time.Millisecond, RunningFor: 700 * time.Millisecond,
		InstanceDelay: o.DPInstanceDelay, ClockOffset: o.DPClockOffset,
	})
	if err != nil {
		e.Close()
		return nil, err
	}
	e.Slack, err = slackserver.New(slackserver.Options{PingInterval: 2 * time.Second, Redeliver: o.SlackRedeliver})
	if err != nil {
		e.Close()
		return nil, err
	}
	e.Slack.AddChannel(Channel, "osio-approvals")
	e.Slack.AddChannel(DevChannel, "osio-dev")
	for _, u := range []slackserver.User{
		{ID: Requester, Name: "dev", RealName: "Dana Developer", Email: "dana@example.com"},
		{ID: Approver, Name: "catcher", RealName: "Ian Catcher", Email: "ian@example.com"},
		{ID: Approver2, Name: "catcher2", RealName: "Ivy Catcher", Email: "ivy@example.com"},
		{ID: Outsider, Name: "outsider", RealName: "Olly Outsider", Email: "olly@example.com"},
	} {
		e.Slack.AddUser(u)
	}
	e.Slack.AddUserGroup(Group, Approver, Approver2)

	proxy := func(p **faultproxy.Proxy, on bool, target string, f faultproxy.Flavor) (string, error) {
		if !on {
			return target, nil
		}
		u, err := url.Parse(target)
		if err != nil {
			return "", err
		}
		po := faultproxy.Options{Target: u.Scheme + "://" + u.Host, Flavor: f, HoldMax: o.ProxyHoldMax}
		if f == faultproxy.AWS {
			// moto 5.2.1 ignores these ClientTokens; AWS honours them.
			po.ClientTokens = []string{"ExportTableToPointInTime", "ImportTable"}
		}
		if *p, err = faultproxy.New(po); err != nil {
			return "", err
		}
		return (*p).URL() + u.Path, nil
	}
	slackURL, err := proxy(&e.SlackProxy, o.Proxies.Slack, e.Slack.APIURL(), faultproxy.Slack)
	if err != nil {
		e.Close()
		return nil, err
	}
	awsURL, err := proxy(&e.AWSProxy, o.Proxies.AWS, e.Moto.URL, faultproxy.AWS)
	if err != nil {
		e.Close()
		return nil, err
	}
	dpURL, err := proxy(&e.DPProxy, o.Proxies.DP, e.DP.URL(), faultproxy.AWS)
	if err != nil {
		e.Close()
		return nil, err
	}

	cfg := config.Defaults()
	cfg.Slack.APIURL = slackURL
	cfg.Slack.ApprovalsChannel = Channel
	cfg.Slack.ApproverGroups = []string{Group}
	cfg.Slack.MinPostInterval = config.Duration(20 * time.Millisecond)
	cfg.Slack.ProgressInterval = config.Duration(200 * time.Millisecond)
	cfg.Slack.ApproverCacheTTL = config.Duration(10 * time.Second)
	cfg.Approval.SweepInterval = config.Duration(200 * time.Millisecond)
	cfg.Accounts = []config.Account{
		{Name: "osio", ID: ProdAccount, RoleARN: "arn:aws:iam::" + ProdAccount + ":role/osio-bot", Region: Region},
		{Name: "osio-dev", ID: DevAccount, RoleARN: "arn:aws:iam::" + DevAccount + ":role/osio-bot", Region: Region},
	}
	cfg.AWS.S3UsePathStyle = true
	// A held AWS call is given up after 5 s (production: 30 s), so that
	// timeout tests finish quickly; moto answers in milliseconds.
	cfg.AWS.CallTimeout = config.Duration(5 * time.Second)
	cfg.Export.Bucket = Bucket
	cfg.Export.PollInterval = config.Duration(100 * time.Millisecond)
	cfg.Export.PollMaxInterval = config.Duration(400 * time.Millisecond)
	cfg.Export.RunTimeout = config.Duration(2 * time.Minute)
	cfg.Store.Path = filepath.Join(dir, "osio-bot.db")
	if o.SharedStore {
		if err := e.sharedStore(ctx, &cfg); err != nil {
			e.Close()
			return nil, err
		}
	}
	cfg.Log.Level = "debug"
	cfg.Metrics.Listen = ""
	extraVars := map[string]string{}
	if o.People != nil {
		if e.SMTP, err = smtpserver.New(smtpserver.Options{Username: SMTPUser, Password: SMTPPassword, RequireTLS: true}); err != nil {
			e.Close()
			return nil, err
		}
		people, err := yaml.Marshal(map[string]any{"people": o.People})
		if err != nil {
			e.Close()
			return nil, err
		}
		cfg.Directory.File = filepath.Join(dir, "people.yaml")
		if err := os.WriteFile(cfg.Directory.File, people, 0o600); err != nil {
			e.Close()
			return nil, err
		}
		cfg.Reset.Enabled = true
		// The Slack users' addresses are @example.com: match them by e-mail.
		cfg.Directory.EmailDomains = []string{"example.com"}
		cfg.Reset.MailBackoff = config.Duration(100 * time.Millisecond)
		cfg.Reset.MailRetries = 3
		cfg.Mail = config.Mail{Addr: e.SMTP.Addr(), From: "osio-bot@example.com", Username: SMTPUser, StartTLS: true, InsecureSkipVerify: true}
		extraVars["SMTP_PASSWORD"] = SMTPPassword
	}
	if o.AppInterface {
		if e.GitLab, err = gitlabserver.New(gitlabserver.Options{Token: GitLabToken}); err != nil {
			e.Close()
			return nil, err
		}
		if e.Qontract, err = qontract.New(qontract.Options{}); err != nil {
			e.Close()
			return nil, err
		}
		if cfg.AppInterface.GraphQLURL, err = proxy(&e.GraphQLProxy, o.Proxies.GraphQL, e.Qontract.URL(), faultproxy.GitLab); err != nil {
			e.Close()
			return nil, err
		}
		if cfg.AppInterface.GitLabURL, err = proxy(&e.GitLabProxy, o.Proxies.GitLab, e.GitLab.URL(), faultproxy.GitLab); err != nil {
			e.Close()
			return nil, err
		}
		cfg.AppInterface.Project = e.GitLab.ProjectPath()
		cfg.AppInterface.PollInterval = config.Duration(100 * time.Millisecond)
		cfg.AppInterface.MergeTimeout = config.Duration(30 * time.Second)
		cfg.AppInterface.IAMTimeout = config.Duration(30 * time.Second)
		extraVars["GITLAB_TOKEN"] = GitLabToken
	}
	if o.Tweak != nil {
		o.Tweak(&cfg)
	}
	e.Config = cfg
	data, err := yaml.Marshal(cfg)
	if err != nil {
		e.Close()
		return nil, err
	}
	e.ConfigPath = filepath.Join(dir, "config.yaml")
	// Secrets are not allowed in the file: drop the redacted placeholders.
	clean := regexp.MustCompile(`(?m)^\s*(app_token|bot_token):.*\n`).ReplaceAll(data, nil)
	if err := os.WriteFile(e.ConfigPath, clean, 0o600); err != nil {
		e.Close()
		return nil, err
	}
	e.Vars = map[string]string{
		"AWS_ENDPOINT_URL":               awsURL,
		"AWS_ENDPOINT_URL_DATA_PIPELINE": dpURL,
		"AWS_ACCESS_KEY_ID":              "testing",
		"AWS_SECRET_ACCESS_KEY":          "testing",
		"AWS_REGION":                     Region,
		"AWS_EC2_METADATA_DISABLED":      "true",
		"AWS_CONFIG_FILE":                filepath.Join(dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE":    filepath.Join(dir, "no-aws-credentials"),
		"SLACK_APP_TOKEN":                AppToken,
		"SLACK_BOT_TOKEN":                BotToken,
	}
	for k, v := range extraVars {
		e.Vars[k] = v
	}
	return e, nil
}

// bucketExists says CreateBucket failed because the bucket is there.
func bucketExists(err error) bool {
	var owned *s3types.BucketAlreadyOwnedByYou
	var exists *s3types.BucketAlreadyExists
	return errors.As(err, &owned) || errors.As(err, &exists)
}

// Close stops every server Start started.
func (e *Env) Close() {
	if e.storeProxy != nil {
		e.storeProxy()
	}
	for _, p := range []*faultproxy.Proxy{e.SlackProxy, e.AWSProxy, e.DPProxy, e.GitLabProxy, e.GraphQLProxy} {
		if p != nil {
			p.Close()
		}
	}
	if e.Slack != nil {
		e.Slack.Close()
	}
	if e.DP != nil {
		e.DP.Close()
	}
	if e.SMTP != nil {
		e.SMTP.Close()
	}
	if e.GitLab != nil {
		e.GitLab.Close()
	}
	if e.Qontract != nil {
		e.Qontract.Close()
	}
}

// CloseAll also stops moto.
func (e *Env) CloseAll() {
	e.Close()
	if e.Moto != nil {
		e.Moto.Close()
	}
}

// Environ is os.Environ with the bot's variables set.
func (e *Env) Environ() []string {
	out := os.Environ()
	for k, v := range e.Vars {
		out = append(out, k+"="+v)
	}
	return out
}

// CreateTable creates a table in the production account with n items.
func (e *Env) CreateTable(ctx context.Context, name string, n int) error {
	db := dynamodb.NewFromConfig(e.Prod)
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: ddbtypes.KeyTypeHash}},
		BillingMode:          ddbtypes.BillingModePayPerRequest,
	})
	if err != nil {
		return fmt.Errorf("creating table %s: %w", name, err)
	}
	for i := 0; i < n; i++ {
		_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(name), Item: map[string]ddbtypes.AttributeValue{
			"id":     &ddbtypes.AttributeValueMemberS{Value: fmt.Sprintf("tx-%05d", i)},
			"amount": &ddbtypes.AttributeValueMemberN{Value: strconv.Itoa(i * 7)},
			"ok":     &ddbtypes.AttributeValueMemberBOOL{Value: i%2 == 0},
		}})
		if err != nil {
			return fmt.Errorf("putting item %d into %s: %w", i, name, err)
		}
	}
	return nil
}

// Bot is a bot running in this process.
type Bot struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// StartBot runs the real bot in-process: it sets the process environment
// to Vars (so the AWS SDK finds its endpoints as in production), builds
// the app from the config file and runs it.
func (e *Env) StartBot(ctx context.Context, log *zap.Logger, o app.Options) (*Bot, error) {
	for k, v := range e.Vars {
		os.Setenv(k, v)
	}
	cfg, err := config.Load(e.ConfigPath, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	before := e.Slack.Connections()
	ctx, cancel := context.WithCancel(ctx)
	a, err := app.Build(ctx, cfg, log, o)
	if err != nil {
		cancel()
		return nil, err
	}
	b := &Bot{cancel: cancel, done: make(chan error, 1)}
	go func() { b.done <- a.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := e.Slack.WaitFor(wctx, func() bool { return e.Slack.Connections() > before }); err != nil {
		b.Stop()
		return nil, fmt.Errorf("bot did not connect to Slack: %w", err)
	}
	return b, nil
}

// Stop shuts the bot down and waits for it.
func (b *Bot) Stop() error {
	b.once.Do(func() {
		b.cancel()
		b.err = <-b.done
	})
	return b.err
}

var (
	requestIDRe = regexp.MustCompile(`Request \*(R-[0-9]{6})\*`)
	receivedRe  = regexp.MustCompile(`Request \*(R-[0-9]{6})\* received`)
)

// Slash types a slash command as user and returns what the user is
// finally told, and the request id it names (empty if none). A request's
// ack is its receipt ("Request *R-…* received: checking …"); the outcome of
// its checks follows after the ack, replacing the receipt through the
// command's response_url (or as an ephemeral message), and that outcome
// is what Slash returns. Acks that answer at once (help, status, words
// that do not parse) are returned as they are.
func (e *Env) Slash(ctx context.Context, user, command, text string) (ackText, requestID string, err error) {
	ack, err := e.Slack.SlashCommand(ctx, slackserver.SlashCommand{Command: command, Text: text, UserID: user, UserName: user, ChannelID: DevChannel})
	if err != nil {
		return "", "", err
	}
	ackText = AckText(ack)
	if m := receivedRe.FindStringSubmatch(ackText); m != nil {
		if ackText, err = e.Outcome(ctx, user, m[1]); err != nil {
			return "", "", err
		}
	}
	if m := requestIDRe.FindStringSubmatch(ackText); m != nil && !receivedRe.MatchString(ackText) {
		requestID = m[1]
	}
	return ackText, requestID, nil
}

// Outcome waits until user is told the outcome of request id's checks (its
// receipt replaced, or an ephemeral message naming it) and returns it.
func (e *Env) Outcome(ctx context.Context, user, id string) (string, error) {
	named := regexp.MustCompile(`\b` + regexp.QuoteMeta(id) + `\b`)
	var out string
	err := e.Slack.WaitFor(ctx, func() bool {
		for _, r := range e.Slack.Receipts(user) {
			if r.Replaced > 0 && named.MatchString(r.Text+string(r.Blocks)+strings.Join(r.History, "\n")) {
				out = r.Text
				return true
			}
		}
		for _, m := range e.Slack.Ephemerals(user) {
			if named.MatchString(m.Text) {
				out = m.Text
				return true
			}
		}
		return false
	})
	if err != nil {
		return "", fmt.Errorf("%s was never told the outcome of %s's checks: %w", user, id, err)
	}
	return out, nil
}

// AckText is the text of an ack's payload.
func AckText(a slackserver.Ack) string {
	var p struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal(a.Payload, &p)
	return p.Text
}

// Card waits for the approval card of request id and returns it.
func (e *Env) Card(ctx context.Context, id string) (slackserver.Message, error) {
	var card slackserver.Message
	err := e.Slack.WaitFor(ctx, func() bool {
		for _, m := range e.Slack.Messages(Channel) {
			if strings.Contains(string(m.Blocks), id) {
				card = m
				return true
			}
		}
		return false
	})
	return card, err
}

// Click presses a button of request id's card as user. Cancel is pressed
// on the requester's receipt (the ephemeral ack of the slash command) when
// user has one for id; anyone else has no such button, so their Cancel is
// pressed on the card, which the bot must refuse.
func (e *Env) Click(ctx context.Context, user, action, id string) (slackserver.Ack, error) {
	if action == "cancel" {
		if r, ok := e.Receipt(user, id); ok {
			return e.Slack.ClickButton(ctx, slackserver.Click{UserID: user, ChannelID: r.Channel, MessageTS: r.TS, ActionID: action, BlockID: "requester", Value: id})
		}
	}
	card, err := e.Card(ctx, id)
	if err != nil {
		return slackserver.Ack{}, err
	}
	block := "decide"
	if action == "cancel" {
		block = "requester"
	}
	return e.Slack.ClickButton(ctx, slackserver.Click{UserID: user, ChannelID: Channel, MessageTS: card.TS, ActionID: action, BlockID: block, Value: id})
}

// Receipt is the latest receipt (slash command ack) user was shown for
// request id.
func (e *Env) Receipt(user, id string) (slackserver.Message, bool) {
	rs := e.Slack.Receipts(user)
	for i := len(rs) - 1; i >= 0; i-- {
		if strings.Contains(string(rs[i].Blocks), `"`+id+`"`) {
			return rs[i], true
		}
	}
	return slackserver.Message{}, false
}

// ThreadText is the whole thread of request id: the card's text and every
// reply's current text.
func (e *Env) ThreadText(id string) string {
	for _, m := range e.Slack.Messages(Channel) {
		if strings.Contains(string(m.Blocks), id) {
			var b strings.Builder
			for _, r := range e.Slack.Thread(Channel, m.TS) {
				b.WriteString(r.Text)
				b.WriteString("\n")
			}
			return b.String()
		}
	}
	return ""
}

// WaitThread waits until request id's thread contains substr.
func (e *Env) WaitThread(ctx context.Context, id, substr string) error {
	err := e.Slack.WaitFor(ctx, func() bool { return strings.Contains(e.ThreadText(id), substr) })
	if err != nil {
		return fmt.Errorf("thread of %s never said %q; it says:\n%s", id, substr, e.ThreadText(id))
	}
	return nil
}

// PrintThread writes request id's card and thread for a person to read.
func (e *Env) PrintThread(w io.Writer, id string) {
	for _, m := range e.Slack.Messages(Channel) {
		if !strings.Contains(string(m.Blocks), id) {
			continue
		}
		fmt.Fprintf(w, "┌ #osio-approvals %s\n│ %s\n", m.TS, strings.ReplaceAll(m.Text, "\n", "\n│ "))
		for _, r := range e.Slack.Thread(Channel, m.TS) {
			fmt.Fprintf(w, "├─ %s\n│  %s\n", r.TS, strings.ReplaceAll(r.Text, "\n", "\n│  "))
		}
		fmt.Fprintln(w, "└")
	}
}

// CreateRichTable creates a table in the production account with n items
// that together use every DynamoDB attribute type, with point-in-time
// recovery on or off.
func (e *Env) CreateRichTable(ctx context.Context, name string, n int, pitr bool) error {
	db := dynamodb.NewFromConfig(e.Prod)
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String(name),
		AttributeDefinitions: []ddbtypes.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: ddbtypes.ScalarAttributeTypeN},
		},
		KeySchema: []ddbtypes.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: ddbtypes.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: ddbtypes.KeyTypeRange},
		},
		BillingMode: ddbtypes.BillingModePayPerRequest,
	})
	if err != nil {
		return fmt.Errorf("creating table %s: %w", name, err)
	}
	if pitr {
		if _, err := db.UpdateContinuousBackups(ctx, &dynamodb.UpdateContinuousBackupsInput{TableName: aws.String(name),
			PointInTimeRecoverySpecification: &ddbtypes.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: aws.Bool(true)}}); err != nil {
			return fmt.Errorf("enabling PITR on %s: %w", name, err)
		}
	}
	for i := 0; i < n; i += 25 {
		var reqs []ddbtypes.WriteRequest
		for j := i; j < min(n, i+25); j++ {
			reqs = append(reqs, ddbtypes.WriteRequest{PutRequest: &ddbtypes.PutRequest{Item: RichItem(j)}})
		}
		if _, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]ddbtypes.WriteRequest{name: reqs}}); err != nil {
			return fmt.Errorf("writing items into %s: %w", name, err)
		}
	}
	return nil
}

// RichItem is item i of a rich table: S, N, B, BOOL, NULL, M, L, SS, NS, BS.
func RichItem(i int) map[string]ddbtypes.AttributeValue {
	return map[string]ddbtypes.AttributeValue{
		"pk": &ddbtypes.AttributeValueMemberS{Value: fmt.Sprintf("user#%04d", i%97)},
		"sk": &ddbtypes.AttributeValueMemberN{Value: strconv.Itoa(i)},
		// ASCII without quotes: moto 5.2.1's ImportTable JSON parser garbles
		// \u escapes and escaped quotes that its own export writes.
		"name":  &ddbtypes.AttributeValueMemberS{Value: fmt.Sprintf("name %d: a-b_c.d", i)},
		"price": &ddbtypes.AttributeValueMemberN{Value: fmt.Sprintf("%d.%02d", i, i%100)},
		"blob":  &ddbtypes.AttributeValueMemberB{Value: []byte{byte(i), 0, 255, byte(i >> 8)}},
		"ok":    &ddbtypes.AttributeValueMemberBOOL{Value: i%3 == 0},
		"gone":  &ddbtypes.AttributeValueMemberNULL{Value: true},
		"meta": &ddbtypes.AttributeValueMemberM{Value: map[string]ddbtypes.AttributeValue{
			"depth": &ddbtypes.AttributeValueMemberN{Value: "1"},
			"inner": &ddbtypes.AttributeValueMemberM{Value: map[string]ddbtypes.AttributeValue{"x": &ddbtypes.AttributeValueMemberS{Value: "y"}}},
		}},
		"list": &ddbtypes.AttributeValueMemberL{Value: []ddbtypes.AttributeValue{
			&ddbtypes.AttributeValueMemberS{Value: "a"}, &ddbtypes.AttributeValueMemberN{Value: strconv.Itoa(i)}, &ddbtypes.AttributeValueMemberBOOL{Value: false},
		}},
		"tags": &ddbtypes.AttributeValueMemberSS{Value: []string{"t" + strconv.Itoa(i%5), "all"}},
		"nums": &ddbtypes.AttributeValueMemberNS{Value: []string{"1", strconv.Itoa(i + 2)}},
		"bins": &ddbtypes.AttributeValueMemberBS{Value: [][]byte{{1, 2}, {byte(i), 9}}},
	}
}

// Scan reads every item of a table.
func Scan(ctx context.Context, db *dynamodb.Client, table string) ([]map[string]ddbtypes.AttributeValue, error) {
	var out []map[string]ddbtypes.AttributeValue
	p := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{TableName: aws.String(table)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
	}
	return out, nil
}

func (e *Env) devS3() *s3.Client {
	return s3.NewFromConfig(e.Dev, func(o *s3.Options) { o.UsePathStyle = true })
}

// DeleteBucket empties and deletes the dev bucket (to make exports fail).
func (e *Env) DeleteBucket(ctx context.Context) error {
	c := e.devS3()
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(Bucket)})
	if err != nil {
		return err
	}
	for _, o := range out.Contents {
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(Bucket), Key: o.Key}); err != nil {
			return err
		}
	}
	_, err = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(Bucket)})
	return err
}

// CreateBucket creates the dev bucket again.
func (e *Env) CreateBucket(ctx context.Context) error {
	_, err := e.devS3().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(Bucket)})
	return err
}

// storeSeq names each world's store table.
var storeSeq atomic.Int64

// sharedStore creates a DynamoDB store table in moto, serves it through a
// proxy that forwards one request at a time (see Options.SharedStore),
// and points cfg at it.
func (e *Env) sharedStore(ctx context.Context, cfg *config.Config) error {
	endpoint, stop := e.Moto.OneAtATime()
	e.storeProxy = stop
	table := fmt.Sprintf("osio-bot-store-%d-%d", os.Getpid(), storeSeq.Add(1))
	c := dynamodb.NewFromConfig(e.Moto.Base(Region), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(endpoint) })
	if err := dynamo.CreateTable(ctx, c, table); err != nil {
		return err
	}
	cfg.Store.Backend = "dynamodb"
	cfg.Store.DynamoDB = config.DynamoDB{Table: table, Region: Region, Endpoint: endpoint, CallTimeout: config.Duration(5 * time.Second)}
	cfg.Store.LeaseTTL = config.Duration(3 * time.Second)
	cfg.Store.ResumeInterval = config.Duration(500 * time.Millisecond)
	e.StoreTable = table
	return nil
}
