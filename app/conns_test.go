package app

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// connCounter is a server that counts the connections opened to it and
// holds each call until wave calls are in, so that they overlap.
func connCounter(t *testing.T, wave int, body string) (*httptest.Server, *atomic.Int32) {
	var opened atomic.Int32
	var mu sync.Mutex
	in := 0
	gate := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		in++
		g := gate
		if in == wave {
			in = 0
			close(gate)
			gate = make(chan struct{})
		}
		mu.Unlock()
		<-g
		_, _ = w.Write([]byte(body))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &opened
}

// Issue 9: concurrent calls reuse their connections. Three waves of 16
// concurrent calls (as 16 checks to AWS, or outcomes posted to
// response_url, do) open 16 connections, not 16 per wave: net/http keeps
// only 2 idle connections per host by default, so it closed the others
// after each call and dialled again for the next.
func TestConcurrentCallsReuseConnections(t *testing.T) {
	// A call of the next wave may start a moment before a connection of
	// the last one is back in the pool, and dial: about n, then.
	const n, waves, slack = 16, 3, 16 + 4
	t.Run("slack", func(t *testing.T) {
		srv, opened := connCounter(t, n, `{"ok":true}`)
		hc := SlackHTTPClient()
		for range waves {
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() {
					resp, err := hc.Post(srv.URL, "application/json", nil)
					if err != nil {
						t.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				})
			}
			wg.Wait()
		}
		if got := opened.Load(); got > slack {
			t.Errorf("%d waves of %d calls opened %d connections, want about %d", waves, n, got, n)
		}
	})
	t.Run("aws", func(t *testing.T) {
		srv, opened := connCounter(t, n, `{"TableNames":["t"]}`)
		cfg := aws.Config{Region: "us-east-1", HTTPClient: AWSHTTPClient(0),
			Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}
		db := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(srv.URL) })
		for range waves {
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() {
					if _, err := db.ListTables(context.Background(), &dynamodb.ListTablesInput{}); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
		}
		if got := opened.Load(); got > slack {
			t.Errorf("%d waves of %d calls opened %d connections, want about %d", waves, n, got, n)
		}
	})
}

// Issue 9: the AWS client opens at most maxIdlePerHost connections to one
// endpoint; more calls at once wait for one instead of dialling (100
// plans at once dialled 100 times, and overflowed the peer's listen
// queue).
func TestAWSConnectionsAreBounded(t *testing.T) {
	const calls = maxIdlePerHost + 36
	var mu sync.Mutex
	in, most, started := 0, 0, 0
	gate := make(chan struct{})
	open, mostOpen := 0, 0 // connections open at once
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		in++
		started++
		most = max(most, in)
		if in == maxIdlePerHost || started == calls {
			select {
			case <-gate:
			default:
				close(gate)
			}
		}
		mu.Unlock()
		<-gate
		_, _ = w.Write([]byte(`{"TableNames":["t"]}`))
		mu.Lock()
		in--
		mu.Unlock()
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch s {
		case http.StateNew:
			open++
			mostOpen = max(mostOpen, open)
		case http.StateClosed, http.StateHijacked:
			open--
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	cfg := aws.Config{Region: "us-east-1", HTTPClient: AWSHTTPClient(0),
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}
	db := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(srv.URL) })
	var wg sync.WaitGroup
	for range calls {
		wg.Go(func() {
			if _, err := db.ListTables(context.Background(), &dynamodb.ListTablesInput{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if most > maxIdlePerHost || mostOpen > maxIdlePerHost {
		t.Errorf("%d calls at once: %d in flight and %d connections open at most; want at most %d", calls, most, mostOpen, maxIdlePerHost)
	}
}
