package appinterface

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	gitlab "gitlab.com/gitlab-org/api/client-go"
)

// DefaultLabels are the labels app-interface's housekeeping merges by
// itself once CI passes.
var DefaultLabels = []string{"bot/automerge"}

// ErrNoChange is returned by Propose when every file already has the
// wanted content at the target branch: there is nothing to merge.
var ErrNoChange = errors.New("the files already have that content")

// Repo is the app-interface repository on GitLab, as the password reset
// job uses it: files are read at TargetBranch, and each change is one
// commit on a new branch with a merge request into TargetBranch.
type Repo struct {
	client *gitlab.Client
	// Project is the project's numeric id or its path
	// ("service/app-interface").
	Project      string
	TargetBranch string
	// Labels go on every merge request (see DefaultLabels).
	Labels []string
	// CallTimeout bounds each GitLab call, the client's own retries of a
	// 429 or 5xx included (default DefaultCallTimeout).
	CallTimeout time.Duration
}

// Deadlines of GitLab calls.
const (
	// DefaultRequestTimeout bounds one HTTP request (connect, send, wait
	// for the answer, read it) of the default HTTP client (HTTPClient).
	DefaultRequestTimeout = 30 * time.Second
	// DefaultCallTimeout bounds one call with the client's retries.
	DefaultCallTimeout = 2 * time.Minute
	// proposeAttempts is how often Propose sends a commit or a merge
	// request whose earlier attempts failed with an unknown outcome (a
	// dropped connection, a timeout, a 5xx) and provably did not happen.
	proposeAttempts = 3
)

// HTTPClient is the default HTTP client of a Repo: client-go's default
// has no timeout, so one stalled connection would hang the job for good.
// Each request is bounded by requestTimeout as a whole; connecting and the
// TLS handshake by shorter bounds.
func HTTPClient(requestTimeout time.Duration) *http.Client {
	connect := min(requestTimeout, 10*time.Second)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = connect
	tr.ResponseHeaderTimeout = requestTimeout
	return &http.Client{Transport: tr, Timeout: requestTimeout}
}

// MR is a merge request, as much of it as the job needs.
type MR struct {
	IID          int
	WebURL       string
	State        string // opened, closed, locked or merged
	MergedAt     *time.Time
	Title        string
	SourceBranch string
}

// Change is one proposed change: one commit on Branch (made from the target
// branch) updating Files, and a merge request titled Title.
type Change struct {
	Branch        string
	Title         string
	Description   string
	CommitMessage string
	// Files maps repository paths (e.g. "data/teams/x/users/jdoe.yml") to
	// their whole new content. The files must exist at the target branch.
	Files map[string][]byte
}

// NewRepo returns a Repo for the project at the GitLab instance baseURL
// (e.g. "https://gitlab.example.com"; the client adds /api/v4), with token
// (a personal, project or group access token, sent as PRIVATE-TOKEN; never
// logged nor put into errors). opts go to the client (e.g.
// gitlab.WithHTTPClient, gitlab.WithCustomRetryMax); the default HTTP
// client is HTTPClient(DefaultRequestTimeout).
func NewRepo(baseURL, token, project, target string, labels []string, opts ...gitlab.ClientOptionFunc) (*Repo, error) {
	if token == "" {
		return nil, errors.New("GitLab: no token")
	}
	if project == "" || target == "" {
		return nil, errors.New("GitLab: the project and the target branch are required")
	}
	c, err := gitlab.NewClient(token, append([]gitlab.ClientOptionFunc{gitlab.WithBaseURL(baseURL),
		gitlab.WithHTTPClient(HTTPClient(DefaultRequestTimeout))}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("GitLab client for %s: %w", redact(baseURL), scrub(err, token))
	}
	return &Repo{client: c, Project: project, TargetBranch: target, Labels: append([]string(nil), labels...)}, nil
}

// call returns the context of one GitLab call: ctx bounded by CallTimeout.
func (r *Repo) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, cmp.Or(r.CallTimeout, DefaultCallTimeout))
}

// unknownOutcome says whether a failed call may have happened at GitLab
// all the same: its answer never arrived (a dropped connection, a
// timeout) or was a 5xx, maybe from a proxy, while ctx, the job's own
// context, is still alive. An answer from GitLab (4xx) is not.
func unknownOutcome(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var er *gitlab.ErrorResponse
	if errors.As(err, &er) {
		return er.Response != nil && er.Response.StatusCode >= 500
	}
	return true
}

// pause waits a little before attempt n+1 of a call, or until ctx ends.
func pause(ctx context.Context, n int) error {
	t := time.NewTimer(time.Duration(n) * 200 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ReadFile returns a file's content at the target branch. A missing file
// (or project) is ErrNotFound.
func (r *Repo) ReadFile(ctx context.Context, path string) ([]byte, error) {
	return r.readFile(ctx, path, r.TargetBranch)
}

func (r *Repo) readFile(ctx context.Context, path, ref string) ([]byte, error) {
	cctx, cancel := r.call(ctx)
	defer cancel()
	f, _, err := r.client.RepositoryFiles.GetFile(r.Project, path, &gitlab.GetFileOptions{Ref: gitlab.Ptr(ref)}, gitlab.WithContext(cctx))
	if err != nil {
		if errors.Is(err, gitlab.ErrNotFound) {
			return nil, fmt.Errorf("reading %s at %s: %w", path, ref, errors.Join(ErrNotFound, err))
		}
		return nil, fmt.Errorf("reading %s at %s: %w", path, ref, err)
	}
	switch f.Encoding {
	case "base64":
		b, err := base64.StdEncoding.DecodeString(f.Content)
		if err != nil {
			return nil, fmt.Errorf("reading %s at %s: decoding base64: %w", path, ref, err)
		}
		return b, nil
	case "", "text":
		return []byte(f.Content), nil
	default:
		return nil, fmt.Errorf("reading %s at %s: unknown encoding %q", path, ref, f.Encoding)
	}
}

func toMR(iid int64, webURL, state string, mergedAt *time.Time, title, source string) *MR {
	return &MR{IID: int(iid), WebURL: webURL, State: state, MergedAt: mergedAt, Title: title, SourceBranch: source}
}

// FindOpenMR returns the open merge request into the target branch whose
// title is exactly title (the oldest, if several), or nil, nil if none.
func (r *Repo) FindOpenMR(ctx context.Context, title string) (*MR, error) {
	opt := &gitlab.ListProjectMergeRequestsOptions{
		ListOptions:  gitlab.ListOptions{PerPage: 100, Page: 1},
		State:        gitlab.Ptr("opened"),
		Search:       gitlab.Ptr(title),
		TargetBranch: gitlab.Ptr(r.TargetBranch),
	}
	var found []*gitlab.BasicMergeRequest
	for {
		cctx, cancel := r.call(ctx)
		mrs, resp, err := r.client.MergeRequests.ListProjectMergeRequests(r.Project, opt, gitlab.WithContext(cctx))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("looking for an open merge request %q: %w", title, err)
		}
		for _, m := range mrs {
			if m.Title == title && m.State == "opened" {
				found = append(found, m)
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opt.Page = resp.NextPage
	}
	if len(found) == 0 {
		return nil, nil
	}
	sort.Slice(found, func(i, j int) bool { return found[i].IID < found[j].IID })
	m := found[0]
	return toMR(m.IID, m.WebURL, m.State, m.MergedAt, m.Title, m.SourceBranch), nil
}

// FindMR returns the merge request from branch into the target branch, in
// any state, or nil, nil if there is none. It is how a job finds its own
// merge request after a restart (the branch names the request): GitLab
// lists it with source_branch and state=all. When several MRs came from
// the branch, a merged one wins (the change is in), then an open one (it
// may still merge), then the newest closed one.
func (r *Repo) FindMR(ctx context.Context, branch string) (*MR, error) {
	opt := &gitlab.ListProjectMergeRequestsOptions{
		ListOptions:  gitlab.ListOptions{PerPage: 100, Page: 1},
		State:        gitlab.Ptr("all"),
		SourceBranch: gitlab.Ptr(branch),
		TargetBranch: gitlab.Ptr(r.TargetBranch),
	}
	var best *gitlab.BasicMergeRequest
	rank := map[string]int{"merged": 3, "opened": 2, "locked": 2, "closed": 1}
	for {
		cctx, cancel := r.call(ctx)
		mrs, resp, err := r.client.MergeRequests.ListProjectMergeRequests(r.Project, opt, gitlab.WithContext(cctx))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("looking for the merge request from %s: %w", branch, err)
		}
		for _, m := range mrs {
			if m.SourceBranch != branch || m.TargetBranch != r.TargetBranch {
				continue
			}
			if best == nil || rank[m.State] > rank[best.State] || rank[m.State] == rank[best.State] && m.IID > best.IID {
				best = m
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opt.Page = resp.NextPage
	}
	if best == nil {
		return nil, nil
	}
	return toMR(best.IID, best.WebURL, best.State, best.MergedAt, best.Title, best.SourceBranch), nil
}

// MRState returns a merge request's current state.
func (r *Repo) MRState(ctx context.Context, iid int) (*MR, error) {
	cctx, cancel := r.call(ctx)
	defer cancel()
	m, _, err := r.client.MergeRequests.GetMergeRequest(r.Project, int64(iid), nil, gitlab.WithContext(cctx))
	if err != nil {
		if errors.Is(err, gitlab.ErrNotFound) {
			err = errors.Join(ErrNotFound, err)
		}
		return nil, fmt.Errorf("getting merge request !%d: %w", iid, err)
	}
	return toMR(m.IID, m.WebURL, m.State, m.MergedAt, m.Title, m.SourceBranch), nil
}

// Propose opens a merge request for c, idempotently, so that a retry after
// a crash at any point never opens a second one:
//
//  1. A merge request from c.Branch into the target branch, in any state
//     (FindMR), is returned as it is: open (a retry), merged (progress
//     made while the caller was away: the caller must take it as done,
//     not propose again) or closed (the caller decides; the job fails).
//  2. When every file already has its content at the target branch, there
//     is nothing to propose: ErrNoChange.
//  3. When c.Branch does not exist, one commit updating c.Files is made on
//     a new branch c.Branch started from the target branch (create commit
//     with start_branch). When it exists (a crash after the commit and
//     before the merge request, or a concurrent retry that made it first),
//     it is reused; if its files differ from c.Files, one more commit on it
//     puts them right. A commit whose answer was lost (a dropped
//     connection, a timeout, a 5xx) is checked the same way: the branch is
//     looked up again and reused if it exists; if not, the commit is sent
//     again (proposeAttempts in all).
//  4. The merge request is opened from c.Branch into the target branch with
//     c.Title, c.Description, the Repo's labels and remove_source_branch.
//     If that fails (409: one is open for the branch already, a race; or
//     an error after which GitLab may have opened it: a lost answer), the
//     branch's merge request is looked up again and returned if there is
//     one. If there is none after a lost answer, it is sent again.
//
// Every call has a deadline (CallTimeout, and the HTTP client's).
func (r *Repo) Propose(ctx context.Context, c Change) (*MR, error) {
	if c.Branch == "" || c.Title == "" || len(c.Files) == 0 {
		return nil, errors.New("proposing a change: branch, title and files are required")
	}
	if c.Branch == r.TargetBranch {
		return nil, fmt.Errorf("proposing a change: branch %s is the target branch", c.Branch)
	}
	if m, err := r.FindMR(ctx, c.Branch); err != nil || m != nil {
		return m, err
	}
	paths := make([]string, 0, len(c.Files))
	for p := range c.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	same, err := r.sameContent(ctx, paths, c.Files, r.TargetBranch)
	if err != nil {
		return nil, fmt.Errorf("proposing %q: %w", c.Title, err)
	}
	if same {
		return nil, fmt.Errorf("proposing %q: %w", c.Title, ErrNoChange)
	}

	msg := c.CommitMessage
	if msg == "" {
		msg = c.Title
	}
	exists, err := r.branchExists(ctx, c.Branch)
	if err != nil {
		return nil, fmt.Errorf("proposing %q: %w", c.Title, err)
	}
	if !exists {
		if exists, err = r.newBranch(ctx, c.Branch, msg, paths, c.Files); err != nil {
			return nil, fmt.Errorf("proposing %q: %w", c.Title, err)
		}
	}
	if exists {
		if err := r.putRight(ctx, c.Branch, msg, paths, c.Files); err != nil {
			return nil, fmt.Errorf("proposing %q: branch %s exists: %w", c.Title, c.Branch, err)
		}
	}

	labels := gitlab.LabelOptions(r.Labels)
	for attempt := 1; ; attempt++ {
		cctx, cancel := r.call(ctx)
		m, _, err := r.client.MergeRequests.CreateMergeRequest(r.Project, &gitlab.CreateMergeRequestOptions{
			Title:              gitlab.Ptr(c.Title),
			Description:        gitlab.Ptr(c.Description),
			SourceBranch:       gitlab.Ptr(c.Branch),
			TargetBranch:       gitlab.Ptr(r.TargetBranch),
			Labels:             &labels,
			RemoveSourceBranch: gitlab.Ptr(true),
		}, gitlab.WithContext(cctx))
		cancel()
		if err == nil {
			return toMR(m.IID, m.WebURL, m.State, m.MergedAt, m.Title, m.SourceBranch), nil
		}
		// 409: one is open for the branch already (a race). Any other
		// failure may be a lost answer (a 5xx from a proxy, a dropped
		// connection, a timeout) after GitLab opened it. Either way, the
		// branch's MR, if there is one now, is the answer.
		if m, ferr := r.FindMR(ctx, c.Branch); ferr == nil && m != nil {
			return m, nil
		}
		// None: an unknown outcome was a failure; send it again.
		if !unknownOutcome(ctx, err) || attempt == proposeAttempts || pause(ctx, attempt) != nil {
			return nil, fmt.Errorf("opening merge request %q from %s: %w", c.Title, c.Branch, err)
		}
	}
}

// newBranch makes branch from the target branch with one commit updating
// files. It says whether the branch turned out to exist already: made by
// someone else (a concurrent retry; GitLab refuses with 400 "A branch
// called ... already exists"), or by an earlier attempt whose answer was
// lost. The caller then checks its content. A commit whose outcome is
// unknown and that provably did not happen (no branch) is sent again.
func (r *Repo) newBranch(ctx context.Context, branch, msg string, paths []string, files map[string][]byte) (bool, error) {
	for attempt := 1; ; attempt++ {
		err := r.commit(ctx, branch, r.TargetBranch, msg, paths, files)
		if err == nil {
			return false, nil
		}
		var er *gitlab.ErrorResponse
		refused := errors.As(err, &er) && er.HasStatusCode(http.StatusBadRequest)
		if !refused && !unknownOutcome(ctx, err) {
			return false, err
		}
		ok, berr := r.branchExists(ctx, branch)
		if berr != nil {
			return false, fmt.Errorf("%w; then %w", err, berr)
		}
		if ok {
			return true, nil
		}
		if refused || attempt == proposeAttempts {
			return false, err
		}
		if err := pause(ctx, attempt); err != nil {
			return false, err
		}
	}
}

// putRight makes branch's files hold files, with one more commit if they
// differ. A commit whose outcome is unknown is checked (the files have
// their content: it happened) and otherwise sent again.
func (r *Repo) putRight(ctx context.Context, branch, msg string, paths []string, files map[string][]byte) error {
	for attempt := 1; ; attempt++ {
		same, err := r.sameContent(ctx, paths, files, branch)
		if err != nil || same {
			return err
		}
		if attempt > 1 {
			if err := pause(ctx, attempt-1); err != nil {
				return err
			}
		}
		err = r.commit(ctx, branch, "", msg, paths, files)
		if err == nil {
			return nil
		}
		if !unknownOutcome(ctx, err) || attempt == proposeAttempts {
			return err
		}
	}
}

// sameContent says whether every file has its wanted content at ref.
func (r *Repo) sameContent(ctx context.Context, paths []string, files map[string][]byte, ref string) (bool, error) {
	for _, p := range paths {
		got, err := r.readFile(ctx, p, ref)
		if err != nil {
			return false, err
		}
		if !bytes.Equal(got, files[p]) {
			return false, nil
		}
	}
	return true, nil
}

func (r *Repo) branchExists(ctx context.Context, branch string) (bool, error) {
	cctx, cancel := r.call(ctx)
	defer cancel()
	_, _, err := r.client.Branches.GetBranch(r.Project, branch, gitlab.WithContext(cctx))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, gitlab.ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("looking up branch %s: %w", branch, err)
}

// commit makes one commit updating files on branch; start, when not empty,
// is the branch to start a new branch from.
func (r *Repo) commit(ctx context.Context, branch, start, msg string, paths []string, files map[string][]byte) error {
	actions := make([]*gitlab.CommitActionOptions, 0, len(paths))
	for _, p := range paths {
		actions = append(actions, &gitlab.CommitActionOptions{
			Action:   gitlab.Ptr(gitlab.FileUpdate),
			FilePath: gitlab.Ptr(p),
			Content:  gitlab.Ptr(base64.StdEncoding.EncodeToString(files[p])),
			Encoding: gitlab.Ptr("base64"),
		})
	}
	opt := &gitlab.CreateCommitOptions{
		Branch:        gitlab.Ptr(branch),
		CommitMessage: gitlab.Ptr(msg),
		Actions:       actions,
	}
	if start != "" {
		opt.StartBranch = gitlab.Ptr(start)
	}
	cctx, cancel := r.call(ctx)
	defer cancel()
	if _, _, err := r.client.Commits.CreateCommit(r.Project, opt, gitlab.WithContext(cctx)); err != nil {
		where := "on " + branch
		if start != "" {
			where = fmt.Sprintf("on new branch %s from %s", branch, start)
		}
		return fmt.Errorf("committing %s %s: %w", strings.Join(paths, ", "), where, err)
	}
	return nil
}
