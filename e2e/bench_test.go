package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/osio/osio-bot/config"
	"github.com/osio/osio-bot/testservers/faultproxy"
	slackserver "github.com/osio/osio-bot/testservers/slack"
	"github.com/osio/osio-bot/testservers/testenv"
)

// BenchmarkExportAck is issue 9's ack benchmark (part 4, acceptance 1 and
// 2). Run it once, it is one whole experiment:
//
//	go test ./e2e -run '^$' -bench BenchmarkExportAck -benchtime 1x -timeout 30m
//
// healthy: moto_server holds OSIO_BENCH_TABLES tables (default 2060). The
// floor (e2e/internal/floorapp, a slack-go Socket Mode app that only acks)
// and then the built osio-bot are run against the same local Slack server
// with the same load: "/osio-export TABLE_i" at 1 in flight
// (OSIO_BENCH_C1 commands, default 60), then at 50 in flight (the other
// tables, default 2000); each command names its own table, so each is a
// new durable request of the bot. The latency is the round trip seen by
// the Slack server: envelope written -> ack read. Peak RSS is each
// process's VmHWM, read at the end.
//
// OSIO_BENCH_HELP=1 sends "/osio-export help" instead (no request made).
// OSIO_BENCH_LOGS=DIR keeps the bot's and the floor's logs there.
// OSIO_BENCH_BOT_ENV="K=V ..." adds to the bot's environment (e.g.
// GOMEMLIMIT). OSIO_BENCH_PPROF=DIR profiles the bot (e2e/profile_test.go).
//
// stalled: AWS (moto, through a fault proxy) and GraphQL (the qontract
// server, through a fault proxy) answer only after OSIO_BENCH_STALL_DELAY
// (default 5s), and so does every Slack Web API method (response_url is
// not delayed). The same commands, and an outsider's Approve clicks on a
// card made before the stall, are acked as fast; each requester is told
// within the check deadline (approval.check_timeout, 4 s) that the check
// could not finish, and no card is made. OSIO_BENCH_STALL=0 skips it.
func BenchmarkExportAck(b *testing.B) {
	o := benchOptions{
		tables: envInt(b, "OSIO_BENCH_TABLES", 2060),
		c1:     envInt(b, "OSIO_BENCH_C1", 60),
		conc:   envInt(b, "OSIO_BENCH_CONC", 50),
		clicks: envInt(b, "OSIO_BENCH_CLICKS", 1000),
		stall:  5 * time.Second,
		help:   os.Getenv("OSIO_BENCH_HELP") == "1",
	}
	if v := os.Getenv("OSIO_BENCH_STALL_DELAY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("OSIO_BENCH_STALL_DELAY: %v", err)
		}
		o.stall = d
	}
	if o.c1 >= o.tables {
		b.Fatalf("OSIO_BENCH_C1 (%d) must be less than OSIO_BENCH_TABLES (%d)", o.c1, o.tables)
	}
	b.Run("healthy", func(b *testing.B) { benchHealthy(b, o) })
	if os.Getenv("OSIO_BENCH_STALL") != "0" {
		b.Run("stalled", func(b *testing.B) { benchStalled(b, o) })
	}
}

type benchOptions struct {
	tables, c1, conc, clicks int
	stall                    time.Duration
	// help sends "/osio-export help" instead of the tables
	// (OSIO_BENCH_HELP=1): the bot's ack path without a request, the
	// issue's own reference row.
	help bool
}

// botEnv is OSIO_BENCH_BOT_ENV ("K=V K=V"), added to the bot's
// environment only, e.g. GOMEMLIMIT=24MiB.
func botEnv() []string { return strings.Fields(os.Getenv("OSIO_BENCH_BOT_ENV")) }

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

func benchEnv(b *testing.B, o testenv.Options) (*testenv.Env, context.Context) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	b.Cleanup(cancel)
	o.Moto = sharedMoto
	tweak := o.Tweak
	o.Tweak = func(c *config.Config) {
		c.Log.Level = "info" // as in production; the e2e world logs debug
		// The production pace of the background loops; the e2e world's
		// (a sweep over every request every 200 ms, a post to a channel
		// every 20 ms) would be work that production does not do: the
		// sweep alone, decoding 2,000 requests five times a second, was
		// 15% of the bot's CPU during the c=50 phase.
		def := config.Defaults()
		c.Approval.SweepInterval = def.Approval.SweepInterval
		c.Slack.MinPostInterval = def.Slack.MinPostInterval
		c.Slack.ProgressInterval = def.Slack.ProgressInterval
		c.Slack.ApproverCacheTTL = def.Slack.ApproverCacheTTL
		if tweak != nil {
			tweak(c)
		}
	}
	env, err := testenv.Start(ctx, b.TempDir(), o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(env.Close)
	return env, ctx
}

func benchHealthy(b *testing.B, o benchOptions) {
	env, ctx := benchEnv(b, testenv.Options{})
	start := time.Now()
	if err := createTables(ctx, env, o.tables); err != nil {
		b.Fatal(err)
	}
	b.Logf("created %d tables in %v", o.tables, time.Since(start).Round(time.Millisecond))
	botBin := buildBot(b)
	floorBin := buildBin(b, "./internal/floorapp", "floorapp")
	d := newDriver(env.Slack)
	n50 := o.tables - o.c1

	type result struct {
		c1, c50 []time.Duration
		rssMB   float64
		// CPU used during the c=50 phase, in cores (CPU time / wall
		// time): the process under test, moto_server, and this process
		// (the Slack server and the load).
		cpuApp, cpuMoto, cpuBench float64
		wall                      time.Duration // of the c=50 phase
	}
	load := func(name string, pid int, check func(slackserver.Ack) error, at50 func()) result {
		var r result
		// Warm-up, not measured: help answers at once.
		if _, err := d.run(ctx, 1, 5, func(int) (string, error) {
			return env.Slack.SendSlashCommand(slackserver.SlashCommand{Command: "/osio-export", Text: "help", UserID: testenv.Requester, ChannelID: testenv.DevChannel})
		}, nil); err != nil {
			b.Fatalf("%s warm-up: %v", name, err)
		}
		table := func(i int) (string, error) {
			text := benchTable(i)
			if o.help {
				text = "help"
			}
			return env.Slack.SendSlashCommand(slackserver.SlashCommand{Command: "/osio-export", Text: text, UserID: testenv.Requester, ChannelID: testenv.DevChannel})
		}
		var err error
		if r.c1, err = d.run(ctx, 1, o.c1, table, check); err != nil {
			b.Fatalf("%s c=1: %v", name, err)
		}
		if at50 != nil {
			at50()
		}
		pids := []int{pid, sharedMoto.Pid(), os.Getpid()}
		before, start := cpuTimes(pids), time.Now()
		if r.c50, err = d.run(ctx, o.conc, n50, func(i int) (string, error) { return table(o.c1 + i) }, check); err != nil {
			b.Fatalf("%s c=%d: %v", name, o.conc, err)
		}
		after, wall := cpuTimes(pids), time.Since(start).Seconds()
		r.cpuApp, r.cpuMoto, r.cpuBench = (after[0]-before[0])/wall, (after[1]-before[1])/wall, (after[2]-before[2])/wall
		r.wall = time.Since(start)
		return r
	}

	// The floor first, on a quiet machine; then the bot.
	fl := startChild(b, env, "floor", floorBin, nil, "SLACK_API_URL="+env.Slack.APIURL())
	floor := load("floor", fl.cmd.Process.Pid, nil, nil)
	floor.rssMB = fl.stop(b)

	prof := newProfiler(b)
	if prof != nil {
		botBin = prof.bin
	}
	bot := startChild(b, env, "bot", botBin, []string{"run", "--config", env.ConfigPath}, append(botEnv(), prof.environ()...)...)
	prof.watch(bot.cmd.Process.Pid)
	prof.snapshot("idle")
	receipt := regexp.MustCompile(`Request \*R-[0-9]{6}\* received`)
	ids := newIDSet()
	res := load("bot", bot.cmd.Process.Pid, func(a slackserver.Ack) error {
		t := testenv.AckText(a)
		if o.help {
			if !strings.Contains(t, "/osio-export") {
				return fmt.Errorf("the ack of %s is not the help: %q", a.EnvelopeID, t)
			}
			return nil
		}
		if !receipt.MatchString(t) {
			return fmt.Errorf("the ack of %s is not a receipt: %q", a.EnvelopeID, t)
		}
		ids.add(requestIDRe.FindStringSubmatch(t)[1])
		return nil
	}, prof.at50)
	prof.phaseEnds()
	prof.snapshot("after-c50")
	// The end: every request checked and its requester told (the cards
	// follow, one a second: slack.min_post_interval).
	start = time.Now()
	told, err := waitTold(ctx, env, ids.list(), 5*time.Minute)
	if err != nil {
		b.Error(err)
	}
	prof.mark("all told")
	prof.snapshot("all-told")
	cards := countCards(env)
	passed := 0
	for _, t := range told {
		if strings.Contains(t.text, "Sent for approval") {
			passed++
		}
	}
	b.Logf("bot: %d requests told %v after the last ack, %d passed their checks (the others: moto did not answer within the check deadline); %d cards posted by then",
		len(told), time.Since(start).Round(time.Millisecond), passed, cards)
	b.ReportMetric(float64(passed), "bot-checked-ok")
	res.rssMB = bot.stop(b)

	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fp50, fp99, bp50, bp99 := pct(floor.c50, 0.50), pct(floor.c50, 0.99), pct(res.c50, 0.50), pct(res.c50, 0.99)
	b.ReportMetric(ms(pct(floor.c1, 0.50)), "floor-c1-p50-ms")
	b.ReportMetric(ms(pct(floor.c1, 0.99)), "floor-c1-p99-ms")
	b.ReportMetric(ms(fp50), "floor-c50-p50-ms")
	b.ReportMetric(ms(fp99), "floor-c50-p99-ms")
	b.ReportMetric(ms(pct(res.c1, 0.50)), "bot-c1-p50-ms")
	b.ReportMetric(ms(pct(res.c1, 0.99)), "bot-c1-p99-ms")
	b.ReportMetric(ms(bp50), "bot-c50-p50-ms")
	b.ReportMetric(ms(bp99), "bot-c50-p99-ms")
	ratio := float64(bp99) / float64(fp99)
	b.ReportMetric(ratio, "bot/floor-c50-p99")
	b.ReportMetric(res.rssMB, "bot-rss-MB")
	b.ReportMetric(floor.rssMB, "floor-rss-MB")
	perCmd := func(r result, cores float64) float64 { return cores * r.wall.Seconds() * 1000 / float64(n50) }
	b.Logf("c=%d phase: floor %v, bot %v. CPU in cores (2 on this machine), and ms per command: floor phase: floor %.2f (%.2f ms), moto %.2f, Slack server and load %.2f (%.2f ms); bot phase: bot %.2f (%.2f ms), moto %.2f (%.2f ms), Slack server and load %.2f (%.2f ms)",
		o.conc, floor.wall.Round(time.Millisecond), res.wall.Round(time.Millisecond),
		floor.cpuApp, perCmd(floor, floor.cpuApp), floor.cpuMoto, floor.cpuBench, perCmd(floor, floor.cpuBench),
		res.cpuApp, perCmd(res, res.cpuApp), res.cpuMoto, perCmd(res, res.cpuMoto), res.cpuBench, perCmd(res, res.cpuBench))
	b.ReportMetric(res.cpuMoto, "moto-cores-bot-c50")
	b.Logf("acceptance 1: bot c=%d p99 %.2f ms vs floor %.2f ms: %.2fx (target <= 1.5x): %s; bot peak RSS %.1f MB (target <= 40): %s; floor %.1f MB",
		o.conc, ms(bp99), ms(fp99), ratio, verdict(ratio <= 1.5), res.rssMB, verdict(res.rssMB <= 40), floor.rssMB)
}

func benchStalled(b *testing.B, o benchOptions) {
	env, ctx := benchEnv(b, testenv.Options{Proxies: testenv.Proxies{AWS: true, GraphQL: true}, AppInterface: true})
	checkTimeout := env.Config.Approval.CheckTimeout.D()
	if err := env.CreateTable(ctx, "stall_card", 1); err != nil {
		b.Fatal(err)
	}
	botBin := buildBot(b)
	prof := newProfiler(b)
	if prof != nil {
		botBin = prof.bin
	}
	bot := startChild(b, env, "bot", botBin, []string{"run", "--config", env.ConfigPath}, append(botEnv(), prof.environ()...)...)
	prof.watch(bot.cmd.Process.Pid)
	d := newDriver(env.Slack)

	// A card made while everything answers: the clicks are an outsider's
	// Approve on it.
	_, id, err := env.Slash(ctx, testenv.Requester, "/osio-export", "stall_card")
	if err != nil || id == "" {
		b.Fatalf("the card's request: %q %v", id, err)
	}
	card, err := env.Card(ctx, id)
	if err != nil {
		b.Fatal(err)
	}

	// The stall.
	for _, p := range []*faultproxy.Proxy{env.AWSProxy, env.GraphQLProxy} {
		p.Arm(faultproxy.Rule{Op: "*", Fault: faultproxy.Delay, Delay: o.stall, Times: -1})
	}
	env.Slack.SetDelay("*", o.stall)
	stallStart := time.Now()

	ids := newIDSet()
	acked := sync.Map{} // request id -> ack time
	receipt := regexp.MustCompile(`Request \*R-[0-9]{6}\* received`)
	checkReceipt := func(a slackserver.Ack) error {
		t := testenv.AckText(a)
		if !receipt.MatchString(t) {
			return fmt.Errorf("the ack of %s is not a receipt: %q", a.EnvelopeID, t)
		}
		rid := requestIDRe.FindStringSubmatch(t)[1]
		ids.add(rid)
		acked.Store(rid, a.Received)
		return nil
	}
	command := func(i int) (string, error) {
		return env.Slack.SendSlashCommand(slackserver.SlashCommand{Command: "/osio-export", Text: fmt.Sprintf("stalled_%05d", i), UserID: testenv.Requester, ChannelID: testenv.DevChannel})
	}
	click := func(int) (string, error) {
		return env.Slack.SendClick(slackserver.Click{UserID: testenv.Outsider, ChannelID: testenv.Channel, MessageTS: card.TS, ActionID: "approve", BlockID: "decide", Value: id})
	}
	n50 := o.tables - o.c1
	cmd1, err := d.run(ctx, 1, o.c1, command, checkReceipt)
	if err != nil {
		b.Fatal(err)
	}
	prof.mark("commands c=50 start")
	cmd50, err := d.run(ctx, o.conc, n50, func(i int) (string, error) { return command(o.c1 + i) }, checkReceipt)
	if err != nil {
		b.Fatal(err)
	}
	prof.mark("commands c=50 end")
	prof.snapshot("after-commands")
	click1, err := d.run(ctx, 1, o.c1, click, nil)
	if err != nil {
		b.Fatal(err)
	}
	prof.mark("clicks c=50 start")
	click50, err := d.run(ctx, o.conc, o.clicks, click, nil)
	if err != nil {
		b.Fatal(err)
	}
	prof.mark("clicks c=50 end")
	prof.snapshot("after-clicks")
	sent := time.Since(stallStart)

	// Each requester is told that the check could not finish, within the
	// check deadline, and nothing else is made.
	told, err := waitTold(ctx, env, ids.list(), checkTimeout+o.stall+30*time.Second)
	if err != nil {
		b.Error(err)
	}
	prof.mark("all told")
	prof.snapshot("all-told")
	var after []time.Duration
	bad := 0
	for rid, t := range told {
		a, _ := acked.Load(rid)
		after = append(after, t.at.Sub(a.(time.Time)))
		if !strings.Contains(t.text, "could not check the tables in AWS") || !strings.Contains(t.text, "nothing was requested") {
			if bad++; bad <= 3 {
				b.Errorf("%s: outcome %q, want that the check could not finish", rid, t.text)
			}
		}
	}
	// Refused in the store: ask for a few requests' status (answered in
	// the ack, from the store).
	list := ids.list()
	for _, rid := range []string{list[0], list[len(list)/2], list[len(list)-1]} {
		st, _, err := env.Slash(ctx, testenv.Requester, "/osio-export", "status "+rid)
		if err != nil || !strings.Contains(st, "refused") {
			b.Errorf("status %s = %q, %v; want refused", rid, st, err)
		}
	}
	// Past the stall, a delayed card would have landed.
	env.AWSProxy.Disarm()
	env.GraphQLProxy.Disarm()
	env.Slack.ClearDelays()
	time.Sleep(o.stall + time.Second)
	cards := countCards(env)
	if cards != 1 {
		b.Errorf("%d cards in the approvals channel, want the one made before the stall", cards)
	}
	rss := bot.stop(b)

	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(pct(cmd1, 0.99)), "cmd-c1-p99-ms")
	b.ReportMetric(ms(pct(cmd50, 0.50)), "cmd-c50-p50-ms")
	b.ReportMetric(ms(pct(cmd50, 0.99)), "cmd-c50-p99-ms")
	b.ReportMetric(ms(pct(click1, 0.99)), "click-c1-p99-ms")
	b.ReportMetric(ms(pct(click50, 0.50)), "click-c50-p50-ms")
	b.ReportMetric(ms(pct(click50, 0.99)), "click-c50-p99-ms")
	b.ReportMetric(ms(pct(after, 0.50)), "told-p50-ms")
	b.ReportMetric(ms(slices.Max(after)), "told-max-ms")
	b.ReportMetric(float64(cards-1), "new-cards")
	b.ReportMetric(rss, "bot-rss-MB")
	worst := max(pct(cmd1, 0.99), pct(cmd50, 0.99), pct(click1, 0.99), pct(click50, 0.99))
	b.Logf("stall %v on AWS, GraphQL and Slack's Web API; %d commands and %d clicks sent in %v", o.stall, len(cmd1)+len(cmd50), len(click1)+len(click50), sent.Round(time.Millisecond))
	b.Logf("acceptance 2: worst ack p99 %.2f ms (target < 50): %s; %d/%d requesters told %v-%v after their ack (check deadline %v): %s; new cards: %d",
		ms(worst), verdict(worst < 50*time.Millisecond), len(told), len(list), slices.Min(after).Round(time.Millisecond), slices.Max(after).Round(time.Millisecond),
		checkTimeout, verdict(len(told) == len(list) && bad == 0 && slices.Max(after) <= checkTimeout+time.Second), cards-1)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

var requestIDRe = regexp.MustCompile(`Request \*(R-[0-9]{6})\*`)

func benchTable(i int) string { return fmt.Sprintf("bench_%05d", i) }

// createTables makes n empty tables in moto, 16 at a time.
func createTables(ctx context.Context, env *testenv.Env, n int) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range n {
		g.Go(func() error { return env.CreateTable(ctx, benchTable(i), 0) })
	}
	return g.Wait()
}

// driver sends envelopes and is told of their acks as they are read
// (slackserver.SetOnAck), without polling.
type driver struct{ waiters sync.Map } // envelope id -> chan slackserver.Ack

func newDriver(srv *slackserver.Server) *driver {
	d := &driver{}
	srv.SetOnAck(func(a slackserver.Ack) {
		select {
		case d.ch(a.EnvelopeID) <- a:
		default: // a second ack of one envelope
		}
	})
	return d
}

func (d *driver) ch(id string) chan slackserver.Ack {
	c, _ := d.waiters.LoadOrStore(id, make(chan slackserver.Ack, 1))
	return c.(chan slackserver.Ack)
}

// run sends n envelopes, conc in flight (each worker sends the next one
// when its last is acked), and returns the round trips as the Slack server
// measured them. check, when set, looks at each ack, after the last.
func (d *driver) run(ctx context.Context, conc, n int, send func(i int) (string, error), check func(slackserver.Ack) error) ([]time.Duration, error) {
	var next atomic.Int64
	out := make([]time.Duration, n)
	acks := make([]slackserver.Ack, n)
	g, ctx := errgroup.WithContext(ctx)
	for range min(conc, n) {
		g.Go(func() error {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return nil
				}
				id, err := send(i)
				if err != nil {
					return err
				}
				var a slackserver.Ack
				select {
				case a = <-d.ch(id):
					d.waiters.Delete(id)
				case <-ctx.Done():
					return fmt.Errorf("no ack for envelope %s: %w", id, ctx.Err())
				}
				out[i] = a.Latency
				acks[i] = a
			}
		})
	}
	if err := g.Wait(); err != nil {
		return out, err
	}
	// The acks are checked once the load is over: the check (decoding
	// each receipt's blocks, a regexp) is the benchmark's bookkeeping,
	// and run in the load it took a fifth of this process's CPU, on the
	// cores the app under test shares, in the bot's phase only (the
	// floor's acks are not checked).
	if check != nil {
		for _, a := range acks {
			if err := check(a); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

type idSet struct {
	mu  sync.Mutex
	ids []string
}

func newIDSet() *idSet { return &idSet{} }

func (s *idSet) add(id string) { s.mu.Lock(); s.ids = append(s.ids, id); s.mu.Unlock() }

func (s *idSet) list() []string { s.mu.Lock(); defer s.mu.Unlock(); return slices.Clone(s.ids) }

type toldAt struct {
	at   time.Time
	text string
}

// waitTold waits until the requester was told the outcome of every
// request in ids (its receipt replaced, or an ephemeral message naming
// it) and returns when and what.
func waitTold(ctx context.Context, env *testenv.Env, ids []string, limit time.Duration) (map[string]toldAt, error) {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	told := map[string]toldAt{}
	scan := func() bool {
		for _, r := range env.Slack.Receipts(testenv.Requester) {
			if r.Replaced == 0 {
				continue
			}
			if m := requestIDRe.FindStringSubmatch(strings.Join(r.History, "\n")); m != nil && want[m[1]] {
				if _, ok := told[m[1]]; !ok {
					told[m[1]] = toldAt{r.Updated, r.Text}
				}
			}
		}
		for _, m := range env.Slack.Ephemerals(testenv.Requester) {
			if id := requestIDRe.FindStringSubmatch(m.Text); id != nil && want[id[1]] {
				if _, ok := told[id[1]]; !ok {
					told[id[1]] = toldAt{m.Posted, m.Text}
				}
			}
		}
		return len(told) == len(want)
	}
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for !scan() {
		select {
		case <-wctx.Done():
			return told, fmt.Errorf("%d of %d requesters told after %v", len(told), len(want), limit)
		case <-t.C:
		}
	}
	return told, nil
}

// countCards counts the top-level messages in the approvals channel.
func countCards(env *testenv.Env) int {
	n := 0
	for _, m := range env.Slack.Messages(testenv.Channel) {
		if m.ThreadTS == "" {
			n++
		}
	}
	return n
}

// child is a process under benchmark, connected to the Slack server.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startChild(b *testing.B, env *testenv.Env, name, bin string, args []string, extraEnv ...string) *child {
	b.Helper()
	logPath := filepath.Join(env.Dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	before := env.Slack.Connections()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(env.Environ(), extraEnv...)
	cmd.Stdout, cmd.Stderr = f, f
	// A benchmark killed by -timeout takes its children with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(c.done) }()
	b.Cleanup(func() { _ = cmd.Process.Kill(); <-c.done })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := env.Slack.WaitFor(ctx, func() bool { return env.Slack.Connections() > before }); err != nil {
		data, _ := os.ReadFile(logPath)
		b.Fatalf("%s never connected: %v\n%s", name, err, data)
	}
	return c
}

// stop reads the process's peak RSS (VmHWM, in MB), then stops it.
func (c *child) stop(b *testing.B) float64 {
	b.Helper()
	mb, err := vmHWM(c.cmd.Process.Pid)
	if err != nil {
		b.Errorf("%s: %v", c.name, err)
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	if dir := os.Getenv("OSIO_BENCH_LOGS"); dir != "" {
		// Keep the process's log for a person to read.
		if data, err := os.ReadFile(c.log); err == nil {
			_ = os.WriteFile(filepath.Join(dir, strings.ReplaceAll(b.Name(), "/", "_")+"-"+c.name+".log"), data, 0o644)
		}
	}
	return mb
}

// cpuTimes is each process's CPU time so far (user and system), in
// seconds; 0 for one that cannot be read.
func cpuTimes(pids []int) []float64 {
	out := make([]float64, len(pids))
	for i, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The fields after the command name, which may hold spaces.
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		out[i] = (ut + st) / 100 // USER_HZ
	}
	return out
}

func vmHWM(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				return 0, fmt.Errorf("VmHWM %q: %w", rest, err)
			}
			return float64(kb) / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
