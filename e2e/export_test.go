package e2e

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/osio/osio-bot/app"
	"github.com/osio/osio-bot/testservers/testenv"
)

// Acceptance 2 (and the happy path): a table with no pipeline gets one
// created from the template, with the runbook's exact postStepCommand.
func TestExportCreatesPipelineFromTemplate(t *testing.T) {
	w := newWorld(t, testenv.Options{DPPageSize: 1})
	w.table("prod_txlog", 25)
	w.start(app.Options{})

	ack, id := w.request(testenv.Requester, "prod_txlog")
	if id == "" {
		t.Fatalf("ack carries no request id: %q", ack)
	}
	card, err := w.Card(w.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"prod_txlog", "create pipeline", "s3://dynamodb-migration-backups-osio/backups/prod_txlog/", "approve", "deny"} {
		if !strings.Contains(string(card.Blocks), want) {
			t.Errorf("approval card lacks %q: %s", want, card.Blocks)
		}
	}
	w.click(testenv.Approver, "approve", id)
	w.waitThread(id, "Good luck!")
	w.waitThread(id, "verified from account osio-dev")

	pid, ok := w.DP.PipelineIDByName("prod_txlog")
	if !ok {
		t.Fatal("no pipeline named prod_txlog was created")
	}
	objs, _, values := w.DP.Definition(pid)
	want := "aws s3 cp s3://dynamodb-migration-backups-osio/backups/prod_txlog/ s3://dynamodb-migration-backups-osio/backups/prod_txlog/ --recursive --acl bucket-owner-full-control --storage-class STANDARD"
	fields := map[string]string{}
	for _, o := range objs {
		for _, f := range o.Fields {
			fields[aws.ToString(o.Id)+"."+aws.ToString(f.Key)] = aws.ToString(f.StringValue) + aws.ToString(f.RefValue)
		}
	}
	if got := fields["TableBackupActivity.postStepCommand"]; got != want {
		t.Errorf("postStepCommand = %q, want %q", got, want)
	}
	if got := fields["Default.pipelineLogUri"]; got != "s3://dynamodb-migration-backups-osio/logs" {
		t.Errorf("pipelineLogUri = %q", got)
	}
	if got := fields["S3BackupLocation.directoryPath"]; got != "#{myOutputS3Loc}/#{format(@scheduledStartTime, 'YYYY-MM-dd-HH-mm-ss')}" {
		t.Errorf("directoryPath = %q", got)
	}
	vals := map[string]string{}
	for _, v := range values {
		vals[aws.ToString(v.Id)] = aws.ToString(v.StringValue)
	}
	if vals["myOutputS3Loc"] != "s3://dynamodb-migration-backups-osio/backups/prod_txlog" || vals["myDDBTableName"] != "prod_txlog" {
		t.Errorf("parameter values = %v", vals)
	}
	if n := w.DP.Activations(pid); n != 1 {
		t.Errorf("activations = %d, want 1", n)
	}
	th := w.ThreadText(id)
	for _, want := range []string{"Validation warnings", "Approved by <@" + testenv.Approver + ">", "FINISHED", "holds 3 files"} {
		if !strings.Contains(th, want) {
			t.Errorf("thread lacks %q:\n%s", want, th)
		}
	}
	w.PrintThread(testWriter{t}, id)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
