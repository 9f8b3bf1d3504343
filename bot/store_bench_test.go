package bot_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
	"go.uber.org/zap"

	"github.com/osio/osio-bot/bot"
	"github.com/osio/osio-bot/store"
	"github.com/osio/osio-bot/store/dynamo"
	"github.com/osio/osio-bot/testservers/moto"
	slackserver "github.com/osio/osio-bot/testservers/slack"
)

// benchStore opens the store of one backend for a benchmark: bolt on the
// local disk, or dynamodb in moto_server behind a proxy that hands moto
// one request at a time (moto's transactions are not isolated: the MOTO
// GAP in store/dynamo). moto, single-threaded Python on the same 2 cores,
// is then the bound, not DynamoDB.
func benchStore(b *testing.B, backend string) bot.Store {
	b.Helper()
	switch backend {
	case "bolt":
		st, err := store.Open(filepath.Join(b.TempDir(), "bench.db"), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return st
	}
	srv, err := moto.Start(context.Background(), filepath.Join(b.TempDir(), "moto.log"))
	if errors.Is(err, moto.ErrMissing) && os.Getenv("CI") != "true" {
		b.Skip(err)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	target, _ := url.Parse(srv.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	px := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	b.Cleanup(px.Close)
	c := dynamodb.NewFromConfig(srv.Base("us-east-1"), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(px.URL) })
	if err := dynamo.CreateTable(context.Background(), c, "bench"); err != nil {
		b.Fatal(err)
	}
	st, err := dynamo.New(c, dynamo.Options{Table: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkSlashAckByStore is BenchmarkSlashAck on each store backend
// (issue 10, acceptance 7): envelope received -> ack sent for
// "/osio-export TABLE", each a new durable intake, at 1 and 50 at once.
//
//	go test ./bot -run '^$' -bench BenchmarkSlashAckByStore -benchtime 40x
func BenchmarkSlashAckByStore(b *testing.B) {
	for _, backend := range []string{"bolt", "dynamodb"} {
		for _, conc := range []int{1, 50} {
			b.Run(fmt.Sprintf("store=%s/concurrent=%d", backend, conc), func(b *testing.B) {
				srv, err := slackserver.New(slackserver.Options{PingInterval: time.Second})
				if err != nil {
					b.Fatal(err)
				}
				defer srv.Close()
				srv.AddChannel("CAPPROVALS", "approvals")
				srv.AddUserGroup("SCATCHERS", "UCATCHER")
				st := benchStore(b, backend)
				api := slack.New("xoxb-bench", slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken("xapp-bench"))
				lat := &latencies{}
				kinds := map[string]bot.Kind{"export": bot.ExportKind(memChecker{})}
				rep := bot.NewReporter(api, st, bot.ReporterOptions{MinInterval: time.Millisecond, ProgressInterval: time.Second,
					Render: bot.RenderCard(kinds, []string{"SCATCHERS"}), Log: zap.NewNop()})
				bt := bot.New(bot.Deps{
					Settings: bot.Settings{ApprovalsChannel: "CAPPROVALS", ApproverGroups: []string{"SCATCHERS"}, Expiry: time.Hour, SweepInterval: time.Hour},
					API:      api, Socket: socketmode.New(api), Store: st, Runner: noRunner{}, Reporter: rep,
					Approvers: bot.NewApprovers(api, []string{"SCATCHERS"}, time.Minute, time.Now),
					Kinds:     kinds, Log: zap.NewNop(), AckObserved: lat.add,
				})
				bt.AddCommand(bt.ExportCommand(memChecker{}, "osio", "osio-dev"))
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { _ = bt.Run(ctx); close(done) }()
				defer func() { cancel(); <-done }()
				if err := srv.WaitConnected(ctx); err != nil {
					b.Fatal(err)
				}
				var rtt latencies
				n := 0
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					ids := make([]string, conc)
					for j := range ids {
						n++
						ids[j], err = srv.SendSlashCommand(slackserver.SlashCommand{Command: "/osio-export", Text: fmt.Sprintf("bench_table_%07d", n), UserID: "UDEV", ChannelID: "CDEV"})
						if err != nil {
							b.Fatal(err)
						}
					}
					for _, id := range ids {
						ack, err := srv.WaitAck(ctx, id)
						if err != nil {
							b.Fatal(err)
						}
						rtt.add("", ack.Latency)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(lat.pct(0.50).Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat.pct(0.99).Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(rtt.pct(0.99).Microseconds())/1000, "rtt-p99-ms")
			})
		}
	}
}
