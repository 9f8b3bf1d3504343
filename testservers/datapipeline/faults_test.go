package dpserver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/datapipeline"
	"github.com/aws/aws-sdk-go-v2/service/datapipeline/types"
)

// describe returns a pipeline's DescribePipelines fields.
func (e *env) describe(t *testing.T, id string) map[string]types.Field {
	t.Helper()
	out, err := e.dp.DescribePipelines(context.Background(), &datapipeline.DescribePipelinesInput{PipelineIds: []string{id}})
	if err != nil || len(out.PipelineDescriptionList) != 1 {
		t.Fatalf("DescribePipelines: %v", err)
	}
	return fieldMap(types.PipelineObject{Fields: out.PipelineDescriptionList[0].Fields})
}

// instanceIDs lists the pipeline's INSTANCE objects.
func (e *env) instanceIDs(t *testing.T, id string) []string {
	t.Helper()
	out, err := e.dp.QueryObjects(context.Background(), &datapipeline.QueryObjectsInput{PipelineId: &id, Sphere: aws.String("INSTANCE")})
	if err != nil {
		t.Fatal(err)
	}
	return out.Ids
}

// As on AWS, the run's instances appear some time after the activation,
// while @lastActivationTime is there at once.
func TestInstancesAppearAfterInstanceDelay(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.InstanceDelay = 700 * time.Millisecond })
	id := e.pipeline(t, testTable)
	if f := e.describe(t, id); str(f, "@pipelineState") != "PENDING" || str(f, "@lastActivationTime") != "" {
		t.Errorf("before activation: state %q, @lastActivationTime %q", str(f, "@pipelineState"), str(f, "@lastActivationTime"))
	}
	before := time.Now().UTC().Truncate(time.Second)
	start := time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)
	if _, err := e.dp.ActivatePipeline(context.Background(), &datapipeline.ActivatePipelineInput{PipelineId: &id, StartTimestamp: &start}); err != nil {
		t.Fatal(err)
	}
	activated := time.Now()
	f := e.describe(t, id)
	last, err := time.Parse("2006-01-02T15:04:05", str(f, "@lastActivationTime"))
	if err != nil || last.Before(before) || last.After(time.Now()) {
		t.Errorf("@lastActivationTime %q, want the activation's time (%v)", str(f, "@lastActivationTime"), err)
	}
	if str(f, "@pipelineState") != "SCHEDULED" || str(f, "@latestRunTime") != "2024-03-04T05:06:07" {
		t.Errorf("state %q, @latestRunTime %q", str(f, "@pipelineState"), str(f, "@latestRunTime"))
	}
	if ids := e.instanceIDs(t, id); len(ids) != 0 && time.Since(activated) < 700*time.Millisecond {
		t.Fatalf("instances visible at once: %v", ids)
	}
	act := "@TableBackupActivity_2024-03-04T05:06:07"
	d, err := e.dp.DescribeObjects(context.Background(), &datapipeline.DescribeObjectsInput{PipelineId: &id, ObjectIds: []string{act}})
	if err != nil || (len(d.PipelineObjects) != 0 && time.Since(activated) < 700*time.Millisecond) {
		t.Fatalf("DescribeObjects of a hidden instance: %v %d objects", err, len(d.PipelineObjects))
	}
	for len(e.instanceIDs(t, id)) == 0 {
		if time.Since(activated) > 5*time.Second {
			t.Fatal("instances never appeared")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if waited := time.Since(activated); waited < 650*time.Millisecond {
		t.Errorf("instances appeared after %v, want >= 700ms", waited)
	}
	e.waitStatus(t, id, "FINISHED")
}

// A second activation while the first run's objects are still invisible
// cancels that run and re-runs the pipeline.
func TestReactivationBeforeInstancesAppearCancelsAndReruns(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.InstanceDelay = 300 * time.Millisecond })
	id := e.pipeline(t, testTable)
	start := time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)
	for range 2 {
		if _, err := e.dp.ActivatePipeline(context.Background(), &datapipeline.ActivatePipelineInput{PipelineId: &id, StartTimestamp: &start}); err != nil {
			t.Fatal(err)
		}
	}
	e.waitStatus(t, id, "FINISHED")
	runs := e.srv.Runs(id)
	if e.srv.Activations(id) != 2 || len(runs) != 2 || runs[0].Status != "CANCELED" || runs[1].Status != "FINISHED" {
		t.Errorf("activations %d, runs %+v", e.srv.Activations(id), runs)
	}
}

// A held answer: the activation is applied, the caller times out, the
// answer never arrives.
func TestHeldAnswerIsAppliedButNeverArrives(t *testing.T) {
	e := newEnv(t, nil)
	id := e.pipeline(t, testTable)
	e.srv.LoseAnswers("ActivatePipeline", HoldAnswer, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	_, err := e.dp.ActivatePipeline(ctx, &datapipeline.ActivatePipelineInput{PipelineId: &id})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline", err)
	}
	if n := e.srv.Activations(id); n != 1 {
		t.Errorf("Activations = %d, want 1 (applied)", n)
	}
	if str(e.describe(t, id), "@lastActivationTime") == "" {
		t.Error("no @lastActivationTime after an applied activation")
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.srv.HeldAnswers("ActivatePipeline") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the answer is still held after the client went away")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Only the next request was armed.
	if _, err := e.dp.DescribePipelines(context.Background(), &datapipeline.DescribePipelinesInput{PipelineIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
}

func TestHeldAnswerArrivesLateOnRelease(t *testing.T) {
	e := newEnv(t, nil)
	id := e.pipeline(t, testTable)
	e.srv.LoseAnswers("ActivatePipeline", HoldAnswer, 1)
	done := make(chan error, 1)
	go func() {
		_, err := e.dp.ActivatePipeline(context.Background(), &datapipeline.ActivatePipelineInput{PipelineId: &id})
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for e.srv.HeldAnswers("ActivatePipeline") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the answer was never held")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("answer arrived while held: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	e.srv.ReleaseAnswers()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("released answer never arrived")
	}
	if n := e.srv.Activations(id); n != 1 {
		t.Errorf("Activations = %d", n)
	}
}

// A dropped answer: the SDK's default retryer sends ActivatePipeline again,
// and the second activation cancels the first run. This is why the bot
// must not let the SDK retry it.
func TestDroppedAnswerAndSDKRetryActivateTwice(t *testing.T) {
	e := newEnv(t, nil)
	id := e.pipeline(t, testTable)
	e.srv.LoseAnswers("ActivatePipeline", DropAnswer, 1)
	if _, err := e.dp.ActivatePipeline(context.Background(), &datapipeline.ActivatePipelineInput{PipelineId: &id}); err != nil {
		t.Fatalf("the SDK's retry should have succeeded: %v", err)
	}
	if n := e.srv.Activations(id); n != 2 {
		t.Errorf("Activations = %d, want 2", n)
	}
	e.waitStatus(t, id, "FINISHED")
	if runs := e.srv.Runs(id); len(runs) != 2 || runs[0].Status != "CANCELED" {
		t.Errorf("runs %+v", runs)
	}

	// Without retries, the caller gets an error and one activation.
	id2 := e.pipeline(t, "other")
	e.srv.LoseAnswers("ActivatePipeline", DropAnswer, 1)
	_, err := e.dp.ActivatePipeline(context.Background(), &datapipeline.ActivatePipelineInput{PipelineId: &id2},
		func(o *datapipeline.Options) { o.RetryMaxAttempts = 1 })
	if err == nil {
		t.Fatal("a dropped answer gave no error")
	}
	if n := e.srv.Activations(id2); n != 1 {
		t.Errorf("Activations = %d, want 1", n)
	}
}

func TestClockOffsetShiftsReportedTimes(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.ClockOffset = -time.Hour })
	id := e.pipeline(t, testTable)
	if _, err := e.dp.ActivatePipeline(context.Background(), &datapipeline.ActivatePipelineInput{PipelineId: &id}); err != nil {
		t.Fatal(err)
	}
	last, err := time.Parse("2006-01-02T15:04:05", str(e.describe(t, id), "@lastActivationTime"))
	if d := time.Since(last); err != nil || d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("@lastActivationTime is %v behind, want an hour (%v)", d, err)
	}
}
