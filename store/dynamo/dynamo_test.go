package dynamo

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"

	"github.com/osio/osio-bot/store/storetest"
	"github.com/osio/osio-bot/testservers/moto"
)

// MOTO GAP: moto_server (5.2.1) is not safe under concurrent requests.
// Its TransactWriteItems deep-copies every table it touches as a backup,
// applies the items one by one and, when one fails, puts the backup back:
// concurrent requests make the copy fail ("dictionary changed size during
// iteration", an HTTP 500), and a rollback undoes whatever other requests
// wrote meanwhile. It also ignores ClientRequestToken, so a retried
// transaction is applied again. DynamoDB isolates transactions and honours
// the token for 10 minutes. So the tests send moto one request at a time,
// through a proxy holding one mutex (OSIO_MOTO_UNSERIALISED=1 lifts it, to
// see the gap): what they show about concurrency is that the store's
// compare-and-sets decide correctly between interleaved clients; that each
// transaction is applied atomically is AWS's guarantee, which moto does
// not model. The store does not rely on the token alone: a write whose
// answer was lost is recognised by the token it leaves on the item
// (TestLostAnswers). deploy/dynamodb/README.md says the same.

var (
	motoTarget *url.URL   // moto_server
	motoMu     sync.Mutex // one moto request at a time (MOTO GAP)
	unserial   = os.Getenv("OSIO_MOTO_UNSERIALISED") == "1"
	tableSeq   atomic.Int64
	skipMoto   string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dynamo-moto")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv, err := moto.Start(context.Background(), filepath.Join(dir, "moto.log"))
	switch {
	case errors.Is(err, moto.ErrMissing) && os.Getenv("CI") != "true":
		skipMoto = err.Error() + " (CI=true makes this a failure)"
		os.Exit(m.Run())
	case err != nil:
		fmt.Fprintln(os.Stderr, "store/dynamo: starting moto_server:", err)
		os.Exit(1)
	}
	motoTarget, _ = url.Parse(srv.URL)
	code := m.Run()
	srv.Close()
	if code == 0 {
		os.RemoveAll(dir)
	} else {
		fmt.Fprintln(os.Stderr, "store/dynamo: moto_server's log is in", dir)
	}
	os.Exit(code)
}

// proxy is a reverse proxy to moto that forwards one request at a time
// (see MOTO GAP). When lose(op) is true for a request, the request is
// applied but its answer is lost: the client gets an HTTP 500 instead, as
// when a connection drops after DynamoDB acted.
func proxy(t *testing.T, lose func(op string) bool) string {
	t.Helper()
	rp := httputil.NewSingleHostReverseProxy(motoTarget)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !unserial {
			motoMu.Lock()
			defer motoMu.Unlock()
		}
		op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "DynamoDB_20120810.")
		if lose != nil && lose(op) {
			rp.ServeHTTP(httptest.NewRecorder(), r)
			http.Error(w, `{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"answer lost"}`, http.StatusInternalServerError)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// recorder counts the DynamoDB operations a client calls, and the items
// each transaction writes.
type recorder struct {
	mu    sync.Mutex
	ops   map[string]int
	items map[string]int  // operation -> items written (transactions: all)
	iam   map[string]bool // the IAM actions the calls need
}

func newRecorder() *recorder {
	return &recorder{ops: map[string]int{}, items: map[string]int{}, iam: map[string]bool{}}
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops, r.items = map[string]int{}, map[string]int{}
}

// actions are the IAM actions the recorded calls need, sorted.
func (r *recorder) actions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for a := range r.iam {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

func (r *recorder) snapshot() (ops, items map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops, items = map[string]int{}, map[string]int{}
	for k, v := range r.ops {
		ops[k] = v
	}
	for k, v := range r.items {
		items[k] = v
	}
	return ops, items
}

func (r *recorder) record(op string, in any) {
	r.mu.Lock()
	r.ops[op]++
	n := 1
	if tw, ok := in.(*dynamodb.TransactWriteItemsInput); ok {
		// IAM authorises a transaction item by item.
		n = len(tw.TransactItems)
		for _, it := range tw.TransactItems {
			switch {
			case it.Put != nil:
				r.iam["dynamodb:PutItem"] = true
			case it.Update != nil:
				r.iam["dynamodb:UpdateItem"] = true
			case it.Delete != nil:
				r.iam["dynamodb:DeleteItem"] = true
			case it.ConditionCheck != nil:
				r.iam["dynamodb:ConditionCheckItem"] = true
			}
		}
	} else {
		r.iam["dynamodb:"+op] = true
	}
	r.items[op] += n
	r.mu.Unlock()
}

func (r *recorder) apiOption(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("osio-record", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		r.record(awsmiddleware.GetOperationName(ctx), in.Parameters)
		return next.HandleInitialize(ctx, in)
	}), middleware.After)
}

// client is a new DynamoDB client on moto through proxy URL via (a new
// proxy when empty), recording its calls into rec.
func client(t *testing.T, rec *recorder, via string) *dynamodb.Client {
	t.Helper()
	if skipMoto != "" {
		t.Skip(skipMoto)
	}
	if via == "" {
		via = proxy(t, nil)
	}
	if rec == nil {
		rec = newRecorder()
	}
	cfg := aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		BaseEndpoint: aws.String(via),
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, rec.apiOption)
	})
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// newTable creates a fresh table for t and returns its name.
func newTable(t *testing.T, c TableClient) string {
	t.Helper()
	name := fmt.Sprintf("osio-%d-%s", tableSeq.Add(1), unsafeName.ReplaceAllString(t.Name(), "-"))
	if len(name) > 200 {
		name = name[:200]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := CreateTable(ctx, c, name); err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	return name
}

// open is storetest.Open on moto: two separately built clients of one new
// table.
func open(rec *recorder) storetest.Open {
	return func(t *testing.T, now func() time.Time) (a, b storetest.Backend) {
		ca, cb := client(t, rec, ""), client(t, rec, "")
		table := newTable(t, ca)
		sa, err := New(ca, Options{Table: table, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		sb, err := New(cb, Options{Table: table, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return sa, sb
	}
}

func TestConformance(t *testing.T) {
	rec := newRecorder()
	n := storetest.Run(t, open(rec))
	t.Logf("%d conformance cases on DynamoDB (moto)", n)
	// The whole suite calls every operation the store has; a part of it,
	// a subset.
	checkPolicy(t, rec.actions(), flag.Lookup("test.run").Value.String() == "")
}
