package gitlabserver

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	gitlab "gitlab.com/gitlab-org/api/client-go"
)

const token = "glpat-test-token"

func newServer(t *testing.T) (*Server, *gitlab.Client) {
	t.Helper()
	s, err := New(Options{Token: token, ProjectID: 13582})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	c, err := gitlab.NewClient(token, gitlab.WithBaseURL(s.URL()), gitlab.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// apiErr checks that err is a GitLab error response with that status and
// a message containing msg.
func apiErr(t *testing.T, err error, status int, msg string) {
	t.Helper()
	if status == http.StatusNotFound {
		if !errors.Is(err, gitlab.ErrNotFound) {
			t.Fatalf("err = %v, want 404", err)
		}
		return
	}
	var er *gitlab.ErrorResponse
	if !errors.As(err, &er) || !er.HasStatusCode(status) || !strings.Contains(er.Message, msg) {
		t.Fatalf("err = %v, want HTTP %d with %q", err, status, msg)
	}
}

func commitOpts(branch string, start *string, actions ...*gitlab.CommitActionOptions) *gitlab.CreateCommitOptions {
	return &gitlab.CreateCommitOptions{Branch: gitlab.Ptr(branch), StartBranch: start, CommitMessage: gitlab.Ptr("change " + branch), Actions: actions}
}

func action(a gitlab.FileActionValue, path, content string) *gitlab.CommitActionOptions {
	o := &gitlab.CommitActionOptions{Action: gitlab.Ptr(a), FilePath: gitlab.Ptr(path)}
	if content != "" {
		o.Content = gitlab.Ptr(content)
	}
	return o
}

func TestAuth(t *testing.T) {
	s, _ := newServer(t)
	for _, tc := range []struct {
		name   string
		header string
		value  string
		want   int
	}{
		{"none", "", "", 401},
		{"wrong private token", "PRIVATE-TOKEN", "nope", 401},
		{"private token", "PRIVATE-TOKEN", token, 404},
		{"bearer", "Authorization", "Bearer " + token, 404},
		{"wrong bearer", "Authorization", "Bearer nope", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", s.URL()+"/api/v4/projects/13582/repository/files/nope?ref=master", nil)
			if tc.header != "" {
				req.Header.Set(tc.header, tc.value)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	if got := s.Calls(RouteGetFile); got != 5 {
		t.Fatalf("Calls = %d", got)
	}
}

func TestGetFile(t *testing.T) {
	s, c := newServer(t)
	s.SeedFile("master", "data/a/hello.yml", []byte("hello\n"))
	s.SeedFile("master", "data/a/other.yml", []byte("x: 1\n"))
	for _, pid := range []any{13582, "service/app-interface"} {
		f, _, err := c.RepositoryFiles.GetFile(pid, "data/a/hello.yml", &gitlab.GetFileOptions{Ref: gitlab.Ptr("master")})
		if err != nil {
			t.Fatal(err)
		}
		content, _ := base64.StdEncoding.DecodeString(f.Content)
		if string(content) != "hello\n" || f.Encoding != "base64" || f.FileName != "hello.yml" || f.FilePath != "data/a/hello.yml" ||
			f.Ref != "master" || f.Size != 6 || f.BlobID != "ce013625030ba8dba906f756967f9e9ca394464a" {
			t.Fatalf("%+v", f)
		}
		// The file's last commit is the one that seeded it, not the head.
		commits := s.Commits("master")
		if f.CommitID != commits[0].ID || f.LastCommitID != commits[1].ID {
			t.Fatalf("commit %s last %s; commits %+v", f.CommitID, f.LastCommitID, commits)
		}
		// By commit id too.
		if _, _, err := c.RepositoryFiles.GetFile(pid, "data/a/hello.yml", &gitlab.GetFileOptions{Ref: gitlab.Ptr(commits[1].ID)}); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := c.RepositoryFiles.GetFile(13582, "data/a/missing.yml", &gitlab.GetFileOptions{Ref: gitlab.Ptr("master")})
	apiErr(t, err, 404, "")
	_, _, err = c.RepositoryFiles.GetFile(13582, "data/a/hello.yml", &gitlab.GetFileOptions{Ref: gitlab.Ptr("nobranch")})
	apiErr(t, err, 404, "")
	_, _, err = c.RepositoryFiles.GetFile(99, "data/a/hello.yml", &gitlab.GetFileOptions{Ref: gitlab.Ptr("master")})
	apiErr(t, err, 404, "")
	_, _, err = c.RepositoryFiles.GetFile(13582, "data/a/hello.yml", nil)
	apiErr(t, err, 400, "ref is missing")
}

func TestCreateCommit(t *testing.T) {
	s, c := newServer(t)
	s.SeedFile("master", "data/u.yml", []byte("a: 1\n"))
	master := gitlab.Ptr("master")

	// A new branch from master, one commit with several actions.
	cm, _, err := c.Commits.CreateCommit(13582, commitOpts("b1", master,
		action(gitlab.FileUpdate, "data/u.yml", "a: 2\n"),
		action(gitlab.FileCreate, "data/new.yml", "n: 1\n"),
		&gitlab.CommitActionOptions{Action: gitlab.Ptr(gitlab.FileCreate), FilePath: gitlab.Ptr("data/b64.yml"),
			Content: gitlab.Ptr(base64.StdEncoding.EncodeToString([]byte("no newline"))), Encoding: gitlab.Ptr("base64")},
	))
	if err != nil {
		t.Fatal(err)
	}
	if cm.Title != "change b1" || len(cm.ParentIDs) != 1 || cm.ParentIDs[0] != s.Commits("master")[0].ID {
		t.Fatalf("%+v", cm)
	}
	for path, want := range map[string]string{"data/u.yml": "a: 2\n", "data/new.yml": "n: 1\n", "data/b64.yml": "no newline"} {
		if got, _ := s.File("b1", path); string(got) != want {
			t.Errorf("%s = %q", path, got)
		}
	}
	if got, _ := s.File("master", "data/u.yml"); string(got) != "a: 1\n" {
		t.Fatalf("master changed: %q", got)
	}

	tests := []struct {
		name   string
		opt    *gitlab.CreateCommitOptions
		status int
		msg    string
	}{
		{"existing branch with start_branch", commitOpts("b1", master, action(gitlab.FileUpdate, "data/u.yml", "x")),
			400, "A branch called 'b1' already exists. Switch to that branch in order to make changes"},
		{"missing start branch", commitOpts("b2", gitlab.Ptr("nope"), action(gitlab.FileUpdate, "data/u.yml", "x")),
			400, "You can only create or edit files when you are on a branch"},
		{"missing branch without start_branch", commitOpts("b3", nil, action(gitlab.FileUpdate, "data/u.yml", "x")),
			400, "You can only create or edit files when you are on a branch"},
		{"create over an existing file", commitOpts("b1", nil, action(gitlab.FileCreate, "data/u.yml", "x")),
			400, "A file with this name already exists"},
		{"update of a missing file", commitOpts("b1", nil, action(gitlab.FileUpdate, "data/nope.yml", "x")),
			400, "A file with this name doesn't exist"},
		{"delete of a missing file", commitOpts("b1", nil, action(gitlab.FileDelete, "data/nope.yml", "")),
			400, "A file with this name doesn't exist"},
		{"stale last_commit_id", commitOpts("b1", nil, &gitlab.CommitActionOptions{Action: gitlab.Ptr(gitlab.FileUpdate),
			FilePath: gitlab.Ptr("data/u.yml"), Content: gitlab.Ptr("x"), LastCommitID: gitlab.Ptr("0000")}),
			400, "changed since you started editing it"},
		{"no actions", commitOpts("b1", nil), 400, "actions is missing"},
		{"bad base64", commitOpts("b1", nil, &gitlab.CommitActionOptions{Action: gitlab.Ptr(gitlab.FileUpdate),
			FilePath: gitlab.Ptr("data/u.yml"), Content: gitlab.Ptr("!!"), Encoding: gitlab.Ptr("base64")}), 400, "base64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(s.Commits("b1"))
			_, _, err := c.Commits.CreateCommit(13582, tc.opt)
			apiErr(t, err, tc.status, tc.msg)
			if len(s.Commits("b1")) != before {
				t.Fatal("a refused commit changed the branch")
			}
		})
	}
	// All or nothing: a failing second action leaves no trace of the first.
	_, _, err = c.Commits.CreateCommit(13582, commitOpts("b1", nil,
		action(gitlab.FileUpdate, "data/u.yml", "partial\n"), action(gitlab.FileUpdate, "data/nope.yml", "x")))
	apiErr(t, err, 400, "doesn't exist")
	if got, _ := s.File("b1", "data/u.yml"); string(got) != "a: 2\n" {
		t.Fatalf("partial commit: %q", got)
	}

	// On the existing branch (start_branch = branch, or none), with the right
	// last_commit_id; then delete and move.
	f, _, _ := c.RepositoryFiles.GetFile(13582, "data/u.yml", &gitlab.GetFileOptions{Ref: gitlab.Ptr("b1")})
	_, _, err = c.Commits.CreateCommit(13582, commitOpts("b1", gitlab.Ptr("b1"), &gitlab.CommitActionOptions{Action: gitlab.Ptr(gitlab.FileUpdate),
		FilePath: gitlab.Ptr("data/u.yml"), Content: gitlab.Ptr("a: 3\n"), LastCommitID: gitlab.Ptr(f.LastCommitID)}))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Commits.CreateCommit(13582, commitOpts("b1", nil, action(gitlab.FileDelete, "data/new.yml", ""),
		&gitlab.CommitActionOptions{Action: gitlab.Ptr(gitlab.FileMove), PreviousPath: gitlab.Ptr("data/b64.yml"), FilePath: gitlab.Ptr("data/moved.yml")}))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.File("b1", "data/new.yml"); ok {
		t.Fatal("delete did not delete")
	}
	if got, ok := s.File("b1", "data/moved.yml"); !ok || string(got) != "no newline" {
		t.Fatalf("move: %q %v", got, ok)
	}
	// force overwrites an existing branch from start_branch.
	_, _, err = c.Commits.CreateCommit(13582, &gitlab.CreateCommitOptions{Branch: gitlab.Ptr("b1"), StartBranch: master, Force: gitlab.Ptr(true),
		CommitMessage: gitlab.Ptr("reset"), Actions: []*gitlab.CommitActionOptions{action(gitlab.FileUpdate, "data/u.yml", "forced\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.File("b1", "data/moved.yml"); ok {
		t.Fatal("force did not start from master")
	}

	// Branches.
	b, _, err := c.Branches.GetBranch(13582, "b1")
	if err != nil || b.Name != "b1" || b.Commit == nil || b.Commit.ID != s.Commits("b1")[0].ID || b.Default {
		t.Fatalf("%+v %v", b, err)
	}
	if b, _, err := c.Branches.GetBranch("service/app-interface", "master"); err != nil || !b.Default || !b.Protected {
		t.Fatalf("%+v %v", b, err)
	}
	_, _, err = c.Branches.GetBranch(13582, "nope")
	apiErr(t, err, 404, "")
}

func TestMergeRequests(t *testing.T) {
	s, c := newServer(t)
	s.SeedFile("master", "data/u.yml", []byte("roles:\n- $ref: /r/a.yml\n- $ref: /r/b.yml\n"))
	s.SeedFile("master", "data/keep.yml", []byte("k: 1\n"))
	var hooked []MR
	var hmu sync.Mutex
	s.OnMerge(func(m MR) { hmu.Lock(); hooked = append(hooked, m); hmu.Unlock() })

	_, _, err := c.Commits.CreateCommit(13582, commitOpts("osio-bot/r1", gitlab.Ptr("master"), action(gitlab.FileUpdate, "data/u.yml", "roles:\n- $ref: /r/a.yml\n")))
	if err != nil {
		t.Fatal(err)
	}
	labels := gitlab.LabelOptions{"bot/automerge", "osio-bot"}
	mr, _, err := c.MergeRequests.CreateMergeRequest("service/app-interface", &gitlab.CreateMergeRequestOptions{
		Title: gitlab.Ptr("[osio-bot] remove role"), Description: gitlab.Ptr("thread: https://slack/x"),
		SourceBranch: gitlab.Ptr("osio-bot/r1"), TargetBranch: gitlab.Ptr("master"), Labels: &labels, RemoveSourceBranch: gitlab.Ptr(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	if mr.IID != 1 || mr.State != "opened" || mr.Title != "[osio-bot] remove role" || mr.Description != "thread: https://slack/x" ||
		!reflect.DeepEqual([]string(mr.Labels), []string{"bot/automerge", "osio-bot"}) || !mr.ForceRemoveSourceBranch ||
		mr.SourceBranch != "osio-bot/r1" || mr.TargetBranch != "master" || mr.MergedAt != nil || mr.CreatedAt == nil ||
		mr.WebURL != s.URL()+"/service/app-interface/-/merge_requests/1" || mr.ChangesCount != "1" || mr.Author == nil {
		t.Fatalf("%+v", mr)
	}

	// Duplicates and bad branches.
	_, _, err = c.MergeRequests.CreateMergeRequest(13582, &gitlab.CreateMergeRequestOptions{Title: gitlab.Ptr("again"),
		SourceBranch: gitlab.Ptr("osio-bot/r1"), TargetBranch: gitlab.Ptr("master")})
	apiErr(t, err, 409, "Another open merge request already exists for this source branch: !1")
	_, _, err = c.MergeRequests.CreateMergeRequest(13582, &gitlab.CreateMergeRequestOptions{Title: gitlab.Ptr("x"),
		SourceBranch: gitlab.Ptr("nope"), TargetBranch: gitlab.Ptr("master")})
	apiErr(t, err, 422, `Source branch "nope" does not exist`)
	_, _, err = c.MergeRequests.CreateMergeRequest(13582, &gitlab.CreateMergeRequestOptions{Title: gitlab.Ptr("x"),
		SourceBranch: gitlab.Ptr("master"), TargetBranch: gitlab.Ptr("master")})
	apiErr(t, err, 422, "same project/branch")
	_, _, err = c.MergeRequests.CreateMergeRequest(13582, &gitlab.CreateMergeRequestOptions{
		SourceBranch: gitlab.Ptr("osio-bot/r1"), TargetBranch: gitlab.Ptr("master")})
	apiErr(t, err, 400, "title is missing")

	// Get, diffs, changes.
	got, _, err := c.MergeRequests.GetMergeRequest(13582, 1, nil)
	if err != nil || got.IID != 1 || got.SHA != s.Commits("osio-bot/r1")[0].ID {
		t.Fatalf("%+v %v", got, err)
	}
	diffs, _, err := c.MergeRequests.ListMergeRequestDiffs(13582, 1, nil)
	if err != nil || len(diffs) != 1 {
		t.Fatalf("%v %v", diffs, err)
	}
	if d := diffs[0]; d.OldPath != "data/u.yml" || d.NewFile || d.DeletedFile ||
		d.Diff != "@@ -1,3 +1,2 @@\n roles:\n - $ref: /r/a.yml\n-- $ref: /r/b.yml\n" {
		t.Fatalf("%+v", d)
	}
	old, new, err := s.Diff(1)
	if err != nil || string(old["data/u.yml"]) != "roles:\n- $ref: /r/a.yml\n- $ref: /r/b.yml\n" ||
		string(new["data/u.yml"]) != "roles:\n- $ref: /r/a.yml\n" || len(old) != 1 || len(new) != 1 {
		t.Fatalf("%q %q %v", old, new, err)
	}
	if _, _, err := c.MergeRequests.GetMergeRequestChanges(13582, 1, nil); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.MergeRequests.GetMergeRequest(13582, 99, nil)
	apiErr(t, err, 404, "")

	// Merge: target gets the change, source branch goes, hooks run.
	if err := s.Merge(1); err != nil {
		t.Fatal(err)
	}
	got, _, _ = c.MergeRequests.GetMergeRequest(13582, 1, nil)
	if got.State != "merged" || got.MergedAt == nil || got.MergeCommitSHA == "" || got.MergeUser == nil {
		t.Fatalf("%+v", got)
	}
	if f, _ := s.File("master", "data/u.yml"); string(f) != "roles:\n- $ref: /r/a.yml\n" {
		t.Fatalf("%q", f)
	}
	if f, _ := s.File("master", "data/keep.yml"); string(f) != "k: 1\n" {
		t.Fatalf("%q", f)
	}
	if s.BranchExists("osio-bot/r1") {
		t.Fatal("source branch kept")
	}
	if len(hooked) != 1 || hooked[0].IID != 1 || hooked[0].State != "merged" {
		t.Fatalf("hooks: %+v", hooked)
	}
	// The diff of a merged MR stays what it was.
	if old2, new2, err := s.Diff(1); err != nil || !reflect.DeepEqual(old, old2) || !reflect.DeepEqual(new, new2) {
		t.Fatalf("%q %q %v", old2, new2, err)
	}
	if err := s.Merge(1); err == nil {
		t.Fatal("merged twice")
	}

	// Close.
	_, _, _ = c.Commits.CreateCommit(13582, commitOpts("b2", gitlab.Ptr("master"), action(gitlab.FileUpdate, "data/keep.yml", "k: 2\n")))
	_, _, err = c.MergeRequests.CreateMergeRequest(13582, &gitlab.CreateMergeRequestOptions{Title: gitlab.Ptr("[osio-bot] keep"),
		SourceBranch: gitlab.Ptr("b2"), TargetBranch: gitlab.Ptr("master")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CloseMR(2); err != nil {
		t.Fatal(err)
	}
	got, _, _ = c.MergeRequests.GetMergeRequest(13582, 2, nil)
	if got.State != "closed" || got.ClosedAt == nil || got.MergedAt != nil {
		t.Fatalf("%+v", got)
	}
	if err := s.Merge(2); err == nil {
		t.Fatal("merged a closed MR")
	}
	if !s.BranchExists("b2") {
		t.Fatal("closing deleted the branch")
	}
	// A closed MR's branch may get a new open MR.
	if _, _, err = c.MergeRequests.CreateMergeRequest(13582, &gitlab.CreateMergeRequestOptions{Title: gitlab.Ptr("[osio-bot] keep"),
		SourceBranch: gitlab.Ptr("b2"), TargetBranch: gitlab.Ptr("master")}); err != nil {
		t.Fatal(err)
	}
	if n := len(s.MRs()); n != 3 {
		t.Fatalf("%d MRs", n)
	}
}

func TestMergeConflict(t *testing.T) {
	s, c := newServer(t)
	s.SeedFile("master", "f.yml", []byte("v: 0\n"))
	s.SeedFile("master", "g.yml", []byte("g: 0\n"))
	for i, br := range []string{"one", "two", "three"} {
		content := fmt.Sprintf("v: %d\n", i+1)
		if br == "three" {
			content = "v: 1\n" // the same change as one's
		}
		if _, _, err := c.Commits.CreateCommit(13582, commitOpts(br, gitlab.Ptr("master"), action(gitlab.FileUpdate, "f.yml", content))); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.MergeRequests.CreateMergeRequest(13582, &gitlab.CreateMergeRequestOptions{Title: gitlab.Ptr(br),
			SourceBranch: gitlab.Ptr(br), TargetBranch: gitlab.Ptr("master")}); err != nil {
			t.Fatal(err)
		}
	}
	// A change to another file on master meanwhile merges cleanly.
	s.SeedFile("master", "g.yml", []byte("g: 1\n"))
	if err := s.Merge(1); err != nil {
		t.Fatal(err)
	}
	if err := s.Merge(2); err == nil || !strings.Contains(err.Error(), "f.yml") {
		t.Fatalf("no conflict: %v", err)
	}
	m, _ := s.MR(2)
	if m.State != "opened" || !m.HasConflicts {
		t.Fatalf("%+v", m)
	}
	mr, _, _ := c.MergeRequests.GetMergeRequest(13582, 2, nil)
	if !mr.HasConflicts || mr.DetailedMergeStatus != "conflict" {
		t.Fatalf("%+v", mr)
	}
	if err := s.Merge(3); err != nil { // same content on both sides: no conflict
		t.Fatal(err)
	}
	if f, _ := s.File("master", "f.yml"); string(f) != "v: 1\n" {
		t.Fatalf("%q", f)
	}
	if f, _ := s.File("master", "g.yml"); string(f) != "g: 1\n" {
		t.Fatalf("%q", f)
	}
	if !s.BranchExists("one") {
		t.Fatal("branch removed without remove_source_branch")
	}
}

func TestListMergeRequests(t *testing.T) {
	s, c := newServer(t)
	s.SeedFile("master", "f.yml", []byte("v: 0\n"))
	titles := []string{"[osio-bot] reset jdoe in osio", "[osio-bot] reset jdoe in osio (restore)", "[osio-bot] reset bob", "other"}
	for i, title := range titles {
		br := fmt.Sprintf("b%d", i)
		_, _, _ = c.Commits.CreateCommit(13582, commitOpts(br, gitlab.Ptr("master"), action(gitlab.FileUpdate, "f.yml", br)))
		labels := gitlab.LabelOptions{"bot/automerge"}
		if i == 3 {
			labels = nil
		}
		if _, _, err := c.MergeRequests.CreateMergeRequest(13582, &gitlab.CreateMergeRequestOptions{Title: gitlab.Ptr(title),
			Description: gitlab.Ptr("desc " + br), SourceBranch: gitlab.Ptr(br), TargetBranch: gitlab.Ptr("master"), Labels: &labels}); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.CloseMR(3)
	iids := func(mrs []*gitlab.BasicMergeRequest) []int64 {
		var out []int64
		for _, m := range mrs {
			out = append(out, m.IID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		opt  gitlab.ListProjectMergeRequestsOptions
		want []int64
	}{
		{"all, newest first", gitlab.ListProjectMergeRequestsOptions{}, []int64{4, 3, 2, 1}},
		{"opened", gitlab.ListProjectMergeRequestsOptions{State: gitlab.Ptr("opened")}, []int64{4, 2, 1}},
		{"closed", gitlab.ListProjectMergeRequestsOptions{State: gitlab.Ptr("closed")}, []int64{3}},
		{"search is a case-insensitive substring", gitlab.ListProjectMergeRequestsOptions{Search: gitlab.Ptr("RESET JDOE")}, []int64{2, 1}},
		{"search in descriptions", gitlab.ListProjectMergeRequestsOptions{Search: gitlab.Ptr("desc b3")}, []int64{4}},
		{"source branch", gitlab.ListProjectMergeRequestsOptions{SourceBranch: gitlab.Ptr("b1")}, []int64{2}},
		{"target branch", gitlab.ListProjectMergeRequestsOptions{TargetBranch: gitlab.Ptr("other")}, nil},
		{"labels", gitlab.ListProjectMergeRequestsOptions{Labels: &gitlab.LabelOptions{"bot/automerge"}}, []int64{3, 2, 1}},
		{"iids", gitlab.ListProjectMergeRequestsOptions{IIDs: &[]int64{1, 4}}, []int64{4, 1}},
		{"ascending", gitlab.ListProjectMergeRequestsOptions{Sort: gitlab.Ptr("asc")}, []int64{1, 2, 3, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mrs, _, err := c.MergeRequests.ListProjectMergeRequests(13582, &tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if got := iids(mrs); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	// Pagination.
	opt := &gitlab.ListProjectMergeRequestsOptions{ListOptions: gitlab.ListOptions{PerPage: 3, Page: 1}}
	var all []int64
	for {
		mrs, resp, err := c.MergeRequests.ListProjectMergeRequests(13582, opt)
		if err != nil {
			t.Fatal(err)
		}
		if resp.TotalItems != 4 || resp.TotalPages != 2 || resp.ItemsPerPage != 3 {
			t.Fatalf("%+v", resp)
		}
		all = append(all, iids(mrs)...)
		if resp.NextPage == 0 {
			break
		}
		opt.Page = resp.NextPage
	}
	if !reflect.DeepEqual(all, []int64{4, 3, 2, 1}) {
		t.Fatal(all)
	}
	_, _, err := c.MergeRequests.ListProjectMergeRequests(13582, &gitlab.ListProjectMergeRequestsOptions{State: gitlab.Ptr("bogus")})
	apiErr(t, err, 400, "state")
}

func TestAutoMergeFailNextCalls(t *testing.T) {
	s, c := newServer(t)
	s.SeedFile("master", "f.yml", []byte("v: 0\n"))
	s.AutoMerge("bot/automerge", 10*time.Millisecond)
	merged := make(chan MR, 1)
	s.OnMerge(func(m MR) { merged <- m })

	s.FailNext(RouteCreateCommit, 1, http.StatusServiceUnavailable)
	_, _, err := c.Commits.CreateCommit(13582, commitOpts("b", gitlab.Ptr("master"), action(gitlab.FileUpdate, "f.yml", "v: 1\n")))
	apiErr(t, err, 503, "injected failure")
	if s.BranchExists("b") {
		t.Fatal("an injected failure made the branch")
	}
	if _, _, err := c.Commits.CreateCommit(13582, commitOpts("b", gitlab.Ptr("master"), action(gitlab.FileUpdate, "f.yml", "v: 1\n"))); err != nil {
		t.Fatal(err)
	}
	labels := gitlab.LabelOptions{"bot/automerge"}
	if _, _, err := c.MergeRequests.CreateMergeRequest(13582, &gitlab.CreateMergeRequestOptions{Title: gitlab.Ptr("auto"),
		SourceBranch: gitlab.Ptr("b"), TargetBranch: gitlab.Ptr("master"), Labels: &labels, RemoveSourceBranch: gitlab.Ptr(true)}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-merged:
		if m.IID != 1 || m.State != "merged" {
			t.Fatalf("%+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not auto-merged")
	}
	if f, _ := s.File("master", "f.yml"); string(f) != "v: 1\n" {
		t.Fatalf("%q", f)
	}
	if s.Calls(RouteCreateCommit) != 2 || s.Calls(RouteCreateMR) != 1 || s.Calls(RouteListMRs) != 0 {
		t.Fatalf("calls: %d %d %d", s.Calls(RouteCreateCommit), s.Calls(RouteCreateMR), s.Calls(RouteListMRs))
	}
	// Unknown routes are 404 and counted.
	req, _ := http.NewRequest("GET", s.URL()+"/api/v4/projects/13582/issues", nil)
	req.Header.Set("PRIVATE-TOKEN", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || s.Calls(RouteUnknown) != 1 {
		t.Fatalf("%d %d", resp.StatusCode, s.Calls(RouteUnknown))
	}
}

func TestNewRequiresToken(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("no error")
	}
}

func TestUnifiedDiff(t *testing.T) {
	lines := func(n int, f func(i int) string) string {
		var b strings.Builder
		for i := 1; i <= n; i++ {
			b.WriteString(f(i) + "\n")
		}
		return b.String()
	}
	twenty := lines(20, func(i int) string { return fmt.Sprint("l", i) })
	for _, tc := range []struct {
		name, a, b, want string
	}{
		{"equal", "a\n", "a\n", ""},
		{"new file", "", "a\nb\n", "@@ -0,0 +1,2 @@\n+a\n+b\n"},
		{"deleted file", "a\n", "", "@@ -1 +0,0 @@\n-a\n"},
		{"no newline at end", "a\nb", "a\nc", "@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n"},
		{"one line removed in the middle", twenty, strings.Replace(twenty, "l10\n", "", 1),
			"@@ -7,7 +7,6 @@\n l7\n l8\n l9\n-l10\n l11\n l12\n l13\n"},
		{"two hunks", twenty, strings.Replace(strings.Replace(twenty, "l2\n", "L2\n", 1), "l19\n", "", 1),
			"@@ -1,5 +1,5 @@\n l1\n-l2\n+L2\n l3\n l4\n l5\n@@ -16,5 +16,4 @@\n l16\n l17\n l18\n-l19\n l20\n"},
		{"changes close together share a hunk", twenty, strings.Replace(strings.Replace(twenty, "l5\n", "", 1), "l10\n", "", 1),
			"@@ -2,12 +2,10 @@\n l2\n l3\n l4\n-l5\n l6\n l7\n l8\n l9\n-l10\n l11\n l12\n l13\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := UnifiedDiff([]byte(tc.a), []byte(tc.b)); got != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// LoseNext carries the request out and drops the connection: the client
// gets no answer, but the MR exists.
func TestLoseNext(t *testing.T) {
	s, c := newServer(t)
	s.SeedFile("feature", "a.txt", []byte("a\n"))
	s.LoseNext(RouteCreateMR, 1)
	_, _, err := c.MergeRequests.CreateMergeRequest(13582, &gitlab.CreateMergeRequestOptions{
		Title: gitlab.Ptr("t"), SourceBranch: gitlab.Ptr("feature"), TargetBranch: gitlab.Ptr("master")})
	if err == nil {
		t.Fatal("the answer was not lost")
	}
	var er *gitlab.ErrorResponse
	if errors.As(err, &er) {
		t.Fatalf("got an HTTP answer: %v", err)
	}
	if mrs := s.MRs(); len(mrs) != 1 || mrs[0].State != "opened" {
		t.Fatalf("MRs: %+v", mrs)
	}
	// Only the next one: the following request is answered.
	if _, _, err := c.MergeRequests.GetMergeRequest(13582, 1, nil); err != nil {
		t.Fatal(err)
	}
}
