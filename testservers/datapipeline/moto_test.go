package dpserver

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/datapipeline"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// startMoto runs moto_server on a free loopback port and returns its URL.
func startMoto(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("moto_server is not on PATH (required when CI=true)")
		}
		t.Skip("moto_server is not on PATH")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(url + "/moto-api/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
	}
	t.Fatal("moto_server did not answer on " + url)
	return ""
}

func TestExportWithMoto(t *testing.T) {
	motoURL := startMoto(t)
	ctx := context.Background()
	ddb := dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) { o.BaseEndpoint = &motoURL })
	s3c := s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.BaseEndpoint = &motoURL; o.UsePathStyle = true })
	if _, err := ddb.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(testTable),
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: ddbtypes.KeyTypeHash}},
		BillingMode:          ddbtypes.BillingModePayPerRequest,
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(testTable), Item: map[string]ddbtypes.AttributeValue{
			"id":   &ddbtypes.AttributeValueMemberS{Value: fmt.Sprintf("tx-%d", i)},
			"amt":  &ddbtypes.AttributeValueMemberN{Value: fmt.Sprint(i * 10)},
			"tags": &ddbtypes.AttributeValueMemberSS{Value: []string{"a", "b"}},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(testBucket)}); err != nil {
		t.Fatal(err)
	}

	srv, err := New(Options{Source: ddb, Sink: s3c, CrossAccountBuckets: []string{testBucket},
		WaitingFor: 50 * time.Millisecond, RunningFor: 50 * time.Millisecond, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	e := &env{srv: srv, dp: datapipeline.NewFromConfig(awsCfg, func(o *datapipeline.Options) { o.BaseEndpoint = aws.String(srv.URL()) })}
	id := e.pipeline(t, testTable)
	start := time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)
	if _, err := e.dp.ActivatePipeline(ctx, &datapipeline.ActivatePipelineInput{PipelineId: &id, StartTimestamp: &start}); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, id, "FINISHED")

	prefix := "backups/" + testTable + "/2025-06-07-08-09-10/"
	list, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(testBucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	lines := 0
	for _, o := range list.Contents {
		name := strings.TrimPrefix(aws.ToString(o.Key), prefix)
		names = append(names, name)
		if name == "manifest" || name == "_SUCCESS" {
			continue
		}
		obj, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: o.Key})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(obj.Body)
		obj.Body.Close()
		for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
			lines++
			if !strings.Contains(l, `"id":{"s":"tx-`) || !strings.Contains(l, `"tags":{"sS":["a","b"]}`) {
				t.Errorf("line %s", l)
			}
		}
	}
	if !slices.Contains(names, "manifest") || !slices.Contains(names, "_SUCCESS") || lines != 5 {
		t.Errorf("objects %v with %d lines, want data files, manifest, _SUCCESS and 5 lines", names, lines)
	}
}
