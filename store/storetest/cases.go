package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/osio/osio-bot/actions"
)

func cases() []testCase {
	return []testCase{
		{"CreateAndGet", testCreateAndGet},
		{"CreateKeepsGivenState", testCreateKeepsGivenState},
		{"CreateSeenByTheOtherClient", testCreateSeenByOther},
		{"DuplicateEnvelope", testDuplicateEnvelope},
		{"Locks", testLocks},
		{"LockedOutCreateClaimsNothing", testLockedOutCreateClaimsNothing},
		{"LocksFreedByEveryTerminalState", testLocksFreedByTerminal},
		{"TerminalUpdateKeepsOthersLock", testTerminalUpdateKeepsOthersLock},
		{"UpdateTakesNewLocksAndReleasesDropped", testUpdateLockChanges},
		{"RetryTakesLocksBack", testRetryTakesLocksBack},
		{"TransitionConflict", testTransitionConflict},
		{"TransitionSuccess", testTransitionSuccess},
		{"UpdateMutateError", testUpdateMutateError},
		{"RaceApproveTwoClients", testRaceApprove},
		{"RaceCreateIDsUniqueAcrossClients", testRaceCreateIDs},
		{"RaceCreateSameEnvelopeAndLock", testRaceCreateSameEnvelopeAndLock},
		{"List", testList},
		{"ListActive", testListActive},
		{"Events", testEvents},
		{"DeliveryCursorsAndOutbox", testDelivery},
		{"OutboxOrder", testOutboxOrder},
		{"Checkpoints", testCheckpoints},
		{"SaveCheckpointEvents", testSaveCheckpointEvents},
		{"ClaimEnvelopeOnce", testClaimEnvelope},
		{"PruneEnvelopes", testPruneEnvelopes},
		{"LeaseAcquireAndHeld", testLeaseAcquire},
		{"LeaseExpiryTakeover", testLeaseTakeover},
		{"LeaseRenew", testLeaseRenew},
		{"LeaseRelease", testLeaseRelease},
		{"LeaseRaceOneWinner", testLeaseRace},
		{"FencedWritesUnderCurrentLease", testFencedWritesOK},
		{"FencedWritesRefusedAfterTakeover", testFencedAfterTakeover},
		{"FencedWritesRefusedAfterExpiry", testFencedAfterExpiry},
		{"Ping", testPing},
		{"EventsFormAHashChain", testEventChain},
	}
}

func msg(text string) actions.Event { return actions.Event{Kind: actions.Message, Text: text} }

func seqs(evs []actions.Event) []uint64 {
	var out []uint64
	for _, e := range evs {
		out = append(out, e.Seq)
	}
	return out
}

func texts(t *testing.T, s Backend, id string) []string {
	t.Helper()
	evs, err := s.Events(id)
	if err != nil {
		t.Fatalf("Events(%s): %v", id, err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Text)
	}
	return out
}

func mustCreate(t *testing.T, s Backend, r *actions.Request, envelope string, events ...actions.Event) *actions.Request {
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

func ids(t *testing.T, s Backend, keep func(*actions.Request) bool) []string {
	t.Helper()
	rs, err := s.List(keep)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func mustTransition(t *testing.T, s Backend, id string, from []actions.State, to actions.State) *actions.Request {
	t.Helper()
	r, err := s.Transition(id, from, to, nil)
	if err != nil {
		t.Fatalf("Transition %s -> %s: %v", id, to, err)
	}
	return r
}

// lockHolder is the id of the request holding lock, "" when it is free
// (found by creating a request on it, cancelled at once when created).
func lockHolder(t *testing.T, s Backend, lock string) string {
	t.Helper()
	res, err := s.Create(NewRequest(lock), "")
	if err != nil {
		t.Fatalf("Create on %s: %v", lock, err)
	}
	if res.Request != nil {
		if _, err := s.Transition(res.Request.ID, nil, actions.Cancelled, nil); err != nil {
			t.Fatal(err)
		}
		return ""
	}
	h := res.LockedBy[lock]
	if h == nil {
		t.Fatalf("Create on %s = %+v: neither created nor locked by it", lock, res)
	}
	return h.ID
}

func testCreateAndGet(t *testing.T, e *env) {
	for i, want := range []string{"R-000001", "R-000002", "R-000003"} {
		in := NewRequest()
		r := mustCreate(t, e.a, in, fmt.Sprintf("env-%d", i), msg("created"))
		if in.ID != "" || in.Version != 0 {
			t.Errorf("Create modified its argument: %+v", in)
		}
		if r.ID != want || r.State != actions.Pending || r.Version != 1 || !r.CreatedAt.Equal(T0) || !r.UpdatedAt.Equal(T0) ||
			r.Kind != "export" || r.Requester != "U0123" {
			t.Errorf("Create = %+v, want %s pending version 1 at %v", r, want, T0)
		}
		for _, s := range []Backend{e.a, e.b} {
			got, err := s.Get(r.ID)
			if err != nil {
				t.Fatalf("Get(%s): %v", r.ID, err)
			}
			if got.ID != r.ID || got.State != actions.Pending || got.Version != 1 || string(got.Args) != string(in.Args) ||
				!got.ExpiresAt.Equal(in.ExpiresAt) || got.Thread != in.Thread || got.Origin != in.Origin {
				t.Errorf("Get(%s) = %+v, want %+v", r.ID, got, r)
			}
		}
	}
	for _, id := range []string{"R-000004", "R-999999", "", "R-1", "R-0000001", "X-000001", "R-00000a"} {
		if _, err := e.b.Get(id); !errors.Is(err, actions.ErrNotFound) {
			t.Errorf("Get(%q) error = %v, want ErrNotFound", id, err)
		}
	}
	if got := ids(t, e.b, nil); len(got) != 3 {
		t.Errorf("List = %v, want 3 requests", got)
	}
}

func testCreateKeepsGivenState(t *testing.T, e *env) {
	for _, st := range []actions.State{actions.Approved, actions.Received} {
		in := NewRequest()
		in.State = st
		if r := mustCreate(t, e.a, in, ""); r.State != st {
			t.Errorf("state = %s, want %s", r.State, st)
		}
	}
}

func testCreateSeenByOther(t *testing.T, e *env) {
	r := mustCreate(t, e.a, NewRequest("export:a"), "env-1", msg("one"))
	got, err := e.b.Get(r.ID)
	if err != nil || got.Version != 1 {
		t.Fatalf("b.Get = %+v, %v", got, err)
	}
	if _, err := e.b.Transition(r.ID, []actions.State{actions.Pending}, actions.Approved, nil, msg("two")); err != nil {
		t.Fatal(err)
	}
	got, err = e.a.Get(r.ID)
	if err != nil || got.State != actions.Approved || got.Version != 2 {
		t.Fatalf("a.Get after b's transition = %+v, %v", got, err)
	}
	if got := texts(t, e.a, r.ID); !slices.Equal(got, []string{"one", "two"}) {
		t.Errorf("events = %q", got)
	}
}

func testDuplicateEnvelope(t *testing.T, e *env) {
	first := mustCreate(t, e.a, NewRequest("export:a"), "env-1", msg("created"))
	for name, s := range map[string]Backend{"same client": e.a, "other client": e.b} {
		res, err := s.Create(NewRequest("export:b"), "env-1", msg("again"))
		if err != nil {
			t.Fatal(err)
		}
		if !res.Duplicate || res.Request == nil || res.Request.ID != first.ID || len(res.LockedBy) != 0 {
			t.Fatalf("%s: second Create = %+v, want Duplicate of %s", name, res, first.ID)
		}
	}
	if got := ids(t, e.a, nil); len(got) != 1 {
		t.Errorf("List = %v, want 1 request", got)
	}
	if got := texts(t, e.b, first.ID); !slices.Equal(got, []string{"created"}) {
		t.Errorf("events = %q, want only the first", got)
	}
	// The duplicates took no lock.
	mustCreate(t, e.b, NewRequest("export:b"), "env-2")
	// An empty envelope id is never a duplicate.
	x := mustCreate(t, e.a, NewRequest(), "")
	y := mustCreate(t, e.b, NewRequest(), "")
	if x.ID == y.ID {
		t.Errorf("two creates without envelope got the same id %s", x.ID)
	}
}

func testLocks(t *testing.T, e *env) {
	first := mustCreate(t, e.a, NewRequest("export:a", "export:b"), "env-1")
	tests := []struct {
		locks  []string
		locked []string
	}{
		{[]string{"export:a", "export:b"}, []string{"export:a", "export:b"}},
		{[]string{"export:b", "export:c"}, []string{"export:b"}},
		{[]string{"export:a"}, []string{"export:a"}},
	}
	for i, tt := range tests {
		s := []Backend{e.a, e.b}[i%2]
		res, err := s.Create(NewRequest(tt.locks...), fmt.Sprintf("env-locked-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if res.Request != nil || res.Duplicate {
			t.Errorf("Create(%v) = %+v, want nothing created", tt.locks, res)
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
	}
	if got := ids(t, e.b, nil); len(got) != 1 {
		t.Errorf("List = %v, want only %s", got, first.ID)
	}
	// Non-terminal transitions keep the locks, and the holder is shown as
	// it is now.
	for _, step := range []struct{ from, to actions.State }{{actions.Pending, actions.Approved}, {actions.Approved, actions.Running}} {
		mustTransition(t, e.a, first.ID, []actions.State{step.from}, step.to)
		res, err := e.b.Create(NewRequest("export:a"), "")
		if err != nil {
			t.Fatal(err)
		}
		if h := res.LockedBy["export:a"]; res.Request != nil || h == nil || h.State != step.to {
			t.Errorf("after %s: Create = %+v, want export:a held by a %s request", step.to, res, step.to)
		}
	}
	mustTransition(t, e.b, first.ID, []actions.State{actions.Running}, actions.Succeeded)
	second := mustCreate(t, e.a, NewRequest("export:a", "export:b"), "")
	if h := lockHolder(t, e.b, "export:b"); h != second.ID {
		t.Errorf("export:b held by %q, want %s", h, second.ID)
	}
}

func testLockedOutCreateClaimsNothing(t *testing.T, e *env) {
	mustCreate(t, e.a, NewRequest("export:a"), "")
	res, err := e.b.Create(NewRequest("export:a", "export:c"), "env-x", msg("lost"))
	if err != nil || res.Request != nil {
		t.Fatalf("Create = %+v, %v; want locked out", res, err)
	}
	// Neither its envelope nor its free lock were claimed.
	c := mustCreate(t, e.a, NewRequest("export:c"), "env-x")
	if c.ID != "R-000002" {
		t.Errorf("next request is %s, want R-000002", c.ID)
	}
}

func testLocksFreedByTerminal(t *testing.T, e *env) {
	for i, st := range []actions.State{actions.Approved, actions.Running, actions.Received,
		actions.Succeeded, actions.Failed, actions.Denied, actions.Cancelled, actions.Expired, actions.Refused} {
		lock := fmt.Sprintf("export:t%d", i)
		r := mustCreate(t, e.a, NewRequest(lock), "")
		if _, err := e.a.Transition(r.ID, []actions.State{actions.Pending}, st, nil); err != nil {
			t.Fatal(err)
		}
		h := lockHolder(t, e.b, lock)
		if free := h == ""; free != st.Terminal() {
			t.Errorf("%s: lock held by %q, want free %v", st, h, st.Terminal())
		}
	}
}

func testTerminalUpdateKeepsOthersLock(t *testing.T, e *env) {
	first := mustCreate(t, e.a, NewRequest("export:a"), "")
	mustTransition(t, e.a, first.ID, nil, actions.Succeeded)
	second := mustCreate(t, e.b, NewRequest("export:a"), "")
	if _, err := e.a.Update(first.ID, nil, func(r *actions.Request) error { r.Error = "note"; return nil }); err != nil {
		t.Fatal(err)
	}
	if h := lockHolder(t, e.b, "export:a"); h != second.ID {
		t.Errorf("after updating the ended %s, export:a held by %q, want %s", first.ID, h, second.ID)
	}
}

func testUpdateLockChanges(t *testing.T, e *env) {
	const lock = "reset:prod:alice"
	holder := mustCreate(t, e.a, NewRequest(lock), "")
	in := NewRequest()
	in.State = actions.Received
	r := mustCreate(t, e.b, in, "env-2")
	pass := func(s Backend) error {
		_, err := s.Transition(r.ID, []actions.State{actions.Received}, actions.Pending, func(q *actions.Request) { q.Locks = []string{lock} }, msg("checked"))
		return err
	}
	var lc *actions.LockConflict
	if err := pass(e.b); !errors.As(err, &lc) || lc.ID != r.ID || lc.LockedBy[lock] == nil || lc.LockedBy[lock].ID != holder.ID {
		t.Fatalf("pass onto a held lock: %v, want a LockConflict naming %s", err, holder.ID)
	}
	if got, _ := e.a.Get(r.ID); got.State != actions.Received || len(got.Locks) != 0 || got.Version != 1 {
		t.Fatalf("after the conflict: %+v, want it unchanged", got)
	}
	if got := texts(t, e.a, r.ID); len(got) != 0 {
		t.Errorf("a refused update recorded events %q", got)
	}
	mustTransition(t, e.a, holder.ID, []actions.State{actions.Pending}, actions.Cancelled)
	if err := pass(e.a); err != nil {
		t.Fatalf("pass onto a free lock: %v", err)
	}
	if h := lockHolder(t, e.b, lock); h != r.ID {
		t.Fatalf("lock held by %q, want %s", h, r.ID)
	}
	// Swap: take a new lock, drop the old one.
	if _, err := e.b.Update(r.ID, nil, func(q *actions.Request) error { q.Locks = []string{"reset:prod:bob"}; return nil }); err != nil {
		t.Fatal(err)
	}
	if h := lockHolder(t, e.a, lock); h != "" {
		t.Errorf("dropped lock still held by %s", h)
	}
	if h := lockHolder(t, e.a, "reset:prod:bob"); h != r.ID {
		t.Errorf("new lock held by %q, want %s", h, r.ID)
	}
}

func testRetryTakesLocksBack(t *testing.T, e *env) {
	const lock = "reset:osio-dev:dana"
	r1 := mustCreate(t, e.a, NewRequest(lock), "").ID
	if _, err := e.a.Transition(r1, []actions.State{actions.Pending}, actions.Failed, func(q *actions.Request) { q.Retry = "Resend" }); err != nil {
		t.Fatal(err)
	}
	r2 := mustCreate(t, e.b, NewRequest(lock), "").ID
	retry := func(s Backend) (*actions.Request, error) {
		return s.Update(r1, []actions.State{actions.Failed}, func(q *actions.Request) error {
			q.State, q.Retry = actions.Approved, ""
			return nil
		}, msg("Resend requested"))
	}
	_, err := retry(e.a)
	var lc *actions.LockConflict
	if !errors.As(err, &lc) || lc.ID != r1 || lc.LockedBy[lock] == nil || lc.LockedBy[lock].ID != r2 {
		t.Fatalf("retry while %s holds the lock: %v", r2, err)
	}
	if !strings.Contains(err.Error(), lock+" is held by "+r2+" (pending)") {
		t.Errorf("error text %q", err)
	}
	if q, _ := e.b.Get(r1); q.State != actions.Failed || q.Retry != "Resend" {
		t.Errorf("r1 changed: %s, retry %q", q.State, q.Retry)
	}
	if got := texts(t, e.b, r1); len(got) != 0 {
		t.Errorf("a refused retry recorded %q", got)
	}
	mustTransition(t, e.b, r2, []actions.State{actions.Pending}, actions.Denied)
	if q, err := retry(e.b); err != nil || q.State != actions.Approved {
		t.Fatalf("retry after %s ended: %+v %v", r2, q, err)
	}
	if h := lockHolder(t, e.a, lock); h != r1 {
		t.Fatalf("lock held by %q after the retry, want %s", h, r1)
	}
	mustTransition(t, e.a, r1, []actions.State{actions.Approved}, actions.Succeeded)
	if h := lockHolder(t, e.b, lock); h != "" {
		t.Fatalf("lock still held by %s after the retry ended", h)
	}
}

func testTransitionConflict(t *testing.T, e *env) {
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
	for i, tt := range tests {
		e.clock.Set(T0)
		r := mustCreate(t, e.a, NewRequest(fmt.Sprintf("export:%d", i)), "", msg("created"))
		if tt.current != actions.Pending {
			if _, err := e.a.Transition(r.ID, nil, tt.current, nil, msg("moved")); err != nil {
				t.Fatal(err)
			}
		}
		before, _ := e.a.Get(r.ID)
		evsBefore, _ := e.a.Events(r.ID)
		e.clock.Set(T0.Add(time.Hour))
		mutated := false
		got, err := e.b.Transition(r.ID, tt.from, tt.to, func(*actions.Request) { mutated = true }, msg("should not appear"))
		if got != nil {
			t.Errorf("%s: Transition returned %+v on conflict", tt.name, got)
		}
		sc, ok := actions.IsConflict(err)
		if !ok {
			t.Fatalf("%s: Transition error = %v, want a StateConflict", tt.name, err)
		}
		if sc.ID != r.ID || sc.Current == nil || sc.Current.State != tt.current || sc.Current.Version != before.Version {
			t.Errorf("%s: conflict = %+v, want current state %s version %d", tt.name, sc, tt.current, before.Version)
		}
		if mutated {
			t.Errorf("%s: mutate was called on conflict", tt.name)
		}
		after, _ := e.a.Get(r.ID)
		if after.Version != before.Version || after.State != before.State || !after.UpdatedAt.Equal(before.UpdatedAt) {
			t.Errorf("%s: request changed: before %+v, after %+v", tt.name, before, after)
		}
		if evsAfter, _ := e.a.Events(r.ID); len(evsAfter) != len(evsBefore) {
			t.Errorf("%s: events %v -> %v, want unchanged", tt.name, evsBefore, evsAfter)
		}
	}
}

func testTransitionSuccess(t *testing.T, e *env) {
	r := mustCreate(t, e.a, NewRequest(), "")
	e.clock.Set(T0.Add(time.Minute))
	got, err := e.b.Transition(r.ID, []actions.State{actions.Pending, actions.Approved}, actions.Approved, func(r *actions.Request) {
		r.Decision = &actions.Decision{Action: "approved", By: "U0APPROVER", At: T0.Add(time.Minute)}
	}, msg("approved"))
	if err != nil {
		t.Fatal(err)
	}
	if got.State != actions.Approved || got.Version != 2 || !got.UpdatedAt.Equal(T0.Add(time.Minute)) || !got.CreatedAt.Equal(T0) ||
		got.Decision == nil || got.Decision.By != "U0APPROVER" {
		t.Errorf("Transition = %+v", got)
	}
	stored, _ := e.a.Get(r.ID)
	if stored.State != actions.Approved || stored.Version != 2 || stored.Decision == nil || !stored.Decision.At.Equal(T0.Add(time.Minute)) {
		t.Errorf("Get = %+v", stored)
	}
	if _, err := e.a.Transition("R-000099", nil, actions.Approved, nil); !errors.Is(err, actions.ErrNotFound) {
		t.Errorf("Transition(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := e.a.Update("bogus", nil, nil); !errors.Is(err, actions.ErrNotFound) {
		t.Errorf("Update(bogus) = %v, want ErrNotFound", err)
	}
}

func testUpdateMutateError(t *testing.T, e *env) {
	r := mustCreate(t, e.a, NewRequest("export:a"), "")
	boom := errors.New("boom")
	_, err := e.b.Update(r.ID, nil, func(r *actions.Request) error {
		r.State = actions.Failed
		return boom
	}, msg("x"))
	if !errors.Is(err, boom) {
		t.Fatalf("Update error = %v, want boom", err)
	}
	got, _ := e.a.Get(r.ID)
	if got.State != actions.Pending || got.Version != 1 || len(texts(t, e.a, r.ID)) != 0 {
		t.Errorf("failed Update changed the request: %+v", got)
	}
	if h := lockHolder(t, e.a, "export:a"); h != r.ID {
		t.Errorf("failed Update released the lock (holder %q)", h)
	}
}

// testRaceApprove is issue 10's acceptance 1: 50 concurrent Approve
// transitions on one request, 25 from each client; exactly one succeeds.
func testRaceApprove(t *testing.T, e *env) {
	r := mustCreate(t, e.a, NewRequest("export:a"), "")
	const n = 50
	var ok, conflicts atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		s := []Backend{e.a, e.b}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.Transition(r.ID, []actions.State{actions.Pending}, actions.Approved, func(q *actions.Request) {
				q.Decision = &actions.Decision{Action: "approved", By: fmt.Sprintf("U%02d", i)}
			}, msg(fmt.Sprintf("approved by U%02d", i)))
			switch c, isConflict := actions.IsConflict(err); {
			case err == nil:
				ok.Add(1)
			case isConflict && c.Current.State == actions.Approved:
				conflicts.Add(1)
			default:
				t.Errorf("Transition: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if ok.Load() != 1 || conflicts.Load() != n-1 {
		t.Errorf("successes = %d, conflicts = %d; want 1, %d", ok.Load(), conflicts.Load(), n-1)
	}
	got, _ := e.b.Get(r.ID)
	evs, _ := e.a.Events(r.ID)
	if got.State != actions.Approved || got.Version != 2 || len(evs) != 1 || evs[0].Text != "approved by "+got.Decision.By {
		t.Errorf("after the race: %+v with events %v; want approved, version 2, the winner's one event", got, evs)
	}
}

func testRaceCreateIDs(t *testing.T, e *env) {
	const n = 30
	got := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		s := []Backend{e.a, e.b}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res, err := s.Create(NewRequest(), fmt.Sprintf("env-%d", i), msg("created"))
			if err != nil || res.Request == nil || res.Duplicate {
				t.Errorf("Create %d = %+v, %v", i, res, err)
				return
			}
			got[i] = res.Request.ID
		}()
	}
	close(start)
	wg.Wait()
	seen := map[string]bool{}
	for i, id := range got {
		if id == "" || seen[id] {
			t.Errorf("create %d got id %q (empty or repeated)", i, id)
		}
		seen[id] = true
	}
	for i := 1; i <= n; i++ {
		if id := fmt.Sprintf("R-%06d", i); !seen[id] {
			t.Errorf("id %s not assigned", id)
		}
	}
	if l := ids(t, e.a, nil); len(l) != n {
		t.Errorf("List has %d requests, want %d", len(l), n)
	}
	if out, _ := e.b.Outbox(); len(out) != n {
		t.Errorf("Outbox has %d requests, want %d", len(out), n)
	}
}

func testRaceCreateSameEnvelopeAndLock(t *testing.T, e *env) {
	const n = 30
	var created, dup, locked atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		s := []Backend{e.a, e.b}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			envID := "same"
			if i%3 == 1 {
				envID = fmt.Sprintf("env-%d", i)
			}
			res, err := s.Create(NewRequest("export:a"), envID)
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
	if l := ids(t, e.b, nil); len(l) != 1 {
		t.Errorf("List = %v, want 1 request", l)
	}
}

func testList(t *testing.T, e *env) {
	for i := range 4 {
		mustCreate(t, []Backend{e.a, e.b}[i%2], NewRequest(), "")
	}
	mustTransition(t, e.b, "R-000002", nil, actions.Denied)
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
		for _, s := range []Backend{e.a, e.b} {
			if got := ids(t, s, tt.keep); !slices.Equal(got, tt.want) {
				t.Errorf("%s: List = %v, want %v", tt.name, got, tt.want)
			}
		}
	}
}

func testListActive(t *testing.T, e *env) {
	active := func(s Backend, keep func(*actions.Request) bool) []string {
		t.Helper()
		rs, err := s.ListActive(keep)
		if err != nil {
			t.Fatalf("ListActive: %v", err)
		}
		var out []string
		for _, r := range rs {
			if !r.Active() {
				t.Errorf("ListActive returned %s, which is %s and told", r.ID, r.State)
			}
			out = append(out, r.ID)
		}
		return out
	}
	check := func(want ...string) {
		t.Helper()
		for _, s := range []Backend{e.a, e.b} {
			if got := active(s, nil); !slices.Equal(got, want) {
				t.Errorf("ListActive = %v, want %v", got, want)
			}
		}
	}
	check()
	states := []actions.State{actions.Received, actions.Pending, actions.Approved, actions.Refused, actions.Pending, actions.Running}
	for i, st := range states {
		in := NewRequest(fmt.Sprintf("export:%d", i))
		in.State = st
		mustCreate(t, []Backend{e.a, e.b}[i%2], in, "")
	}
	check("R-000006", "R-000005", "R-000003", "R-000002", "R-000001")
	mustTransition(t, e.a, "R-000002", nil, actions.Denied)
	mustTransition(t, e.b, "R-000006", nil, actions.Failed)
	mustTransition(t, e.a, "R-000003", nil, actions.Running)
	check("R-000005", "R-000003", "R-000001")
	// A retry brings an ended request back.
	mustTransition(t, e.b, "R-000006", []actions.State{actions.Failed}, actions.Approved)
	check("R-000006", "R-000005", "R-000003", "R-000001")
	if got := active(e.a, func(r *actions.Request) bool { return r.State == actions.Approved || r.State == actions.Running }); !slices.Equal(got, []string{"R-000006", "R-000003"}) {
		t.Errorf("ListActive(approved or running) = %v", got)
	}
	// Ended, it leaves for good; List still has every request.
	for _, id := range []string{"R-000001", "R-000003", "R-000005", "R-000006"} {
		mustTransition(t, []Backend{e.a, e.b}[len(id)%2], id, nil, actions.Cancelled)
	}
	check()
	if got := ids(t, e.b, nil); len(got) != len(states) {
		t.Errorf("List = %v, want all %d", got, len(states))
	}

	// An intake refused before its requester was told stays until told
	// (the sweep tells it); one refused and told at once never shows.
	untold := NewRequest("export:untold")
	untold.Input, untold.State = "/osio-export prod_txlog", actions.Received
	u := mustCreate(t, e.a, untold, "")
	told := NewRequest()
	told.Input, told.State, told.Told = "/osio-export nope", actions.Refused, true
	mustCreate(t, e.b, told, "")
	check(u.ID)
	mustTransition(t, e.b, u.ID, []actions.State{actions.Received}, actions.Refused)
	check(u.ID)
	if _, err := e.a.Update(u.ID, nil, func(r *actions.Request) error { r.Told = true; return nil }); err != nil {
		t.Fatal(err)
	}
	check()
	// So does one Slack says cannot be told (untellable).
	gone := NewRequest()
	gone.Input, gone.State = "/osio-export gone", actions.Refused
	g := mustCreate(t, e.b, gone, "")
	check(g.ID)
	if _, err := e.b.Update(g.ID, nil, func(r *actions.Request) error { r.Untellable = "is_archived"; return nil }); err != nil {
		t.Fatal(err)
	}
	check()
}

func testEvents(t *testing.T, e *env) {
	a := mustCreate(t, e.a, NewRequest(), "", actions.Event{Kind: actions.Card}, msg("a1"))
	b := mustCreate(t, e.b, NewRequest(), "")
	steps := []func() error{
		func() error { return e.b.AppendEvents(a.ID, msg("a2")) },
		func() error { return e.a.AppendEvents(b.ID, msg("b1"), msg("b2")) },
		func() error {
			_, err := e.b.Transition(a.ID, []actions.State{actions.Pending}, actions.Approved, nil, actions.Event{Kind: actions.Card}, msg("a approved"))
			return err
		},
		func() error { return e.a.AppendEvents(a.ID) },
		func() error {
			return e.a.AppendEvents(a.ID, actions.Event{Kind: actions.Progress, Text: "50%", At: T0.Add(-time.Hour)})
		},
	}
	for i, st := range steps {
		e.clock.Set(T0.Add(time.Duration(i+1) * time.Minute))
		if err := st(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	tests := []struct {
		id    string
		seqs  []uint64
		texts []string
		kinds []actions.EventKind
		ats   []time.Time
	}{
		{a.ID, []uint64{1, 2, 3, 4, 5, 6}, []string{"", "a1", "a2", "", "a approved", "50%"},
			[]actions.EventKind{actions.Card, actions.Message, actions.Message, actions.Card, actions.Message, actions.Progress},
			[]time.Time{T0, T0, T0.Add(time.Minute), T0.Add(3 * time.Minute), T0.Add(3 * time.Minute), T0.Add(-time.Hour)}},
		{b.ID, []uint64{1, 2}, []string{"b1", "b2"}, []actions.EventKind{actions.Message, actions.Message},
			[]time.Time{T0.Add(2 * time.Minute), T0.Add(2 * time.Minute)}},
		{"R-000099", nil, nil, nil, nil},
	}
	for _, tt := range tests {
		for _, s := range []Backend{e.a, e.b} {
			evs, err := s.Events(tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if got := seqs(evs); !slices.Equal(got, tt.seqs) {
				t.Errorf("%s: seqs = %v, want %v", tt.id, got, tt.seqs)
				continue
			}
			for i, ev := range evs {
				if ev.Text != tt.texts[i] || ev.Kind != tt.kinds[i] || !ev.At.Equal(tt.ats[i]) {
					t.Errorf("%s: event %d = %+v, want %q %s at %v", tt.id, i, ev, tt.texts[i], tt.kinds[i], tt.ats[i])
				}
			}
		}
	}
}

func testDelivery(t *testing.T, e *env) {
	a := mustCreate(t, e.a, NewRequest(), "", msg("a1"), msg("a2"), msg("a3"))
	b := mustCreate(t, e.b, NewRequest(), "", msg("b1"))
	quiet := mustCreate(t, e.a, NewRequest(), "")
	outbox := func(want ...string) {
		t.Helper()
		for _, s := range []Backend{e.a, e.b} {
			got, err := s.Outbox()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("Outbox = %v, want %v", got, want)
			}
		}
	}
	undelivered := func(id string, wantSeqs []uint64, wantCur actions.Cursor) {
		t.Helper()
		for _, s := range []Backend{e.a, e.b} {
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
	}
	mark := func(s Backend, id string, cur actions.Cursor) {
		t.Helper()
		if err := s.MarkDelivered(id, cur); err != nil {
			t.Fatal(err)
		}
	}
	outbox(a.ID, b.ID)
	undelivered(a.ID, []uint64{1, 2, 3}, actions.Cursor{})
	undelivered(quiet.ID, nil, actions.Cursor{})

	mark(e.a, a.ID, actions.Cursor{Delivered: 1, StatusTS: "1700000000.000100"})
	undelivered(a.ID, []uint64{2, 3}, actions.Cursor{Delivered: 1, StatusTS: "1700000000.000100"})
	outbox(a.ID, b.ID)

	full := actions.Cursor{Delivered: 3, StatusTS: "1700000000.000100", LastTS: "1700000000.000300", ToldExpired: true, ToldUnreachable: true}
	mark(e.b, a.ID, full)
	undelivered(a.ID, nil, full)
	outbox(b.ID)

	// New events put the request back, after the cursor.
	if _, err := e.a.Transition(a.ID, nil, actions.Approved, nil, msg("a4")); err != nil {
		t.Fatal(err)
	}
	outbox(a.ID, b.ID)
	undelivered(a.ID, []uint64{4}, full)

	mark(e.a, b.ID, actions.Cursor{Delivered: 1})
	mark(e.b, a.ID, actions.Cursor{Delivered: 4, StatusTS: "1700000000.000200"})
	outbox()
	undelivered(a.ID, nil, actions.Cursor{Delivered: 4, StatusTS: "1700000000.000200"})

	// A request without events never enters the outbox.
	mark(e.a, quiet.ID, actions.Cursor{})
	outbox()
}

func testOutboxOrder(t *testing.T, e *env) {
	var want []string
	for i := range 12 {
		r := mustCreate(t, []Backend{e.a, e.b}[i%2], NewRequest(), "")
		want = append(want, r.ID)
	}
	// Events land newest request first; the outbox is oldest first.
	for i := len(want) - 1; i >= 0; i-- {
		if err := e.a.AppendEvents(want[i], msg("x")); err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.b.Outbox()
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Outbox = %v, %v; want %v", got, err, want)
	}
}

type progress struct {
	Pipeline string   `json:"pipeline"`
	Done     []string `json:"done"`
	N        int      `json:"n"`
}

func testCheckpoints(t *testing.T, e *env) {
	mustCreate(t, e.a, NewRequest(), "")
	mustCreate(t, e.a, NewRequest(), "")
	tests := []struct {
		id, key string
		v       progress
	}{
		{"R-000001", "export", progress{"df-1", []string{"t1"}, 1}},
		{"R-000001", "other", progress{"df-2", nil, 2}},
		{"R-000002", "export", progress{"df-3", []string{"t1", "t2"}, 3}},
	}
	for _, tt := range tests {
		if err := e.a.SaveCheckpoint(tt.id, tt.key, tt.v); err != nil {
			t.Fatal(err)
		}
	}
	tests[0].v = progress{"df-1", []string{"t1", "t9"}, 10}
	if err := e.b.SaveCheckpoint(tests[0].id, tests[0].key, tests[0].v); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		for _, s := range []Backend{e.a, e.b} {
			var got progress
			ok, err := s.LoadCheckpoint(tt.id, tt.key, &got)
			if err != nil || !ok {
				t.Fatalf("LoadCheckpoint(%s, %s) = %v, %v", tt.id, tt.key, ok, err)
			}
			if got.Pipeline != tt.v.Pipeline || got.N != tt.v.N || !slices.Equal(got.Done, tt.v.Done) {
				t.Errorf("LoadCheckpoint(%s, %s) = %+v, want %+v", tt.id, tt.key, got, tt.v)
			}
		}
	}
	for _, k := range [][2]string{{"R-000001", "missing"}, {"R-000003", "export"}} {
		var got progress
		if ok, err := e.b.LoadCheckpoint(k[0], k[1], &got); ok || err != nil {
			t.Errorf("LoadCheckpoint(%s, %s) = %v, %v; want false, nil", k[0], k[1], ok, err)
		}
	}
	var wrong int
	if ok, err := e.a.LoadCheckpoint("R-000001", "export", &wrong); ok || err == nil {
		t.Errorf("LoadCheckpoint into int = %v, %v; want an error", ok, err)
	}
	if err := e.a.SaveCheckpoint("R-000001", "bad", func() {}); err == nil {
		t.Error("SaveCheckpoint of a func succeeded")
	}
}

func testSaveCheckpointEvents(t *testing.T, e *env) {
	a := mustCreate(t, e.a, NewRequest(), "", msg("a1"))
	if err := e.a.MarkDelivered(a.ID, actions.Cursor{Delivered: 1}); err != nil {
		t.Fatal(err)
	}
	type step struct {
		MR int `json:"mr"`
	}
	checkpoint := func(key string) (step, bool) {
		t.Helper()
		var got step
		ok, err := e.b.LoadCheckpoint(a.ID, key, &got)
		if err != nil {
			t.Fatal(err)
		}
		return got, ok
	}
	outbox := func(want ...string) {
		t.Helper()
		if got, err := e.b.Outbox(); err != nil || !slices.Equal(got, want) {
			t.Errorf("Outbox = %v, %v; want %v", got, err, want)
		}
	}
	outbox()
	if err := e.b.SaveCheckpointEvents(a.ID, "appinterface", step{MR: 1}, msg("MR 1 opened"), msg("second")); err != nil {
		t.Fatal(err)
	}
	if got, ok := checkpoint("appinterface"); !ok || got.MR != 1 {
		t.Fatalf("checkpoint = %+v, %v; want MR 1", got, ok)
	}
	if got, want := texts(t, e.a, a.ID), []string{"a1", "MR 1 opened", "second"}; !slices.Equal(got, want) {
		t.Fatalf("events = %q, want %q", got, want)
	}
	evs, _, err := e.a.Undelivered(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := seqs(evs); !slices.Equal(got, []uint64{2, 3}) || !evs[0].At.Equal(T0) {
		t.Errorf("undelivered = %+v, want seqs 2, 3 at the store's clock", evs)
	}
	outbox(a.ID)
	// Neither: a checkpoint that does not encode leaves no event, and an
	// event that does not encode leaves neither.
	if err := e.a.SaveCheckpointEvents(a.ID, "bad", func() {}, msg("lost step")); err == nil {
		t.Fatal("SaveCheckpointEvents of a func succeeded")
	}
	if _, ok := checkpoint("bad"); ok {
		t.Error("a checkpoint that did not encode was saved")
	}
	bad := actions.Event{Kind: actions.Message, Text: "bad time", At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := e.a.SaveCheckpointEvents(a.ID, "appinterface", step{MR: 2}, msg("MR 2 opened"), bad); err == nil {
		t.Fatal("SaveCheckpointEvents with an event that does not encode succeeded")
	}
	if got, _ := checkpoint("appinterface"); got.MR != 1 {
		t.Errorf("checkpoint = %+v after a failed write, want MR 1 kept", got)
	}
	if got, want := texts(t, e.b, a.ID), []string{"a1", "MR 1 opened", "second"}; !slices.Equal(got, want) {
		t.Errorf("events after failed writes = %q, want %q", got, want)
	}
	// No events: a plain checkpoint, the outbox untouched.
	if err := e.a.MarkDelivered(a.ID, actions.Cursor{Delivered: 3}); err != nil {
		t.Fatal(err)
	}
	if err := e.a.SaveCheckpointEvents(a.ID, "appinterface", step{MR: 3}); err != nil {
		t.Fatal(err)
	}
	if got, _ := checkpoint("appinterface"); got.MR != 3 {
		t.Errorf("checkpoint = %+v, want MR 3", got)
	}
	outbox()
}

func testClaimEnvelope(t *testing.T, e *env) {
	claim := func(s Backend, id string, want bool) {
		t.Helper()
		if got, err := s.ClaimEnvelope(id); err != nil || got != want {
			t.Errorf("ClaimEnvelope(%s) = %v, %v; want %v", id, got, err, want)
		}
	}
	claim(e.a, "e1", true)
	claim(e.a, "e1", false)
	claim(e.b, "e1", false)
	claim(e.b, "e2", true)
	claim(e.a, "e2", false)
	// Slash envelopes (Create) and click envelopes are separate.
	mustCreate(t, e.a, NewRequest(), "e3")
	claim(e.b, "e3", true)

	// Concurrent claims of one envelope from both clients: one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		s := []Backend{e.a, e.b}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.ClaimEnvelope("contested")
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("%d concurrent claims of one envelope won, want 1", wins.Load())
	}
}

func testPruneEnvelopes(t *testing.T, e *env) {
	if n, err := e.a.PruneEnvelopes(T0.Add(time.Hour)); n != 0 || err != nil {
		t.Errorf("PruneEnvelopes of none = %d, %v", n, err)
	}
	for _, id := range []string{"e1", "e2"} {
		if ok, err := e.a.ClaimEnvelope(id); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	mustCreate(t, e.b, NewRequest(), "e3")
	if ok, err := e.b.ClaimEnvelope("e3"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	e.clock.Set(T0.Add(time.Hour))
	if ok, err := e.a.ClaimEnvelope("late"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	tests := []struct {
		name   string
		s      Backend
		before time.Time
		n      int
	}{
		{"nothing older", e.a, T0, 0},
		{"the old ones", e.b, T0.Add(time.Minute), 4}, // e1, e2, e3 (click), slash:e3
		{"again", e.a, T0.Add(time.Minute), 0},
		{"the rest", e.a, T0.Add(2 * time.Hour), 1},
	}
	for _, tt := range tests {
		if n, err := tt.s.PruneEnvelopes(tt.before); err != nil || n != tt.n {
			t.Errorf("%s: PruneEnvelopes = %d, %v; want %d", tt.name, n, err, tt.n)
		}
	}
	for _, id := range []string{"e1", "late"} {
		if ok, err := e.b.ClaimEnvelope(id); !ok || err != nil {
			t.Errorf("ClaimEnvelope(%s) after prune = %v, %v; want true", id, ok, err)
		}
	}
	res, err := e.a.Create(NewRequest(), "e3")
	if err != nil || res.Duplicate || res.Request == nil || res.Request.ID != "R-000002" {
		t.Errorf("Create after prune = %+v, %v; want a new R-000002", res, err)
	}
}

const ttl = 30 * time.Second

func acquire(t *testing.T, s Backend, name, owner string) actions.Lease {
	t.Helper()
	l, err := s.AcquireLease(name, owner, ttl)
	if err != nil {
		t.Fatalf("AcquireLease(%s, %s): %v", name, owner, err)
	}
	return l
}

func testLeaseAcquire(t *testing.T, e *env) {
	name := actions.JobLease("R-000123")
	l := acquire(t, e.a, name, "replica-a")
	if want := (actions.Lease{Name: name, Owner: "replica-a", Epoch: 1, Expires: T0.Add(ttl)}); !l.Expires.Equal(want.Expires) || l.Name != want.Name || l.Owner != want.Owner || l.Epoch != want.Epoch {
		t.Errorf("AcquireLease = %+v, want %+v", l, want)
	}
	// Held by another: refused, naming the holder, from either client.
	for _, s := range []Backend{e.a, e.b} {
		_, err := s.AcquireLease(name, "replica-b", ttl)
		var held *actions.LeaseHeld
		if !errors.As(err, &held) || !errors.Is(err, actions.ErrLeaseHeld) || held.Current.Owner != "replica-a" || held.Current.Epoch != 1 ||
			!held.Current.Expires.Equal(T0.Add(ttl)) {
			t.Errorf("AcquireLease by replica-b = %v, want LeaseHeld by replica-a epoch 1", err)
		}
	}
	// Acquired again by its owner: renewed, same epoch.
	e.clock.Add(10 * time.Second)
	again := acquire(t, e.b, name, "replica-a")
	if again.Epoch != 1 || !again.Expires.Equal(T0.Add(10*time.Second+ttl)) {
		t.Errorf("re-acquire by the owner = %+v, want epoch 1 renewed to %v", again, T0.Add(10*time.Second+ttl))
	}
	// Leases are independent of each other.
	other := acquire(t, e.b, actions.DeliverLease("C123"), "replica-b")
	if other.Epoch != 1 || other.Name != "deliver:C123" {
		t.Errorf("another lease = %+v", other)
	}
}

func testLeaseTakeover(t *testing.T, e *env) {
	name := actions.JobLease("R-000001")
	l := acquire(t, e.a, name, "replica-a")
	e.clock.Add(ttl - time.Nanosecond)
	if _, err := e.b.AcquireLease(name, "replica-b", ttl); !errors.Is(err, actions.ErrLeaseHeld) {
		t.Fatalf("acquire just before expiry = %v, want held", err)
	}
	e.clock.Add(time.Nanosecond)
	taken := acquire(t, e.b, name, "replica-b")
	if taken.Epoch != l.Epoch+1 || taken.Owner != "replica-b" || !taken.Expires.Equal(e.clock.Now().Add(ttl)) {
		t.Errorf("takeover = %+v, want replica-b epoch %d", taken, l.Epoch+1)
	}
	if _, err := e.a.RenewLease(l, ttl); !actions.LeaseLost(err) {
		t.Errorf("renewal of the taken lease = %v, want lost", err)
	}
	// The old owner coming back acquires nothing while it is held...
	if _, err := e.a.AcquireLease(name, "replica-a", ttl); !errors.Is(err, actions.ErrLeaseHeld) {
		t.Errorf("old owner's acquire = %v, want held", err)
	}
	// ...and a later epoch once it is free again.
	e.clock.Add(ttl)
	back := acquire(t, e.a, name, "replica-a")
	if back.Epoch != 3 {
		t.Errorf("third acquire = %+v, want epoch 3", back)
	}
}

func testLeaseRenew(t *testing.T, e *env) {
	name := actions.DeliverLease("C1")
	l := acquire(t, e.a, name, "replica-a")
	for i := range 3 {
		e.clock.Add(ttl / 2)
		r, err := []Backend{e.a, e.b}[i%2].RenewLease(l, ttl)
		if err != nil {
			t.Fatalf("renewal %d: %v", i, err)
		}
		if r.Epoch != l.Epoch || r.Owner != l.Owner || !r.Expires.Equal(e.clock.Now().Add(ttl)) {
			t.Errorf("renewal %d = %+v", i, r)
		}
		l = r
	}
	// Renewed, it is still held past the first expiry.
	if _, err := e.b.AcquireLease(name, "replica-b", ttl); !errors.Is(err, actions.ErrLeaseHeld) {
		t.Errorf("acquire of a renewed lease = %v, want held", err)
	}
	// A renewal after expiry is too late, even with nobody else about.
	e.clock.Add(ttl)
	if _, err := e.a.RenewLease(l, ttl); !actions.LeaseLost(err) {
		t.Errorf("renewal after expiry = %v, want lost", err)
	}
	// A lease never acquired cannot be renewed.
	if _, err := e.a.RenewLease(actions.Lease{Name: "job:R-000404", Owner: "replica-a", Epoch: 1}, ttl); !actions.LeaseLost(err) {
		t.Errorf("renewal of an unknown lease = %v, want lost", err)
	}
}

func testLeaseRelease(t *testing.T, e *env) {
	name := actions.JobLease("R-000007")
	l := acquire(t, e.a, name, "replica-a")
	if err := e.a.ReleaseLease(l); err != nil {
		t.Fatal(err)
	}
	if err := e.b.ReleaseLease(l); err != nil {
		t.Errorf("second release = %v, want nothing", err)
	}
	if _, err := e.a.RenewLease(l, ttl); !actions.LeaseLost(err) {
		t.Errorf("renewal of a released lease = %v, want lost", err)
	}
	// Taken at once, no waiting for the expiry, with a later epoch.
	taken := acquire(t, e.b, name, "replica-b")
	if taken.Epoch != 2 {
		t.Errorf("takeover after release = %+v, want epoch 2", taken)
	}
	if err := e.a.ReleaseLease(l); !actions.LeaseLost(err) {
		t.Errorf("release of a lease taken since = %v, want lost", err)
	}
	if _, err := e.a.AcquireLease(name, "replica-c", ttl); !errors.Is(err, actions.ErrLeaseHeld) {
		t.Errorf("the stale release freed the new holder's lease: %v", err)
	}
}

func testLeaseRace(t *testing.T, e *env) {
	name := actions.JobLease("R-000042")
	const n = 20
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		s := []Backend{e.a, e.b}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.AcquireLease(name, fmt.Sprintf("replica-%d", i), ttl)
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, actions.ErrLeaseHeld):
				t.Errorf("AcquireLease: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("%d of %d concurrent acquires won, want 1", wins.Load(), n)
	}
}

// fencedWrites are the five writes a job makes under its lease.
func fencedWrites(s Backend, l actions.Lease, id string) map[string]func() error {
	return map[string]func() error{
		"UpdateFenced": func() error {
			_, err := s.UpdateFenced(l, id, nil, func(r *actions.Request) error { r.Error = "by " + l.Owner; return nil }, msg("update by "+l.Owner))
			return err
		},
		"TransitionFenced": func() error {
			_, err := s.TransitionFenced(l, id, []actions.State{actions.Approved, actions.Running}, actions.Running, nil, msg("running by "+l.Owner))
			return err
		},
		"AppendEventsFenced": func() error { return s.AppendEventsFenced(l, id, msg("event by "+l.Owner)) },
		"SaveCheckpointFenced": func() error {
			return s.SaveCheckpointFenced(l, id, "step", progress{Pipeline: l.Owner})
		},
		"SaveCheckpointEventsFenced": func() error {
			return s.SaveCheckpointEventsFenced(l, id, "step2", progress{Pipeline: l.Owner}, msg("step2 by "+l.Owner))
		},
	}
}

func approved(t *testing.T, s Backend) *actions.Request {
	t.Helper()
	in := NewRequest("export:a")
	in.State = actions.Approved
	return mustCreate(t, s, in, "")
}

func testFencedWritesOK(t *testing.T, e *env) {
	r := approved(t, e.a)
	l := acquire(t, e.a, actions.JobLease(r.ID), "replica-a")
	for name, w := range fencedWrites(e.b, l, r.ID) {
		if err := w(); err != nil {
			t.Errorf("%s under the current lease: %v", name, err)
		}
	}
	got, _ := e.a.Get(r.ID)
	if got.State != actions.Running || got.Error != "by replica-a" || got.Version != 3 {
		t.Errorf("request = %+v, want running, both updates applied", got)
	}
	if n := len(texts(t, e.a, r.ID)); n != 4 {
		t.Errorf("%d events, want 4", n)
	}
	var p progress
	if ok, _ := e.a.LoadCheckpoint(r.ID, "step2", &p); !ok || p.Pipeline != "replica-a" {
		t.Errorf("checkpoint step2 = %+v, %v", p, ok)
	}
	// A fenced terminal transition releases the locks as an unfenced one.
	if _, err := e.a.TransitionFenced(l, r.ID, []actions.State{actions.Running}, actions.Succeeded, nil); err != nil {
		t.Fatal(err)
	}
	if h := lockHolder(t, e.b, "export:a"); h != "" {
		t.Errorf("lock held by %s after a fenced success", h)
	}
	// A fenced state conflict is a conflict, not a lost lease.
	if _, err := e.b.TransitionFenced(l, r.ID, []actions.State{actions.Running}, actions.Failed, nil); actions.LeaseLost(err) {
		t.Errorf("conflict under a current lease reported as lost: %v", err)
	} else if _, ok := actions.IsConflict(err); !ok {
		t.Errorf("TransitionFenced from the wrong state = %v, want a conflict", err)
	}
}

// checkFenced runs every fenced write of stale and checks that each was
// refused as lost and changed nothing.
func checkFenced(t *testing.T, e *env, stale actions.Lease, id string) {
	t.Helper()
	before, _ := e.a.Get(id)
	evsBefore := texts(t, e.a, id)
	outBefore, _ := e.a.Outbox()
	for name, w := range fencedWrites(e.a, stale, id) {
		if err := w(); !actions.LeaseLost(err) {
			t.Errorf("%s with a stale lease = %v, want lost", name, err)
		}
	}
	after, _ := e.b.Get(id)
	if after.Version != before.Version || after.State != before.State || after.Error != before.Error {
		t.Errorf("request changed by refused writes: %+v -> %+v", before, after)
	}
	if got := texts(t, e.b, id); !slices.Equal(got, evsBefore) {
		t.Errorf("events changed by refused writes: %q -> %q", evsBefore, got)
	}
	if got, _ := e.b.Outbox(); !slices.Equal(got, outBefore) {
		t.Errorf("outbox changed by refused writes: %v -> %v", outBefore, got)
	}
	for _, key := range []string{"step", "step2"} {
		var p progress
		if ok, _ := e.b.LoadCheckpoint(id, key, &p); ok && p.Pipeline == stale.Owner {
			t.Errorf("checkpoint %s written by the stale owner", key)
		}
	}
}

func testFencedAfterTakeover(t *testing.T, e *env) {
	r := approved(t, e.a)
	if err := e.a.MarkDelivered(r.ID, actions.Cursor{}); err != nil {
		t.Fatal(err)
	}
	name := actions.JobLease(r.ID)
	stale := acquire(t, e.a, name, "replica-a")
	e.clock.Add(ttl + time.Second) // replica-a paused past its expiry
	fresh := acquire(t, e.b, name, "replica-b")
	if fresh.Epoch != stale.Epoch+1 {
		t.Fatalf("takeover epoch %d, want %d", fresh.Epoch, stale.Epoch+1)
	}
	checkFenced(t, e, stale, r.ID)
	// The same owner name with the old epoch is refused too (a restarted
	// replica that reuses its name).
	checkFenced(t, e, actions.Lease{Name: name, Owner: "replica-b", Epoch: stale.Epoch, Expires: fresh.Expires}, r.ID)
	for name, w := range fencedWrites(e.b, fresh, r.ID) {
		if err := w(); err != nil {
			t.Errorf("%s by the new holder: %v", name, err)
		}
	}
}

func testFencedAfterExpiry(t *testing.T, e *env) {
	r := approved(t, e.a)
	l := acquire(t, e.a, actions.JobLease(r.ID), "replica-a")
	e.clock.Add(ttl)
	checkFenced(t, e, l, r.ID)
	// Released: refused as well.
	l2 := acquire(t, e.b, actions.JobLease(r.ID), "replica-a")
	if err := e.b.ReleaseLease(l2); err != nil {
		t.Fatal(err)
	}
	checkFenced(t, e, l2, r.ID)
	// A lease with another name fences nothing of this one.
	checkFenced(t, e, actions.Lease{Name: actions.JobLease("R-000999"), Owner: "replica-a", Epoch: 1, Expires: T0.Add(ttl)}, r.ID)
}

func testPing(t *testing.T, e *env) {
	for _, s := range []Backend{e.a, e.b} {
		if err := s.Ping(t.Context()); err != nil {
			t.Errorf("Ping: %v", err)
		}
	}
}

// testEventChain: every way of writing events, from both clients, extends
// one hash chain per request (issue 11, tamper evidence), and a changed,
// removed or reordered event breaks it.
func testEventChain(t *testing.T, e *env) {
	r := mustCreate(t, e.a, &actions.Request{Kind: "export", Requester: "U1"}, "", msg("created"))
	id := r.ID
	if _, err := e.b.Update(id, nil, func(*actions.Request) error { return nil }, msg("updated by b")); err != nil {
		t.Fatal(err)
	}
	if err := e.a.AppendEvents(id, msg("appended by a"), actions.Event{Kind: actions.Progress, Text: "half way"}); err != nil {
		t.Fatal(err)
	}
	if err := e.b.SaveCheckpointEvents(id, "step", 1, msg("step 1 by b")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Transition(id, []actions.State{actions.Pending}, actions.Approved, nil, msg("approved")); err != nil {
		t.Fatal(err)
	}
	for _, s := range []Backend{e.a, e.b} {
		evs, err := s.Events(id)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 6 {
			t.Fatalf("%d events, want 6", len(evs))
		}
		for i, ev := range evs {
			if ev.Hash == "" || i > 0 && ev.Prev != evs[i-1].Hash || i == 0 && ev.Prev != "" {
				t.Errorf("event %d: prev %.8q hash %.8q: not chained", ev.Seq, ev.Prev, ev.Hash)
			}
		}
		if p := actions.VerifyChain(evs); len(p) != 0 {
			t.Errorf("intact chain reported: %v", p)
		}
		changed := append([]actions.Event(nil), evs...)
		changed[2].Text = "appended by someone else"
		removed := append(append([]actions.Event(nil), evs[:3]...), evs[4:]...)
		swapped := append([]actions.Event(nil), evs...)
		swapped[3], swapped[4] = swapped[4], swapped[3]
		for name, broken := range map[string][]actions.Event{"changed": changed, "removed": removed, "swapped": swapped} {
			if p := actions.VerifyChain(broken); len(p) == 0 {
				t.Errorf("a %s event is not detected", name)
			}
		}
	}
}
