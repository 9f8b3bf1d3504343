package dpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/datapipeline"
	"github.com/aws/aws-sdk-go-v2/service/datapipeline/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const (
	testBucket = "dynamodb-migration-backups-osio"
	testTable  = "prod_txlog"
)

var awsCfg = aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}

// fakeTable is an in-memory Scanner that pages two items at a time.
type fakeTable struct {
	items []map[string]ddbtypes.AttributeValue
	err   error
	mu    sync.Mutex
	scans int
}

func (f *fakeTable) Scan(_ context.Context, in *dynamodb.ScanInput, _ ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scans++
	if f.err != nil {
		return nil, f.err
	}
	if aws.ToString(in.TableName) != testTable {
		return nil, fmt.Errorf("ResourceNotFoundException: no table %q", aws.ToString(in.TableName))
	}
	start := 0
	if k, ok := in.ExclusiveStartKey["id"].(*ddbtypes.AttributeValueMemberS); ok {
		start = slices.IndexFunc(f.items, func(it map[string]ddbtypes.AttributeValue) bool {
			return it["id"].(*ddbtypes.AttributeValueMemberS).Value == k.Value
		}) + 1
	}
	end := min(start+2, len(f.items))
	out := &dynamodb.ScanOutput{Items: f.items[start:end]}
	if end < len(f.items) {
		out.LastEvaluatedKey = map[string]ddbtypes.AttributeValue{"id": f.items[end-1]["id"]}
	}
	return out, nil
}

// fakeBucket is an in-memory Putter.
type fakeBucket struct {
	mu      sync.Mutex
	objects map[string]string // "bucket/key" -> body
}

func (f *fakeBucket) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	body, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.objects == nil {
		f.objects = map[string]string{}
	}
	f.objects[aws.ToString(in.Bucket)+"/"+aws.ToString(in.Key)] = string(body)
	return &s3.PutObjectOutput{}, nil
}

func (f *fakeBucket) snapshot() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for k, v := range f.objects {
		out[k] = v
	}
	return out
}

func sampleItems() []map[string]ddbtypes.AttributeValue {
	var items []map[string]ddbtypes.AttributeValue
	for i := range 3 {
		items = append(items, map[string]ddbtypes.AttributeValue{
			"id": &ddbtypes.AttributeValueMemberS{Value: fmt.Sprintf("item-%d", i)},
			"n":  &ddbtypes.AttributeValueMemberN{Value: fmt.Sprint(i)},
			"ok": &ddbtypes.AttributeValueMemberBOOL{Value: i%2 == 0},
		})
	}
	return items
}

type env struct {
	srv    *Server
	dp     *datapipeline.Client
	table  *fakeTable
	bucket *fakeBucket
}

func newEnv(t *testing.T, mod func(*Options)) *env {
	t.Helper()
	e := &env{table: &fakeTable{items: sampleItems()}, bucket: &fakeBucket{}}
	opts := Options{Source: e.table, Sink: e.bucket, CrossAccountBuckets: []string{testBucket},
		WaitingFor: 150 * time.Millisecond, RunningFor: 150 * time.Millisecond, Logf: t.Logf}
	if mod != nil {
		mod(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	e.srv = srv
	e.dp = datapipeline.NewFromConfig(awsCfg, func(o *datapipeline.Options) { o.BaseEndpoint = aws.String(srv.URL()) })
	return e
}

// pipeline creates a pipeline with the template definition and returns its id.
func (e *env) pipeline(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	out, err := e.dp.CreatePipeline(ctx, &datapipeline.CreatePipelineInput{Name: &name, UniqueId: aws.String("u-" + name)})
	if err != nil {
		t.Fatal(err)
	}
	objs, params, values := TemplateObjects(testBucket, testTable, "us-east-1", "aws s3 cp s3://x/ s3://x/ --recursive")
	put, err := e.dp.PutPipelineDefinition(ctx, &datapipeline.PutPipelineDefinitionInput{
		PipelineId: out.PipelineId, PipelineObjects: objs, ParameterObjects: params, ParameterValues: values})
	if err != nil || put.Errored {
		t.Fatalf("put definition: %v %+v", err, put)
	}
	return *out.PipelineId
}

// activityInstance finds the latest instance of TableBackupActivity the way the bot does.
func (e *env) activityInstance(t *testing.T, id string) (types.PipelineObject, map[string]types.Field) {
	t.Helper()
	ctx := context.Background()
	var ids []string
	pg := datapipeline.NewQueryObjectsPaginator(e.dp, &datapipeline.QueryObjectsInput{PipelineId: &id, Sphere: aws.String("INSTANCE")},
		func(o *datapipeline.QueryObjectsPaginatorOptions) { o.Limit = 1 })
	for pg.HasMorePages() {
		out, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, out.Ids...)
	}
	if len(ids) == 0 {
		return types.PipelineObject{}, nil
	}
	desc, err := e.dp.DescribeObjects(ctx, &datapipeline.DescribeObjectsInput{PipelineId: &id, ObjectIds: ids})
	if err != nil {
		t.Fatal(err)
	}
	var best types.PipelineObject
	var bestFields map[string]types.Field
	for _, o := range desc.PipelineObjects {
		f := fieldMap(o)
		if aws.ToString(f["@componentParent"].RefValue) == "TableBackupActivity" &&
			(bestFields == nil || aws.ToString(f["@scheduledStartTime"].StringValue) >= aws.ToString(bestFields["@scheduledStartTime"].StringValue)) {
			best, bestFields = o, f
		}
	}
	return best, bestFields
}

func fieldMap(o types.PipelineObject) map[string]types.Field {
	m := map[string]types.Field{}
	for _, f := range o.Fields {
		m[aws.ToString(f.Key)] = f
	}
	return m
}

func str(m map[string]types.Field, k string) string { return aws.ToString(m[k].StringValue) }

// waitStatus polls until the activity instance has status want and returns
// the distinct statuses seen on the way.
func (e *env) waitStatus(t *testing.T, id, want string) ([]string, map[string]types.Field) {
	t.Helper()
	var seen []string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		_, f := e.activityInstance(t, id)
		if st := str(f, "@status"); st != "" && (len(seen) == 0 || seen[len(seen)-1] != st) {
			seen = append(seen, st)
		}
		if len(seen) > 0 && seen[len(seen)-1] == want {
			return seen, f
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("status %s not reached, saw %v", want, seen)
	return nil, nil
}

func TestCreatePipelineIsIdempotent(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	create := func(name, unique string) string {
		out, err := e.dp.CreatePipeline(ctx, &datapipeline.CreatePipelineInput{Name: &name, UniqueId: &unique})
		if err != nil {
			t.Fatal(err)
		}
		return *out.PipelineId
	}
	a, b, c := create("prod_txlog", "req-1"), create("prod_txlog", "req-1"), create("prod_txlog", "req-2")
	if a != b || a == c {
		t.Errorf("ids %s %s %s: want the first two equal and the third different", a, b, c)
	}
	if !regexp.MustCompile(`^df-[A-Z0-9]{19}$`).MatchString(a) {
		t.Errorf("id %q does not look like df-XXXXXXXXXXXXXXXXXXX", a)
	}
	if n := e.srv.Calls("CreatePipeline"); n != 3 {
		t.Errorf("Calls(CreatePipeline) = %d, want 3", n)
	}
	if id, ok := e.srv.PipelineIDByName("prod_txlog"); !ok || id != a {
		t.Errorf("PipelineIDByName = %s %v, want %s", id, ok, a)
	}
	if _, err := e.dp.CreatePipeline(ctx, &datapipeline.CreatePipelineInput{Name: aws.String("x"), UniqueId: aws.String("")}); !isCode[*types.InvalidRequestException](err) {
		t.Errorf("empty uniqueId: err = %v, want InvalidRequestException", err)
	}
}

func isCode[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}

func TestCrossAccountBucketGivesWarningsNotErrors(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	id := e.pipeline(t, testTable)
	objs, params, values := TemplateObjects(testBucket, testTable, "us-east-1", "aws s3 cp ...")
	for _, op := range []string{"Put", "Validate"} {
		var errored bool
		var verrs []types.ValidationError
		var warns []types.ValidationWarning
		if op == "Put" {
			out, err := e.dp.PutPipelineDefinition(ctx, &datapipeline.PutPipelineDefinitionInput{PipelineId: &id, PipelineObjects: objs, ParameterObjects: params, ParameterValues: values})
			if err != nil {
				t.Fatal(err)
			}
			errored, verrs, warns = out.Errored, out.ValidationErrors, out.ValidationWarnings
		} else {
			out, err := e.dp.ValidatePipelineDefinition(ctx, &datapipeline.ValidatePipelineDefinitionInput{PipelineId: &id, PipelineObjects: objs, ParameterObjects: params, ParameterValues: values})
			if err != nil {
				t.Fatal(err)
			}
			errored, verrs, warns = out.Errored, out.ValidationErrors, out.ValidationWarnings
		}
		if errored || len(verrs) > 0 {
			t.Errorf("%s: errored=%v errors=%+v, want none", op, errored, verrs)
		}
		got := map[string][]string{}
		for _, w := range warns {
			got[aws.ToString(w.Id)] = w.Warnings
		}
		want := "Unable to validate S3 Access for role: DataPipelineDefaultRole on bucket " + testBucket
		for _, obj := range []string{"Default", "S3BackupLocation"} {
			if !slices.Contains(got[obj], want) {
				t.Errorf("%s: warnings on %s = %q, want %q", op, obj, got[obj], want)
			}
		}
	}
	def, err := e.dp.GetPipelineDefinition(ctx, &datapipeline.GetPipelineDefinitionInput{PipelineId: &id})
	if err != nil {
		t.Fatal(err)
	}
	if len(def.PipelineObjects) != 5 || len(def.ParameterObjects) != 4 || len(def.ParameterValues) != 2 {
		t.Fatalf("definition has %d objects, %d params, %d values", len(def.PipelineObjects), len(def.ParameterObjects), len(def.ParameterValues))
	}
	for _, o := range def.PipelineObjects {
		if aws.ToString(o.Id) == "TableBackupActivity" && str(fieldMap(o), "postStepCommand") != "aws s3 cp ..." {
			t.Errorf("postStepCommand lost: %+v", fieldMap(o))
		}
	}
	if o, p, v := e.srv.Definition(id); len(o) != 5 || len(p) != 4 || len(v) != 2 {
		t.Errorf("Definition() = %d, %d, %d", len(o), len(p), len(v))
	}
}

func TestBrokenDefinitionIsErroredAndCannotBeActivated(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	tests := []struct {
		name, obj, want string
		breakIt         func(objs []types.PipelineObject, params []types.ParameterObject) ([]types.PipelineObject, []types.ParameterObject)
	}{
		{"no type", "DDBSourceTable", "'type'", func(o []types.PipelineObject, p []types.ParameterObject) ([]types.PipelineObject, []types.ParameterObject) {
			return editObject(o, "DDBSourceTable", func(f types.Field) bool { return aws.ToString(f.Key) == "type" }), p
		}},
		{"dangling ref", "TableBackupActivity", "missing object 'EmrClusterForBackup'", func(o []types.PipelineObject, p []types.ParameterObject) ([]types.PipelineObject, []types.ParameterObject) {
			return slices.DeleteFunc(o, func(x types.PipelineObject) bool { return aws.ToString(x.Id) == "EmrClusterForBackup" }), p
		}},
		{"no Default", "Default", "no 'Default' object", func(o []types.PipelineObject, p []types.ParameterObject) ([]types.PipelineObject, []types.ParameterObject) {
			return slices.DeleteFunc(o, func(x types.PipelineObject) bool { return aws.ToString(x.Id) == "Default" }), p
		}},
		{"no step", "TableBackupActivity", "'step'", func(o []types.PipelineObject, p []types.ParameterObject) ([]types.PipelineObject, []types.ParameterObject) {
			return editObject(o, "TableBackupActivity", func(f types.Field) bool { return aws.ToString(f.Key) == "step" }), p
		}},
		{"undefined parameter", "DDBSourceTable", "undefined parameter 'myDDBTableName'", func(o []types.PipelineObject, p []types.ParameterObject) ([]types.PipelineObject, []types.ParameterObject) {
			return o, slices.DeleteFunc(p, func(x types.ParameterObject) bool { return aws.ToString(x.Id) == "myDDBTableName" })
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := e.pipeline(t, "broken-"+strings.ReplaceAll(tc.name, " ", "-"))
			objs, params, values := TemplateObjects(testBucket, testTable, "us-east-1", "")
			objs, params = tc.breakIt(objs, params)
			out, err := e.dp.PutPipelineDefinition(ctx, &datapipeline.PutPipelineDefinitionInput{PipelineId: &id, PipelineObjects: objs, ParameterObjects: params, ParameterValues: values})
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, ve := range out.ValidationErrors {
				found = found || aws.ToString(ve.Id) == tc.obj && slices.ContainsFunc(ve.Errors, func(s string) bool { return strings.Contains(s, tc.want) })
			}
			if !out.Errored || !found {
				t.Errorf("errored=%v errors=%+v, want an error on %s containing %q", out.Errored, out.ValidationErrors, tc.obj, tc.want)
			}
			_, err = e.dp.ActivatePipeline(ctx, &datapipeline.ActivatePipelineInput{PipelineId: &id})
			if !isCode[*types.InvalidRequestException](err) {
				t.Errorf("activate: err = %v, want InvalidRequestException", err)
			}
			if n := e.srv.Activations(id); n != 0 {
				t.Errorf("Activations = %d", n)
			}
		})
	}
}

func editObject(objs []types.PipelineObject, id string, drop func(types.Field) bool) []types.PipelineObject {
	for i, o := range objs {
		if aws.ToString(o.Id) == id {
			objs[i].Fields = slices.DeleteFunc(slices.Clone(o.Fields), drop)
		}
	}
	return objs
}

func TestListPipelinesPages(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.PageSize = 1 })
	ctx := context.Background()
	var want []string
	for _, n := range []string{"a", "b", "c"} {
		out, err := e.dp.CreatePipeline(ctx, &datapipeline.CreatePipelineInput{Name: aws.String(n), UniqueId: aws.String(n)})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, *out.PipelineId)
	}
	var got []string
	var more []bool
	var marker *string
	for {
		out, err := e.dp.ListPipelines(ctx, &datapipeline.ListPipelinesInput{Marker: marker})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range out.PipelineIdList {
			got = append(got, aws.ToString(p.Id))
		}
		more = append(more, out.HasMoreResults)
		if !out.HasMoreResults {
			break
		}
		marker = out.Marker
	}
	if !slices.Equal(got, want) || !slices.Equal(more, []bool{true, true, false}) {
		t.Errorf("pages gave %v (hasMoreResults %v), want %v", got, more, want)
	}
	n := 0
	for pg := datapipeline.NewListPipelinesPaginator(e.dp, &datapipeline.ListPipelinesInput{}); pg.HasMorePages(); n++ {
		if _, err := pg.NextPage(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n != 3 {
		t.Errorf("SDK paginator read %d pages, want 3", n)
	}
}

func TestRunWritesExport(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	id := e.pipeline(t, testTable)
	start := time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)
	if _, err := e.dp.ActivatePipeline(ctx, &datapipeline.ActivatePipelineInput{PipelineId: &id, StartTimestamp: &start}); err != nil {
		t.Fatal(err)
	}
	seen, f := e.waitStatus(t, id, "FINISHED")
	if !slices.Equal(seen, []string{"WAITING_FOR_RUNNER", "RUNNING", "FINISHED"}) {
		t.Errorf("statuses %v", seen)
	}
	if str(f, "@scheduledStartTime") != "2024-03-04T05:06:07" || str(f, "@actualStartTime") == "" {
		t.Errorf("instance fields %+v", f)
	}
	desc, err := e.dp.DescribeObjects(ctx, &datapipeline.DescribeObjectsInput{PipelineId: &id, ObjectIds: []string{"@EmrClusterForBackup_2024-03-04T05:06:07"}})
	if err != nil || len(desc.PipelineObjects) != 1 || str(fieldMap(desc.PipelineObjects[0]), "@status") != "FINISHED" {
		t.Errorf("cluster instance: %v %+v", err, desc)
	}
	dir := testBucket + "/backups/" + testTable + "/2024-03-04-05-06-07/"
	objs := e.bucket.snapshot()
	var data []string
	for k, v := range objs {
		name, ok := strings.CutPrefix(k, dir)
		switch {
		case !ok:
			t.Errorf("object %s outside %s", k, dir)
		case name == "_SUCCESS":
			if v != "" {
				t.Errorf("_SUCCESS is not empty")
			}
		case name == "manifest":
			var m struct {
				Entries []struct{ URL string }
			}
			if err := json.Unmarshal([]byte(v), &m); err != nil || len(m.Entries) != 2 {
				t.Errorf("manifest %q: %v", v, err)
			}
		case regexp.MustCompile(`^[0-9a-f-]{36}$`).MatchString(name):
			data = append(data, strings.Split(strings.TrimSpace(v), "\n")...)
		default:
			t.Errorf("unexpected object %s", k)
		}
	}
	if _, ok := objs[dir+"manifest"]; !ok {
		t.Error("no manifest")
	}
	if _, ok := objs[dir+"_SUCCESS"]; !ok {
		t.Error("no _SUCCESS")
	}
	slices.Sort(data)
	want := []string{`{"id":{"s":"item-0"},"n":{"n":"0"},"ok":{"bOOL":true}}`, `{"id":{"s":"item-1"},"n":{"n":"1"},"ok":{"bOOL":false}}`, `{"id":{"s":"item-2"},"n":{"n":"2"},"ok":{"bOOL":true}}`}
	if !slices.Equal(data, want) {
		t.Errorf("data lines\n%s\nwant\n%s", strings.Join(data, "\n"), strings.Join(want, "\n"))
	}
	runs := e.srv.Runs(id)
	if len(runs) != 1 || len(runs[0].WrittenKeys) != 4 || runs[0].Table != testTable || len(runs[0].PostStepCommands) != 1 {
		t.Errorf("Runs = %+v", runs)
	}
	if e.srv.Activations(id) != 1 || e.srv.Calls("ActivatePipeline") != 1 {
		t.Errorf("Activations %d, Calls %d", e.srv.Activations(id), e.srv.Calls("ActivatePipeline"))
	}
	dp, err := e.dp.DescribePipelines(ctx, &datapipeline.DescribePipelinesInput{PipelineIds: []string{id}})
	if err != nil || len(dp.PipelineDescriptionList) != 1 {
		t.Fatal(err)
	}
	if st := str(fieldMap(types.PipelineObject{Fields: dp.PipelineDescriptionList[0].Fields}), "@pipelineState"); st != "FINISHED" {
		t.Errorf("@pipelineState = %s", st)
	}
}

func TestHoldAndRelease(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.WaitingFor, o.RunningFor = 20*time.Millisecond, 20*time.Millisecond })
	ctx := context.Background()
	id := e.pipeline(t, testTable)
	e.srv.Hold(testTable)
	if _, err := e.dp.ActivatePipeline(ctx, &datapipeline.ActivatePipelineInput{PipelineId: &id}); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, id, "RUNNING")
	time.Sleep(200 * time.Millisecond)
	if _, f := e.activityInstance(t, id); str(f, "@status") != "RUNNING" {
		t.Fatalf("held run is %s", str(f, "@status"))
	}
	e.srv.Release(testTable)
	e.waitStatus(t, id, "FINISHED")
}

func TestReactivationCancelsRunningRun(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	id := e.pipeline(t, testTable)
	e.srv.Hold(testTable)
	first := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	second := first.Add(time.Hour)
	for _, ts := range []*time.Time{&first, &second} {
		if _, err := e.dp.ActivatePipeline(ctx, &datapipeline.ActivatePipelineInput{PipelineId: &id, StartTimestamp: ts}); err != nil {
			t.Fatal(err)
		}
	}
	e.srv.Release(testTable)
	e.waitStatus(t, id, "FINISHED")
	runs := e.srv.Runs(id)
	if len(runs) != 2 || runs[0].Status != "CANCELED" || runs[1].Status != "FINISHED" {
		t.Errorf("runs %+v", runs)
	}
}

func TestFailNext(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	id := e.pipeline(t, testTable)
	e.srv.FailNext(testTable, "Access Denied (Service: Amazon S3; Status Code: 403)")
	if _, err := e.dp.ActivatePipeline(ctx, &datapipeline.ActivatePipelineInput{PipelineId: &id}); err != nil {
		t.Fatal(err)
	}
	_, f := e.waitStatus(t, id, "FAILED")
	if str(f, "errorMessage") != "Access Denied (Service: Amazon S3; Status Code: 403)" || str(f, "errorStackTrace") == "" {
		t.Errorf("failed instance fields %+v", f)
	}
	cl := aws.ToString(f["@resource"].RefValue)
	desc, err := e.dp.DescribeObjects(ctx, &datapipeline.DescribeObjectsInput{PipelineId: &id, ObjectIds: []string{cl}})
	if err != nil || len(desc.PipelineObjects) != 1 {
		t.Fatalf("cluster %q: %v", cl, err)
	}
	if cf := fieldMap(desc.PipelineObjects[0]); str(cf, "@status") != "CASCADE_FAILED" || aws.ToString(cf["@cascadeFailedOn"].RefValue) == "" {
		t.Errorf("cluster fields %+v", cf)
	}
	if len(e.bucket.snapshot()) != 0 {
		t.Error("a failed run wrote objects")
	}
	later := time.Now().Add(time.Hour)
	if _, err := e.dp.ActivatePipeline(ctx, &datapipeline.ActivatePipelineInput{PipelineId: &id, StartTimestamp: &later}); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, id, "FINISHED")
}

func TestScanFailureFailsRun(t *testing.T) {
	e := newEnv(t, nil)
	e.table.err = errors.New("AccessDeniedException: not authorized to perform dynamodb:Scan")
	id := e.pipeline(t, testTable)
	if _, err := e.dp.ActivatePipeline(context.Background(), &datapipeline.ActivatePipelineInput{PipelineId: &id}); err != nil {
		t.Fatal(err)
	}
	if _, f := e.waitStatus(t, id, "FAILED"); !strings.Contains(str(f, "errorMessage"), "dynamodb:Scan") {
		t.Errorf("errorMessage %q", str(f, "errorMessage"))
	}
}

func TestSeededPipelineActivates(t *testing.T) {
	e := newEnv(t, nil)
	objs, params, values := TemplateObjects(testBucket, testTable, "us-east-1", "")
	id := e.srv.SeedPipeline(testTable, objs, params, values)
	out, err := e.dp.ListPipelines(context.Background(), &datapipeline.ListPipelinesInput{})
	if err != nil || len(out.PipelineIdList) != 1 || aws.ToString(out.PipelineIdList[0].Id) != id {
		t.Fatalf("list: %v %+v", err, out)
	}
	if _, err := e.dp.ActivatePipeline(context.Background(), &datapipeline.ActivatePipelineInput{PipelineId: &id}); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, id, "FINISHED")
}

func TestRequestErrors(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	id := e.pipeline(t, testTable)
	many := make([]string, 26)
	for i := range many {
		many[i] = id
	}
	if _, err := e.dp.DescribePipelines(ctx, &datapipeline.DescribePipelinesInput{PipelineIds: many}); !isCode[*types.InvalidRequestException](err) {
		t.Errorf("26 ids: %v", err)
	}
	if _, err := e.dp.DescribeObjects(ctx, &datapipeline.DescribeObjectsInput{PipelineId: &id, ObjectIds: many}); !isCode[*types.InvalidRequestException](err) {
		t.Errorf("26 object ids: %v", err)
	}
	if _, err := e.dp.DescribePipelines(ctx, &datapipeline.DescribePipelinesInput{PipelineIds: []string{"df-NOPE"}}); !isCode[*types.PipelineNotFoundException](err) {
		t.Errorf("unknown id: %v", err)
	}
	if _, err := e.dp.QueryObjects(ctx, &datapipeline.QueryObjectsInput{PipelineId: &id, Sphere: aws.String("PLANET")}); !isCode[*types.InvalidRequestException](err) {
		t.Errorf("bad sphere: %v", err)
	}
	if _, err := e.dp.DeletePipeline(ctx, &datapipeline.DeletePipelineInput{PipelineId: &id}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.dp.GetPipelineDefinition(ctx, &datapipeline.GetPipelineDefinitionInput{PipelineId: &id}); !isCode[*types.PipelineDeletedException](err) {
		t.Errorf("deleted: %v", err)
	}
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL(), strings.NewReader(`{}`))
	req.Header.Set("X-Amz-Target", "DataPipeline.ListPipelines")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 400 || !strings.Contains(string(body), "MissingAuthenticationToken") {
		t.Errorf("unsigned request: %d %s", resp.StatusCode, body)
	}
}

func TestQueryObjectsSelectors(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.WaitingFor, o.RunningFor = 10*time.Millisecond, 10*time.Millisecond })
	ctx := context.Background()
	id := e.pipeline(t, testTable)
	if _, err := e.dp.ActivatePipeline(ctx, &datapipeline.ActivatePipelineInput{PipelineId: &id}); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, id, "FINISHED")
	q := func(sphere, field, op string, vals ...string) []string {
		out, err := e.dp.QueryObjects(ctx, &datapipeline.QueryObjectsInput{PipelineId: &id, Sphere: &sphere, Query: &types.Query{Selectors: []types.Selector{
			{FieldName: &field, Operator: &types.Operator{Type: types.OperatorType(op), Values: vals}}}}})
		if err != nil {
			t.Fatal(err)
		}
		return out.Ids
	}
	if got := q("INSTANCE", "@componentParent", "REF_EQ", "TableBackupActivity"); len(got) != 1 || !strings.HasPrefix(got[0], "@TableBackupActivity_") {
		t.Errorf("REF_EQ: %v", got)
	}
	if got := q("ATTEMPT", "@status", "EQ", "FINISHED"); len(got) != 1 || !strings.HasSuffix(got[0], "_Attempt=1") {
		t.Errorf("ATTEMPT EQ: %v", got)
	}
	if got := q("COMPONENT", "type", "EQ", "EmrActivity"); !slices.Equal(got, []string{"TableBackupActivity"}) {
		t.Errorf("COMPONENT: %v", got)
	}
}

func TestItemJSON(t *testing.T) {
	item := map[string]ddbtypes.AttributeValue{
		"s":  &ddbtypes.AttributeValueMemberS{Value: "x"},
		"n":  &ddbtypes.AttributeValueMemberN{Value: "1.5"},
		"b":  &ddbtypes.AttributeValueMemberB{Value: []byte("hi")},
		"ss": &ddbtypes.AttributeValueMemberSS{Value: []string{"a", "b"}},
		"ns": &ddbtypes.AttributeValueMemberNS{Value: []string{"1"}},
		"bs": &ddbtypes.AttributeValueMemberBS{Value: [][]byte{[]byte("hi")}},
		"m":  &ddbtypes.AttributeValueMemberM{Value: map[string]ddbtypes.AttributeValue{"k": &ddbtypes.AttributeValueMemberNULL{Value: true}}},
		"l":  &ddbtypes.AttributeValueMemberL{Value: []ddbtypes.AttributeValue{&ddbtypes.AttributeValueMemberBOOL{Value: false}}},
	}
	got, err := ItemJSON(item)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"b":{"b":"aGk="},"bs":{"bS":["aGk="]},"l":{"l":[{"bOOL":false}]},"m":{"m":{"k":{"nULL":true}}},"n":{"n":"1.5"},"ns":{"nS":["1"]},"s":{"s":"x"},"ss":{"sS":["a","b"]}}`
	if string(got) != want {
		t.Errorf("ItemJSON\n got %s\nwant %s", got, want)
	}
}

// TestEndpointFromEnvironment checks the way the bot reaches the server: the
// standard AWS_ENDPOINT_URL_DATA_PIPELINE override read by config.LoadDefaultConfig.
func TestEndpointFromEnvironment(t *testing.T) {
	e := newEnv(t, nil)
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_DATA_PIPELINE", e.srv.URL())
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := datapipeline.NewFromConfig(cfg).ListPipelines(context.Background(), &datapipeline.ListPipelinesInput{}); err != nil {
		t.Fatal(err)
	}
	if n := e.srv.Calls("ListPipelines"); n != 1 {
		t.Errorf("Calls(ListPipelines) = %d, want 1", n)
	}
}
