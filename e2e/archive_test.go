package e2e

import (
	"context"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/osio/osio-bot/config"
	"github.com/osio/osio-bot/testservers/testenv"
)

// Issue 11, acceptance 4: with audit.s3_uri, an ended request's record is
// written to S3 once, even when the process is SIGKILLed between the write
// and the mark that records it: the next process finds it and does not
// write it again.
func TestAuditRecordWrittenOnceAcrossKill(t *testing.T) {
	w := newWorld(t, testenv.Options{Proxies: testenv.Proxies{AWS: true}, Tweak: func(c *config.Config) {
		c.Audit = config.Audit{S3URI: "s3://" + testenv.Bucket + "/audit", Account: "osio-dev", Interval: config.Duration(200 * time.Millisecond)}
	}})
	w.table("prod_audit", 2)
	bin := buildBot(t)
	w.Vars["OSIO_BOT_FAILPOINT"] = "audit.archived"
	p1 := startProc(t, w, bin, 1)
	delete(w.Vars, "OSIO_BOT_FAILPOINT")
	_, id := w.request(testenv.Requester, "prod_audit")
	w.click(testenv.Approver, "approve", id)
	w.waitThread(id, "Request finished")
	deadline := time.Now().Add(20 * time.Second)
	for {
		data, _ := os.ReadFile(p1.log)
		if strings.Contains(string(data), "failpoint reached") && strings.Contains(string(data), "audit.archived") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first process never reached the failpoint after the write:\n%s", data)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := p1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p1.cmd.Wait()
	put := "PUT /" + testenv.Bucket + "/audit/" + id + ".json" // the proxy names S3 calls by method and path
	puts := w.AWSProxy.Count(put)
	if puts != 1 {
		t.Fatalf("%d PutObject before the kill, want 1", puts)
	}
	p2 := startProc(t, w, bin, 2)
	deadline = time.Now().Add(20 * time.Second)
	for {
		data, _ := os.ReadFile(p2.log)
		if strings.Contains(string(data), "audit record already in S3; marking it") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the second process did not find the written record:\n%s", data)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // a few more archive rounds
	if n := w.AWSProxy.Count(put); n != 1 {
		t.Errorf("%d PutObject in all, want 1", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := s3.NewFromConfig(w.Dev, func(o *s3.Options) { o.UsePathStyle = true }).GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(testenv.Bucket), Key: aws.String("audit/" + id + ".json")})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(out.Body)
	out.Body.Close()
	for _, want := range []string{`"id":"` + id + `"`, `"state":"succeeded"`, `"decided_by":"` + testenv.Approver + `"`, "Request finished"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the record lacks %q:\n%s", want, body)
		}
	}
	for _, secret := range []string{testenv.AppToken, testenv.BotToken} {
		if strings.Contains(string(body), secret) {
			t.Errorf("a token is in the S3 record")
		}
	}
}
