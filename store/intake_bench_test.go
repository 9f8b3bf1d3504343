package store

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/osio/osio-bot/actions"
)

// BenchmarkIntakeWrite is the store's share of a slash command's ack
// (issue 9): 2,000 intake writes (a received request, its lock and its
// envelope claim, as bot.Intake writes them) at 50 in flight, on a fresh
// file, as BenchmarkExportAck's c=50 phase makes them. It reports each
// write's latency (p50, p99) and the writes per commit.
//
//	go test ./store -run '^$' -bench BenchmarkIntakeWrite -benchtime 1x
func BenchmarkIntakeWrite(b *testing.B) {
	const n, conc = 2000, 50
	for range b.N {
		s, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		lat := make([]time.Duration, n)
		var next atomic.Int64
		before := s.w.commits.Load()
		var wg sync.WaitGroup
		for range conc {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= n {
						return
					}
					env := make([]byte, 16)
					_, _ = rand.Read(env)
					table := fmt.Sprintf("bench_%05d", i)
					r := &actions.Request{Kind: "export", State: actions.Received, Requester: "UDEV", Origin: "CDEV",
						Thread: actions.Thread{Channel: "CAPPROVALS"}, ExpiresAt: time.Now().Add(24 * time.Hour),
						Input: "/osio-export " + table, What: "export of `" + table + "` by AWS Data Pipeline (runbook)",
						Args: []byte(`{"tables":["` + table + `"],"method":"datapipeline"}`), Locks: []string{"export:" + table}}
					start := time.Now()
					if _, err := s.Create(r, hex.EncodeToString(env)); err != nil {
						b.Error(err)
						return
					}
					lat[i] = time.Since(start)
				}
			})
		}
		wg.Wait()
		commits := s.w.commits.Load() - before
		s.Close()
		slices.Sort(lat)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		b.ReportMetric(ms(lat[n/2]), "p50-ms")
		b.ReportMetric(ms(lat[n*99/100]), "p99-ms")
		b.ReportMetric(float64(n)/float64(commits), "writes/commit")
	}
}
