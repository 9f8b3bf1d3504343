// Package app is osio-bot's composition root: it builds every part from
// the configuration and passes each its dependencies. cmd/osio-bot calls
// it; tests and the demo call it too, so they run the real wiring.
package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/datapipeline"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	smithymiddleware "github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/actions/export"
	"github.com/osio/osio-bot/actions/passwordreset"
	"github.com/osio/osio-bot/actions/restore"
	"github.com/osio/osio-bot/audit"
	"github.com/osio/osio-bot/bot"
	"github.com/osio/osio-bot/config"
)

// App is a built bot, ready to Run.
type App struct {
	cfg      config.Config
	log      *zap.Logger
	store    Store
	rawStore Store           // the backend itself, for housekeeping (retention)
	archiver *audit.Archiver // nil unless audit.s3_uri
	bot      *bot.Bot
	runner   *actions.Runner
	metrics  *http.Server
	registry *prometheus.Registry
	ackHist  *prometheus.HistogramVec
	// slackErrs counts Slack errors no retry fixes, by class and code.
	slackErrs *prometheus.CounterVec
	// reporter delivers threads; its Health says whether it can post.
	reporter *bot.Reporter
	// m are the request, peer, delivery and store metrics (metrics.go).
	m *metrics
}

// Options are hooks for tests and benchmarks.
type Options struct {
	// AckObserved is told each slash command's envelope-to-ack latency.
	AckObserved func(command string, d time.Duration)
	// SlackCallTimeout, if set, bounds each of the thread reporter's Slack
	// calls instead of 10 s.
	SlackCallTimeout time.Duration
	// Replica, if set, names this process in leases and threads instead
	// of ReplicaName().
	Replica string
	// AWSObserved, if set, is told every AWS operation the bot calls in an
	// account (through its role), by account name, service and operation
	// (the least-privilege test).
	AWSObserved func(account, service, operation string)
}

// accountConfig is AccountConfig with o.AWSObserved watching its calls.
func (o Options) accountConfig(base aws.Config, a config.Account, session string) aws.Config {
	c := AccountConfig(base, a, session)
	if o.AWSObserved == nil {
		return c
	}
	c.APIOptions = append(slices.Clone(c.APIOptions), func(stack *smithymiddleware.Stack) error {
		return stack.Initialize.Add(smithymiddleware.InitializeMiddlewareFunc("osio-bot-aws-observed",
			func(ctx context.Context, in smithymiddleware.InitializeInput, next smithymiddleware.InitializeHandler) (smithymiddleware.InitializeOutput, smithymiddleware.Metadata, error) {
				o.AWSObserved(a.Name, awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx))
				return next.HandleInitialize(ctx, in)
			}), smithymiddleware.After)
	})
	return c
}

// channelLeases is the reporter's leases: on a shared store only.
func channelLeases(st Store, shared bool) bot.ChannelLeases {
	if !shared {
		return nil
	}
	return st
}

func (o Options) replica() string { return cmp.Or(o.Replica, ReplicaName()) }

// AccountConfig is the SDK configuration for one account: the base
// credentials assume the account's role.
func AccountConfig(base aws.Config, a config.Account, session string) aws.Config {
	c := base.Copy()
	c.Region = a.Region
	c.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(base), a.RoleARN, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = session
	}))
	return c
}

// AWSHTTPClient is the HTTP client of every AWS SDK call. The SDK's
// default client has no overall timeout, so a peer that accepts a call
// and never answers would hold the job for good. Here each attempt is
// bounded by callTimeout as a whole (connect, send, wait for the answer,
// read it; no SDK operation the bot uses streams its body), and connect
// and the TLS handshake by shorter bounds. A timed-out attempt is a
// transport error, which the SDK retries like a dropped connection: every
// call the bot makes is a read, carries a ClientToken
// (ExportTableToPointInTime, ImportTable), or repeats its own input
// (UpdateLoginProfile with the same password); ActivatePipeline is sent
// with SDK retries off (actions/export).
func AWSHTTPClient(callTimeout time.Duration) *awshttp.BuildableClient {
	connect := min(callTimeout, 10*time.Second)
	return awshttp.NewBuildableClient().
		WithTimeout(callTimeout).
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = connect }).
		WithTransportOptions(func(tr *http.Transport) {
			tr.TLSHandshakeTimeout = connect
			tr.ResponseHeaderTimeout = callTimeout
			tr.MaxIdleConnsPerHost = maxIdlePerHost
			tr.MaxConnsPerHost = maxIdlePerHost
		})
}

// maxIdlePerHost is how many idle connections to one host the HTTP
// clients keep for reuse. net/http keeps 2 (the SDK 10), so a burst of
// concurrent calls (16 checks to AWS at once, outcomes posted to
// response_url) closed its connections after each call and dialled new
// ones for the next: a connection per call under load (issue 9). It is
// also the most connections the AWS client opens to one endpoint; more
// calls at once wait for one of them (within their deadline) instead of
// dialling: the cards' plans of 450 requests checked at once dialled
// Data Pipeline 450 times at once, and overflowed its listen queue.
const maxIdlePerHost = 64

// slackCallTimeout bounds each Slack Web API call the reporter makes.
const slackCallTimeout = 10 * time.Second

// SlackHTTPClient is the HTTP client of every Slack Web API call:
// slack-go's default client has no timeout, so one stalled connection
// would hang its caller for good. Callers add their own, shorter,
// per-call contexts.
func SlackHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 5 * time.Second
	tr.ResponseHeaderTimeout = 15 * time.Second
	tr.MaxIdleConnsPerHost = maxIdlePerHost
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// responseURL posts to a command's response_url. The URL is a
// credential (it lets anyone post to the user for 30 minutes), so it is
// kept out of the errors it returns.
type responseURL struct{ hc *http.Client }

func (r responseURL) Respond(ctx context.Context, u string, msg *slack.WebhookMessage) error {
	err := slack.PostWebhookCustomHTTPContext(ctx, u, r.hc, msg)
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("posting to the response_url: %s: %w", ue.Op, ue.Err)
	}
	if err != nil {
		return fmt.Errorf("posting to the response_url: %w", err)
	}
	return nil
}

// Build wires the bot from cfg. It opens the store and checks the Slack
// token with auth.test.
func Build(ctx context.Context, cfg config.Config, log *zap.Logger, o Options) (*App, error) {
	if ps := cfg.Validate(); len(ps) > 0 {
		return nil, fmt.Errorf("invalid config: %s (run check-config)", ps[0])
	}
	src, _ := cfg.Account(cfg.Export.SourceAccount)
	dst, _ := cfg.Account(cfg.Export.DestAccount)
	m := newMetrics()
	base, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(src.Region),
		awsconfig.WithHTTPClient(AWSHTTPClient(cfg.AWS.CallTimeout.D())))
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	base = m.withAWSCounter(base)
	srcCfg := o.accountConfig(base, src, cfg.AWS.SessionName)
	dstCfg := o.accountConfig(base, dst, cfg.AWS.SessionName)
	pathStyle := func(o *s3.Options) { o.UsePathStyle = cfg.AWS.S3UsePathStyle }

	raw, shared, err := OpenStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	st := newMeteredStore(raw, m)
	a := &App{cfg: cfg, log: log, store: st, rawStore: raw, registry: prometheus.NewRegistry(), m: m}
	a.ackHist, a.slackErrs = m.ack, m.slackErrs

	exp, err := export.New(cfg, export.Deps{
		DynamoDB:     dynamodb.NewFromConfig(srcCfg),
		DataPipeline: datapipeline.NewFromConfig(srcCfg),
		DevS3:        s3.NewFromConfig(dstCfg, pathStyle),
		CallTimeout:  cfg.AWS.CallTimeout.D(),
	})
	if err != nil {
		st.Close()
		return nil, err
	}

	api := slack.New(cfg.Slack.BotToken.Reveal(), slack.OptionAPIURL(cfg.Slack.APIURL), slack.OptionAppLevelToken(cfg.Slack.AppToken.Reveal()),
		slack.OptionHTTPClient(m.counted(SlackHTTPClient(), "slack", slackMethod)))
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := api.AuthTestContext(actx); err != nil {
		st.Close()
		return nil, fmt.Errorf("checking SLACK_BOT_TOKEN with auth.test: %w", err)
	}
	sock := socketmode.New(api)

	rst, err := restore.New(cfg, dynamodb.NewFromConfig(dstCfg), st)
	if err != nil {
		st.Close()
		return nil, err
	}
	kinds := map[string]bot.Kind{export.Kind: bot.ExportKind(exp), restore.Kind: bot.RestoreKind(rst, !cfg.Restore.RequireApproval)}
	jobs := map[string]actions.Job{export.Kind: exp, restore.Kind: rst}
	var resetter *passwordreset.Resetter
	if cfg.Reset.Enabled {
		resetter, err = buildResetter(ctx, cfg, func(a config.Account) aws.Config { return o.accountConfig(base, a, cfg.AWS.SessionName) }, log, m)
		if err != nil {
			st.Close()
			return nil, err
		}
		kinds[passwordreset.Kind] = bot.ResetKind(resetter, slackUsers{api})
		jobs[passwordreset.Kind] = resetter
	}
	rep := bot.NewReporter(api, st, bot.ReporterOptions{
		MinInterval: cfg.Slack.MinPostInterval.D(), ProgressInterval: cfg.Slack.ProgressInterval.D(),
		CallTimeout: cmp.Or(o.SlackCallTimeout, slackCallTimeout),
		OnError:     func(class, code string) { a.slackErrs.WithLabelValues(class, code).Inc() },
		OnDelivery:  m.delivery,
		Render:      bot.RenderCard(kinds, cfg.Slack.ApproverGroups), Log: log.Named("reporter"),
		Leases: channelLeases(st, shared), Owner: o.replica(), LeaseTTL: cfg.Store.LeaseTTL.D(),
	})
	a.reporter = rep
	a.runner = actions.NewRunner(st, rep, jobs, log.Named("runner"))
	if cfg.Audit.S3URI != "" {
		bucket, prefix, err := audit.ParseS3URI(cfg.Audit.S3URI)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("audit.s3_uri: %w", err)
		}
		acct, _ := cfg.Account(cmp.Or(cfg.Audit.Account, cfg.Export.DestAccount))
		a.archiver = &audit.Archiver{S3: s3.NewFromConfig(o.accountConfig(base, acct, cfg.AWS.SessionName), pathStyle), Store: st,
			Bucket: bucket, Prefix: prefix, Timeout: cfg.AWS.CallTimeout.D(), Log: log.Named("audit")}
	}
	if shared {
		// Several replicas share the store: a job runs under its lease.
		a.runner.Leases, a.runner.Owner, a.runner.LeaseTTL = st, o.replica(), cfg.Store.LeaseTTL.D()
		log.Info("shared store: jobs run under leases", zap.String("replica", a.runner.Owner), zap.Duration("lease_ttl", a.runner.LeaseTTL))
	}
	if name := os.Getenv(actions.FailpointEnv); name != "" {
		log.Warn("failpoint armed: a job that reaches it stops there", zap.String("failpoint", name))
		a.runner.Failpoint = actions.ArmFailpoint(name, func(at string) {
			log.Warn("failpoint reached; waiting to be killed", zap.String("failpoint", at))
		})
		if a.archiver != nil {
			a.archiver.Failpoint = a.runner.Failpoint
		}
	}
	observe := func(cmd string, d time.Duration) {
		a.ackHist.WithLabelValues(cmd).Observe(d.Seconds())
		if o.AckObserved != nil {
			o.AckObserved(cmd, d)
		}
	}
	a.bot = bot.New(bot.Deps{
		Settings: bot.Settings{
			ApprovalsChannel: cfg.Slack.ApprovalsChannel, ApproverGroups: cfg.Slack.ApproverGroups,
			Expiry: cfg.Approval.Expiry.D(), SweepInterval: cfg.Approval.SweepInterval.D(),
			CheckTimeout: cfg.Approval.CheckTimeout.D(), Shared: shared,
		},
		API: api, Socket: sock, Store: st, Runner: a.runner, Reporter: rep,
		Approvers: bot.NewApprovers(api, cfg.Slack.ApproverGroups, cfg.Slack.ApproverCacheTTL.D(), time.Now),
		Responder: responseURL{hc: m.counted(SlackHTTPClient(), "slack", func(*http.Request) string { return "response_url" })}, Failpoint: a.runner.Failpoint,
		Kinds: kinds, Log: log.Named("bot"), AckObserved: observe,
	})
	a.bot.AddCommand(a.bot.ExportCommand(exp, src.Name, dst.Name))
	a.bot.AddCommand(a.bot.RestoreCommand(rst, cfg.Restore.RequireApproval))
	a.bot.AddCommand(a.bot.PendingCommand())
	if resetter != nil {
		a.bot.AddCommand(a.bot.ResetCommand())
	} else {
		a.bot.AddCommand(bot.DisabledCommand("/osio-reset-password",
			"password resets are not turned on here (reset.enabled in the config). Ask the bot's operators; deploy/README.md, section 8, says what a reset needs."))
	}
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	a.registry.MustRegister(m.collectors(a.bot, st, names)...)
	return a, nil
}

// fatalGrace bounds how long running jobs get to reach their next
// checkpoint after a fatal Slack error, before the process exits.
const fatalGrace = 10 * time.Second

// Run serves until ctx ends; then it drains handlers and jobs (jobs stop
// at their next wait and resume on the next start) and closes the store.
// A fatal Socket Mode error (revoked app token, invalid_auth) stops it
// too: no new work is taken, running jobs get fatalGrace to reach their
// next checkpoint, and Run returns the error so that the process exits
// non-zero and is restarted.
//
// metrics.listen serves /metrics, /healthz (liveness: fails once the
// Socket Mode loop is dead) and /readyz (readiness: connected to Slack,
// store writable, every channel postable).
func (a *App) Run(ctx context.Context) error {
	defer a.store.Close()
	if a.cfg.Metrics.Listen != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
			if err := a.bot.SocketDead(); err != nil {
				http.Error(w, "not live: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
			pctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if problems := readiness(pctx, a.bot, a.store, a.reporter); len(problems) > 0 {
				http.Error(w, "not ready: "+strings.Join(problems, "; "), http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ready")
		})
		a.metrics = &http.Server{Addr: a.cfg.Metrics.Listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		ln, err := net.Listen("tcp", a.cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("listening on metrics.listen %s: %w", a.cfg.Metrics.Listen, err)
		}
		a.log.Info("serving /metrics, /healthz and /readyz", zap.String("addr", ln.Addr().String()))
		go func() {
			if err := a.metrics.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("metrics server", zap.Error(err))
			}
		}()
		defer a.metrics.Close()
	}
	if r := a.cfg.Store.Retention.D(); r > 0 {
		go a.retain(ctx, r)
	}
	if a.archiver != nil {
		go a.archive(ctx)
	}
	a.runner.ResumeInterval = a.cfg.Store.ResumeInterval.D()
	if err := a.runner.Start(ctx); err != nil {
		return err
	}
	err := a.bot.Run(ctx)
	if err != nil && ctx.Err() == nil {
		a.log.Error("fatal error: taking no new work; running jobs stop at their next checkpoint, then exiting for a restart",
			zap.Error(err), zap.Duration("grace", fatalGrace))
		a.runner.Drain(fatalGrace)
	}
	a.runner.Wait()
	a.log.Info("stopped")
	return err
}

// connChecker tells whether Slack is connected.
type connChecker interface{ Connected() (bool, time.Time) }

// pinger tells whether the store takes writes.
type pinger interface {
	Ping(ctx context.Context) error
}

// deliveryHealth says whether the thread reporter can post: nil, or an
// error naming each channel it cannot post to (or a refused token).
type deliveryHealth interface{ Health() error }

// readiness lists why the bot is not ready; none when it is.
func readiness(ctx context.Context, c connChecker, st pinger, rep deliveryHealth) []string {
	var problems []string
	if ok, since := c.Connected(); !ok {
		p := "not connected to Slack"
		if !since.IsZero() {
			p += fmt.Sprintf(" (for %s)", time.Since(since).Round(time.Second))
		}
		problems = append(problems, p)
	}
	if err := st.Ping(ctx); err != nil {
		problems = append(problems, "store not writable: "+err.Error())
	}
	if err := rep.Health(); err != nil {
		problems = append(problems, "thread delivery: "+err.Error())
	}
	return problems
}

// pruner is a store that can remove old ended requests (bolt).
type pruner interface {
	Prune(cutoff time.Time, may func(*actions.Request) bool) (int, error)
}

// retain removes the ended requests older than retention, a minute after
// the start and then every hour, until ctx ends (store.retention).
func (a *App) retain(ctx context.Context, retention time.Duration) {
	p, ok := a.rawStore.(pruner)
	if !ok {
		a.log.Warn("store.retention is set but this store cannot prune; nothing is removed")
		return
	}
	every(ctx, time.Minute, time.Hour, func() {
		var may func(*actions.Request) bool
		if a.archiver != nil {
			// Only a request whose record is in S3 may go.
			may = func(r *actions.Request) bool { return r.Archived != "" }
		}
		n, err := p.Prune(time.Now().Add(-retention), may)
		if err != nil {
			a.log.Error("removing requests past store.retention", zap.Error(err))
		} else if n > 0 {
			a.log.Info("removed requests past store.retention", zap.Int("requests", n), zap.Duration("retention", retention))
		}
	})
}

// archive writes ended requests' audit records to S3 (audit.s3_uri) every
// audit.interval until ctx ends.
func (a *App) archive(ctx context.Context) {
	every(ctx, time.Second, a.cfg.Audit.Interval.D(), func() {
		if n, err := a.archiver.Archive(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("writing audit records to S3; trying again", zap.Error(err), zap.Int("written", n))
		}
	})
}

// every runs f first after first, then every interval after the end of
// the last run, until ctx ends.
func every(ctx context.Context, first, interval time.Duration, f func()) {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f()
		t.Reset(interval)
	}
}
