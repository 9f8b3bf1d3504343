package appinterface

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
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
// gitlab.WithHTTPClient, gitlab.WithCustomRetryMax).
func NewRepo(baseURL, token, project, target string, labels []string, opts ...gitlab.ClientOptionFunc) (*Repo, error) {
	if token == "" {
		return nil, errors.New("GitLab: no token")
	}
	if project == "" || target == "" {
		return nil, errors.New("GitLab: the project and the target branch are required")
	}
	c, err := gitlab.NewClient(token, append([]gitlab.ClientOptionFunc{gitlab.WithBaseURL(baseURL)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("GitLab client for %s: %w", redact(baseURL), scrub(err, token))
	}
	return &Repo{client: c, Project: project, TargetBranch: target, Labels: append([]string(nil), labels...)}, nil
}

// ReadFile returns a file's content at the target branch. A missing file
// (or project) is ErrNotFound.
func (r *Repo) ReadFile(ctx context.Context, path string) ([]byte, error) {
	return r.readFile(ctx, path, r.TargetBranch)
}

func (r *Repo) readFile(ctx context.Context, path, ref string) ([]byte, error) {
	f, _, err := r.client.RepositoryFiles.GetFile(r.Project, path, &gitlab.GetFileOptions{Ref: gitlab.Ptr(ref)}, gitlab.WithContext(ctx))
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
		mrs, resp, err := r.client.MergeRequests.ListProjectMergeRequests(r.Project, opt, gitlab.WithContext(ctx))
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
		mrs, resp, err := r.client.MergeRequests.ListProjectMergeRequests(r.Project, opt, gitlab.WithContext(ctx))
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
	m, _, err := r.client.MergeRequests.GetMergeRequest(r.Project, int64(iid), nil, gitlab.WithContext(ctx))
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
//     puts them right.
//  4. The merge request is opened from c.Branch into the target branch with
//     c.Title, c.Description, the Repo's labels and remove_source_branch.
//     If that fails (409: one is open for the branch already, a race; or
//     an error after which GitLab may have opened it: a lost answer), the
//     branch's merge request is looked up again and returned if there is
//     one.
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
		if err := r.commit(ctx, c.Branch, r.TargetBranch, msg, paths, c.Files); err != nil {
			// Someone (a concurrent retry) may have made the branch since
			// we looked: GitLab then refuses with 400 "A branch called ...
			// already exists". Reuse it as below.
			var er *gitlab.ErrorResponse
			if !errors.As(err, &er) || !er.HasStatusCode(http.StatusBadRequest) {
				return nil, fmt.Errorf("proposing %q: %w", c.Title, err)
			}
			if ok, berr := r.branchExists(ctx, c.Branch); berr != nil || !ok {
				return nil, fmt.Errorf("proposing %q: %w", c.Title, err)
			}
			exists = true
		}
	}
	if exists {
		same, err := r.sameContent(ctx, paths, c.Files, c.Branch)
		if err != nil {
			return nil, fmt.Errorf("proposing %q: branch %s exists: %w", c.Title, c.Branch, err)
		}
		if !same {
			if err := r.commit(ctx, c.Branch, "", msg, paths, c.Files); err != nil {
				return nil, fmt.Errorf("proposing %q: %w", c.Title, err)
			}
		}
	}

	labels := gitlab.LabelOptions(r.Labels)
	m, _, err := r.client.MergeRequests.CreateMergeRequest(r.Project, &gitlab.CreateMergeRequestOptions{
		Title:              gitlab.Ptr(c.Title),
		Description:        gitlab.Ptr(c.Description),
		SourceBranch:       gitlab.Ptr(c.Branch),
		TargetBranch:       gitlab.Ptr(r.TargetBranch),
		Labels:             &labels,
		RemoveSourceBranch: gitlab.Ptr(true),
	}, gitlab.WithContext(ctx))
	if err != nil {
		// 409: one is open for the branch already (a race). Any other
		// failure may be a lost answer (a 5xx from a proxy, a dropped
		// connection, a timeout) after GitLab opened it. Either way, the
		// branch's MR, if there is one now, is the answer.
		if m, ferr := r.FindMR(ctx, c.Branch); ferr == nil && m != nil {
			return m, nil
		}
		return nil, fmt.Errorf("opening merge request %q from %s: %w", c.Title, c.Branch, err)
	}
	return toMR(m.IID, m.WebURL, m.State, m.MergedAt, m.Title, m.SourceBranch), nil
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
	_, _, err := r.client.Branches.GetBranch(r.Project, branch, gitlab.WithContext(ctx))
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
	if _, _, err := r.client.Commits.CreateCommit(r.Project, opt, gitlab.WithContext(ctx)); err != nil {
		where := "on " + branch
		if start != "" {
			where = fmt.Sprintf("on new branch %s from %s", branch, start)
		}
		return fmt.Errorf("committing %s %s: %w", strings.Join(paths, ", "), where, err)
	}
	return nil
}
