package playground

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/mail"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	dpserver "github.com/osio/osio-bot/testservers/datapipeline"
	"github.com/osio/osio-bot/testservers/testenv"
)

// worldView is what the world pane shows; each part carries its own
// error, so that one peer's failure does not hide the others.
type worldView struct {
	Tables    []tableView
	TablesErr string
	Pipelines []dpserver.Pipeline
	Holdable  []holdView
	Bucket    string
	Folders   []folderView
	S3Err     string
	Users     []iamUserView
	IAMErr    string
	Mail      []mailView
	MRs       []mrView
	Reconcile []string
}

type tableView struct {
	Account, Name, Status string
	Items                 int32
	PITR                  string
}

type holdView struct {
	Name string
	Held bool
}

type folderView struct {
	Prefix string
	Files  []fileView
	Bytes  int64
}

type fileView struct {
	Name string
	Size int64
}

type iamUserView struct {
	Name, Created, Profile string
}

type mailView struct {
	Index                         int
	From, To, Subject, Date, Body string
	TLS                           bool
	Encrypted                     bool
	Decrypted                     string
	DecryptErr                    string
}

type mrView struct {
	IID                        int64
	Title, State, Source, Dest string
	Labels                     string
	Open                       bool
	Files                      []diffView
}

type diffView struct {
	Path         string
	Removed, Add []string
}

// aws clients of the world, the test's own (not through the bot's proxy).
type awsClients struct {
	prod, dev *dynamodb.Client
	s3        *s3.Client
	iam       *iam.Client
}

// callTimeout bounds each call the page makes to a peer.
const callTimeout = 5 * time.Second

func (s *Server) tables(ctx context.Context) ([]tableView, error) {
	var out []tableView
	for _, a := range []struct {
		name string
		c    *dynamodb.Client
	}{{"osio (" + testenv.ProdAccount + ")", s.aws.prod}, {"osio-dev (" + testenv.DevAccount + ")", s.aws.dev}} {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		list, err := a.c.ListTables(cctx, &dynamodb.ListTablesInput{})
		cancel()
		if err != nil {
			return out, fmt.Errorf("listing the tables of %s: %w", a.name, err)
		}
		for _, t := range list.TableNames {
			v := tableView{Account: a.name, Name: t}
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			if d, err := a.c.DescribeTable(cctx, &dynamodb.DescribeTableInput{TableName: aws.String(t)}); err == nil {
				v.Status = string(d.Table.TableStatus)
			}
			if n, err := a.c.Scan(cctx, &dynamodb.ScanInput{TableName: aws.String(t), Select: ddbtypes.SelectCount}); err == nil {
				v.Items = n.Count
			}
			if b, err := a.c.DescribeContinuousBackups(cctx, &dynamodb.DescribeContinuousBackupsInput{TableName: aws.String(t)}); err == nil &&
				b.ContinuousBackupsDescription != nil && b.ContinuousBackupsDescription.PointInTimeRecoveryDescription != nil {
				v.PITR = string(b.ContinuousBackupsDescription.PointInTimeRecoveryDescription.PointInTimeRecoveryStatus)
			}
			cancel()
			out = append(out, v)
		}
	}
	return out, nil
}

func (s *Server) folders(ctx context.Context) ([]folderView, error) {
	byPrefix := map[string]*folderView{}
	p := s3.NewListObjectsV2Paginator(s.aws.s3, &s3.ListObjectsV2Input{Bucket: aws.String(testenv.Bucket)})
	for p.HasMorePages() {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		page, err := p.NextPage(cctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("listing s3://%s: %w", testenv.Bucket, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			dir, file := path.Split(key)
			f := byPrefix[dir]
			if f == nil {
				f = &folderView{Prefix: dir}
				byPrefix[dir] = f
			}
			size := aws.ToInt64(o.Size)
			f.Files = append(f.Files, fileView{Name: file, Size: size})
			f.Bytes += size
		}
	}
	var out []folderView
	for _, f := range byPrefix {
		out = append(out, *f)
	}
	slices.SortFunc(out, func(a, b folderView) int { return strings.Compare(a.Prefix, b.Prefix) })
	return out, nil
}

func (s *Server) iamUsers(ctx context.Context) ([]iamUserView, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	list, err := s.aws.iam.ListUsers(cctx, &iam.ListUsersInput{})
	if err != nil {
		return nil, fmt.Errorf("listing the IAM users of osio-dev: %w", err)
	}
	var out []iamUserView
	for _, u := range list.Users {
		v := iamUserView{Name: aws.ToString(u.UserName), Created: fmtTime(u.CreateDate)}
		lp, err := s.aws.iam.GetLoginProfile(cctx, &iam.GetLoginProfileInput{UserName: u.UserName})
		var nse *iamtypes.NoSuchEntityException
		switch {
		case err == nil:
			v.Profile = "console password since " + fmtTime(lp.LoginProfile.CreateDate)
			if lp.LoginProfile.PasswordResetRequired {
				v.Profile += ", to be changed at first sign-in"
			}
		case asErr(err, &nse):
			v.Profile = "no console password"
		default:
			v.Profile = "login profile: " + err.Error()
		}
		out = append(out, v)
	}
	return out, nil
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// mailbox is the SMTP server's messages, newest first, with what the
// developer's key decrypted so far.
func (s *Server) mailbox() []mailView {
	msgs := s.w.SMTP.Messages()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []mailView
	for i, m := range msgs {
		v := mailView{Index: i, To: strings.Join(m.To, ", "), From: m.From, TLS: m.TLS}
		if pm, err := mail.ReadMessage(bytes.NewReader(m.Data)); err == nil {
			v.Subject, v.Date = pm.Header.Get("Subject"), pm.Header.Get("Date")
			body, _ := io.ReadAll(io.LimitReader(pm.Body, 64<<10))
			v.Body = strings.ReplaceAll(string(body), "\r\n", "\n")
		} else {
			v.Body = string(m.Data)
		}
		v.Encrypted = armored.Match(m.Data)
		if d, ok := s.decrypted[i]; ok {
			v.Decrypted, v.DecryptErr = d.text, d.err
		}
		out = append(out, v)
	}
	slices.Reverse(out)
	return out
}

func (s *Server) mergeRequests() []mrView {
	mrs := s.w.GitLab.MRs()
	var out []mrView
	for _, m := range mrs {
		v := mrView{IID: m.IID, Title: m.Title, State: m.State, Source: m.SourceBranch, Dest: m.TargetBranch,
			Labels: strings.Join(m.Labels, ", "), Open: m.State == "opened"}
		if old, cur, err := s.w.GitLab.Diff(m.IID); err == nil {
			v.Files = diff(old, cur)
		}
		out = append(out, v)
	}
	slices.Reverse(out)
	return out
}

// diff lists the changed files and their removed and added lines (by
// line, not a minimal edit script: enough to read an app-interface MR).
func diff(old, cur map[string][]byte) []diffView {
	paths := map[string]bool{}
	for p := range old {
		paths[p] = true
	}
	for p := range cur {
		paths[p] = true
	}
	var out []diffView
	for _, p := range slices.Sorted(func(yield func(string) bool) {
		for p := range paths {
			if !yield(p) {
				return
			}
		}
	}) {
		a, b := lines(old[p]), lines(cur[p])
		d := diffView{Path: p}
		for _, l := range a {
			if !slices.Contains(b, l) {
				d.Removed = append(d.Removed, l)
			}
		}
		for _, l := range b {
			if !slices.Contains(a, l) {
				d.Add = append(d.Add, l)
			}
		}
		if len(d.Removed)+len(d.Add) > 0 {
			out = append(out, d)
		}
	}
	return out
}

func lines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// world gathers the world pane's view.
func (s *Server) world(ctx context.Context) worldView {
	var v worldView
	var err error
	if v.Tables, err = s.tables(ctx); err != nil {
		v.TablesErr = err.Error()
	}
	v.Pipelines = s.w.DP.Pipelines()
	slices.Reverse(v.Pipelines)
	for _, t := range v.Tables {
		if strings.HasPrefix(t.Account, "osio (") {
			v.Holdable = append(v.Holdable, holdView{Name: t.Name, Held: s.w.DP.Held(t.Name)})
		}
	}
	v.Bucket = testenv.Bucket
	if v.Folders, err = s.folders(ctx); err != nil {
		v.S3Err = err.Error()
	}
	if v.Users, err = s.iamUsers(ctx); err != nil {
		v.IAMErr = err.Error()
	}
	if s.w.SMTP != nil {
		v.Mail = s.mailbox()
	}
	if s.w.GitLab != nil {
		v.MRs = s.mergeRequests()
	}
	for _, e := range s.w.ReconcileErrors() {
		v.Reconcile = append(v.Reconcile, e.Error())
	}
	return v
}
