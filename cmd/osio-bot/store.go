package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/app"
	"github.com/osio/osio-bot/config"
	"github.com/osio/osio-bot/store"
	"github.com/osio/osio-bot/store/dynamo"
)

const storeUsage = `usage:
  osio-bot store check --config FILE | --file PATH
  osio-bot store init --config FILE
  osio-bot store migrate --from bolt:PATH --to dynamodb:TABLE [--config FILE] [--region R] [--endpoint URL] [--dry-run]
  osio-bot store compact --config FILE | --file PATH   (bolt, bot stopped: give back the space of removed requests)
`

// initTimeout bounds `store init`: a new table takes seconds to a minute
// to become ACTIVE.
const initTimeout = 3 * time.Minute

// storeCmd serves the store subcommands.
func storeCmd(args []string, stdout, stderr io.Writer) int {
	return dispatch("store", storeUsage, map[string]subcommand{
		"check": storeCheck, "init": storeInit, "migrate": storeMigrate, "compact": storeCompact,
	}, args, stdout, stderr)
}

// subcommand serves one "osio-bot GROUP NAME ..." with its arguments.
type subcommand func(args []string, stdout, stderr io.Writer) int

// dispatch runs group's subcommand named by args[0]; no name or an
// unknown one prints usage and exits 2, help prints it and exits 0.
func dispatch(group, usage string, subs map[string]subcommand, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if sub, ok := subs[args[0]]; ok {
		return sub(args[1:], stdout, stderr)
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "unknown %s command %q\n%s", group, args[0], usage)
	return 2
}

// parseExit is the exit status of a flag parse error: 0 for -h, else 2
// (the flag package has printed the problem and the flags).
func parseExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// usageErr reports a bad argument: the message, the usage, exit 2.
func usageErr(stderr io.Writer, format string, a ...any) int {
	fmt.Fprintf(stderr, format+"\n", a...)
	fmt.Fprint(stderr, storeUsage)
	return 2
}

// storeCheck serves "store check": it reads the store file (from the
// config's store.path, or --file) without changing it.
func storeCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("store check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "/etc/osio-bot/config.yaml", "configuration file (its store.path is checked)")
	file := fs.String("file", "", "store file to check, instead of the config's store.path")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if fs.NArg() > 0 {
		return usageErr(stderr, "store check: unexpected argument %q", fs.Arg(0))
	}
	path, code := boltPath(*cfgPath, *file, "check", stderr)
	if path == "" {
		return code
	}
	rep, err := store.Check(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if len(rep.Problems) > 0 {
		fmt.Fprintf(stdout, "%s: CORRUPT\n", path)
		for _, p := range rep.Problems {
			fmt.Fprintf(stdout, "  %s\n", p)
		}
		fmt.Fprintln(stdout, "To recover: stop osio-bot, keep a copy of the file, and restore it from a backup;")
		fmt.Fprintln(stdout, "or move it aside to start with an empty store (its requests, checkpoints and undelivered thread messages are then lost).")
		return 1
	}
	newest := ""
	if rep.Newest != "" {
		newest = ", newest " + rep.Newest
	}
	fmt.Fprintf(stdout, "%s: ok, %d requests%s\n", path, rep.Requests, newest)
	return 0
}

// storeInit serves "store init": it creates the configured DynamoDB table
// when it is missing (idempotently), waits until it is ACTIVE and turns
// TTL on. The bolt backend has nothing to create.
func storeInit(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("store init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "/etc/osio-bot/config.yaml", "configuration file (its store section)")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if fs.NArg() > 0 {
		return usageErr(stderr, "store init: unexpected argument %q", fs.Arg(0))
	}
	cfg, err := config.Load(*cfgPath, os.LookupEnv)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	switch cfg.Store.Backend {
	case "", "bolt":
		fmt.Fprintf(stdout, "store.backend is bolt: nothing to create (osio-bot creates the file %s when it starts)\n", cfg.Store.Path)
		return 0
	case "dynamodb":
	default:
		fmt.Fprintf(stderr, "%s: store.backend %q is not a backend (bolt or dynamodb)\n", *cfgPath, cfg.Store.Backend)
		return 1
	}
	if bad := storeProblems(cfg); len(bad) > 0 {
		for _, p := range bad {
			fmt.Fprintln(stderr, "invalid:", p)
		}
		fmt.Fprintf(stderr, "%d problem(s) in the store section of %s\n", len(bad), *cfgPath)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, initTimeout)
	defer cancel()
	d := cfg.Store.DynamoDB
	c, err := app.DynamoDBClient(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	existed := true
	out, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(d.Table)})
	if _, ok := errors.AsType[*types.ResourceNotFoundException](err); ok {
		existed = false
	} else if err != nil {
		fmt.Fprintf(stderr, "reading table %s in %s: %v\n", d.Table, d.Region, err)
		return 1
	} else if err := sameKeys(out.Table); err != nil {
		fmt.Fprintf(stderr, "table %s in %s exists but is not an osio-bot store: %v; pick another store.dynamodb.table\n", d.Table, d.Region, err)
		return 1
	}
	if err := dynamo.CreateTable(ctx, c, d.Table); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if existed {
		fmt.Fprintf(stdout, "table %s exists in %s; TTL on (%s)\n", d.Table, d.Region, dynamo.TTLAttribute)
	} else {
		fmt.Fprintf(stdout, "created table %s in %s; TTL on (%s)\n", d.Table, d.Region, dynamo.TTLAttribute)
	}
	return 0
}

// sameKeys tells whether an existing table has the store's key schema.
func sameKeys(t *types.TableDescription) error {
	want := dynamo.TableInput("").KeySchema
	var got, wanted []string
	for _, k := range t.KeySchema {
		got = append(got, aws.ToString(k.AttributeName)+" "+string(k.KeyType))
	}
	for _, k := range want {
		wanted = append(wanted, aws.ToString(k.AttributeName)+" "+string(k.KeyType))
	}
	slices.Sort(got)
	slices.Sort(wanted)
	if !slices.Equal(got, wanted) {
		return fmt.Errorf("its key schema is %v, the store's is %v", got, wanted)
	}
	return nil
}

// storeProblems are cfg's problems in the store section.
func storeProblems(cfg config.Config) []config.Problem {
	var ps []config.Problem
	for _, p := range cfg.Validate() {
		if strings.HasPrefix(p.Key, "store.") {
			ps = append(ps, p)
		}
	}
	return ps
}

var (
	tableRe  = regexp.MustCompile(`^[A-Za-z0-9_.-]{3,255}$`)
	regionRe = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]$`)
)

// storeMigrate serves "store migrate": it copies a stopped bot's bbolt
// store into a DynamoDB table (store.Export, then dynamo Import).
func storeMigrate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("store migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the store to copy: bolt:PATH (the bot using it must be stopped)")
	to := fs.String("to", "", "the store to copy into: dynamodb:TABLE (made by `osio-bot store init`)")
	cfgPath := fs.String("config", "", "configuration file whose store.dynamodb gives the region, endpoint and call timeout (optional)")
	region := fs.String("region", "", "the table's region (instead of the config's store.dynamodb.region)")
	endpoint := fs.String("endpoint", "", "DynamoDB's URL (instead of the config's store.dynamodb.endpoint; empty for AWS)")
	dryRun := fs.Bool("dry-run", false, "read the bolt store and print what would be copied; write nothing")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if fs.NArg() > 0 {
		return usageErr(stderr, "store migrate: unexpected argument %q (flags go before it; the stores are --from and --to)", fs.Arg(0))
	}
	path, ok := strings.CutPrefix(*from, "bolt:")
	if !ok || path == "" {
		return usageErr(stderr, "store migrate: --from must be bolt:PATH (the bbolt file of the bot), not %q", *from)
	}
	table, ok := strings.CutPrefix(*to, "dynamodb:")
	if !ok {
		return usageErr(stderr, "store migrate: --to must be dynamodb:TABLE, not %q", *to)
	}
	cfg := config.Defaults()
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath, os.LookupEnv); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	d := &cfg.Store.DynamoDB
	if table != "" {
		d.Table = table
	}
	if *region != "" {
		d.Region = *region
	}
	if d.Region == "" {
		d.Region = firstOf(os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION"))
	}
	if *endpoint != "" {
		d.Endpoint = *endpoint
	}
	switch {
	case d.Table == "":
		return usageErr(stderr, "store migrate: no table: --to dynamodb:TABLE")
	case !tableRe.MatchString(d.Table):
		return usageErr(stderr, "store migrate: %q is not a DynamoDB table name", d.Table)
	case !*dryRun && d.Region == "":
		return usageErr(stderr, "store migrate: no region: give --region, or --config with store.dynamodb.region")
	case !*dryRun && !regionRe.MatchString(d.Region):
		return usageErr(stderr, "store migrate: %q is not a region", d.Region)
	case d.Endpoint != "" && !strings.HasPrefix(d.Endpoint, "http://") && !strings.HasPrefix(d.Endpoint, "https://"):
		return usageErr(stderr, "store migrate: --endpoint %q is not an http(s) URL", d.Endpoint)
	}

	contents, err := exportBolt(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *dryRun {
		fmt.Fprintf(stdout, "dry run: nothing written; bolt:%s holds what would be copied to dynamodb:%s:\n", path, d.Table)
		printCounts(stdout, contents)
		return 0
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := app.DynamoDBClient(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	s, err := dynamo.New(c, dynamo.Options{Table: d.Table, CallTimeout: d.CallTimeout.D()})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// Only the store's own calls (Query, PutItem): a principal without
	// the policy's OsioBotStoreInit statement can migrate.
	before, err := s.List(nil)
	if err != nil {
		if _, ok := errors.AsType[*types.ResourceNotFoundException](err); ok {
			fmt.Fprintf(stderr, "table %s does not exist in %s: create it first with `osio-bot store init --config FILE` (store.backend dynamodb, store.dynamodb.table %s)\n", d.Table, d.Region, d.Table)
			return 1
		}
		fmt.Fprintf(stderr, "reading table %s in %s: %v\n", d.Table, d.Region, err)
		return 1
	}
	if err := s.Import(contents); err != nil {
		fmt.Fprintln(stderr, err)
		fmt.Fprintln(stderr, "nothing is lost: the bolt file is unchanged; fix the cause and run the same command again")
		return 1
	}
	if err := verify(s, contents); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if len(before) > 0 {
		fmt.Fprintf(stdout, "the table already held %d of these requests (from an earlier run): written again, nothing added twice\n", len(before))
	}
	fmt.Fprintf(stdout, "copied bolt:%s to dynamodb:%s in %s:\n", path, d.Table, d.Region)
	printCounts(stdout, contents)
	fmt.Fprintf(stdout, "verified: the table holds these %d requests at their versions\n", len(contents.Requests))
	return 0
}

// firstOf is the first of vs that is not empty.
func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// exportBolt reads the whole bbolt store at path. The file must exist and
// no bot may hold it (bbolt locks the file while it is open).
func exportBolt(path string) (*store.Contents, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("bolt store: %w", err)
	}
	b, err := store.Open(path, store.Options{})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("bolt store %s is in use by another process: stop the bot first (scale it to 0), then run this again", path)
	}
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return b.Export()
}

// verify reads the requests back from the table: each must be there at
// the version it was copied with.
func verify(s *dynamo.Store, c *store.Contents) error {
	got, err := s.List(nil)
	if err != nil {
		return fmt.Errorf("reading the requests back from table %s: %w", s.Table(), err)
	}
	versions := map[string]int64{}
	for _, r := range got {
		versions[r.ID] = r.Version
	}
	for _, r := range c.Requests {
		v, ok := versions[r.ID]
		if !ok {
			return fmt.Errorf("table %s: request %s is missing after the copy", s.Table(), r.ID)
		}
		if v != r.Version {
			return fmt.Errorf("table %s: request %s is at version %d, copied at %d: was a bot running on the table? stop it and run this again", s.Table(), r.ID, v, r.Version)
		}
	}
	return nil
}

// printCounts tells what c holds: requests by state, events (and how many
// are still to be posted), checkpoints, locks, claims, leases.
func printCounts(w io.Writer, c *store.Contents) {
	byState := map[actions.State]int{}
	for _, r := range c.Requests {
		byState[r.State]++
	}
	var parts []string
	for _, st := range []actions.State{actions.Received, actions.Pending, actions.Approved, actions.Running,
		actions.Succeeded, actions.Failed, actions.Refused, actions.Denied, actions.Cancelled, actions.Expired} {
		if n := byState[st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", st, n))
		}
		delete(byState, st)
	}
	for st, n := range byState { // a state this build does not list
		parts = append(parts, fmt.Sprintf("%s %d", st, n))
	}
	fmt.Fprintf(w, "  requests:    %d", len(c.Requests))
	if len(parts) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
	events, undelivered := 0, 0
	for id, evs := range c.Events {
		events += len(evs)
		for _, e := range evs {
			if e.Seq > c.Cursors[id].Delivered {
				undelivered++
			}
		}
	}
	fmt.Fprintf(w, "  events:      %d (%d not yet posted to their threads, %d requests in the outbox)\n", events, undelivered, len(c.Outbox))
	cps := 0
	for _, m := range c.Checkpoints {
		cps += len(m)
	}
	fmt.Fprintf(w, "  checkpoints: %d (of %d requests)\n", cps, len(c.Checkpoints))
	fmt.Fprintf(w, "  locks:       %d\n", len(c.Locks))
	fmt.Fprintf(w, "  envelopes:   %d claims\n", len(c.Envelopes))
	fmt.Fprintf(w, "  leases:      %d\n", len(c.Leases))
	fmt.Fprintf(w, "  next id:     R-%06d\n", c.Sequence+1)
}

// storeCompact serves "store compact": a stopped bot's bbolt file is
// copied into a compact one (the space of pruned requests given back),
// which takes its place; the original stays beside it.
func storeCompact(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("store compact", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "/etc/osio-bot/config.yaml", "configuration file (its store.path is compacted)")
	file := fs.String("file", "", "store file to compact, instead of the config's store.path")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if fs.NArg() > 0 {
		return usageErr(stderr, "store compact: unexpected argument %q", fs.Arg(0))
	}
	path, code := boltPath(*cfgPath, *file, "compact", stderr)
	if path == "" {
		return code
	}
	before, after, err := store.Compact(path)
	if err != nil {
		fmt.Fprintf(stderr, "store compact: %v (stop the bot first: it holds the file)\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "compacted %s: %d -> %d bytes; the original is %s.before-compact (delete it once the bot runs)\n", path, before, after, path)
	return 0
}

// boltPath is the bbolt file a store command works on: --file, else the
// config's store.path. "" and the exit status when there is none (the
// config does not load, or its store is DynamoDB, which compact does not
// need).
func boltPath(cfgPath, file, cmd string, stderr io.Writer) (string, int) {
	if file != "" {
		return file, 0
	}
	cfg, err := config.Load(cfgPath, os.LookupEnv)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return "", 1
	}
	if cmd == "compact" && cfg.Store.Backend == "dynamodb" {
		fmt.Fprintln(stderr, "store compact: the dynamodb store needs no compaction (DynamoDB gives deleted items' space back)")
		return "", 2
	}
	if cfg.Store.Path == "" {
		fmt.Fprintf(stderr, "store %s: %s has no store.path; give --file\n", cmd, cfgPath)
		return "", 2
	}
	return cfg.Store.Path, 0
}
