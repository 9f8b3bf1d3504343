package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// An AWS peer that takes a call and never answers costs one call timeout
// per attempt, and the SDK retries the attempt: the call neither hangs nor
// fails at the first stall.
func TestAWSCallsHaveADeadline(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			select { // the first attempt is held
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		_, _ = w.Write([]byte(`{"TableNames":["t"]}`))
	}))
	defer srv.Close()
	defer close(release)

	cfg := aws.Config{Region: "us-east-1", HTTPClient: AWSHTTPClient(300 * time.Millisecond),
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}
	db := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(srv.URL) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	out, err := db.ListTables(ctx, &dynamodb.ListTablesInput{})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("ListTables after a held attempt: %v (after %s)", err, took)
	}
	if len(out.TableNames) != 1 || calls.Load() != 2 {
		t.Fatalf("tables %v after %d attempts, want [t] after 2", out.TableNames, calls.Load())
	}
	if took > 5*time.Second {
		t.Fatalf("the held attempt cost %s, want about 300ms", took)
	}
	t.Logf("held attempt given up and retried in %s", took.Round(time.Millisecond))
}
