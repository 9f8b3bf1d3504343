package dpserver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/datapipeline"
)

// TestFailAndFinishHeldRuns: a held run is failed or finished on demand,
// with the objects AWS shows for that end; an unheld or ended run cannot
// be changed.
func TestFailAndFinishHeldRuns(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.WaitingFor, o.RunningFor = 20*time.Millisecond, 20*time.Millisecond })
	ctx := context.Background()
	id := e.pipeline(t, testTable)
	if err := e.srv.FailRun(id, "x"); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("FailRun with no run = %v", err)
	}
	e.srv.Hold(testTable)
	if _, err := e.dp.ActivatePipeline(ctx, &datapipeline.ActivatePipelineInput{PipelineId: &id}); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, id, "RUNNING")
	ps := e.srv.Pipelines()
	if len(ps) != 1 || ps[0].ID != id || ps[0].Name != testTable || !ps[0].Held || ps[0].State != "SCHEDULED" ||
		len(ps[0].Runs) != 1 || ps[0].Runs[0].Status != "RUNNING" {
		t.Fatalf("Pipelines = %+v", ps)
	}
	if err := e.srv.FailRun(id, "Access Denied (Service: Amazon S3; Status Code: 403)"); err != nil {
		t.Fatal(err)
	}
	_, f := e.waitStatus(t, id, "FAILED")
	if str(f, "errorMessage") != "Access Denied (Service: Amazon S3; Status Code: 403)" || str(f, "errorStackTrace") == "" {
		t.Errorf("failed instance fields %+v", f)
	}
	if e.srv.Held(testTable) {
		t.Error("FailRun left the name held")
	}
	if len(e.bucket.snapshot()) != 0 {
		t.Error("a failed run wrote objects")
	}
	if err := e.srv.FinishRun(id); !errors.Is(err, ErrNotHeld) {
		t.Errorf("FinishRun on a failed run = %v", err)
	}

	e.srv.Hold(testTable)
	later := time.Now().Add(time.Hour)
	if _, err := e.dp.ActivatePipeline(ctx, &datapipeline.ActivatePipelineInput{PipelineId: &id, StartTimestamp: &later}); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, id, "RUNNING")
	time.Sleep(100 * time.Millisecond)
	if _, f := e.activityInstance(t, id); str(f, "@status") != "RUNNING" {
		t.Fatalf("held run is %s", str(f, "@status"))
	}
	if err := e.srv.FinishRun(id); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, id, "FINISHED")
	if len(e.bucket.snapshot()) == 0 {
		t.Error("a finished run wrote nothing")
	}
	if runs := e.srv.Pipelines()[0].Runs; len(runs) != 2 || runs[0].Status != "FAILED" || runs[1].Status != "FINISHED" {
		t.Errorf("runs %+v", runs)
	}
	if err := e.srv.FailRun("df-nope", "x"); err == nil || errors.Is(err, ErrNotHeld) {
		t.Errorf("FailRun of an unknown pipeline = %v", err)
	}
}
