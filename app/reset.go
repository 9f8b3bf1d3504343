package app

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/slack-go/slack"
	gitlab "gitlab.com/gitlab-org/api/client-go"
	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions/appinterface"
	"github.com/osio/osio-bot/actions/passwordreset"
	"github.com/osio/osio-bot/bot"
	"github.com/osio/osio-bot/config"
	"github.com/osio/osio-bot/directory"
	"github.com/osio/osio-bot/mail"
)

func buildResetter(_ context.Context, cfg config.Config, accountConfig func(config.Account) aws.Config, log *zap.Logger, m *metrics) (*passwordreset.Resetter, error) {
	clients := map[string]passwordreset.IAM{}
	for _, acct := range cfg.Accounts {
		clients[acct.Name] = iam.NewFromConfig(accountConfig(acct))
	}
	mc := mail.DefaultConfig()
	mc.Addr, mc.From, mc.Username, mc.Password = cfg.Mail.Addr, cfg.Mail.From, cfg.Mail.Username, cfg.Mail.Password.Reveal()
	mc.StartTLS, mc.InsecureSkipVerify, mc.ServerName = cfg.Mail.StartTLS, cfg.Mail.InsecureSkipVerify, cfg.Mail.TLSServerName
	if cfg.Mail.CAFile != "" {
		pem, err := os.ReadFile(cfg.Mail.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading mail.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mail.ca_file %s holds no PEM certificate", cfg.Mail.CAFile)
		}
		mc.RootCAs = pool
	}
	sender, err := mail.New(mc)
	if err != nil {
		return nil, fmt.Errorf("configuring mail: %w", err)
	}

	var ai *appinterface.Client
	if cfg.AppInterface.GraphQLURL != "" {
		ai = appinterface.NewClient(cfg.AppInterface.GraphQLURL, cfg.AppInterface.GraphQLToken.Reveal(),
			appinterface.WithHTTPClient(m.counted(&http.Client{Timeout: 30 * time.Second}, "graphql", func(*http.Request) string { return "query" })))
	}
	var dir directory.Directory
	switch cfg.Directory.Source {
	case "app-interface":
		dir = &directory.AppInterface{Users: ai, MailDomain: cfg.Directory.MailDomain}
	default:
		fd, err := directory.OpenReloading(cfg.Directory.File)
		if err != nil {
			return nil, fmt.Errorf("loading directory.file: %w", err)
		}
		// Read again when it changes; a bad edit keeps the last good one.
		fd.OnError = func(err error) {
			log.Error("the people file changed but cannot be used; keeping the last good one", zap.Error(err))
		}
		fd.OnReload = func(n int) {
			log.Info("people file reloaded", zap.String("file", cfg.Directory.File), zap.Int("people", n))
		}
		dir = fd
	}
	d := passwordreset.Deps{
		IAM:       clients,
		Directory: people{dir: dir, resolver: &directory.Resolver{Dir: dir, Mappings: cfg.Directory.Mappings, EmailDomains: cfg.Directory.EmailDomains}},
		Mailer:    countedMailer{next: sender, count: m.peer},
	}
	if ai != nil {
		d.AppInterface = ai
		repo, err := appinterface.NewRepo(cfg.AppInterface.GitLabURL, cfg.AppInterface.GitLabToken.Reveal(), cfg.AppInterface.Project,
			cfg.AppInterface.TargetBranch, cfg.AppInterface.Labels,
			gitlab.WithHTTPClient(m.counted(appinterface.HTTPClient(appinterface.DefaultRequestTimeout), "gitlab", gitlabOperation)))
		if err != nil {
			return nil, fmt.Errorf("configuring GitLab: %w", err)
		}
		d.Repo = repo
	}
	return passwordreset.New(cfg, d), nil
}

// people adapts the directory package to what the reset needs.
type people struct {
	dir      directory.Directory
	resolver *directory.Resolver
}

func (p people) Person(ctx context.Context, name string) (*passwordreset.Person, error) {
	return convert(p.dir.ByOrgUsername(ctx, name))
}

func (p people) ForSlackUser(ctx context.Context, id, email string) (*passwordreset.Person, error) {
	return convert(p.resolver.Resolve(ctx, id, email))
}

func convert(d *directory.Person, err error) (*passwordreset.Person, error) {
	if errors.Is(err, directory.ErrNotFound) {
		return nil, passwordreset.ErrNoPerson
	}
	if err != nil {
		return nil, err
	}
	return &passwordreset.Person{OrgUsername: d.OrgUsername, Email: d.Email, Name: d.Name, PublicGPGKey: d.PublicGPGKey}, nil
}

// slackUsers reads who a Slack user is with users.info.
type slackUsers struct{ api *slack.Client }

func (s slackUsers) SlackUser(ctx context.Context, id string) (bot.SlackUser, error) {
	u, err := s.api.GetUserInfoContext(ctx, id)
	if err != nil {
		return bot.SlackUser{}, fmt.Errorf("users.info %s: %w", id, err)
	}
	return bot.SlackUser{Email: u.Profile.Email, Guest: u.IsRestricted || u.IsUltraRestricted}, nil
}
