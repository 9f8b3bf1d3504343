package export

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/datapipeline"
	dptypes "github.com/aws/aws-sdk-go-v2/service/datapipeline/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/config"
	dpserver "github.com/osio/osio-bot/testservers/datapipeline"
)

const table = "prod_txlog"

// memStore is the part of the store a JobContext uses, in memory.
type memStore struct {
	mu          sync.Mutex
	checkpoints map[string][]byte
	events      []actions.Event
}

func (m *memStore) Get(string) (*actions.Request, error) { return nil, actions.ErrNotFound }
func (m *memStore) Transition(string, []actions.State, actions.State, func(*actions.Request), ...actions.Event) (*actions.Request, error) {
	return nil, actions.ErrNotFound
}
func (m *memStore) List(func(*actions.Request) bool) ([]*actions.Request, error) { return nil, nil }
func (m *memStore) AppendEvents(_ string, evs ...actions.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, evs...)
	return nil
}
func (m *memStore) SaveCheckpoint(id, key string, v any) error {
	b, err := json.Marshal(v)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.checkpoints[id+"/"+key] = b
	return err
}
func (m *memStore) SaveCheckpointEvents(id, key string, v any, evs ...actions.Event) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.checkpoints[id+"/"+key] = b
	m.events = append(m.events, evs...)
	return nil
}
func (m *memStore) LoadCheckpoint(id, key string, v any) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.checkpoints[id+"/"+key]
	if !ok {
		return false, nil
	}
	return true, json.Unmarshal(b, v)
}

// thread is every message the job said.
func (m *memStore) thread() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	for _, e := range m.events {
		if e.Kind == actions.Message {
			b.WriteString(e.Text + "\n")
		}
	}
	return b.String()
}

type nopNotifier struct{}

func (nopNotifier) Notify(string) {}

func testConfig() config.Config {
	cfg := config.Defaults()
	cfg.Accounts = []config.Account{
		{Name: "osio", ID: "386414299200", RoleARN: "arn:aws:iam::386414299200:role/osio-bot", Region: "us-east-1"},
		{Name: "osio-dev", ID: "619539278362", RoleARN: "arn:aws:iam::619539278362:role/osio-bot", Region: "us-east-1"},
	}
	cfg.Export.Bucket = "dynamodb-migration-backups-osio"
	cfg.Export.PollInterval = config.Duration(20 * time.Millisecond)
	cfg.Export.PollMaxInterval = config.Duration(50 * time.Millisecond)
	cfg.Export.RunTimeout = config.Duration(20 * time.Second)
	return cfg
}

// world is an Exporter on the real SDK client against the Data Pipeline
// test server, with a seeded pipeline named table.
type world struct {
	srv   *dpserver.Server
	dp    *datapipeline.Client
	x     *Exporter
	store *memStore
	jc    *actions.JobContext
	logs  *observer.ObservedLogs
	pid   string
}

func newWorld(t *testing.T, o dpserver.Options, d Deps) *world {
	t.Helper()
	o.Logf = t.Logf
	srv, err := dpserver.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	dp := datapipeline.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")},
		func(o *datapipeline.Options) { o.BaseEndpoint = aws.String(srv.URL()) })
	d.DataPipeline = dp
	x, err := New(testConfig(), d)
	if err != nil {
		t.Fatal(err)
	}
	objs, params, values := x.Definition(table)
	pid := srv.SeedPipeline(table, objs, params, values)
	core, logs := observer.New(zap.DebugLevel)
	st := &memStore{checkpoints: map[string][]byte{}}
	jc := actions.NewJobContext(&actions.Request{ID: "R-000001", Kind: Kind, Requester: "UDEV"}, st, nopNotifier{}, zap.New(core))
	return &world{srv: srv, dp: dp, x: x, store: st, jc: jc, logs: logs, pid: pid}
}

// Issue 8 item 14, on the job: the bot recorded "activating at T" and was
// killed while waiting for ActivatePipeline's answer; AWS had applied it,
// and the run's instances are not visible yet. The resumed start must not
// activate again. The checkpoint has no PriorActivation (as written before
// it existed), so the clock comparison decides.
func TestResumeAfterLostActivationDoesNotActivateAgain(t *testing.T) {
	for _, c := range []struct {
		name  string
		prior *string
		skew  time.Duration
	}{
		{"no prior recorded, AWS clock 3s behind", nil, -3 * time.Second},
		{"no prior recorded, AWS clock 20s ahead", nil, 20 * time.Second},
		{"prior recorded (never activated), AWS clock 2m behind", aws.String(""), -2 * time.Minute},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, dpserver.Options{InstanceDelay: 10 * time.Second, ClockOffset: c.skew}, Deps{})
			at := time.Now().UTC().Truncate(time.Second)
			st := &TableState{PipelineID: w.pid, ActivityID: ActivityID, ActivateAt: at, PriorActivation: c.prior}
			// What the killed process sent, and AWS applied.
			if _, err := w.dp.ActivatePipeline(context.Background(), &datapipeline.ActivatePipelineInput{PipelineId: &w.pid, StartTimestamp: &at}); err != nil {
				t.Fatal(err)
			}
			if err := w.x.start(context.Background(), w.jc, table, st); err != nil {
				t.Fatal(err)
			}
			if n := w.srv.Activations(w.pid); n != 1 {
				t.Errorf("activations = %d, want 1", n)
			}
			if !st.Activated || st.Folder != at.Format(FolderLayout) {
				t.Errorf("state %+v: want activated, folder %s", st, at.Format(FolderLayout))
			}
			if n := strings.Count(w.store.thread(), "activated pipeline"); n != 1 {
				t.Errorf("thread says 'activated pipeline' %d times:\n%s", n, w.store.thread())
			}
		})
	}
}

// The other side: the killed process recorded "activating at T" but its
// ActivatePipeline never reached AWS. The resumed start activates, once,
// even when an earlier request activated the same pipeline seconds before
// (within the clock allowance).
func TestResumeAfterActivationThatNeverArrivedActivates(t *testing.T) {
	w := newWorld(t, dpserver.Options{InstanceDelay: -1}, Deps{})
	if _, err := w.dp.ActivatePipeline(context.Background(), &datapipeline.ActivatePipelineInput{PipelineId: &w.pid}); err != nil {
		t.Fatal(err) // an earlier request's run
	}
	prior, err := w.x.lastActivation(context.Background(), w.pid)
	if err != nil || prior == "" {
		t.Fatalf("prior activation %q: %v", prior, err)
	}
	at := time.Now().UTC().Add(time.Second).Truncate(time.Second)
	st := &TableState{PipelineID: w.pid, ActivityID: ActivityID, ActivateAt: at, PriorActivation: &prior}
	if err := w.x.start(context.Background(), w.jc, table, st); err != nil {
		t.Fatal(err)
	}
	if n := w.srv.Activations(w.pid); n != 2 {
		t.Errorf("activations = %d, want 2 (the earlier request's and this one)", n)
	}
	if !st.Activated {
		t.Error("not activated")
	}
}

// A fresh start records the pipeline's prior @lastActivationTime before
// ActivateAt, and sends ActivatePipeline once.
func TestStartRecordsPriorActivation(t *testing.T) {
	w := newWorld(t, dpserver.Options{}, Deps{})
	st := &TableState{}
	if err := w.x.start(context.Background(), w.jc, table, st); err != nil {
		t.Fatal(err)
	}
	var saved TableState
	if ok, err := w.jc.Load("table:"+table, &saved); !ok || err != nil {
		t.Fatalf("no checkpoint: %v", err)
	}
	if saved.PriorActivation == nil || *saved.PriorActivation != "" || saved.ActivateAt.IsZero() || !saved.Activated {
		t.Errorf("checkpoint %+v", saved)
	}
	if n := w.srv.Activations(w.pid); n != 1 {
		t.Errorf("activations = %d", n)
	}
}

// ActivatePipeline is applied and its answer lost while the bot keeps
// running: the connection drops (the SDK would retry: a second run), or the
// answer never comes (the call times out). Either way one activation, and
// the job goes on.
func TestLostActivationAnswerWithoutCrash(t *testing.T) {
	for _, f := range []dpserver.AnswerFault{dpserver.DropAnswer, dpserver.HoldAnswer} {
		t.Run(map[dpserver.AnswerFault]string{dpserver.DropAnswer: "drop", dpserver.HoldAnswer: "hold"}[f], func(t *testing.T) {
			w := newWorld(t, dpserver.Options{InstanceDelay: 5 * time.Second}, Deps{CallTimeout: 500 * time.Millisecond})
			w.x.activateWait = 50 * time.Millisecond
			w.srv.LoseAnswers("ActivatePipeline", f, 1)
			st := &TableState{}
			if err := w.x.start(context.Background(), w.jc, table, st); err != nil {
				t.Fatal(err)
			}
			if n := w.srv.Activations(w.pid); n != 1 {
				t.Errorf("activations = %d, want 1", n)
			}
			if n := w.srv.Calls("ActivatePipeline"); n != 1 {
				t.Errorf("ActivatePipeline sent %d times, want 1", n)
			}
			if !st.Activated || strings.Count(w.store.thread(), "activated pipeline") != 1 {
				t.Errorf("activated %v, thread:\n%s", st.Activated, w.store.thread())
			}
		})
	}
}

// A refused activation (here: a definition with validation errors) is not
// retried and fails the table.
func TestRefusedActivationIsNotRetried(t *testing.T) {
	w := newWorld(t, dpserver.Options{}, Deps{})
	w.x.activateWait = 50 * time.Millisecond
	objs, params, values := w.x.Definition("prod_broken")
	bad := w.srv.SeedPipeline("prod_broken", objs[1:], params, values) // no Default object
	st := &TableState{PipelineID: bad, ActivityID: ActivityID}
	err := w.x.start(context.Background(), w.jc, "prod_broken", st)
	if err == nil || !strings.Contains(err.Error(), "activating pipeline "+bad) {
		t.Fatalf("err = %v", err)
	}
	if n := w.srv.Calls("ActivatePipeline"); n != 1 {
		t.Errorf("ActivatePipeline sent %d times, want 1", n)
	}
}

// fakeDP answers DescribePipelines with a fixed @lastActivationTime.
type fakeDP struct {
	DataPipeline
	last string
}

func (f fakeDP) DescribePipelines(_ context.Context, in *datapipeline.DescribePipelinesInput, _ ...func(*datapipeline.Options)) (*datapipeline.DescribePipelinesOutput, error) {
	d := dptypes.PipelineDescription{PipelineId: aws.String(in.PipelineIds[0]), Name: aws.String(table)}
	if f.last != "" {
		d.Fields = []dptypes.Field{{Key: aws.String("@lastActivationTime"), StringValue: aws.String(f.last)}}
	}
	return &datapipeline.DescribePipelinesOutput{PipelineDescriptionList: []dptypes.PipelineDescription{d}}, nil
}

// The decision table of activationHappened: T is the recorded ActivateAt
// (bot clock, whole seconds), L AWS's @lastActivationTime (AWS clock).
func TestActivationHappened(t *testing.T) {
	T := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) string { return T.Add(d).Format(dpTimeLayout) }
	for _, c := range []struct {
		name    string
		prior   *string
		last    string
		want    bool
		wantErr bool
	}{
		{"never activated, no prior", nil, "", false, false},
		{"never activated, prior empty", aws.String(""), "", false, false},
		{"no prior: AWS 1s behind, same second truncated", nil, ts(-time.Second), true, false},
		{"no prior: AWS 50s behind", nil, ts(-50 * time.Second), true, false},
		{"no prior: AWS ahead", nil, ts(5 * time.Second), true, false},
		{"no prior: an old activation", nil, ts(-2 * time.Minute), false, false},
		{"no prior: RFC 3339", nil, T.Add(2 * time.Second).Format(time.RFC3339), true, false},
		{"no prior: unreadable time", nil, "yesterday", false, true},
		{"prior: unchanged, an earlier request 10s before", aws.String(ts(-10 * time.Second)), ts(-10 * time.Second), false, false},
		{"prior: changed", aws.String(ts(-10 * time.Second)), ts(-8 * time.Second), true, false},
		{"prior: first activation", aws.String(""), ts(0), true, false},
		{"prior: changed, AWS clock 5m behind", aws.String(ts(-time.Hour)), ts(-5 * time.Minute), true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			x, err := New(testConfig(), Deps{DataPipeline: fakeDP{last: c.last}})
			if err != nil {
				t.Fatal(err)
			}
			jc := actions.NewJobContext(&actions.Request{ID: "R-000001"}, &memStore{checkpoints: map[string][]byte{}}, nopNotifier{}, zap.NewNop())
			got, err := x.activationHappened(context.Background(), jc, &TableState{PipelineID: "df-X", ActivateAt: T, PriorActivation: c.prior})
			if (err != nil) != c.wantErr || got != c.want {
				t.Errorf("happened = %v, err = %v; want %v, error %v", got, err, c.want, c.wantErr)
			}
		})
	}
}

// Issue 8 item 16 (export side): a ListPipelines that never answers must
// not hold Plan, and so the approval card, beyond Plan's own bound, even
// when the caller's context has no deadline.
func TestPlanBoundsHungListPipelines(t *testing.T) {
	w := newWorld(t, dpserver.Options{}, Deps{PlanTimeout: 300 * time.Millisecond})
	w.srv.LoseAnswers("ListPipelines", dpserver.HoldAnswer, 1)
	done := make(chan []string, 1)
	start := time.Now()
	go func() { done <- w.x.Plan(context.Background(), MethodDataPipeline, []string{table}) }()
	select {
	case lines := <-done:
		took := time.Since(start)
		t.Logf("Plan returned after %v", took)
		if took < 250*time.Millisecond {
			t.Errorf("Plan returned after %v, before its bound", took)
		}
		if len(lines) != 1 || !strings.Contains(lines[0], "did not answer ListPipelines within 300ms") || !strings.Contains(lines[0], "will find or create pipeline") {
			t.Errorf("plan = %q", lines)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Plan still waits for ListPipelines after 3s")
	}
	// The next Plan, answered, sees the pipeline.
	if lines := w.x.Plan(context.Background(), MethodDataPipeline, []string{table}); len(lines) != 1 || !strings.Contains(lines[0], "activate existing pipeline `"+w.pid+"`") {
		t.Errorf("plan = %q", lines)
	}
}

// The caller's own, shorter deadline still wins.
func TestPlanHonoursCallerDeadline(t *testing.T) {
	w := newWorld(t, dpserver.Options{}, Deps{PlanTimeout: time.Minute})
	w.srv.LoseAnswers("ListPipelines", dpserver.HoldAnswer, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	lines := w.x.Plan(ctx, MethodDataPipeline, []string{table})
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Plan took %v with a 200ms caller deadline", took)
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "could not list pipelines") {
		t.Errorf("plan = %q", lines)
	}
}

// oneItem is a one-item table for the Data Pipeline server's runs.
type oneItem struct{}

func (oneItem) Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	return &dynamodb.ScanOutput{Items: []map[string]ddbtypes.AttributeValue{{"id": &ddbtypes.AttributeValueMemberS{Value: "a"}}}}, nil
}

// discard is a bucket that keeps nothing.
type discard struct{}

func (discard) PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	return &s3.PutObjectOutput{}, nil
}

// An earlier request's run of the same pipeline failed seconds ago; this
// request activates it again. Until the new run's instances appear, the
// earlier run's FAILED instance is the only one, inside the minute that
// the watch allows for clock skew. The watch must wait for this request's
// run, not report the earlier failure as its own.
func TestWatchIgnoresAnEarlierRequestsRun(t *testing.T) {
	w := newWorld(t, dpserver.Options{Source: oneItem{}, Sink: discard{}, InstanceDelay: 700 * time.Millisecond,
		WaitingFor: 50 * time.Millisecond, RunningFor: 50 * time.Millisecond}, Deps{})
	w.srv.FailNext(table, "EMR cluster terminated: the earlier request's failure")
	earlier := time.Now().UTC().Add(-10 * time.Second).Truncate(time.Second)
	if _, err := w.dp.ActivatePipeline(context.Background(), &datapipeline.ActivatePipelineInput{PipelineId: &w.pid, StartTimestamp: &earlier}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runs := w.srv.Runs(w.pid); len(runs) != 1 || runs[0].Status != "FAILED"; runs = w.srv.Runs(w.pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the earlier run never failed: %+v", runs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := &TableState{}
	if err := w.x.start(context.Background(), w.jc, table, st); err != nil {
		t.Fatal(err)
	}
	if st.PriorRun != earlier.Format(dpTimeLayout) {
		t.Errorf("PriorRun = %q, want the earlier run's %s", st.PriorRun, earlier.Format(dpTimeLayout))
	}
	if err := w.x.watch(context.Background(), w.jc, table, st); err != nil {
		t.Fatalf("watch: %v", err)
	}
	if runs := w.srv.Runs(w.pid); len(runs) != 2 || runs[1].Status != "FINISHED" || st.Folder != runs[1].ScheduledStartTime.Format(FolderLayout) {
		t.Errorf("runs %+v, folder %s", runs, st.Folder)
	}
}
