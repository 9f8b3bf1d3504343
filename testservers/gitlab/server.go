// Package gitlabserver is an in-memory GitLab REST API v4 server for tests:
// one project whose branches and files live in memory, served on
// 127.0.0.1 with GitLab's documented JSON shapes, so that the official
// client (gitlab.com/gitlab-org/api/client-go), pointed at URL() with
// gitlab.WithBaseURL, can read files, commit and open merge requests, and a
// test can merge or close those merge requests when it chooses.
//
// What it models:
//
//   - Authentication: every request needs "PRIVATE-TOKEN: TOKEN" or
//     "Authorization: Bearer TOKEN" with Options.Token; otherwise
//     401 {"message":"401 Unauthorized"}. One user (Options.Username) owns
//     every commit and merge request.
//   - The project, addressed by its numeric id or its URL-encoded path
//     ("service%2Fapp-interface"); any other is 404 Project Not Found.
//   - GET /projects/:id/repository/files/:file_path?ref= (file_path
//     URL-encoded, ref a branch or a commit id): file_name, file_path, size,
//     encoding "base64", content, content_sha256, ref, blob_id (the git blob
//     id), commit_id, last_commit_id (the last commit on ref that touched
//     the file), execute_filemode. 404 File Not Found / Commit Not Found.
//   - POST /projects/:id/repository/commits: branch, commit_message,
//     start_branch, start_sha, force, author_*, actions[] with action
//     create|update|delete|move, file_path, previous_path, content, encoding
//     (text|base64), last_commit_id. As GitLab does: start_branch defaults to
//     branch; a branch that exists when it differs from start_branch (or
//     start_sha is given) is 400 "A branch called 'X' already exists. Switch
//     to that branch in order to make changes" unless force; a missing start
//     branch is 400 "You can only create or edit files when you are on a
//     branch"; create on an existing file, update/delete/move of a missing
//     one, and a stale last_commit_id are 400 with GitLab's messages. The
//     whole action list is one commit (all or nothing); 201 with the commit.
//   - GET /projects/:id/repository/branches/:branch (404 Branch Not Found).
//   - POST /projects/:id/merge_requests: title, source_branch, target_branch,
//     description, labels (comma-separated string or list),
//     remove_source_branch, squash. A second open MR for a source branch is
//     409 ["Another open merge request already exists for this source
//     branch: !N"]; a missing branch or source == target is 422.
//   - GET /projects/:id/merge_requests with state (opened, closed, locked,
//     merged, all), search (case-insensitive substring of title or
//     description; in=title|description narrows it), source_branch,
//     target_branch, labels, iids[], order_by created_at|updated_at, sort,
//     and page/per_page with GitLab's X-Page, X-Next-Page, X-Total... headers.
//   - GET /projects/:id/merge_requests/:iid, .../changes (the MR plus
//     "changes") and .../diffs (paginated): unified diffs of the MR's files
//     against the merge base, GitLab-style (hunks only, no ---/+++ header).
//   - Test controls: SeedFile, File, BranchExists, Branches, Commits, MRs, MR,
//     Diff, Merge (a 3-way file-level merge into the target: the source's
//     changes since the merge base are applied; a file changed differently
//     on both sides is a conflict and the MR stays open), CloseMR, OnMerge
//     hooks (to play app-interface's reconcilers), AutoMerge (merge MRs
//     carrying a label after a delay, like app-interface's housekeeping of
//     bot/automerge), FailNext (inject HTTP errors per route), LoseNext
//     (a lost answer: the request is carried out in full, then the
//     connection is closed without a response, as when a proxy or the
//     network drops it) and Calls. A test merges or closes an MR through
//     Merge and CloseMR whenever it likes, for example while the bot's
//     process is down, as app-interface's housekeeping would.
//
// What it does NOT model (be careful what a passing test proves): users,
// permissions, protected branches, forks, project settings or any other
// project; CI pipelines and merge checks (Merge merges whatever the test
// asks, unless it conflicts); approvals, discussions, notes, draft/WIP
// handling beyond the flag, assignees, reviewers, milestones; rebases,
// squashing (recorded only), merge trains, the locked state; GitLab's
// line-level merge (a file changed on both sides conflicts even if the
// changes do not overlap); file modes, chmod, LFS, submodules, binary
// detection; rate limits (no RateLimit-* headers); HEAD requests and raw
// file endpoints; updating merge requests through the API (PUT), and
// keyset pagination. Commit ids are SHA-1s of made-up commit text, not real
// git object ids (blob ids are real git blob ids).
package gitlabserver

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Routes, as counted by Calls and targeted by FailNext.
const (
	RouteGetFile      = "GET /projects/:id/repository/files/:file_path"
	RouteCreateCommit = "POST /projects/:id/repository/commits"
	RouteGetBranch    = "GET /projects/:id/repository/branches/:branch"
	RouteListMRs      = "GET /projects/:id/merge_requests"
	RouteCreateMR     = "POST /projects/:id/merge_requests"
	RouteGetMR        = "GET /projects/:id/merge_requests/:iid"
	RouteMRChanges    = "GET /projects/:id/merge_requests/:iid/changes"
	RouteMRDiffs      = "GET /projects/:id/merge_requests/:iid/diffs"
	// RouteUnknown counts requests that match no route (answered 404).
	RouteUnknown = "unknown"
)

// Options configures a Server. Zero values take the defaults shown.
type Options struct {
	Token         string // required
	ProjectID     int64  // 1
	ProjectPath   string // "service/app-interface"
	DefaultBranch string // "master"
	Username      string // "osio-bot"
}

// MR is a merge request as the server holds it.
type MR struct {
	ID, IID                    int64
	Title, Description         string
	SourceBranch, TargetBranch string
	Labels                     []string
	State                      string // opened, closed, merged
	RemoveSourceBranch         bool
	Squash                     bool
	HasConflicts               bool
	CreatedAt, UpdatedAt       time.Time
	MergedAt, ClosedAt         *time.Time
	// SHA is the source branch's head (as of the merge, once merged);
	// MergeCommitSHA the merge commit on the target.
	SHA, MergeCommitSHA string
	// MergeBase is the commit the diff is taken against, fixed at merge.
	MergeBase string
	WebURL    string
}

// Commit is a commit as the server holds it.
type Commit struct {
	ID        string
	ParentIDs []string
	Message   string
	Created   time.Time
	// Changed lists the paths this commit changed relative to its first
	// parent, sorted.
	Changed []string
}

type commit struct {
	Commit
	tree map[string][]byte
}

type failure struct{ n, code int }

// Server is the GitLab test server. Its methods are safe for concurrent use.
type Server struct {
	opts Options
	ln   net.Listener
	srv  *http.Server

	mu        sync.Mutex
	commits   map[string]*commit
	branches  map[string]string // name -> head commit id
	mrs       []*MR
	nextMR    int64
	seq       int
	calls     map[string]int
	fail      map[string]*failure
	lose      map[string]int
	hooks     []func(MR)
	autoLabel string
	autoDelay time.Duration
	timers    []*time.Timer
	closed    bool
	now       func() time.Time
}

// New starts a server on 127.0.0.1 on a free port, with the default branch
// holding one empty commit.
func New(opts Options) (*Server, error) {
	if opts.Token == "" {
		return nil, fmt.Errorf("gitlabserver: Options.Token is required")
	}
	if opts.ProjectID == 0 {
		opts.ProjectID = 1
	}
	if opts.ProjectPath == "" {
		opts.ProjectPath = "service/app-interface"
	}
	if opts.DefaultBranch == "" {
		opts.DefaultBranch = "master"
	}
	if opts.Username == "" {
		opts.Username = "osio-bot"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts: opts, ln: ln,
		commits:  map[string]*commit{},
		branches: map[string]string{},
		calls:    map[string]int{},
		fail:     map[string]*failure{},
		lose:     map[string]int{},
		now:      func() time.Time { return time.Now().UTC() },
	}
	root := s.newCommitLocked(nil, "Initial commit", map[string][]byte{})
	s.branches[opts.DefaultBranch] = root.ID
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve)}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is the server's base URL (http://127.0.0.1:PORT), what
// gitlab.WithBaseURL takes; the API is under /api/v4.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the server and any pending AutoMerge.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for _, t := range s.timers {
		t.Stop()
	}
	s.mu.Unlock()
	_ = s.srv.Close()
}

// ProjectID and ProjectPath are the project's identifiers.
func (s *Server) ProjectID() int64      { return s.opts.ProjectID }
func (s *Server) ProjectPath() string   { return s.opts.ProjectPath }
func (s *Server) DefaultBranch() string { return s.opts.DefaultBranch }

// SeedFile writes a file on a branch as a commit of its own; a missing
// branch is created from the default branch first.
func (s *Server) SeedFile(branch, path string, content []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	head, ok := s.branches[branch]
	if !ok {
		head = s.branches[s.opts.DefaultBranch]
	}
	tree := cloneTree(s.commits[head].tree)
	tree[path] = slices.Clone(content)
	c := s.newCommitLocked([]string{head}, "Seed "+path, tree)
	s.setBranchLocked(branch, c.ID)
}

// File returns a file's content on a branch.
func (s *Server) File(branch, path string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	head, ok := s.branches[branch]
	if !ok {
		return nil, false
	}
	b, ok := s.commits[head].tree[path]
	return slices.Clone(b), ok
}

// BranchExists says whether a branch exists.
func (s *Server) BranchExists(branch string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.branches[branch]
	return ok
}

// Branches lists the branches, sorted.
func (s *Server) Branches() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for b := range s.branches {
		out = append(out, b)
	}
	sort.Strings(out)
	return out
}

// Commits lists a branch's commits, newest first, following first parents.
func (s *Server) Commits(branch string) []Commit {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Commit
	id, ok := s.branches[branch]
	for ok {
		c := s.commits[id]
		out = append(out, c.Commit)
		ok = len(c.ParentIDs) > 0
		if ok {
			id = c.ParentIDs[0]
		}
	}
	return out
}

// MRs returns copies of all merge requests, by iid.
func (s *Server) MRs() []MR {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]MR, len(s.mrs))
	for i, m := range s.mrs {
		out[i] = copyMR(m)
	}
	return out
}

// MR returns a copy of one merge request.
func (s *Server) MR(iid int64) (MR, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mrLocked(iid)
	if m == nil {
		return MR{}, false
	}
	return copyMR(m), true
}

// Diff returns the files a merge request changes: their content at the
// merge base (old) and on the source branch (new). A file the MR creates
// is only in new, one it deletes only in old.
func (s *Server) Diff(iid int64) (old, new map[string][]byte, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mrLocked(iid)
	if m == nil {
		return nil, nil, fmt.Errorf("no merge request !%d", iid)
	}
	base, head, err := s.diffEndsLocked(m)
	if err != nil {
		return nil, nil, err
	}
	old, new = map[string][]byte{}, map[string][]byte{}
	for _, p := range changedPaths(base.tree, head.tree) {
		if b, ok := base.tree[p]; ok {
			old[p] = slices.Clone(b)
		}
		if b, ok := head.tree[p]; ok {
			new[p] = slices.Clone(b)
		}
	}
	return old, new, nil
}

// OnMerge registers a hook called (outside the server's lock, in Merge's
// goroutine) after each merge, with the merged MR.
func (s *Server) OnMerge(f func(MR)) {
	s.mu.Lock()
	s.hooks = append(s.hooks, f)
	s.mu.Unlock()
}

// AutoMerge makes every merge request created from now on with the label
// merge after delay (errors, e.g. conflicts, leave it open), as
// app-interface's housekeeping does for bot/automerge. An empty label turns
// it off.
func (s *Server) AutoMerge(label string, delay time.Duration) {
	s.mu.Lock()
	s.autoLabel, s.autoDelay = label, delay
	s.mu.Unlock()
}

// FailNext makes the next n requests to route answer HTTP code with
// {"message": "injected failure"}, after authentication.
func (s *Server) FailNext(route string, n, code int) {
	s.mu.Lock()
	s.fail[route] = &failure{n: n, code: code}
	s.mu.Unlock()
}

// LoseNext makes the next n requests to route lose their answer: each is
// carried out (a merge request is created, a commit made), then the
// connection is closed before any response is written. The client sees a
// transport error (EOF) although GitLab did the work.
func (s *Server) LoseNext(route string, n int) {
	s.mu.Lock()
	s.lose[route] = n
	s.mu.Unlock()
}

// Calls counts the requests made to a route (authenticated or not).
func (s *Server) Calls(route string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[route]
}

// Merge merges an open merge request into its target branch: the files the
// source branch changed since the merge base are written to the target in
// one merge commit; the MR becomes merged (merged_at now); its source
// branch is deleted when remove_source_branch was asked. A file changed on
// both sides differently is a conflict: the MR stays open, has_conflicts
// set, and Merge returns an error. OnMerge hooks run after a merge.
func (s *Server) Merge(iid int64) error {
	s.mu.Lock()
	m := s.mrLocked(iid)
	if m == nil {
		s.mu.Unlock()
		return fmt.Errorf("no merge request !%d", iid)
	}
	if m.State != "opened" {
		s.mu.Unlock()
		return fmt.Errorf("merge request !%d is %s", iid, m.State)
	}
	srcID, ok := s.branches[m.SourceBranch]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("merge request !%d: source branch %s is gone", iid, m.SourceBranch)
	}
	tgtID, ok := s.branches[m.TargetBranch]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("merge request !%d: target branch %s is gone", iid, m.TargetBranch)
	}
	baseID := s.mergeBaseLocked(srcID, tgtID)
	base, src, tgt := s.commits[baseID], s.commits[srcID], s.commits[tgtID]
	tree := cloneTree(tgt.tree)
	for _, p := range changedPaths(base.tree, src.tree) {
		b, inBase := base.tree[p]
		t, inTgt := tgt.tree[p]
		n, inSrc := src.tree[p]
		targetMoved := inBase != inTgt || string(b) != string(t)
		sameAsSource := inSrc == inTgt && string(n) == string(t)
		if targetMoved && !sameAsSource {
			m.HasConflicts = true
			s.mu.Unlock()
			return fmt.Errorf("merge request !%d: %s changed on both %s and %s", iid, p, m.SourceBranch, m.TargetBranch)
		}
		if inSrc {
			tree[p] = n
		} else {
			delete(tree, p)
		}
	}
	msg := fmt.Sprintf("Merge branch '%s' into '%s'\n\n%s\n\nSee merge request %s!%d", m.SourceBranch, m.TargetBranch, m.Title, s.opts.ProjectPath, m.IID)
	mc := s.newCommitLocked([]string{tgtID, srcID}, msg, tree)
	s.branches[m.TargetBranch] = mc.ID
	now := s.now()
	m.State, m.MergedAt, m.UpdatedAt = "merged", &now, now
	m.SHA, m.MergeCommitSHA, m.MergeBase, m.HasConflicts = srcID, mc.ID, baseID, false
	if m.RemoveSourceBranch {
		delete(s.branches, m.SourceBranch)
	}
	snap, hooks := copyMR(m), slices.Clone(s.hooks)
	s.mu.Unlock()
	for _, h := range hooks {
		h(snap)
	}
	return nil
}

// CloseMR closes an open merge request without merging it.
func (s *Server) CloseMR(iid int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mrLocked(iid)
	if m == nil {
		return fmt.Errorf("no merge request !%d", iid)
	}
	if m.State != "opened" {
		return fmt.Errorf("merge request !%d is %s", iid, m.State)
	}
	now := s.now()
	m.State, m.ClosedAt, m.UpdatedAt = "closed", &now, now
	return nil
}

// ---- internals ----

func cloneTree(t map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(t))
	for k, v := range t {
		out[k] = v // contents are never mutated in place
	}
	return out
}

func copyMR(m *MR) MR {
	c := *m
	c.Labels = slices.Clone(m.Labels)
	if m.MergedAt != nil {
		t := *m.MergedAt
		c.MergedAt = &t
	}
	if m.ClosedAt != nil {
		t := *m.ClosedAt
		c.ClosedAt = &t
	}
	return c
}

// changedPaths lists, sorted, the paths whose presence or content differs.
func changedPaths(a, b map[string][]byte) []string {
	var out []string
	for p, x := range a {
		if y, ok := b[p]; !ok || string(x) != string(y) {
			out = append(out, p)
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func (s *Server) newCommitLocked(parents []string, message string, tree map[string][]byte) *commit {
	s.seq++
	h := sha1.Sum([]byte(fmt.Sprintf("%d\x00%s\x00%s", s.seq, strings.Join(parents, ","), message)))
	c := &commit{Commit: Commit{ID: hex.EncodeToString(h[:]), ParentIDs: parents, Message: message, Created: s.now()}, tree: tree}
	var parentTree map[string][]byte
	if len(parents) > 0 {
		parentTree = s.commits[parents[0]].tree
	}
	c.Changed = changedPaths(parentTree, tree)
	s.commits[c.ID] = c
	return c
}

// setBranchLocked moves a branch and keeps open MRs' SHA in step.
func (s *Server) setBranchLocked(branch, id string) {
	s.branches[branch] = id
	for _, m := range s.mrs {
		if m.State == "opened" && m.SourceBranch == branch {
			m.SHA, m.UpdatedAt = id, s.now()
		}
	}
}

// ancestors returns the commits reachable from id with their BFS distance.
func (s *Server) ancestorsLocked(id string) map[string]int {
	dist := map[string]int{id: 0}
	queue := []string{id}
	for len(queue) > 0 {
		c := s.commits[queue[0]]
		queue = queue[1:]
		for _, p := range c.ParentIDs {
			if _, seen := dist[p]; !seen {
				dist[p] = dist[c.ID] + 1
				queue = append(queue, p)
			}
		}
	}
	return dist
}

// mergeBaseLocked is the nearest common ancestor of a and b.
func (s *Server) mergeBaseLocked(a, b string) string {
	da, db := s.ancestorsLocked(a), s.ancestorsLocked(b)
	best, bestD := "", -1
	for id, x := range da {
		if y, ok := db[id]; ok && (bestD < 0 || x+y < bestD || x+y == bestD && id < best) {
			best, bestD = id, x+y
		}
	}
	return best
}

func (s *Server) mrLocked(iid int64) *MR {
	for _, m := range s.mrs {
		if m.IID == iid {
			return m
		}
	}
	return nil
}

// diffEndsLocked returns the commits a merge request's diff is between.
func (s *Server) diffEndsLocked(m *MR) (base, head *commit, err error) {
	if m.State == "merged" {
		return s.commits[m.MergeBase], s.commits[m.SHA], nil
	}
	src, ok := s.branches[m.SourceBranch]
	if !ok {
		src = m.SHA
	}
	tgt, ok := s.branches[m.TargetBranch]
	if !ok {
		return nil, nil, fmt.Errorf("merge request !%d: target branch %s is gone", m.IID, m.TargetBranch)
	}
	return s.commits[s.mergeBaseLocked(src, tgt)], s.commits[src], nil
}

// ---- HTTP ----

type obj = map[string]any

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func message(w http.ResponseWriter, code int, msg any) {
	writeJSON(w, code, obj{"message": msg})
}

// ts formats a time as GitLab does.
func ts(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func tsOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ts(*t)
}

// route splits /api/v4/projects/:id/... into the route name and its
// parameters (unescaped).
func (s *Server) route(r *http.Request) (name, project string, params []string) {
	p, ok := strings.CutPrefix(r.URL.EscapedPath(), "/api/v4/projects/")
	if !ok {
		return RouteUnknown, "", nil
	}
	seg := strings.Split(p, "/")
	for i := range seg {
		u, err := url.PathUnescape(seg[i])
		if err != nil {
			return RouteUnknown, "", nil
		}
		seg[i] = u
	}
	project, rest := seg[0], seg[1:]
	m := r.Method
	switch {
	case m == "GET" && len(rest) == 3 && rest[0] == "repository" && rest[1] == "files":
		return RouteGetFile, project, rest[2:]
	case m == "POST" && len(rest) == 2 && rest[0] == "repository" && rest[1] == "commits":
		return RouteCreateCommit, project, nil
	case m == "GET" && len(rest) == 3 && rest[0] == "repository" && rest[1] == "branches":
		return RouteGetBranch, project, rest[2:]
	case len(rest) == 1 && rest[0] == "merge_requests" && m == "GET":
		return RouteListMRs, project, nil
	case len(rest) == 1 && rest[0] == "merge_requests" && m == "POST":
		return RouteCreateMR, project, nil
	case m == "GET" && len(rest) == 2 && rest[0] == "merge_requests":
		return RouteGetMR, project, rest[1:]
	case m == "GET" && len(rest) == 3 && rest[0] == "merge_requests" && rest[2] == "changes":
		return RouteMRChanges, project, rest[1:2]
	case m == "GET" && len(rest) == 3 && rest[0] == "merge_requests" && rest[2] == "diffs":
		return RouteMRDiffs, project, rest[1:2]
	}
	return RouteUnknown, "", nil
}

func (s *Server) authorized(r *http.Request) bool {
	if r.Header.Get("PRIVATE-TOKEN") == s.opts.Token {
		return true
	}
	return r.Header.Get("Authorization") == "Bearer "+s.opts.Token
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	name, project, params := s.route(r)
	s.mu.Lock()
	s.calls[name]++
	s.mu.Unlock()
	if !s.authorized(r) {
		message(w, http.StatusUnauthorized, "401 Unauthorized")
		return
	}
	if name == RouteUnknown {
		message(w, http.StatusNotFound, "404 Not Found")
		return
	}
	s.mu.Lock()
	if f := s.fail[name]; f != nil && f.n > 0 {
		f.n--
		s.mu.Unlock()
		message(w, f.code, "injected failure")
		return
	}
	lose := s.lose[name] > 0
	if lose {
		s.lose[name]--
	}
	s.mu.Unlock()
	if lose {
		// Do the work into a discarded response, then drop the connection.
		s.dispatch(discard{h: http.Header{}}, r, name, project, params)
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler) // closes the connection without a response
	}
	s.dispatch(w, r, name, project, params)
}

// discard is a ResponseWriter that drops the answer (see LoseNext).
type discard struct{ h http.Header }

func (d discard) Header() http.Header         { return d.h }
func (d discard) Write(b []byte) (int, error) { return len(b), nil }
func (d discard) WriteHeader(int)             {}

func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, name, project string, params []string) {
	if project != strconv.FormatInt(s.opts.ProjectID, 10) && project != s.opts.ProjectPath {
		message(w, http.StatusNotFound, "404 Project Not Found")
		return
	}
	switch name {
	case RouteGetFile:
		s.getFile(w, r, params[0])
	case RouteCreateCommit:
		s.createCommit(w, r)
	case RouteGetBranch:
		s.getBranch(w, params[0])
	case RouteListMRs:
		s.listMRs(w, r)
	case RouteCreateMR:
		s.createMR(w, r)
	case RouteGetMR, RouteMRChanges, RouteMRDiffs:
		iid, err := strconv.ParseInt(params[0], 10, 64)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, obj{"error": "merge_request_iid is invalid"})
			return
		}
		s.getMR(w, r, name, iid)
	}
}

func (s *Server) userJSON() obj {
	return obj{"id": 1, "username": s.opts.Username, "name": s.opts.Username, "state": "active",
		"web_url": s.URL() + "/" + s.opts.Username}
}

func (s *Server) commitJSON(c *commit) obj {
	title, _, _ := strings.Cut(c.Message, "\n")
	return obj{
		"id": c.ID, "short_id": c.ID[:8], "title": title, "message": c.Message,
		"author_name": s.opts.Username, "author_email": s.opts.Username + "@example.com",
		"authored_date": ts(c.Created), "committer_name": s.opts.Username,
		"committer_email": s.opts.Username + "@example.com", "committed_date": ts(c.Created),
		"created_at": ts(c.Created), "parent_ids": c.ParentIDs, "project_id": s.opts.ProjectID,
		"web_url": s.URL() + "/" + s.opts.ProjectPath + "/-/commit/" + c.ID,
	}
}

// resolveLocked turns a ref (branch or commit id) into a commit.
func (s *Server) resolveLocked(ref string) *commit {
	if id, ok := s.branches[ref]; ok {
		return s.commits[id]
	}
	return s.commits[ref]
}

// lastCommitLocked is the last commit reachable from c (first parents)
// that changed path.
func (s *Server) lastCommitLocked(c *commit, path string) string {
	for {
		if _, ok := slices.BinarySearch(c.Changed, path); ok || len(c.ParentIDs) == 0 {
			return c.ID
		}
		c = s.commits[c.ParentIDs[0]]
	}
}

func blobID(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func (s *Server) getFile(w http.ResponseWriter, r *http.Request, path string) {
	ref := r.URL.Query().Get("ref")
	if ref == "" {
		writeJSON(w, http.StatusBadRequest, obj{"error": "ref is missing"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.resolveLocked(ref)
	if c == nil {
		message(w, http.StatusNotFound, "404 Commit Not Found")
		return
	}
	b, ok := c.tree[path]
	if !ok {
		message(w, http.StatusNotFound, "404 File Not Found")
		return
	}
	sum := sha256.Sum256(b)
	_, file := cutLast(path, "/")
	writeJSON(w, http.StatusOK, obj{
		"file_name": file, "file_path": path, "size": len(b), "encoding": "base64",
		"content_sha256": hex.EncodeToString(sum[:]), "ref": ref, "blob_id": blobID(b),
		"commit_id": c.ID, "last_commit_id": s.lastCommitLocked(c, path), "execute_filemode": false,
		"content": base64.StdEncoding.EncodeToString(b),
	})
}

func cutLast(s, sep string) (string, string) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):]
	}
	return "", s
}

func (s *Server) getBranch(w http.ResponseWriter, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.branches[name]
	if !ok {
		message(w, http.StatusNotFound, "404 Branch Not Found")
		return
	}
	writeJSON(w, http.StatusOK, s.branchJSONLocked(name, id))
}

func (s *Server) branchJSONLocked(name, id string) obj {
	def := s.branches[s.opts.DefaultBranch]
	_, merged := s.ancestorsLocked(def)[id]
	return obj{
		"name": name, "commit": s.commitJSON(s.commits[id]), "merged": merged && name != s.opts.DefaultBranch,
		"protected": name == s.opts.DefaultBranch, "default": name == s.opts.DefaultBranch,
		"developers_can_push": false, "developers_can_merge": false, "can_push": true,
		"web_url": s.URL() + "/" + s.opts.ProjectPath + "/-/tree/" + name,
	}
}

// flexString accepts a JSON string; missing stays "".
type createCommitBody struct {
	Branch        string  `json:"branch"`
	CommitMessage string  `json:"commit_message"`
	StartBranch   *string `json:"start_branch"`
	StartSHA      *string `json:"start_sha"`
	StartProject  any     `json:"start_project"`
	Force         bool    `json:"force"`
	Actions       []struct {
		Action       string  `json:"action"`
		FilePath     string  `json:"file_path"`
		PreviousPath string  `json:"previous_path"`
		Content      *string `json:"content"`
		Encoding     string  `json:"encoding"`
		LastCommitID string  `json:"last_commit_id"`
	} `json:"actions"`
}

func (s *Server) createCommit(w http.ResponseWriter, r *http.Request) {
	var body createCommitBody
	if err := decodeBody(r, &body); err != nil {
		writeJSON(w, http.StatusBadRequest, obj{"error": err.Error()})
		return
	}
	var missing []string
	if body.Branch == "" {
		missing = append(missing, "branch is missing")
	}
	if body.CommitMessage == "" {
		missing = append(missing, "commit_message is missing")
	}
	if len(body.Actions) == 0 {
		missing = append(missing, "actions is missing")
	}
	for i, a := range body.Actions {
		switch a.Action {
		case "create", "update", "delete", "move":
		default:
			missing = append(missing, fmt.Sprintf("actions[%d][action] does not have a valid value", i))
		}
		if a.FilePath == "" {
			missing = append(missing, fmt.Sprintf("actions[%d][file_path] is missing", i))
		}
		if a.Encoding != "" && a.Encoding != "text" && a.Encoding != "base64" {
			missing = append(missing, fmt.Sprintf("actions[%d][encoding] does not have a valid value", i))
		}
	}
	if body.StartProject != nil {
		missing = append(missing, "start_project is not modelled by gitlabserver")
	}
	if len(missing) > 0 {
		writeJSON(w, http.StatusBadRequest, obj{"error": strings.Join(missing, ", ")})
		return
	}
	if body.StartBranch != nil && body.StartSHA != nil {
		message(w, http.StatusBadRequest, "You can't pass both start_branch and start_sha")
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	startBranch := body.Branch
	if body.StartBranch != nil {
		startBranch = *body.StartBranch
	}
	different := body.StartSHA != nil || startBranch != body.Branch
	if _, exists := s.branches[body.Branch]; exists && different && !body.Force {
		message(w, http.StatusBadRequest, fmt.Sprintf("A branch called '%s' already exists. Switch to that branch in order to make changes", body.Branch))
		return
	}
	var start *commit
	if body.StartSHA != nil {
		if start = s.commits[*body.StartSHA]; start == nil {
			message(w, http.StatusBadRequest, fmt.Sprintf("Cannot find start_sha '%s'", *body.StartSHA))
			return
		}
	} else {
		id, ok := s.branches[startBranch]
		if !ok {
			message(w, http.StatusBadRequest, "You can only create or edit files when you are on a branch")
			return
		}
		start = s.commits[id]
	}

	tree := cloneTree(start.tree)
	for _, a := range body.Actions {
		var content []byte
		if a.Content != nil {
			content = []byte(*a.Content)
			if a.Encoding == "base64" {
				dec, err := base64.StdEncoding.DecodeString(*a.Content)
				if err != nil {
					message(w, http.StatusBadRequest, "Invalid base64 content for "+a.FilePath)
					return
				}
				content = dec
			}
		}
		src := a.FilePath
		if a.Action == "move" && a.PreviousPath != "" {
			src = a.PreviousPath
		}
		if a.LastCommitID != "" && a.Action != "create" {
			if _, ok := start.tree[src]; ok && s.lastCommitLocked(start, src) != a.LastCommitID {
				message(w, http.StatusBadRequest, "You are attempting to update a file that has changed since you started editing it.")
				return
			}
		}
		_, has := tree[a.FilePath]
		switch a.Action {
		case "create":
			if has {
				message(w, http.StatusBadRequest, "A file with this name already exists")
				return
			}
			tree[a.FilePath] = content
		case "update":
			if !has {
				message(w, http.StatusBadRequest, "A file with this name doesn't exist")
				return
			}
			tree[a.FilePath] = content
		case "delete":
			if !has {
				message(w, http.StatusBadRequest, "A file with this name doesn't exist")
				return
			}
			delete(tree, a.FilePath)
		case "move":
			old, ok := tree[src]
			if !ok {
				message(w, http.StatusBadRequest, "A file with this name doesn't exist")
				return
			}
			if has && src != a.FilePath {
				message(w, http.StatusBadRequest, "A file with this name already exists")
				return
			}
			delete(tree, src)
			if a.Content == nil {
				content = old
			}
			tree[a.FilePath] = content
		}
	}
	c := s.newCommitLocked([]string{start.ID}, body.CommitMessage, tree)
	s.setBranchLocked(body.Branch, c.ID)
	writeJSON(w, http.StatusCreated, s.commitJSON(c))
}

func decodeBody(r *http.Request, v any) error {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		return err
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("gitlabserver models JSON bodies only (Content-Type %q)", ct)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("the body is not valid JSON: %v", err)
	}
	return nil
}

// labelList reads labels given as "a,b" or ["a","b"].
type labelList []string

func (l *labelList) UnmarshalJSON(b []byte) error {
	var list []string
	if err := json.Unmarshal(b, &list); err == nil {
		*l = list
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("labels must be a string or a list of strings")
	}
	*l = nil
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			*l = append(*l, x)
		}
	}
	return nil
}

func (s *Server) createMR(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Title              string    `json:"title"`
		Description        string    `json:"description"`
		SourceBranch       string    `json:"source_branch"`
		TargetBranch       string    `json:"target_branch"`
		Labels             labelList `json:"labels"`
		RemoveSourceBranch bool      `json:"remove_source_branch"`
		Squash             bool      `json:"squash"`
		TargetProjectID    int64     `json:"target_project_id"`
	}
	if err := decodeBody(r, &body); err != nil {
		writeJSON(w, http.StatusBadRequest, obj{"error": err.Error()})
		return
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"source_branch", body.SourceBranch}, {"target_branch", body.TargetBranch}, {"title", body.Title}} {
		if f.v == "" {
			missing = append(missing, f.name+" is missing")
		}
	}
	if len(missing) > 0 {
		writeJSON(w, http.StatusBadRequest, obj{"error": strings.Join(missing, ", ")})
		return
	}
	if body.TargetProjectID != 0 && body.TargetProjectID != s.opts.ProjectID {
		message(w, http.StatusUnprocessableEntity, []string{"gitlabserver models one project only"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if body.SourceBranch == body.TargetBranch {
		message(w, http.StatusUnprocessableEntity, []string{"You can't use same project/branch for source and target"})
		return
	}
	for _, b := range []string{body.SourceBranch, body.TargetBranch} {
		if _, ok := s.branches[b]; !ok {
			kind := "Source"
			if b == body.TargetBranch {
				kind = "Target"
			}
			message(w, http.StatusUnprocessableEntity, []string{fmt.Sprintf("%s branch \"%s\" does not exist", kind, b)})
			return
		}
	}
	for _, m := range s.mrs {
		if m.State == "opened" && m.SourceBranch == body.SourceBranch && m.TargetBranch == body.TargetBranch {
			message(w, http.StatusConflict, []string{fmt.Sprintf("Another open merge request already exists for this source branch: !%d", m.IID)})
			return
		}
	}
	s.nextMR++
	now := s.now()
	m := &MR{
		ID: 1000 + s.nextMR, IID: s.nextMR, Title: body.Title, Description: body.Description,
		SourceBranch: body.SourceBranch, TargetBranch: body.TargetBranch, Labels: body.Labels,
		State: "opened", RemoveSourceBranch: body.RemoveSourceBranch, Squash: body.Squash,
		CreatedAt: now, UpdatedAt: now, SHA: s.branches[body.SourceBranch],
		WebURL: fmt.Sprintf("%s/%s/-/merge_requests/%d", s.URL(), s.opts.ProjectPath, s.nextMR),
	}
	s.mrs = append(s.mrs, m)
	if s.autoLabel != "" && slices.Contains(m.Labels, s.autoLabel) && !s.closed {
		iid := m.IID
		s.timers = append(s.timers, time.AfterFunc(s.autoDelay, func() { _ = s.Merge(iid) }))
	}
	writeJSON(w, http.StatusCreated, s.mrJSONLocked(m))
}

func (s *Server) mrJSONLocked(m *MR) obj {
	labels := m.Labels
	if labels == nil {
		labels = []string{}
	}
	mergeStatus, detailed := "can_be_merged", "mergeable"
	if m.HasConflicts {
		mergeStatus, detailed = "cannot_be_merged", "conflict"
	}
	var mergeUser any
	if m.State == "merged" {
		mergeUser = s.userJSON()
	}
	var closedBy any
	if m.State == "closed" {
		closedBy = s.userJSON()
	}
	changes := 0
	if base, head, err := s.diffEndsLocked(m); err == nil {
		changes = len(changedPaths(base.tree, head.tree))
	}
	return obj{
		"id": m.ID, "iid": m.IID, "project_id": s.opts.ProjectID, "title": m.Title, "description": m.Description,
		"state": m.State, "created_at": ts(m.CreatedAt), "updated_at": ts(m.UpdatedAt),
		"merged_at": tsOrNil(m.MergedAt), "closed_at": tsOrNil(m.ClosedAt), "merge_user": mergeUser, "merged_by": mergeUser,
		"closed_by": closedBy, "target_branch": m.TargetBranch, "source_branch": m.SourceBranch,
		"source_project_id": s.opts.ProjectID, "target_project_id": s.opts.ProjectID,
		"author": s.userJSON(), "assignee": nil, "assignees": []any{}, "reviewers": []any{},
		"labels": labels, "draft": false, "work_in_progress": false, "milestone": nil,
		"merge_when_pipeline_succeeds": false, "merge_status": mergeStatus, "detailed_merge_status": detailed,
		"sha": m.SHA, "merge_commit_sha": nilIfEmpty(m.MergeCommitSHA), "squash_commit_sha": nil,
		"user_notes_count": 0, "should_remove_source_branch": nil, "force_remove_source_branch": m.RemoveSourceBranch,
		"squash": m.Squash, "has_conflicts": m.HasConflicts, "blocking_discussions_resolved": true,
		"changes_count": strconv.Itoa(changes), "web_url": m.WebURL,
		"references": obj{"short": fmt.Sprintf("!%d", m.IID), "relative": fmt.Sprintf("!%d", m.IID),
			"full": fmt.Sprintf("%s!%d", s.opts.ProjectPath, m.IID)},
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// page applies page/per_page and sets GitLab's pagination headers.
func page[T any](w http.ResponseWriter, r *http.Request, all []T) []T {
	q := r.URL.Query()
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 {
		per = 20
	}
	per = min(per, 100)
	p, _ := strconv.Atoi(q.Get("page"))
	p = max(p, 1)
	total := len(all)
	pages := max((total+per-1)/per, 1)
	from, to := min((p-1)*per, total), min(p*per, total)
	h := w.Header()
	h.Set("X-Page", strconv.Itoa(p))
	h.Set("X-Per-Page", strconv.Itoa(per))
	h.Set("X-Total", strconv.Itoa(total))
	h.Set("X-Total-Pages", strconv.Itoa(pages))
	h.Set("X-Next-Page", "")
	h.Set("X-Prev-Page", "")
	if p < pages {
		h.Set("X-Next-Page", strconv.Itoa(p+1))
	}
	if p > 1 {
		h.Set("X-Prev-Page", strconv.Itoa(p-1))
	}
	return all[from:to]
}

func (s *Server) listMRs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	switch state {
	case "", "all":
		state = ""
	case "opened", "closed", "merged", "locked":
	default:
		writeJSON(w, http.StatusBadRequest, obj{"error": "state does not have a valid value"})
		return
	}
	search := strings.ToLower(q.Get("search"))
	in := q.Get("in")
	var labels []string
	for _, l := range strings.Split(q.Get("labels"), ",") {
		if l = strings.TrimSpace(l); l != "" {
			labels = append(labels, l)
		}
	}
	iids := map[int64]bool{}
	for _, v := range append(q["iids[]"], q["iids"]...) {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			iids[n] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var sel []*MR
	for _, m := range s.mrs {
		if state != "" && m.State != state {
			continue
		}
		if v := q.Get("source_branch"); v != "" && m.SourceBranch != v {
			continue
		}
		if v := q.Get("target_branch"); v != "" && m.TargetBranch != v {
			continue
		}
		if len(iids) > 0 && !iids[m.IID] {
			continue
		}
		if search != "" {
			inTitle := in != "description" && strings.Contains(strings.ToLower(m.Title), search)
			inDesc := in != "title" && strings.Contains(strings.ToLower(m.Description), search)
			if !inTitle && !inDesc {
				continue
			}
		}
		if !allIn(labels, m.Labels) {
			continue
		}
		sel = append(sel, m)
	}
	key := func(m *MR) time.Time { return m.CreatedAt }
	if q.Get("order_by") == "updated_at" {
		key = func(m *MR) time.Time { return m.UpdatedAt }
	}
	asc := q.Get("sort") == "asc"
	sort.SliceStable(sel, func(i, j int) bool {
		a, b := key(sel[i]), key(sel[j])
		if a.Equal(b) {
			if asc {
				return sel[i].IID < sel[j].IID
			}
			return sel[i].IID > sel[j].IID
		}
		if asc {
			return a.Before(b)
		}
		return a.After(b)
	})
	out := []obj{}
	for _, m := range page(w, r, sel) {
		out = append(out, s.mrJSONLocked(m))
	}
	writeJSON(w, http.StatusOK, out)
}

func allIn(want, have []string) bool {
	for _, l := range want {
		if !slices.Contains(have, l) {
			return false
		}
	}
	return true
}

func (s *Server) getMR(w http.ResponseWriter, r *http.Request, route string, iid int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mrLocked(iid)
	if m == nil {
		message(w, http.StatusNotFound, "404 Not found")
		return
	}
	if route == RouteGetMR {
		writeJSON(w, http.StatusOK, s.mrJSONLocked(m))
		return
	}
	var diffs []obj
	if base, head, err := s.diffEndsLocked(m); err == nil {
		for _, p := range changedPaths(base.tree, head.tree) {
			a, inA := base.tree[p]
			b, inB := head.tree[p]
			am, bm := "100644", "100644"
			if !inA {
				am = "0"
			}
			if !inB {
				bm = "0"
			}
			diffs = append(diffs, obj{
				"old_path": p, "new_path": p, "a_mode": am, "b_mode": bm,
				"diff": UnifiedDiff(a, b), "new_file": !inA, "renamed_file": false, "deleted_file": !inB,
				"generated_file": false, "collapsed": false, "too_large": false,
			})
		}
	}
	if route == RouteMRDiffs {
		out := page(w, r, diffs)
		if out == nil {
			out = []obj{}
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	j := s.mrJSONLocked(m)
	if diffs == nil {
		diffs = []obj{}
	}
	j["changes"] = diffs
	writeJSON(w, http.StatusOK, j)
}
