package e2e

import (
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/osio/osio-bot/app"
	"github.com/osio/osio-bot/config"
	"github.com/osio/osio-bot/testservers/testenv"
)

func (w *world) richTable(name string, n int, pitr bool) {
	w.t.Helper()
	if err := w.CreateRichTable(w.ctx, name, n, pitr); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) exports(table string) int {
	w.t.Helper()
	db := dynamodb.NewFromConfig(w.Prod)
	d, err := db.DescribeTable(w.ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		w.t.Fatal(err)
	}
	out, err := db.ListExports(w.ctx, &dynamodb.ListExportsInput{TableArn: d.Table.TableArn})
	if err != nil {
		w.t.Fatal(err)
	}
	return len(out.ExportSummaries)
}

func (w *world) devKeys(prefix string) []string {
	w.t.Helper()
	c := s3.NewFromConfig(w.Dev, func(o *s3.Options) { o.UsePathStyle = true })
	out, err := c.ListObjectsV2(w.ctx, &s3.ListObjectsV2Input{Bucket: aws.String(testenv.Bucket), Prefix: aws.String(prefix)})
	if err != nil {
		w.t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

func (w *world) restore(user, text string) (string, string) {
	w.t.Helper()
	ack, id, err := w.Slash(w.ctx, user, "/osio-restore", text)
	if err != nil {
		w.t.Fatal(err)
	}
	return ack, id
}

func sortedItems(items []map[string]ddbtypes.AttributeValue) []string {
	var out []string
	for _, it := range items {
		out = append(out, canon(it))
	}
	sort.Strings(out)
	return out
}

// canon renders an item deterministically (sets sorted: DynamoDB does not
// keep set order).
func canon(v any) string {
	switch x := v.(type) {
	case map[string]ddbtypes.AttributeValue:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		b.WriteString("{")
		for _, k := range keys {
			fmt.Fprintf(&b, "%q:%s,", k, canon(x[k]))
		}
		return b.String() + "}"
	case *ddbtypes.AttributeValueMemberS:
		return "S" + fmt.Sprintf("%q", x.Value)
	case *ddbtypes.AttributeValueMemberN:
		return "N" + x.Value
	case *ddbtypes.AttributeValueMemberB:
		return fmt.Sprintf("B%x", x.Value)
	case *ddbtypes.AttributeValueMemberBOOL:
		return fmt.Sprintf("BOOL%v", x.Value)
	case *ddbtypes.AttributeValueMemberNULL:
		return "NULL"
	case *ddbtypes.AttributeValueMemberM:
		return "M" + canon(x.Value)
	case *ddbtypes.AttributeValueMemberL:
		var parts []string
		for _, e := range x.Value {
			parts = append(parts, canon(e))
		}
		return "L[" + strings.Join(parts, ",") + "]"
	case *ddbtypes.AttributeValueMemberSS:
		s := append([]string(nil), x.Value...)
		sort.Strings(s)
		return fmt.Sprintf("SS%q", s)
	case *ddbtypes.AttributeValueMemberNS:
		s := append([]string(nil), x.Value...)
		sort.Strings(s)
		return fmt.Sprintf("NS%v", s)
	case *ddbtypes.AttributeValueMemberBS:
		var s []string
		for _, b := range x.Value {
			s = append(s, fmt.Sprintf("%x", b))
		}
		sort.Strings(s)
		return fmt.Sprintf("BS%v", s)
	}
	return fmt.Sprintf("?%T", v)
}

// Issue 3, acceptance 1 and 2: a 1,000-item table with every attribute
// type is exported natively into the dev bucket and verified; then
// /osio-restore imports it into a new dev table equal item for item.
func TestNativeExportAndRestore(t *testing.T) {
	w := newWorld(t, testenv.Options{})
	w.richTable("prod_orders", 1000, true)
	w.start(app.Options{})

	ack, id := w.request(testenv.Requester, "--native prod_orders")
	if id == "" {
		t.Fatalf("no request: %s", ack)
	}
	if b := cardState(t, w, id); !strings.Contains(b, "DynamoDB native export to S3") || !strings.Contains(b, "ExportTableToPointInTime") {
		t.Errorf("card does not show the native method: %s", b)
	}
	w.click(testenv.Approver, "approve", id)
	w.waitThread(id, "Good luck!")
	th := w.ThreadText(id)
	if !strings.Contains(th, "(1000 items exported)") || !strings.Contains(th, "verified from account osio-dev (619539278362): `s3://dynamodb-migration-backups-osio/backups/prod_orders/AWSDynamoDB/") {
		t.Errorf("thread lacks the verified export:\n%s", th)
	}
	if !strings.Contains(th, "/osio-restore "+id+" TABLE NEW_TABLE_NAME") {
		t.Errorf("follow-up lacks the restore instructions:\n%s", th)
	}
	keys := w.devKeys("backups/prod_orders/AWSDynamoDB/")
	if len(keys) == 0 || !strings.Contains(strings.Join(keys, " "), "/data/") {
		t.Fatalf("dev bucket keys under backups/prod_orders: %v", keys)
	}
	if n := w.exports("prod_orders"); n != 1 {
		t.Errorf("%d exports, want 1", n)
	}
	if n := w.DP.Calls("CreatePipeline") + w.DP.Calls("ActivatePipeline"); n != 0 {
		t.Errorf("native export used Data Pipeline (%d calls)", n)
	}

	ack, rid := w.restore(testenv.Requester, id+" prod_orders dev_orders")
	if rid == "" {
		t.Fatalf("restore refused: %s", ack)
	}
	w.click(testenv.Approver, "approve", rid)
	w.waitThread(rid, "is ready in osio-dev")
	rth := w.ThreadText(rid)
	if !strings.Contains(rth, "1000 items imported") || !strings.Contains(rth, "http://slack.local/archives/") {
		t.Errorf("restore thread lacks the count or the link to the export's thread:\n%s", rth)
	}
	src, err := testenv.Scan(w.ctx, dynamodb.NewFromConfig(w.Prod), "prod_orders")
	if err != nil {
		t.Fatal(err)
	}
	dst, err := testenv.Scan(w.ctx, dynamodb.NewFromConfig(w.Dev), "dev_orders")
	if err != nil {
		t.Fatal(err)
	}
	if len(src) != 1000 || len(dst) != 1000 {
		t.Fatalf("source has %d items, restored table %d", len(src), len(dst))
	}
	if a, b := sortedItems(src), sortedItems(dst); !reflect.DeepEqual(a, b) {
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("first difference at %d:\nsource   %s\nrestored %s", i, a[i], b[i])
			}
		}
	}
	// The restore went to the dev account only.
	if _, err := dynamodb.NewFromConfig(w.Prod).DescribeTable(w.ctx, &dynamodb.DescribeTableInput{TableName: aws.String("dev_orders")}); err == nil {
		t.Error("dev_orders exists in the production account")
	}
}

// Issue 3, acceptance 3: with PITR off the request is refused before
// approval and no export starts.
func TestNativeRefusedWithoutPITR(t *testing.T) {
	w := newWorld(t, testenv.Options{Tweak: func(c *config.Config) { c.Export.Method = "native" }})
	w.richTable("prod_nopitr", 3, false)
	w.start(app.Options{})
	ack, id := w.request(testenv.Requester, "prod_nopitr")
	if id != "" {
		t.Fatalf("request %s created: %s", id, ack)
	}
	for _, want := range []string{"Point-in-time recovery is off for `prod_nopitr`", "update-continuous-backups", "/osio-export --datapipeline prod_nopitr"} {
		if !strings.Contains(ack, want) {
			t.Errorf("refusal %q lacks %q", ack, want)
		}
	}
	if n := w.exports("prod_nopitr"); n != 0 {
		t.Errorf("%d exports started", n)
	}
	if n := len(w.Slack.Messages(testenv.Channel)); n != 0 {
		t.Errorf("%d approval messages posted", n)
	}
}

// Issue 3, acceptance 4: SIGKILL while watching an export, restart, and it
// finishes without a second export.
func TestNativeKillWhileWatching(t *testing.T) {
	w := newWorld(t, testenv.Options{Tweak: func(c *config.Config) {
		c.Export.PollInterval = config.Duration(3 * time.Second)
		c.Export.PollMaxInterval = config.Duration(3 * time.Second)
	}})
	w.richTable("prod_kill", 50, true)
	bin := buildBot(t)
	p1 := startProc(t, w, bin, 1)
	_, id := w.request(testenv.Requester, "--native prod_kill")
	w.click(testenv.Approver, "approve", id)
	w.waitThread(id, "started native export")
	if err := p1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p1.cmd.Wait()
	if strings.Contains(w.ThreadText(id), "verified") {
		t.Fatal("the export finished before the kill; the test did not kill during the watch")
	}
	p2 := startProc(t, w, bin, 2)
	w.waitThread(id, "Good luck!")
	if n := w.exports("prod_kill"); n != 1 {
		t.Errorf("%d exports after restart, want 1", n)
	}
	if n := strings.Count(w.ThreadText(id), "started native export"); n != 1 {
		t.Errorf("thread says 'started native export' %d times", n)
	}
	logs, _ := os.ReadFile(p2.log)
	if !strings.Contains(string(logs), "resuming request") {
		t.Errorf("second process did not resume:\n%s", logs)
	}
}

// Issue 3, acceptance 5: every refusal of /osio-restore, and an export
// that ends FAILED.
func TestRestoreRefusalsAndFailedExport(t *testing.T) {
	w := newWorld(t, testenv.Options{Tweak: func(c *config.Config) { c.Restore.RequireApproval = false }})
	w.richTable("prod_r", 20, true)
	w.table("prod_dp", 3)
	w.start(app.Options{})

	// A finished native export to restore from.
	_, good := w.request(testenv.Requester, "--native prod_r")
	w.click(testenv.Approver, "approve", good)
	w.waitThread(good, "Good luck!")
	w.waitThread(good, "Request finished")
	// A finished Data Pipeline export.
	_, dp := w.request(testenv.Requester, "prod_dp")
	w.click(testenv.Approver, "approve", dp)
	w.waitThread(dp, "Request finished")
	// A pending one.
	w.richTable("prod_pending", 1, true)
	_, pending := w.request(testenv.Requester, "--native prod_pending")
	// A failed one: the bucket is gone when it runs.
	w.richTable("prod_doomed", 1, true)
	_, doomed := w.request(testenv.Requester, "--native prod_doomed")
	if err := w.DeleteBucket(w.ctx); err != nil {
		t.Fatal(err)
	}
	w.click(testenv.Approver, "approve", doomed)
	w.waitThread(doomed, "* failed: ")
	if th := w.ThreadText(doomed); !strings.Contains(th, "FAILED: S3NoSuchBucket: The specified bucket does not exist") {
		t.Errorf("failed export's thread lacks the failure:\n%s", th)
	}
	if err := w.CreateBucket(w.ctx); err != nil {
		t.Fatal(err)
	}
	devDB := dynamodb.NewFromConfig(w.Dev)
	if _, err := devDB.CreateTable(w.ctx, &dynamodb.CreateTableInput{TableName: aws.String("dev_taken"),
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: ddbtypes.KeyTypeHash}},
		BillingMode:          ddbtypes.BillingModePayPerRequest}); err != nil {
		t.Fatal(err)
	}

	cases := []struct{ name, text, want string }{
		{"unknown", "R-999999 prod_r dev_x", "There is no request `R-999999`"},
		{"still running", pending + " prod_pending dev_x", "is still pending"},
		{"failed", doomed + " prod_doomed dev_x", "ended failed, so there is no export to restore"},
		{"data pipeline", dp + " prod_dp dev_x", "was exported with Data Pipeline"},
		{"table not in request", good + " prod_other dev_x", "did not export `prod_other`"},
		{"invalid name", good + " prod_r bad/name", "`bad/name` is not a valid DynamoDB table name"},
		{"exists", good + " prod_r dev_taken", "A table named `dev_taken` already exists in osio-dev"},
		{"usage", good + " prod_r", "Usage: `/osio-restore REQUEST-ID TABLE NEW_TABLE_NAME`"},
	}
	for _, c := range cases {
		ack, id := w.restore(testenv.Requester, c.text)
		if id != "" {
			t.Errorf("%s: request %s created: %s", c.name, id, ack)
		}
		if !strings.Contains(ack, c.want) {
			t.Errorf("%s: reply %q lacks %q", c.name, ack, c.want)
		}
	}
	if ack, _ := w.restore(testenv.Requester, dp+" prod_dp dev_x"); !strings.Contains(ack, "dp-importexport-ddb-part1.html") {
		t.Errorf("Data Pipeline refusal does not point at the runbook's manual: %s", ack)
	}

	// With require_approval off, a valid restore runs without a click.
	ack, rid := w.restore(testenv.Requester, good+" prod_r dev_r")
	if rid == "" {
		t.Fatalf("valid restore refused: %s", ack)
	}
	w.waitThread(rid, "is ready in osio-dev")
	if th := w.ThreadText(rid); !strings.Contains(th, "Approved automatically") {
		t.Errorf("auto-approved restore thread:\n%s", th)
	}
}
