// Package app is osio-bot's composition root: it builds every part from
// the configuration and passes each its dependencies. cmd/osio-bot calls
// it; tests and the demo call it too, so they run the real wiring.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/datapipeline"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/actions/export"
	"github.com/osio/osio-bot/actions/passwordreset"
	"github.com/osio/osio-bot/actions/restore"
	"github.com/osio/osio-bot/bot"
	"github.com/osio/osio-bot/config"
	"github.com/osio/osio-bot/store"
)

// App is a built bot, ready to Run.
type App struct {
	cfg      config.Config
	log      *zap.Logger
	store    *store.Store
	bot      *bot.Bot
	runner   *actions.Runner
	metrics  *http.Server
	registry *prometheus.Registry
	ackHist  *prometheus.HistogramVec
}

// Options are hooks for tests and benchmarks.
type Options struct {
	// AckObserved is told each slash command's envelope-to-ack latency.
	AckObserved func(command string, d time.Duration)
}

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

// Build wires the bot from cfg. It opens the store and checks the Slack
// token with auth.test.
func Build(ctx context.Context, cfg config.Config, log *zap.Logger, o Options) (*App, error) {
	if ps := cfg.Validate(); len(ps) > 0 {
		return nil, fmt.Errorf("invalid config: %s (run check-config)", ps[0])
	}
	src, _ := cfg.Account(cfg.Export.SourceAccount)
	dst, _ := cfg.Account(cfg.Export.DestAccount)
	base, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(src.Region))
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	srcCfg := AccountConfig(base, src, cfg.AWS.SessionName)
	dstCfg := AccountConfig(base, dst, cfg.AWS.SessionName)
	pathStyle := func(o *s3.Options) { o.UsePathStyle = cfg.AWS.S3UsePathStyle }

	st, err := store.Open(cfg.Store.Path, store.Options{})
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: log, store: st, registry: prometheus.NewRegistry()}
	a.ackHist = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "osio_bot_ack_seconds", Help: "Slash command envelope-to-ack latency.",
		Buckets: []float64{.001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"command"})
	a.registry.MustRegister(a.ackHist, prometheus.NewGoCollector())

	exp, err := export.New(cfg, export.Deps{
		DynamoDB:     dynamodb.NewFromConfig(srcCfg),
		DataPipeline: datapipeline.NewFromConfig(srcCfg),
		DevS3:        s3.NewFromConfig(dstCfg, pathStyle),
	})
	if err != nil {
		st.Close()
		return nil, err
	}

	api := slack.New(cfg.Slack.BotToken.Reveal(), slack.OptionAPIURL(cfg.Slack.APIURL), slack.OptionAppLevelToken(cfg.Slack.AppToken.Reveal()))
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
		resetter, err = buildResetter(ctx, cfg, base, log)
		if err != nil {
			st.Close()
			return nil, err
		}
		kinds[passwordreset.Kind] = bot.ResetKind()
		jobs[passwordreset.Kind] = resetter
	}
	rep := bot.NewReporter(api, st, bot.ReporterOptions{
		MinInterval: cfg.Slack.MinPostInterval.D(), ProgressInterval: cfg.Slack.ProgressInterval.D(),
		Render: bot.RenderCard(kinds, cfg.Slack.ApproverGroups), Log: log.Named("reporter"),
	})
	a.runner = actions.NewRunner(st, rep, jobs, log.Named("runner"))
	if name := os.Getenv(actions.FailpointEnv); name != "" {
		log.Warn("failpoint armed: a job that reaches it stops there", zap.String("failpoint", name))
		a.runner.Failpoint = actions.ArmFailpoint(name, func(at string) {
			log.Warn("failpoint reached; waiting to be killed", zap.String("failpoint", at))
		})
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
		},
		API: api, Socket: sock, Store: st, Runner: a.runner, Reporter: rep,
		Approvers: bot.NewApprovers(api, cfg.Slack.ApproverGroups, cfg.Slack.ApproverCacheTTL.D(), time.Now),
		Kinds:     kinds, Log: log.Named("bot"), AckObserved: observe,
	})
	a.bot.AddCommand(a.bot.ExportCommand(exp, src.Name, dst.Name))
	a.bot.AddCommand(a.bot.RestoreCommand(rst, cfg.Restore.RequireApproval))
	if resetter != nil {
		a.bot.AddCommand(a.bot.ResetCommand(resetter, slackUsers{api}))
	}
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
			// TODO(#8 item 9): the reporter's Unreachable() plugs in here by
			// itself once *bot.Reporter has it (see unreachabler).
			if problems := readiness(pctx, a.bot, a.store, a.bot.Reporter); len(problems) > 0 {
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

// unreachabler lists the channels the thread reporter cannot post to.
type unreachabler interface{ Unreachable() []string }

// readiness lists why the bot is not ready; none when it is. rep counts
// when it is an unreachabler.
func readiness(ctx context.Context, c connChecker, st pinger, rep any) []string {
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
	if u, ok := rep.(unreachabler); ok {
		if chs := u.Unreachable(); len(chs) > 0 {
			problems = append(problems, "cannot post to Slack channel(s) "+strings.Join(chs, ", "))
		}
	}
	return problems
}
