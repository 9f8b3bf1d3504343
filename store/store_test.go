package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	berrors "go.etcd.io/bbolt/errors"

	"github.com/osio/osio-bot/actions"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func openAt(t *testing.T, path string, now func() time.Time) *Store {
	t.Helper()
	s, err := Open(path, Options{Now: now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// newStore opens a store in a temporary directory, closed at the end of
// the test.
func newStore(t *testing.T) (*Store, *clock) {
	t.Helper()
	c := &clock{t: t0}
	s := openAt(t, filepath.Join(t.TempDir(), "osio-bot.db"), c.Now)
	t.Cleanup(func() { s.Close() })
	return s, c
}

func newReq(locks ...string) *actions.Request {
	return &actions.Request{
		Kind:      "export",
		Requester: "U0123",
		Origin:    "C0ORIGIN",
		Args:      json.RawMessage(`{"tables":["prod_txlog"]}`),
		Thread:    actions.Thread{Channel: "C0APPROVE"},
		ExpiresAt: t0.Add(24 * time.Hour),
		Locks:     locks,
	}
}

func mustCreate(t *testing.T, s *Store, r *actions.Request, envelope string, events ...actions.Event) *actions.Request {
	t.Helper()
	res, err := s.Create(r, envelope, events...)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if res.Duplicate || len(res.LockedBy) > 0 || res.Request == nil {
		t.Fatalf("Create = %+v, want a new request", res)
	}
	return res.Request
}

func count(t *testing.T, s *Store) int {
	t.Helper()
	rs, err := s.List(nil)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return len(rs)
}

func msg(text string) actions.Event { return actions.Event{Kind: actions.Message, Text: text} }

func seqs(evs []actions.Event) []uint64 {
	var out []uint64
	for _, e := range evs {
		out = append(out, e.Seq)
	}
	return out
}

func TestCreateAndGet(t *testing.T) {
	s, _ := newStore(t)
	for i, want := range []string{"R-000001", "R-000002", "R-000003"} {
		in := newReq()
		r := mustCreate(t, s, in, fmt.Sprintf("env-%d", i))
		if in.ID != "" || in.Version != 0 {
			t.Errorf("Create modified its argument: %+v", in)
		}
		tests := []struct {
			name      string
			got, want any
		}{
			{"id", r.ID, want},
			{"state", r.State, actions.Pending},
			{"version", r.Version, int64(1)},
			{"created", r.CreatedAt, t0},
			{"updated", r.UpdatedAt, t0},
			{"kind", r.Kind, "export"},
			{"requester", r.Requester, "U0123"},
		}
		for _, tt := range tests {
			if tt.got != tt.want {
				t.Errorf("%s: %s = %v, want %v", want, tt.name, tt.got, tt.want)
			}
		}
		got, err := s.Get(r.ID)
		if err != nil {
			t.Fatalf("Get(%s): %v", r.ID, err)
		}
		if got.ID != r.ID || got.State != actions.Pending || got.Version != 1 || string(got.Args) != string(in.Args) || !got.ExpiresAt.Equal(in.ExpiresAt) {
			t.Errorf("Get(%s) = %+v, want %+v", r.ID, got, r)
		}
	}
	for _, id := range []string{"R-000004", "R-999999", ""} {
		_, err := s.Get(id)
		if !errors.Is(err, actions.ErrNotFound) {
			t.Errorf("Get(%q) error = %v, want ErrNotFound", id, err)
		}
	}
	if n := count(t, s); n != 3 {
		t.Errorf("List count = %d, want 3", n)
	}
}

func TestCreateKeepsGivenState(t *testing.T) {
	s, _ := newStore(t)
	in := newReq()
	in.State = actions.Approved
	r := mustCreate(t, s, in, "")
	if r.State != actions.Approved {
		t.Errorf("state = %s, want approved", r.State)
	}
}

func TestList(t *testing.T) {
	s, _ := newStore(t)
	for i := 0; i < 4; i++ {
		mustCreate(t, s, newReq(), "")
	}
	if _, err := s.Transition("R-000002", nil, actions.Denied, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		keep func(*actions.Request) bool
		want []string
	}{
		{"all", nil, []string{"R-000004", "R-000003", "R-000002", "R-000001"}},
		{"pending", func(r *actions.Request) bool { return r.State == actions.Pending }, []string{"R-000004", "R-000003", "R-000001"}},
		{"terminal", func(r *actions.Request) bool { return r.State.Terminal() }, []string{"R-000002"}},
		{"none", func(*actions.Request) bool { return false }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := s.List(tt.keep)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range rs {
				ids = append(ids, r.ID)
			}
			if !slices.Equal(ids, tt.want) {
				t.Errorf("List = %v, want %v", ids, tt.want)
			}
		})
	}
}

func TestCreateDuplicateEnvelope(t *testing.T) {
	s, _ := newStore(t)
	first := mustCreate(t, s, newReq("export:a"), "env-1", msg("created"))

	// The same envelope again, even with other locks and events.
	res, err := s.Create(newReq("export:b"), "env-1", msg("again"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Duplicate || res.Request == nil || res.Request.ID != first.ID || len(res.LockedBy) != 0 {
		t.Fatalf("second Create = %+v, want Duplicate of %s", res, first.ID)
	}
	if n := count(t, s); n != 1 {
		t.Errorf("List count = %d, want 1", n)
	}
	evs, err := s.Events(first.ID)
	if err != nil || len(evs) != 1 {
		t.Errorf("Events = %v, %v; want only the first event", evs, err)
	}
	// The duplicate took no lock.
	mustCreate(t, s, newReq("export:b"), "env-2")

	// An empty envelope id is never a duplicate.
	a := mustCreate(t, s, newReq(), "")
	b := mustCreate(t, s, newReq(), "")
	if a.ID == b.ID {
		t.Errorf("two creates without envelope got the same id %s", a.ID)
	}
}

func TestLocks(t *testing.T) {
	s, _ := newStore(t)
	first := mustCreate(t, s, newReq("export:a", "export:b"), "env-1")

	tests := []struct {
		name   string
		locks  []string
		locked []string // keys of LockedBy; nil means created
	}{
		{"same locks", []string{"export:a", "export:b"}, []string{"export:a", "export:b"}},
		{"overlapping lock", []string{"export:b", "export:c"}, []string{"export:b"}},
		{"one of them", []string{"export:a"}, []string{"export:a"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := count(t, s)
			res, err := s.Create(newReq(tt.locks...), fmt.Sprintf("env-locked-%d", i))
			if err != nil {
				t.Fatal(err)
			}
			if res.Request != nil || res.Duplicate {
				t.Errorf("Create = %+v, want nothing created", res)
			}
			var keys []string
			for k, h := range res.LockedBy {
				keys = append(keys, k)
				if h == nil || h.ID != first.ID {
					t.Errorf("LockedBy[%s] = %+v, want %s", k, h, first.ID)
				}
			}
			slices.Sort(keys)
			if !slices.Equal(keys, tt.locked) {
				t.Errorf("LockedBy keys = %v, want %v", keys, tt.locked)
			}
			if n := count(t, s); n != before {
				t.Errorf("List count = %d, want %d", n, before)
			}
		})
	}
	// A locked-out create did not claim its envelope or its free lock.
	c := mustCreate(t, s, newReq("export:c"), "env-locked-1")
	if _, err := s.Transition(c.ID, nil, actions.Cancelled, nil); err != nil {
		t.Fatal(err)
	}

	// Non-terminal transitions keep the locks.
	for _, step := range []struct{ from, to actions.State }{{actions.Pending, actions.Approved}, {actions.Approved, actions.Running}} {
		if _, err := s.Transition(first.ID, []actions.State{step.from}, step.to, nil); err != nil {
			t.Fatalf("%s -> %s: %v", step.from, step.to, err)
		}
		res, err := s.Create(newReq("export:a"), "")
		if err != nil {
			t.Fatal(err)
		}
		if res.Request != nil || res.LockedBy["export:a"] == nil || res.LockedBy["export:a"].State != step.to {
			t.Errorf("after %s: Create = %+v, want LockedBy export:a held by a %s request", step.to, res, step.to)
		}
	}

	// A terminal state frees them.
	if _, err := s.Transition(first.ID, []actions.State{actions.Running}, actions.Succeeded, nil); err != nil {
		t.Fatal(err)
	}
	second := mustCreate(t, s, newReq("export:a", "export:b"), "")
	res, err := s.Create(newReq("export:b"), "")
	if err != nil || res.Request != nil || res.LockedBy["export:b"] == nil || res.LockedBy["export:b"].ID != second.ID {
		t.Errorf("Create = %+v, %v; want export:b held by %s", res, err, second.ID)
	}

	// Updating the old, terminal request does not free the new holder's lock.
	if _, err := s.Update(first.ID, nil, func(r *actions.Request) error { r.Error = "note"; return nil }); err != nil {
		t.Fatal(err)
	}
	if res, _ := s.Create(newReq("export:a"), ""); res.Request != nil {
		t.Errorf("old request's update freed %s's lock", second.ID)
	}
}

func TestLocksFreedByEveryTerminalState(t *testing.T) {
	tests := []struct {
		state    actions.State
		terminal bool
	}{
		{actions.Approved, false},
		{actions.Running, false},
		{actions.Succeeded, true},
		{actions.Failed, true},
		{actions.Denied, true},
		{actions.Cancelled, true},
		{actions.Expired, true},
	}
	for _, tt := range tests {
		t.Run(string(tt.state), func(t *testing.T) {
			s, _ := newStore(t)
			r := mustCreate(t, s, newReq("export:a"), "")
			if _, err := s.Transition(r.ID, []actions.State{actions.Pending}, tt.state, nil); err != nil {
				t.Fatal(err)
			}
			res, err := s.Create(newReq("export:a"), "")
			if err != nil {
				t.Fatal(err)
			}
			if free := res.Request != nil; free != tt.terminal {
				t.Errorf("lock free after %s = %v, want %v", tt.state, free, tt.terminal)
			}
		})
	}
}

func TestTransitionConflict(t *testing.T) {
	tests := []struct {
		name    string
		from    []actions.State
		to      actions.State
		current actions.State
	}{
		{"approve running", []actions.State{actions.Pending}, actions.Approved, actions.Running},
		{"run pending", []actions.State{actions.Approved}, actions.Running, actions.Pending},
		{"cancel finished", []actions.State{actions.Pending, actions.Approved}, actions.Cancelled, actions.Succeeded},
		{"expire denied", []actions.State{actions.Pending}, actions.Expired, actions.Denied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := newStore(t)
			r := mustCreate(t, s, newReq("export:a"), "", msg("created"))
			if tt.current != actions.Pending {
				r2, err := s.Transition(r.ID, nil, tt.current, nil, msg("moved"))
				if err != nil {
					t.Fatal(err)
				}
				r = r2
			}
			before, _ := s.Get(r.ID)
			evsBefore, _ := s.Events(r.ID)
			c.Set(t0.Add(time.Hour))

			mutated := false
			got, err := s.Transition(r.ID, tt.from, tt.to, func(*actions.Request) { mutated = true }, msg("should not appear"))
			if got != nil {
				t.Errorf("Transition returned %+v on conflict", got)
			}
			sc, ok := IsConflict(err)
			if !ok {
				t.Fatalf("Transition error = %v, want a StateConflict", err)
			}
			var target *actions.StateConflict
			if !errors.As(err, &target) || target != sc {
				t.Errorf("errors.As disagrees with IsConflict")
			}
			if sc.ID != r.ID || sc.Current == nil || sc.Current.State != tt.current || sc.Current.Version != before.Version {
				t.Errorf("conflict = %+v (current %+v), want current state %s version %d", sc, sc.Current, tt.current, before.Version)
			}
			if mutated {
				t.Error("mutate was called on conflict")
			}
			after, _ := s.Get(r.ID)
			if after.Version != before.Version || after.State != before.State || !after.UpdatedAt.Equal(before.UpdatedAt) {
				t.Errorf("request changed: before %+v, after %+v", before, after)
			}
			evsAfter, _ := s.Events(r.ID)
			if len(evsAfter) != len(evsBefore) {
				t.Errorf("events %v -> %v, want unchanged", evsBefore, evsAfter)
			}
		})
	}
}

func TestTransitionSuccess(t *testing.T) {
	s, c := newStore(t)
	r := mustCreate(t, s, newReq(), "")
	c.Set(t0.Add(time.Minute))
	got, err := s.Transition(r.ID, []actions.State{actions.Pending, actions.Approved}, actions.Approved, func(r *actions.Request) {
		r.Decision = &actions.Decision{Action: "approved", By: "U0APPROVER", At: t0.Add(time.Minute)}
	}, msg("approved"))
	if err != nil {
		t.Fatal(err)
	}
	if got.State != actions.Approved || got.Version != 2 || !got.UpdatedAt.Equal(t0.Add(time.Minute)) || !got.CreatedAt.Equal(t0) || got.Decision == nil || got.Decision.By != "U0APPROVER" {
		t.Errorf("Transition = %+v", got)
	}
	stored, _ := s.Get(r.ID)
	if stored.State != actions.Approved || stored.Version != 2 || stored.Decision == nil {
		t.Errorf("Get = %+v", stored)
	}
	if _, err := s.Transition("R-000099", nil, actions.Approved, nil); !errors.Is(err, actions.ErrNotFound) {
		t.Errorf("Transition(unknown) = %v, want ErrNotFound", err)
	}
}

func TestUpdateMutateError(t *testing.T) {
	s, _ := newStore(t)
	r := mustCreate(t, s, newReq(), "")
	boom := errors.New("boom")
	_, err := s.Update(r.ID, nil, func(r *actions.Request) error {
		r.State = actions.Failed
		return boom
	}, msg("x"))
	if !errors.Is(err, boom) {
		t.Fatalf("Update error = %v, want boom", err)
	}
	got, _ := s.Get(r.ID)
	evs, _ := s.Events(r.ID)
	if got.State != actions.Pending || got.Version != 1 || len(evs) != 0 {
		t.Errorf("failed Update changed the request: %+v, events %v", got, evs)
	}
}

func TestConcurrentTransition(t *testing.T) {
	s, _ := newStore(t)
	r := mustCreate(t, s, newReq("export:a"), "")
	const n = 50
	var ok, conflicts, other atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.Transition(r.ID, []actions.State{actions.Pending}, actions.Approved, nil, msg("approved"))
			switch c, isConflict := IsConflict(err); {
			case err == nil:
				ok.Add(1)
			case isConflict && c.Current.State == actions.Approved:
				conflicts.Add(1)
			default:
				t.Errorf("Transition: %v", err)
				other.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if ok.Load() != 1 || conflicts.Load() != n-1 {
		t.Errorf("successes = %d, conflicts = %d, other = %d; want 1, %d, 0", ok.Load(), conflicts.Load(), other.Load(), n-1)
	}
	got, _ := s.Get(r.ID)
	evs, _ := s.Events(r.ID)
	if got.State != actions.Approved || got.Version != 2 || len(evs) != 1 {
		t.Errorf("after the race: %+v with %d events; want approved, version 2, 1 event", got, len(evs))
	}
}

func TestConcurrentCreate(t *testing.T) {
	s, _ := newStore(t)
	const n = 50
	ids := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res, err := s.Create(newReq(), fmt.Sprintf("env-%d", i), msg("created"))
			if err != nil || res.Request == nil || res.Duplicate {
				t.Errorf("Create %d = %+v, %v", i, res, err)
				return
			}
			ids[i] = res.Request.ID
		}()
	}
	close(start)
	wg.Wait()
	seen := map[string]bool{}
	for i, id := range ids {
		if id == "" || seen[id] {
			t.Errorf("create %d got id %q (empty or repeated)", i, id)
		}
		seen[id] = true
	}
	if c := count(t, s); c != n {
		t.Errorf("List count = %d, want %d", c, n)
	}
	for i := 1; i <= n; i++ {
		if id := fmt.Sprintf("R-%06d", i); !seen[id] {
			t.Errorf("id %s not assigned", id)
		}
	}
	out, _ := s.Outbox()
	if len(out) != n {
		t.Errorf("Outbox has %d requests, want %d", len(out), n)
	}
}

func TestConcurrentCreateSameEnvelopeAndLock(t *testing.T) {
	s, _ := newStore(t)
	const n = 50
	var created, dup, locked atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env := "same"
			if i%2 == 1 {
				env = fmt.Sprintf("env-%d", i)
			}
			res, err := s.Create(newReq("export:a"), env)
			switch {
			case err != nil:
				t.Error(err)
			case res.Duplicate:
				dup.Add(1)
			case len(res.LockedBy) > 0:
				locked.Add(1)
			default:
				created.Add(1)
			}
		}()
	}
	wg.Wait()
	if created.Load() != 1 || dup.Load()+locked.Load() != n-1 {
		t.Errorf("created %d, duplicate %d, locked %d; want 1 created", created.Load(), dup.Load(), locked.Load())
	}
	if c := count(t, s); c != 1 {
		t.Errorf("List count = %d, want 1", c)
	}
}

func TestEvents(t *testing.T) {
	s, c := newStore(t)
	a := mustCreate(t, s, newReq(), "", actions.Event{Kind: actions.Card}, msg("a1"))
	b := mustCreate(t, s, newReq(), "")

	steps := []struct {
		name string
		do   func() error
	}{
		{"append to a", func() error { return s.AppendEvents(a.ID, msg("a2")) }},
		{"append to b", func() error { return s.AppendEvents(b.ID, msg("b1"), msg("b2")) }},
		{"transition a", func() error {
			_, err := s.Transition(a.ID, []actions.State{actions.Pending}, actions.Approved, nil, actions.Event{Kind: actions.Card}, msg("a approved"))
			return err
		}},
		{"append nothing", func() error { return s.AppendEvents(a.ID) }},
		{"append with time", func() error {
			return s.AppendEvents(a.ID, actions.Event{Kind: actions.Progress, Text: "50%", At: t0.Add(-time.Hour)})
		}},
	}
	for i, st := range steps {
		c.Set(t0.Add(time.Duration(i+1) * time.Minute))
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
	}

	tests := []struct {
		id    string
		seqs  []uint64
		texts []string
		ats   []time.Time
	}{
		{a.ID, []uint64{1, 2, 3, 4, 5, 6}, []string{"", "a1", "a2", "", "a approved", "50%"},
			[]time.Time{t0, t0, t0.Add(time.Minute), t0.Add(3 * time.Minute), t0.Add(3 * time.Minute), t0.Add(-time.Hour)}},
		{b.ID, []uint64{1, 2}, []string{"b1", "b2"}, []time.Time{t0.Add(2 * time.Minute), t0.Add(2 * time.Minute)}},
		{"R-000099", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			evs, err := s.Events(tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if got := seqs(evs); !slices.Equal(got, tt.seqs) {
				t.Errorf("seqs = %v, want %v", got, tt.seqs)
			}
			for i, e := range evs {
				if i < len(tt.texts) && e.Text != tt.texts[i] {
					t.Errorf("event %d text = %q, want %q", i, e.Text, tt.texts[i])
				}
				if i < len(tt.ats) && !e.At.Equal(tt.ats[i]) {
					t.Errorf("event %d at = %v, want %v", i, e.At, tt.ats[i])
				}
			}
		})
	}
}

func TestDelivery(t *testing.T) {
	s, _ := newStore(t)
	a := mustCreate(t, s, newReq(), "", msg("a1"), msg("a2"), msg("a3"))
	b := mustCreate(t, s, newReq(), "", msg("b1"))
	quiet := mustCreate(t, s, newReq(), "")

	outbox := func(want ...string) {
		t.Helper()
		got, err := s.Outbox()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Outbox = %v, want %v", got, want)
		}
	}
	undelivered := func(id string, wantSeqs []uint64, wantCur Cursor) {
		t.Helper()
		evs, cur, err := s.Undelivered(id)
		if err != nil {
			t.Fatal(err)
		}
		if got := seqs(evs); !slices.Equal(got, wantSeqs) {
			t.Errorf("Undelivered(%s) seqs = %v, want %v", id, got, wantSeqs)
		}
		if cur != wantCur {
			t.Errorf("Undelivered(%s) cursor = %+v, want %+v", id, cur, wantCur)
		}
	}
	mark := func(id string, cur Cursor) {
		t.Helper()
		if err := s.MarkDelivered(id, cur); err != nil {
			t.Fatal(err)
		}
	}

	outbox(a.ID, b.ID)
	undelivered(a.ID, []uint64{1, 2, 3}, Cursor{})
	undelivered(quiet.ID, nil, Cursor{})

	mark(a.ID, Cursor{Delivered: 1, StatusTS: "1700000000.000100"})
	undelivered(a.ID, []uint64{2, 3}, Cursor{Delivered: 1, StatusTS: "1700000000.000100"})
	outbox(a.ID, b.ID)

	mark(a.ID, Cursor{Delivered: 3, StatusTS: "1700000000.000100"})
	undelivered(a.ID, nil, Cursor{Delivered: 3, StatusTS: "1700000000.000100"})
	outbox(b.ID)

	// New events put the request back, after the cursor.
	if _, err := s.Transition(a.ID, nil, actions.Approved, nil, msg("a4")); err != nil {
		t.Fatal(err)
	}
	outbox(a.ID, b.ID)
	undelivered(a.ID, []uint64{4}, Cursor{Delivered: 3, StatusTS: "1700000000.000100"})

	mark(b.ID, Cursor{Delivered: 1})
	mark(a.ID, Cursor{Delivered: 4, StatusTS: "1700000000.000200"})
	outbox()
	undelivered(a.ID, nil, Cursor{Delivered: 4, StatusTS: "1700000000.000200"})

	// A request without events leaves (never enters) the outbox.
	mark(quiet.ID, Cursor{})
	outbox()
}

func TestCheckpoints(t *testing.T) {
	s, _ := newStore(t)
	type progress struct {
		Pipeline string   `json:"pipeline"`
		Done     []string `json:"done"`
		N        int      `json:"n"`
	}
	tests := []struct {
		id, key string
		v       progress
	}{
		{"R-000001", "export", progress{"df-1", []string{"t1"}, 1}},
		{"R-000001", "other", progress{"df-2", nil, 2}},
		{"R-000002", "export", progress{"df-3", []string{"t1", "t2"}, 3}},
	}
	for _, tt := range tests {
		if err := s.SaveCheckpoint(tt.id, tt.key, tt.v); err != nil {
			t.Fatal(err)
		}
	}
	// Overwrite one.
	tests[0].v = progress{"df-1", []string{"t1", "t9"}, 10}
	if err := s.SaveCheckpoint(tests[0].id, tests[0].key, tests[0].v); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.id+"/"+tt.key, func(t *testing.T) {
			var got progress
			ok, err := s.LoadCheckpoint(tt.id, tt.key, &got)
			if err != nil || !ok {
				t.Fatalf("LoadCheckpoint = %v, %v", ok, err)
			}
			if got.Pipeline != tt.v.Pipeline || got.N != tt.v.N || !slices.Equal(got.Done, tt.v.Done) {
				t.Errorf("LoadCheckpoint = %+v, want %+v", got, tt.v)
			}
		})
	}
	for _, k := range [][2]string{{"R-000001", "missing"}, {"R-000003", "export"}} {
		var got progress
		ok, err := s.LoadCheckpoint(k[0], k[1], &got)
		if ok || err != nil {
			t.Errorf("LoadCheckpoint(%s, %s) = %v, %v; want false, nil", k[0], k[1], ok, err)
		}
	}
	// A value that does not decode is an error, not a silent miss.
	var wrong int
	if ok, err := s.LoadCheckpoint("R-000001", "export", &wrong); ok || err == nil {
		t.Errorf("LoadCheckpoint into int = %v, %v; want an error", ok, err)
	}
	if err := s.SaveCheckpoint("R-000001", "bad", func() {}); err == nil {
		t.Error("SaveCheckpoint of a func succeeded")
	}
}

// Defect A (issue 8): a checkpoint and the thread message saying so are
// one write, both or neither, with AppendEvents' delivery semantics.
func TestSaveCheckpointEvents(t *testing.T) {
	s, _ := newStore(t)
	a := mustCreate(t, s, newReq(), "", msg("a1"))
	if err := s.MarkDelivered(a.ID, Cursor{Delivered: 1}); err != nil {
		t.Fatal(err)
	}
	type step struct {
		MR int `json:"mr"`
	}
	checkpoint := func(key string) (step, bool) {
		t.Helper()
		var got step
		ok, err := s.LoadCheckpoint(a.ID, key, &got)
		if err != nil {
			t.Fatal(err)
		}
		return got, ok
	}
	texts := func() []string {
		t.Helper()
		evs, err := s.Events(a.ID)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range evs {
			out = append(out, e.Text)
		}
		return out
	}
	outbox := func(want ...string) {
		t.Helper()
		got, err := s.Outbox()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Outbox = %v, want %v", got, want)
		}
	}
	outbox()

	// Both written: the checkpoint, and the events after the earlier ones,
	// undelivered, the request back in the outbox.
	if err := s.SaveCheckpointEvents(a.ID, "appinterface", step{MR: 1}, msg("MR 1 opened"), msg("second")); err != nil {
		t.Fatal(err)
	}
	if got, ok := checkpoint("appinterface"); !ok || got.MR != 1 {
		t.Fatalf("checkpoint = %+v, %v; want MR 1", got, ok)
	}
	if got, want := texts(), []string{"a1", "MR 1 opened", "second"}; !slices.Equal(got, want) {
		t.Fatalf("events = %q, want %q", got, want)
	}
	evs, _, err := s.Undelivered(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := seqs(evs); !slices.Equal(got, []uint64{2, 3}) {
		t.Errorf("undelivered seqs = %v, want [2 3]", got)
	}
	if !evs[0].At.Equal(t0) {
		t.Errorf("event at %v, want the store's clock %v", evs[0].At, t0)
	}
	outbox(a.ID)

	// Neither: a checkpoint that does not encode leaves no event...
	if err := s.SaveCheckpointEvents(a.ID, "bad", func() {}, msg("lost step")); err == nil {
		t.Fatal("SaveCheckpointEvents of a func succeeded")
	}
	if _, ok := checkpoint("bad"); ok {
		t.Error("a checkpoint that did not encode was saved")
	}
	// ...and an event that does not encode (a year JSON cannot hold)
	// leaves neither the checkpoint nor the events before it.
	bad := actions.Event{Kind: actions.Message, Text: "bad time", At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := s.SaveCheckpointEvents(a.ID, "appinterface", step{MR: 2}, msg("MR 2 opened"), bad); err == nil {
		t.Fatal("SaveCheckpointEvents with an event that does not encode succeeded")
	}
	if got, _ := checkpoint("appinterface"); got.MR != 1 {
		t.Errorf("checkpoint = %+v after a failed write, want MR 1 kept", got)
	}
	if got, want := texts(), []string{"a1", "MR 1 opened", "second"}; !slices.Equal(got, want) {
		t.Errorf("events after failed writes = %q, want %q", got, want)
	}

	// No events: a plain checkpoint, the outbox untouched.
	if err := s.MarkDelivered(a.ID, Cursor{Delivered: 3}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCheckpointEvents(a.ID, "appinterface", step{MR: 3}); err != nil {
		t.Fatal(err)
	}
	if got, _ := checkpoint("appinterface"); got.MR != 3 {
		t.Errorf("checkpoint = %+v, want MR 3", got)
	}
	outbox()
}

func TestEnvelopes(t *testing.T) {
	s, c := newStore(t)
	claim := func(id string, want bool) {
		t.Helper()
		got, err := s.ClaimEnvelope(id)
		if err != nil || got != want {
			t.Errorf("ClaimEnvelope(%s) = %v, %v; want %v", id, got, err, want)
		}
	}
	claim("e1", true)
	claim("e1", false)
	claim("e2", true)
	// Slash envelopes (Create) and click envelopes are separate.
	mustCreate(t, s, newReq(), "e3")
	claim("e3", true)

	c.Set(t0.Add(time.Hour))
	claim("late", true)

	tests := []struct {
		name   string
		before time.Time
		n      int
	}{
		{"nothing older", t0, 0},
		{"the old ones", t0.Add(time.Minute), 4}, // e1, e2, e3 (click), slash:e3
		{"again", t0.Add(time.Minute), 0},
		{"the rest", t0.Add(2 * time.Hour), 1},
	}
	for _, tt := range tests {
		n, err := s.PruneEnvelopes(tt.before)
		if err != nil || n != tt.n {
			t.Errorf("%s: PruneEnvelopes = %d, %v; want %d", tt.name, n, err, tt.n)
		}
	}
	claim("e1", true)
	claim("late", true)
	// The pruned slash envelope creates anew.
	res, err := s.Create(newReq(), "e3")
	if err != nil || res.Duplicate || res.Request == nil || res.Request.ID != "R-000002" {
		t.Errorf("Create after prune = %+v, %v; want a new R-000002", res, err)
	}
}

func TestPruneEnvelopesEmpty(t *testing.T) {
	s, _ := newStore(t)
	if n, err := s.PruneEnvelopes(time.Now().Add(time.Hour)); n != 0 || err != nil {
		t.Errorf("PruneEnvelopes = %d, %v", n, err)
	}
}

func TestDurability(t *testing.T) {
	path := filepath.Join(t.TempDir(), "osio-bot.db")
	c := &clock{t: t0}
	s := openAt(t, path, c.Now)
	if s.Path() != path {
		t.Errorf("Path = %q, want %q", s.Path(), path)
	}
	a := mustCreate(t, s, newReq("export:a"), "env-a", msg("a1"), msg("a2"))
	b := mustCreate(t, s, newReq("export:b"), "env-b", msg("b1"))
	if _, err := s.Transition(b.ID, nil, actions.Running, nil, msg("b2")); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDelivered(a.ID, Cursor{Delivered: 1, StatusTS: "111.222"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCheckpoint(b.ID, "export", map[string]string{"pipeline": "df-1"}); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.ClaimEnvelope("click-1"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openAt(t, path, c.Now)
	defer s.Close()

	tests := []struct {
		name string
		ok   func() (bool, string)
	}{
		{"requests", func() (bool, string) {
			ra, errA := s.Get(a.ID)
			rb, errB := s.Get(b.ID)
			return errA == nil && errB == nil && ra.State == actions.Pending && rb.State == actions.Running && rb.Version == 2,
				fmt.Sprintf("%+v %v / %+v %v", ra, errA, rb, errB)
		}},
		{"events", func() (bool, string) {
			ea, _ := s.Events(a.ID)
			eb, _ := s.Events(b.ID)
			return slices.Equal(seqs(ea), []uint64{1, 2}) && slices.Equal(seqs(eb), []uint64{1, 2}), fmt.Sprint(ea, eb)
		}},
		{"cursor", func() (bool, string) {
			evs, cur, err := s.Undelivered(a.ID)
			return err == nil && cur == (Cursor{Delivered: 1, StatusTS: "111.222"}) && slices.Equal(seqs(evs), []uint64{2}), fmt.Sprint(evs, cur, err)
		}},
		{"outbox", func() (bool, string) {
			ids, err := s.Outbox()
			return err == nil && slices.Equal(ids, []string{a.ID, b.ID}), fmt.Sprint(ids, err)
		}},
		{"checkpoint", func() (bool, string) {
			var m map[string]string
			ok, err := s.LoadCheckpoint(b.ID, "export", &m)
			return ok && err == nil && m["pipeline"] == "df-1", fmt.Sprint(ok, err, m)
		}},
		{"click envelope", func() (bool, string) {
			ok, err := s.ClaimEnvelope("click-1")
			return !ok && err == nil, fmt.Sprint(ok, err)
		}},
		{"slash envelope", func() (bool, string) {
			res, err := s.Create(newReq(), "env-a")
			return err == nil && res.Duplicate && res.Request.ID == a.ID, fmt.Sprintf("%+v %v", res, err)
		}},
		{"locks", func() (bool, string) {
			res, err := s.Create(newReq("export:a", "export:b"), "")
			return err == nil && res.Request == nil && res.LockedBy["export:a"].ID == a.ID && res.LockedBy["export:b"].ID == b.ID,
				fmt.Sprintf("%+v %v", res, err)
		}},
		{"id sequence", func() (bool, string) {
			r, err := s.Create(newReq(), "")
			return err == nil && r.Request != nil && r.Request.ID == "R-000003", fmt.Sprintf("%+v %v", r, err)
		}},
		{"event sequence", func() (bool, string) {
			if err := s.AppendEvents(a.ID, msg("a3")); err != nil {
				return false, err.Error()
			}
			evs, _ := s.Events(a.ID)
			return slices.Equal(seqs(evs), []uint64{1, 2, 3}), fmt.Sprint(evs)
		}},
	}
	for _, tt := range tests {
		if ok, detail := tt.ok(); !ok {
			t.Errorf("%s not durable: %s", tt.name, detail)
		}
	}
}

func TestOpenLocked(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for bbolt's 5s lock timeout")
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "osio-bot.db")
	s := openAt(t, path, nil)
	defer s.Close()

	start := time.Now()
	s2, err := Open(path, Options{})
	took := time.Since(start)
	if err == nil {
		s2.Close()
		t.Fatal("second Open of a held file succeeded")
	}
	if !errors.Is(err, berrors.ErrTimeout) {
		t.Errorf("second Open error = %v, want bbolt's timeout", err)
	}
	if took > 6*time.Second {
		t.Errorf("second Open took %v, want about 5s", took)
	}
}

func TestOpenBadPath(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "no", "such", "dir", "x.db"), Options{}); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
}
