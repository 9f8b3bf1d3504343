package appinterface

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/osio/osio-bot/testservers/faultproxy"
	gitlabserver "github.com/osio/osio-bot/testservers/gitlab"
)

const (
	gltoken     = "glpat-secret-token-value"
	project     = "service/app-interface"
	userPath    = "data/teams/devtools/users/jdoe.yml"
	accountPath = "data/aws/osio/account.yml"
)

func newGitLab(t *testing.T) *gitlabserver.Server {
	t.Helper()
	s, err := gitlabserver.New(gitlabserver.Options{Token: gltoken, ProjectID: 13582, ProjectPath: project})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	s.SeedFile("master", userPath, []byte(userFile))
	s.SeedFile("master", accountPath, []byte(accountFile))
	return s
}

func newRepo(t *testing.T, s *gitlabserver.Server, opts ...gitlab.ClientOptionFunc) *Repo {
	t.Helper()
	r, err := NewRepo(s.URL(), gltoken, project, "master", DefaultLabels, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// noSecret fails if an error carries the GitLab token.
func noSecret(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), gltoken) {
		t.Fatalf("the token leaked into %q", err)
	}
}

func TestReadFile(t *testing.T) {
	s := newGitLab(t)
	ctx := context.Background()
	for _, p := range []string{project, "13582"} {
		r, err := NewRepo(s.URL(), gltoken, p, "master", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := r.ReadFile(ctx, userPath)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != userFile {
			t.Fatalf("%s: content differs", p)
		}
	}
	r := newRepo(t, s)
	_, err := r.ReadFile(ctx, "data/nope.yml")
	if !errors.Is(err, ErrNotFound) || !errors.Is(err, gitlab.ErrNotFound) {
		t.Fatalf("missing file: %v", err)
	}
	// Bytes survive exactly: CRLF, no final newline, non-ASCII.
	odd := "name: Zoë\r\nroles: []"
	s.SeedFile("master", "data/odd.yml", []byte(odd))
	if b, err := r.ReadFile(ctx, "data/odd.yml"); err != nil || string(b) != odd {
		t.Fatalf("%q %v", b, err)
	}

	bad, err := NewRepo(s.URL(), "wrong-"+gltoken, project, "master", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.ReadFile(ctx, userPath)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong token: %v", err)
	}
	noSecret(t, err)

	down, err := NewRepo("http://127.0.0.1:1", gltoken, project, "master", nil, gitlab.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	_, err = down.ReadFile(ctx, userPath)
	if err == nil {
		t.Fatal("no error from a closed port")
	}
	noSecret(t, err)

	for _, args := range [][4]string{{s.URL(), "", project, "master"}, {s.URL(), gltoken, "", "master"}, {s.URL(), gltoken, project, ""}} {
		if _, err := NewRepo(args[0], args[1], args[2], args[3], nil); err == nil {
			t.Fatalf("NewRepo%q: no error", args)
		}
	}
}

func removeChange(t *testing.T, file []byte, refs ...string) (Change, []Removed) {
	t.Helper()
	out, removed, err := RemoveRoleRefs(file, refs)
	if err != nil {
		t.Fatal(err)
	}
	return Change{
		Branch:        "osio-bot/r42-remove",
		Title:         "[osio-bot] reset jdoe's console password in osio (1/2: remove role)",
		Description:   "Requested in https://example.slack.com/archives/C1/p1700000000000100",
		CommitMessage: "[osio-bot] remove osio roles from jdoe",
		Files:         map[string][]byte{userPath: out},
	}, removed
}

func TestProposeAndMerge(t *testing.T) {
	s := newGitLab(t)
	r := newRepo(t, s)
	ctx := context.Background()

	change, removed := removeChange(t, []byte(userFile), refOsio, refData)
	mr, err := r.Propose(ctx, change)
	if err != nil {
		t.Fatal(err)
	}
	if mr.IID != 1 || mr.State != "opened" || mr.Title != change.Title || mr.MergedAt != nil ||
		mr.WebURL != s.URL()+"/service/app-interface/-/merge_requests/1" || mr.SourceBranch != change.Branch {
		t.Fatalf("%+v", mr)
	}
	// What GitLab holds: one MR with the labels, description and
	// remove_source_branch; one commit on the new branch, from master.
	held, _ := s.MR(1)
	if held.Description != change.Description || len(held.Labels) != 1 || held.Labels[0] != "bot/automerge" ||
		!held.RemoveSourceBranch || held.TargetBranch != "master" {
		t.Fatalf("%+v", held)
	}
	commits := s.Commits(change.Branch)
	if commits[0].Message != change.CommitMessage || commits[1].ID != s.Commits("master")[0].ID {
		t.Fatalf("branch commits: %+v", commits[:2])
	}
	// The diff is exactly the two role lines.
	old, new, err := s.Diff(1)
	if err != nil || len(old) != 1 || string(old[userPath]) != userFile || string(new[userPath]) != string(change.Files[userPath]) {
		t.Fatalf("diff: %v", err)
	}
	for _, rm := range removed {
		if !strings.Contains(userFile, rm.Line) || strings.Contains(string(new[userPath]), rm.Line) {
			t.Fatalf("%q", rm.Line)
		}
	}

	// A retry returns the same MR, and does nothing else.
	commitsBefore, createsBefore := s.Calls(gitlabserver.RouteCreateCommit), s.Calls(gitlabserver.RouteCreateMR)
	again, err := r.Propose(ctx, change)
	if err != nil || again.IID != 1 {
		t.Fatalf("%+v %v", again, err)
	}
	if s.Calls(gitlabserver.RouteCreateCommit) != commitsBefore || s.Calls(gitlabserver.RouteCreateMR) != createsBefore || len(s.MRs()) != 1 {
		t.Fatal("a retry committed or opened something")
	}

	// Merge it; the state says so.
	if err := s.Merge(1); err != nil {
		t.Fatal(err)
	}
	st, err := r.MRState(ctx, 1)
	if err != nil || st.State != "merged" || st.MergedAt == nil || time.Since(*st.MergedAt) > time.Minute {
		t.Fatalf("%+v %v", st, err)
	}
	if s.BranchExists(change.Branch) {
		t.Fatal("source branch not removed")
	}

	// MR 2: re-read the file, put the refs back.
	current, err := r.ReadFile(ctx, userPath)
	if err != nil {
		t.Fatal(err)
	}
	restored, skipped, err := RestoreRoleRefs(current, removed)
	if err != nil || len(skipped) != 0 {
		t.Fatalf("%v %q", err, skipped)
	}
	mr2, err := r.Propose(ctx, Change{Branch: "osio-bot/r42-restore", Title: "[osio-bot] reset jdoe's console password in osio (2/2: restore role)",
		Description: "same thread", Files: map[string][]byte{userPath: restored}})
	if err != nil {
		t.Fatal(err)
	}
	if mr2.IID != 2 {
		t.Fatalf("%+v", mr2)
	}
	// The commit message defaults to the title.
	if c := s.Commits("osio-bot/r42-restore")[0]; c.Message != mr2.Title {
		t.Fatalf("%q", c.Message)
	}
	if err := s.Merge(2); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.File("master", userPath); string(b) != userFile {
		t.Fatalf("after both merges the user file is not the original:\n%s", b)
	}

	// Proposing what master already has is ErrNoChange.
	_, err = r.Propose(ctx, Change{Branch: "osio-bot/noop", Title: "[osio-bot] noop", Files: map[string][]byte{userPath: []byte(userFile)}})
	if !errors.Is(err, ErrNoChange) {
		t.Fatalf("%v", err)
	}
	if s.BranchExists("osio-bot/noop") {
		t.Fatal("a no-op made a branch")
	}
}

func TestProposeResumesAfterCrash(t *testing.T) {
	s := newGitLab(t)
	r := newRepo(t, s)
	ctx := context.Background()
	change, _ := removeChange(t, []byte(userFile), refOsio)

	// The commit lands, opening the MR fails (as if the bot died there).
	s.FailNext(gitlabserver.RouteCreateMR, 1, http.StatusUnprocessableEntity)
	if _, err := r.Propose(ctx, change); err == nil {
		t.Fatal("no error")
	}
	if !s.BranchExists(change.Branch) || len(s.MRs()) != 0 {
		t.Fatal("expected a branch and no MR")
	}
	// The retry reuses the branch: no second commit, one MR.
	mr, err := r.Propose(ctx, change)
	if err != nil {
		t.Fatal(err)
	}
	if s.Calls(gitlabserver.RouteCreateCommit) != 1 || len(s.MRs()) != 1 || mr.IID != 1 {
		t.Fatalf("commits %d, MRs %d", s.Calls(gitlabserver.RouteCreateCommit), len(s.MRs()))
	}
	if old, new, _ := s.Diff(1); string(old[userPath]) != userFile || string(new[userPath]) != string(change.Files[userPath]) {
		t.Fatal("wrong diff")
	}
}

func TestProposeFixesAStaleBranch(t *testing.T) {
	s := newGitLab(t)
	r := newRepo(t, s)
	ctx := context.Background()
	change, _ := removeChange(t, []byte(userFile), refOsio)
	// A branch of that name from an earlier attempt, with other content.
	s.SeedFile(change.Branch, userPath, []byte("stale: true\n"))

	mr, err := r.Propose(ctx, change)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := s.File(change.Branch, userPath); string(b) != string(change.Files[userPath]) {
		t.Fatalf("branch content: %q", b)
	}
	if err := s.Merge(int64(mr.IID)); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.File("master", userPath); string(b) != string(change.Files[userPath]) {
		t.Fatalf("master content: %q", b)
	}
}

func TestProposeConcurrentRetries(t *testing.T) {
	s := newGitLab(t)
	r := newRepo(t, s)
	change, _ := removeChange(t, []byte(userFile), refOsio)
	var wg sync.WaitGroup
	iids := make([]int, 4)
	errs := make([]error, 4)
	for i := range iids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mr, err := r.Propose(context.Background(), change)
			errs[i] = err
			if mr != nil {
				iids[i] = mr.IID
			}
		}()
	}
	wg.Wait()
	for i := range iids {
		if errs[i] != nil || iids[i] != 1 {
			t.Fatalf("proposal %d: iid %d, %v", i, iids[i], errs[i])
		}
	}
	if len(s.MRs()) != 1 || len(s.Commits(change.Branch))-len(s.Commits("master")) != 1 {
		t.Fatalf("%d MRs, %d commits", len(s.MRs()), len(s.Commits(change.Branch))-len(s.Commits("master")))
	}
}

// raceTransport opens the same MR itself just before the first CreateMR
// request goes out, so that GitLab answers 409 to the Repo.
type raceTransport struct {
	once  sync.Once
	first func()
}

func (rt *raceTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/merge_requests") {
		rt.once.Do(rt.first)
	}
	return http.DefaultTransport.RoundTrip(req)
}

func TestProposeLosesTheRaceForTheMR(t *testing.T) {
	s := newGitLab(t)
	change, _ := removeChange(t, []byte(userFile), refOsio)
	other := newRepo(t, s)
	rt := &raceTransport{first: func() {
		if _, err := other.Propose(context.Background(), change); err != nil {
			t.Error(err)
		}
	}}
	r := newRepo(t, s, gitlab.WithHTTPClient(&http.Client{Transport: rt}))
	mr, err := r.Propose(context.Background(), change)
	if err != nil {
		t.Fatal(err)
	}
	if mr.IID != 1 || len(s.MRs()) != 1 || s.Calls(gitlabserver.RouteCreateMR) != 2 {
		t.Fatalf("iid %d, %d MRs, %d creates", mr.IID, len(s.MRs()), s.Calls(gitlabserver.RouteCreateMR))
	}
}

func TestFindOpenMR(t *testing.T) {
	s := newGitLab(t)
	r := newRepo(t, s)
	ctx := context.Background()
	const title = "[osio-bot] reset jdoe in osio"
	// Titles that a search matches but that are not the title, and enough
	// of them to need a second page.
	for i := range 105 {
		br := fmt.Sprintf("similar-%d", i)
		s.SeedFile(br, userPath, []byte(fmt.Sprintf("v: %d\n", i)))
		if _, err := r.Propose(ctx, Change{Branch: br, Title: fmt.Sprintf("%s (%d)", title, i), Files: map[string][]byte{userPath: []byte(fmt.Sprintf("v: %d\n", i))}}); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := r.FindOpenMR(ctx, title); err != nil || m != nil {
		t.Fatalf("%+v %v", m, err)
	}
	// A closed and a merged MR with the title do not count.
	for i, end := range []func(int64) error{s.CloseMR, s.Merge} {
		br := fmt.Sprintf("done-%d", i)
		m, err := r.Propose(ctx, Change{Branch: br, Title: title, Files: map[string][]byte{accountPath: []byte(accountFile + fmt.Sprintf("# %d\n", i))}})
		if err != nil {
			t.Fatal(err)
		}
		if err := end(int64(m.IID)); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := r.FindOpenMR(ctx, title); err != nil || m != nil {
		t.Fatalf("%+v %v", m, err)
	}
	listsBefore := s.Calls(gitlabserver.RouteListMRs)
	want, err := r.Propose(ctx, Change{Branch: "real", Title: title, Files: map[string][]byte{accountPath: []byte(accountFile + "# real\n")}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.FindOpenMR(ctx, title)
	if err != nil || got == nil || got.IID != want.IID || got.Title != title {
		t.Fatalf("%+v %v", got, err)
	}
	// Propose listed by branch once (one page), FindOpenMR twice more
	// (page 1 and 2).
	if n := s.Calls(gitlabserver.RouteListMRs) - listsBefore; n != 3 {
		t.Fatalf("%d list calls", n)
	}
}

func TestMRState(t *testing.T) {
	s := newGitLab(t)
	r := newRepo(t, s)
	ctx := context.Background()
	change, _ := removeChange(t, []byte(userFile), refOsio)
	mr, err := r.Propose(ctx, change)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CloseMR(int64(mr.IID)); err != nil {
		t.Fatal(err)
	}
	st, err := r.MRState(ctx, mr.IID)
	if err != nil || st.State != "closed" || st.MergedAt != nil {
		t.Fatalf("%+v %v", st, err)
	}
	if _, err := r.MRState(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("%v", err)
	}
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.MRState(ctx2, mr.IID); !errors.Is(err, context.Canceled) {
		t.Fatalf("%v", err)
	}
}

func TestProposeErrors(t *testing.T) {
	s := newGitLab(t)
	r := newRepo(t, s, gitlab.WithoutRetries())
	ctx := context.Background()
	ok := Change{Branch: "b", Title: "t", Files: map[string][]byte{userPath: []byte("x: 1\n")}}
	tests := []struct {
		name   string
		change Change
		setup  func()
		want   string
	}{
		{"no branch", Change{Title: "t", Files: ok.Files}, nil, "required"},
		{"no files", Change{Branch: "b", Title: "t"}, nil, "required"},
		{"branch is the target", Change{Branch: "master", Title: "t", Files: ok.Files}, nil, "target branch"},
		{"file missing at the target", Change{Branch: "b", Title: "t", Files: map[string][]byte{"data/nope.yml": []byte("x")}}, nil, "404"},
		// A 5xx may be a lost answer: Propose looks at the branch and sends
		// the commit again, proposeAttempts times in all.
		{"GitLab down for commits", ok, func() { s.FailNext(gitlabserver.RouteCreateCommit, proposeAttempts, 503) }, "503"},
		{"GitLab down for lists", ok, func() { s.FailNext(gitlabserver.RouteListMRs, 1, 500) }, "500"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			_, err := r.Propose(ctx, tc.change)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			noSecret(t, err)
		})
	}
	if len(s.MRs()) != 0 {
		t.Fatal("an MR was opened")
	}
}

// TestRetriesTransientErrors: the client's own retries ride out a 502.
func TestRetriesTransientErrors(t *testing.T) {
	s := newGitLab(t)
	r := newRepo(t, s, gitlab.WithCustomBackoff(func(_, _ time.Duration, _ int, _ *http.Response) time.Duration { return time.Millisecond }))
	s.FailNext(gitlabserver.RouteGetFile, 2, http.StatusBadGateway)
	if b, err := r.ReadFile(context.Background(), userPath); err != nil || string(b) != userFile {
		t.Fatalf("%v", err)
	}
	if n := s.Calls(gitlabserver.RouteGetFile); n != 3 {
		t.Fatalf("%d calls", n)
	}
}

// TestResetPasswordsFlow is the single-MR mechanism end to end: the account
// from GraphQL, the file from GitLab, the entry appended, the MR merged, a
// retry after the merge a no-op.
func TestResetPasswordsFlow(t *testing.T) {
	q := newQontract(t)
	s := newGitLab(t)
	r := newRepo(t, s)
	ctx := context.Background()
	gql := NewClient(q.URL(), qtoken)

	user, err := gql.User(ctx, "jdoe")
	if err != nil {
		t.Fatal(err)
	}
	acct, err := gql.Account(ctx, "osio")
	if err != nil {
		t.Fatal(err)
	}
	if RepoPath(acct.Path) != accountPath {
		t.Fatal(RepoPath(acct.Path))
	}
	var reconciled atomic.Int32
	s.OnMerge(func(m gitlabserver.MR) { reconciled.Add(1) })

	propose := func() (*MR, error) {
		file, err := r.ReadFile(ctx, RepoPath(acct.Path))
		if err != nil {
			return nil, err
		}
		edited, err := AppendResetPassword(file, user.Path, "osio-bot-r42")
		if err != nil {
			return nil, err
		}
		return r.Propose(ctx, Change{Branch: "osio-bot/r42", Title: "[osio-bot] reset jdoe's console password in osio",
			Description: "thread", Files: map[string][]byte{RepoPath(acct.Path): edited}})
	}
	mr, err := propose()
	if err != nil {
		t.Fatal(err)
	}
	old, new, _ := s.Diff(int64(mr.IID))
	wantNew := strings.Replace(accountFile, "  requestId: osio-bot-r17\n",
		"  requestId: osio-bot-r17\n- user: {$ref: /teams/devtools/users/jdoe.yml}\n  requestId: osio-bot-r42\n", 1)
	if string(old[accountPath]) != accountFile || string(new[accountPath]) != wantNew {
		t.Fatalf("diff:\n%s", new[accountPath])
	}
	if err := s.Merge(int64(mr.IID)); err != nil {
		t.Fatal(err)
	}
	if reconciled.Load() != 1 {
		t.Fatal("hook not called")
	}
	// A retry after the merge (the answer lost, or the bot killed before
	// its checkpoint): the branch's merged MR is returned, as progress.
	again, err := propose()
	if err != nil || again.IID != mr.IID || again.State != "merged" || again.MergedAt == nil || len(s.MRs()) != 1 {
		t.Fatalf("retry after the merge: %+v %v (%d MRs)", again, err, len(s.MRs()))
	}
	// Another branch with the same content: nothing to propose.
	file, _ := r.ReadFile(ctx, accountPath)
	if _, err := r.Propose(ctx, Change{Branch: "osio-bot/r43", Title: "other", Files: map[string][]byte{accountPath: file}}); !errors.Is(err, ErrNoChange) {
		t.Fatalf("%v", err)
	}
}

// TestRecreateFlow is the role removal and restore end to end, with the
// OnMerge hook playing app-interface's reconciler.
func TestRecreateFlow(t *testing.T) {
	q := newQontract(t)
	s := newGitLab(t)
	r := newRepo(t, s)
	ctx := context.Background()
	gql := NewClient(q.URL(), qtoken)

	user, err := gql.User(ctx, "jdoe")
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, role := range user.RolesGranting("osio") {
		refs = append(refs, role.Path)
	}
	if len(refs) != 2 {
		t.Fatalf("%q", refs)
	}
	iamUser := make(chan bool, 2) // what the reconciler did: false = deleted, true = created
	s.OnMerge(func(m gitlabserver.MR) {
		b, _ := s.File("master", RepoPath(user.Path))
		present, _ := roleRefs(b)
		has := false
		for _, p := range present {
			has = has || p == refOsio
		}
		iamUser <- has
	})

	file, err := r.ReadFile(ctx, RepoPath(user.Path))
	if err != nil {
		t.Fatal(err)
	}
	out, removed, err := RemoveRoleRefs(file, refs)
	if err != nil || len(removed) != 2 {
		t.Fatalf("%v %v", removed, err)
	}
	mr1, err := r.Propose(ctx, Change{Branch: "osio-bot/r7-1", Title: "[osio-bot] 1/2", Files: map[string][]byte{RepoPath(user.Path): out}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Merge(int64(mr1.IID)); err != nil {
		t.Fatal(err)
	}
	if <-iamUser {
		t.Fatal("role still granted after MR 1")
	}
	// Someone else edits the file between the two MRs: a new role at the top.
	cur, _ := s.File("master", RepoPath(user.Path))
	edited := strings.Replace(string(cur), "roles:\n", "roles:\n- $ref: /teams/devtools/roles/new.yml\n", 1)
	s.SeedFile("master", RepoPath(user.Path), []byte(edited))

	cur2, err := r.ReadFile(ctx, RepoPath(user.Path))
	if err != nil {
		t.Fatal(err)
	}
	restored, skipped, err := RestoreRoleRefs(cur2, removed)
	if err != nil || skipped != nil {
		t.Fatalf("%v %q", err, skipped)
	}
	mr2, err := r.Propose(ctx, Change{Branch: "osio-bot/r7-2", Title: "[osio-bot] 2/2", Files: map[string][]byte{RepoPath(user.Path): restored}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Merge(int64(mr2.IID)); err != nil {
		t.Fatal(err)
	}
	if !<-iamUser {
		t.Fatal("role not granted after MR 2")
	}
	final, _ := s.File("master", RepoPath(user.Path))
	if want := strings.Replace(userFile, "roles:\n", "roles:\n- $ref: /teams/devtools/roles/new.yml\n", 1); string(final) != want {
		t.Fatalf("final file:\n%s\nwant:\n%s", final, want)
	}
}

// Issue 8, item 1: a job finds its own MR by branch in every state.
func TestFindMR(t *testing.T) {
	s := newGitLab(t)
	r := newRepo(t, s)
	ctx := context.Background()
	change, _ := removeChange(t, []byte(userFile), refOsio)
	if m, err := r.FindMR(ctx, change.Branch); err != nil || m != nil {
		t.Fatalf("before any MR: %+v %v", m, err)
	}
	// Another branch whose name contains this one is not it.
	other := change
	other.Branch = change.Branch + "-2"
	if _, err := r.Propose(ctx, other); err != nil {
		t.Fatal(err)
	}
	if m, err := r.FindMR(ctx, change.Branch); err != nil || m != nil {
		t.Fatalf("other branch matched: %+v %v", m, err)
	}
	if err := s.CloseMR(1); err != nil {
		t.Fatal(err)
	}
	mr, err := r.Propose(ctx, change)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		do    func() error
		state string
	}{
		{func() error { return nil }, "opened"},
		{func() error { return s.CloseMR(int64(mr.IID)) }, "closed"},
	} {
		if err := step.do(); err != nil {
			t.Fatal(err)
		}
		got, err := r.FindMR(ctx, change.Branch)
		if err != nil || got == nil || got.IID != mr.IID || got.State != step.state || got.SourceBranch != change.Branch {
			t.Fatalf("want !%d %s: %+v %v", mr.IID, step.state, got, err)
		}
	}
	// A closed MR is returned by Propose as it is: the caller fails; no
	// second MR is opened for the branch.
	if again, err := r.Propose(ctx, change); err != nil || again.IID != mr.IID || again.State != "closed" || len(s.MRs()) != 2 {
		t.Fatalf("propose after close: %+v %v, %d MRs", again, err, len(s.MRs()))
	}
	// An MR that someone reopened as a new one from the same branch and
	// merged wins over the closed one: merged is progress.
	if _, _, err := gitlabClient(t, s).MergeRequests.CreateMergeRequest(project, &gitlab.CreateMergeRequestOptions{
		Title: gitlab.Ptr(change.Title), SourceBranch: gitlab.Ptr(change.Branch), TargetBranch: gitlab.Ptr("master")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Merge(3); err != nil {
		t.Fatal(err)
	}
	got, err := r.FindMR(ctx, change.Branch)
	if err != nil || got.IID != 3 || got.State != "merged" || got.MergedAt == nil {
		t.Fatalf("merged: %+v %v", got, err)
	}
}

func gitlabClient(t *testing.T, s *gitlabserver.Server) *gitlab.Client {
	t.Helper()
	c, err := gitlab.NewClient(gltoken, gitlab.WithBaseURL(s.URL()))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Issue 8, item 1: GitLab opens the MR but its answer is lost (the
// connection drops). Propose finds the MR by branch and returns it; it
// neither fails nor opens a second one.
func TestProposeLostAnswer(t *testing.T) {
	s := newGitLab(t)
	r := newRepo(t, s)
	change, _ := removeChange(t, []byte(userFile), refOsio)
	s.LoseNext(gitlabserver.RouteCreateMR, 1)
	mr, err := r.Propose(context.Background(), change)
	if err != nil {
		t.Fatal(err)
	}
	if mr.IID != 1 || mr.State != "opened" || len(s.MRs()) != 1 || s.Calls(gitlabserver.RouteCreateMR) != 1 {
		t.Fatalf("%+v, %d MRs, %d creates", mr, len(s.MRs()), s.Calls(gitlabserver.RouteCreateMR))
	}
}

// A commit or merge request whose answer is lost or never comes (the
// connection drops; the call times out) does not fail Propose: it looks at
// the branch (or the branch's MR) again and carries on, sending the call
// again only when it provably did not happen. One MR is opened, with the
// change's content.
func TestProposeSurvivesLostAndTimedOutCalls(t *testing.T) {
	const (
		commitOp = "POST /api/v4/projects/service%2Fapp-interface/repository/commits"
		mrOp     = "POST /api/v4/projects/service%2Fapp-interface/merge_requests"
	)
	tests := []struct {
		name string
		// existing seeds the branch first, with other content.
		existing bool
		lose     string // an operation the proxy forwards once, then drops its answer
		hold     string // an operation the proxy holds once until the client gives up
		commits  int    // createCommit requests GitLab saw
		creates  int    // createMR requests sent
	}{
		{name: "new branch, commit answer lost", lose: commitOp, commits: 1, creates: 1},
		{name: "existing branch, commit answer lost", existing: true, lose: commitOp, commits: 1, creates: 1},
		{name: "new branch, commit timed out", hold: commitOp, commits: 1, creates: 1},
		{name: "merge request timed out", hold: mrOp, commits: 1, creates: 2},
		{name: "merge request answer lost", lose: mrOp, commits: 1, creates: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newGitLab(t)
			p, err := faultproxy.New(faultproxy.Options{Target: s.URL(), Flavor: faultproxy.GitLab, HoldMax: 20 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Close)
			r, err := NewRepo(p.URL(), gltoken, project, "master", DefaultLabels, gitlab.WithHTTPClient(HTTPClient(300*time.Millisecond)))
			if err != nil {
				t.Fatal(err)
			}
			change, _ := removeChange(t, []byte(userFile), refOsio)
			change.Branch, change.Title = "osio-bot/r-1", "remove roles (R-1)"
			if tc.existing {
				s.SeedFile(change.Branch, userPath, []byte(userFile))
			}
			if tc.lose != "" {
				p.Arm(faultproxy.Rule{Op: tc.lose, Fault: faultproxy.Lost, Times: 1})
			}
			if tc.hold != "" {
				p.Arm(faultproxy.Rule{Op: tc.hold, Fault: faultproxy.Timeout, Times: 1})
			}
			start := time.Now()
			mr, err := r.Propose(context.Background(), change)
			if err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("Propose took %s", took)
			}
			if len(s.MRs()) != 1 || int64(mr.IID) != s.MRs()[0].IID || mr.State != "opened" {
				t.Fatalf("%+v, MRs %+v", mr, s.MRs())
			}
			if got, _ := s.File(change.Branch, userPath); string(got) != string(change.Files[userPath]) {
				t.Errorf("branch file:\n%s\nwant:\n%s", got, change.Files[userPath])
			}
			if n := p.Reached(commitOp); n != tc.commits {
				t.Errorf("%d commits reached GitLab, want %d", n, tc.commits)
			}
			if n := p.Count(mrOp); n != tc.creates {
				t.Errorf("%d createMR sent, want %d", n, tc.creates)
			}
			for _, h := range p.Holds() {
				if !h.ClientGaveUp {
					t.Errorf("the held %s waited %s for the proxy to drop it: no deadline", h.Op, h.Held)
				}
			}
		})
	}
}
