package bot_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
	"go.uber.org/zap"

	"github.com/osio/osio-bot/bot"
	"github.com/osio/osio-bot/store"
	slackserver "github.com/osio/osio-bot/testservers/slack"
)

// memChecker answers table checks from memory. It stands in for the AWS
// DescribeTable call, which the real exporter caches for 5 minutes after
// the first check of a table; the benchmark measures the bot's own path:
// Socket Mode envelope in, parse, validation, the durable bbolt write
// (fsync), ack out.
type memChecker struct{}

func (memChecker) CheckNames(t []string) ([]string, string)              { return t, "" }
func (memChecker) CheckTables(context.Context, []string) (string, error) { return "", nil }
func (memChecker) CheckNative(context.Context, []string) (string, error) { return "", nil }
func (memChecker) Plan(_ context.Context, _ string, t []string) []string {
	return []string{"plan " + t[0]}
}
func (memChecker) Method() string { return "datapipeline" }

type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(_ string, d time.Duration) { l.mu.Lock(); l.d = append(l.d, d); l.mu.Unlock() }

// waitAcks waits for the ack of each envelope and adds its round trip.
func (l *latencies) waitAcks(ctx context.Context, b *testing.B, srv *slackserver.Server, envelopes []string) {
	b.Helper()
	for _, e := range envelopes {
		ack, err := srv.WaitAck(ctx, e)
		if err != nil {
			b.Fatal(err)
		}
		l.add("", ack.Latency)
	}
}

func (l *latencies) pct(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), l.d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkSlashAck measures envelope received -> ack sent for
// "/osio-export TABLE", each creating a durable request, at 1 and at 50
// concurrent commands. It reports p50/p99 as measured inside the bot and
// p99 of the whole round trip as the Slack server saw it.
func BenchmarkSlashAck(b *testing.B) {
	for _, conc := range []int{1, 50} {
		b.Run(fmt.Sprintf("concurrent=%d", conc), func(b *testing.B) {
			st, err := store.Open(filepath.Join(b.TempDir(), "bench.db"), store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			slashAck(b, st, conc)
		})
	}
}

// slashAck runs the bot on st against the local Slack server and sends
// b.N rounds of conc "/osio-export bench_table_N" commands at once; it
// reports p50/p99 inside the bot and the round trip's p99.
func slashAck(b *testing.B, st bot.Store, conc int) {
	srv, err := slackserver.New(slackserver.Options{PingInterval: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	srv.AddChannel("CAPPROVALS", "approvals")
	srv.AddUserGroup("SCATCHERS", "UCATCHER")
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
		rtt.waitAcks(ctx, b, srv, ids)
	}
	b.StopTimer()
	b.ReportMetric(float64(lat.pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat.pct(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(rtt.pct(0.99).Microseconds())/1000, "rtt-p99-ms")
}

type noRunner struct{}

func (noRunner) Run(string) {}

// BenchmarkClickAck measures a button click's round trip (sent -> ack, as
// the Slack server sees it) at 1 and 50 concurrent clicks, with Slack's Web
// API answering, and with usergroups.users.list and chat.postEphemeral
// stalled (no answer until the bot's own 10 s deadline): a click is acked
// before it is authorized and answered, so the stall must not show.
func BenchmarkClickAck(b *testing.B) {
	for _, stalled := range []bool{false, true} {
		for _, conc := range []int{1, 50} {
			b.Run(fmt.Sprintf("stalled=%t/concurrent=%d", stalled, conc), func(b *testing.B) {
				srv, err := slackserver.New(slackserver.Options{PingInterval: time.Second})
				if err != nil {
					b.Fatal(err)
				}
				defer srv.Close()
				srv.AddChannel("CAPPROVALS", "approvals")
				srv.AddUserGroup("SCATCHERS", "UCATCHER")
				st, err := store.Open(filepath.Join(b.TempDir(), "bench.db"), store.Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				api := slack.New("xoxb-bench", slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken("xapp-bench"))
				kinds := map[string]bot.Kind{"export": bot.ExportKind(memChecker{})}
				rep := bot.NewReporter(api, st, bot.ReporterOptions{MinInterval: time.Millisecond, ProgressInterval: time.Second,
					Render: bot.RenderCard(kinds, []string{"SCATCHERS"}), Log: zap.NewNop()})
				bt := bot.New(bot.Deps{
					Settings: bot.Settings{ApprovalsChannel: "CAPPROVALS", ApproverGroups: []string{"SCATCHERS"}, Expiry: time.Hour, SweepInterval: time.Hour},
					API:      api, Socket: socketmode.New(api), Store: st, Runner: noRunner{}, Reporter: rep,
					Approvers: bot.NewApprovers(api, []string{"SCATCHERS"}, time.Minute, time.Now),
					Kinds:     kinds, Log: zap.NewNop(),
				})
				bt.AddCommand(bt.ExportCommand(memChecker{}, "osio", "osio-dev"))
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { _ = bt.Run(ctx); close(done) }()
				defer func() { cancel(); <-done }()
				if err := srv.WaitConnected(ctx); err != nil {
					b.Fatal(err)
				}
				// One request with its card: the clicks are an outsider's
				// Approve on it (authorized, refused, told).
				if _, err := srv.SlashCommand(ctx, slackserver.SlashCommand{Command: "/osio-export", Text: "bench_click", UserID: "UDEV", ChannelID: "CDEV"}); err != nil {
					b.Fatal(err)
				}
				var card slackserver.Message
				if err := srv.WaitFor(ctx, func() bool {
					for _, m := range srv.Messages("CAPPROVALS") {
						if m.ThreadTS == "" && len(m.Blocks) > 0 {
							card = m
							return true
						}
					}
					return false
				}); err != nil {
					b.Fatal(err)
				}
				id := "R-000001"
				if stalled {
					srv.HangNext("usergroups.users.list", 1<<20)
					srv.HangNext("chat.postEphemeral", 1<<20)
				}
				var rtt latencies
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					ids := make([]string, conc)
					for j := range ids {
						ids[j], err = srv.SendClick(slackserver.Click{UserID: "UOUTSIDER", ChannelID: "CAPPROVALS", MessageTS: card.TS, ActionID: "approve", BlockID: "decide", Value: id})
						if err != nil {
							b.Fatal(err)
						}
					}
					rtt.waitAcks(ctx, b, srv, ids)
				}
				b.StopTimer()
				b.ReportMetric(float64(rtt.pct(0.50).Microseconds())/1000, "rtt-p50-ms")
				b.ReportMetric(float64(rtt.pct(0.99).Microseconds())/1000, "rtt-p99-ms")
			})
		}
	}
}
