package export

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// slowDynamoDB answers DescribeTable and DescribeContinuousBackups after
// delay (stalled tables: never), one table at a time per call, and counts
// how many calls it holds at once and whether each came with a deadline.
type slowDynamoDB struct {
	DynamoDB // nil: calls a check does not make panic
	delay    time.Duration
	missing  map[string]bool // DescribeTable: ResourceNotFoundException
	pitrOff  map[string]bool
	fail     map[string]bool // an AWS error
	stall    map[string]bool

	mu               sync.Mutex
	calls, now, most int
	withoutDeadline  []string
}

func (f *slowDynamoDB) wait(ctx context.Context, table string) error {
	f.mu.Lock()
	f.calls++
	f.now++
	f.most = max(f.most, f.now)
	if _, ok := ctx.Deadline(); !ok {
		f.withoutDeadline = append(f.withoutDeadline, table)
	}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.now--
		f.mu.Unlock()
	}()
	delay := f.delay
	if f.stall[table] {
		delay = time.Hour
	}
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	if f.fail[table] {
		return fmt.Errorf("operation error DynamoDB: %s, https response error StatusCode: 500, api error InternalServerError: injected", table)
	}
	return nil
}

func (f *slowDynamoDB) DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	t := aws.ToString(in.TableName)
	if err := f.wait(ctx, t); err != nil {
		return nil, err
	}
	if f.missing[t] {
		return nil, &ddbtypes.ResourceNotFoundException{Message: aws.String("Requested resource not found: Table: " + t + " not found")}
	}
	return &dynamodb.DescribeTableOutput{Table: &ddbtypes.TableDescription{TableName: in.TableName}}, nil
}

func (f *slowDynamoDB) DescribeContinuousBackups(ctx context.Context, in *dynamodb.DescribeContinuousBackupsInput, _ ...func(*dynamodb.Options)) (*dynamodb.DescribeContinuousBackupsOutput, error) {
	t := aws.ToString(in.TableName)
	if err := f.wait(ctx, t); err != nil {
		return nil, err
	}
	status := ddbtypes.PointInTimeRecoveryStatusEnabled
	if f.pitrOff[t] {
		status = ddbtypes.PointInTimeRecoveryStatusDisabled
	}
	return &dynamodb.DescribeContinuousBackupsOutput{ContinuousBackupsDescription: &ddbtypes.ContinuousBackupsDescription{
		PointInTimeRecoveryDescription: &ddbtypes.PointInTimeRecoveryDescription{PointInTimeRecoveryStatus: status}}}, nil
}

func tableNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("t%02d", i)
	}
	return out
}

func set(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// The checks before an export ask AWS about every table at once, at most
// eight calls at a time, each with its own deadline, and answer exactly as
// asking one table after the other did: a check of up to eight tables
// takes about one call's time, not one per table.
func TestChecksDescribeTablesAtOnce(t *testing.T) {
	const delay = 100 * time.Millisecond
	noSuch := func(names string) string {
		return "No such table in account osio (386414299200, us-east-1): " + names + ". Check the name (it is case-sensitive); nothing was requested."
	}
	pitr := func(off, all string) string {
		return "Point-in-time recovery is off for " + off + " in account osio, and the native export needs it. Ask the table's owner to enable it " +
			"(`aws dynamodb update-continuous-backups --table-name TABLE --point-in-time-recovery-specification PointInTimeRecoveryEnabled=true`), " +
			"or use the runbook's method: `/osio-export --datapipeline " + all + "`. Nothing was requested."
	}
	tests := []struct {
		name        string
		native      bool
		tables      int
		db          *slowDynamoDB
		callTimeout time.Duration
		msg, err    string
		within      time.Duration // the sequential checks took tables × delay
	}{
		{name: "eight tables exist", tables: 8, within: 3 * delay},
		{name: "missing tables are named, in order", tables: 8, db: &slowDynamoDB{missing: set("t05", "t01")},
			msg: noSuch("`t01`, `t05`"), within: 3 * delay},
		{name: "one missing table of one", tables: 1, db: &slowDynamoDB{missing: set("t00")}, msg: noSuch("`t00`"), within: 3 * delay},
		{name: "the first table's error wins over later ones and over missing tables", tables: 8,
			db: &slowDynamoDB{missing: set("t01"), fail: set("t06", "t03")}, err: "describing table t03: operation error", within: 3 * delay},
		{name: "twenty tables, eight at a time", tables: 20, db: &slowDynamoDB{missing: set("t19")}, msg: noSuch("`t19`"), within: 6 * delay},
		{name: "a stalled call costs the call timeout", tables: 8, db: &slowDynamoDB{stall: set("t04")}, callTimeout: 150 * time.Millisecond,
			err: "describing table t04: context deadline exceeded", within: 6 * delay},
		{name: "native: PITR on everywhere", native: true, tables: 8, within: 3 * delay},
		{name: "native: PITR off, in order", native: true, tables: 8, db: &slowDynamoDB{pitrOff: set("t07", "t02")},
			msg: pitr("`t02`, `t07`", strings.Join(tableNames(8), " ")), within: 3 * delay},
		{name: "native: the first table's error", native: true, tables: 8, db: &slowDynamoDB{pitrOff: set("t00"), fail: set("t05", "t02")},
			err: "describing continuous backups of t02: operation error", within: 3 * delay},
		{name: "native: a stalled call costs the call timeout", native: true, tables: 3, db: &slowDynamoDB{stall: set("t01")},
			callTimeout: 150 * time.Millisecond, err: "describing continuous backups of t01: context deadline exceeded", within: 6 * delay},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := tc.db
			if db == nil {
				db = &slowDynamoDB{}
			}
			db.delay = delay
			x, err := New(testConfig(), Deps{DynamoDB: db, CallTimeout: tc.callTimeout})
			if err != nil {
				t.Fatal(err)
			}
			check := x.CheckTables
			if tc.native {
				check = x.CheckNative
			}
			tables := tableNames(tc.tables)
			type result struct {
				msg string
				err error
			}
			done := make(chan result, 1)
			start := time.Now()
			go func() {
				msg, err := check(context.Background(), tables)
				done <- result{msg, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the check still runs after 10s")
			}
			took := time.Since(start)
			switch {
			case tc.err != "":
				if r.err == nil || !strings.HasPrefix(r.err.Error(), tc.err) || r.msg != "" {
					t.Fatalf("got %q, %v; want the error %q", r.msg, r.err, tc.err)
				}
			case r.err != nil || r.msg != tc.msg:
				t.Fatalf("got %q, %v\nwant %q", r.msg, r.err, tc.msg)
			}
			db.mu.Lock()
			defer db.mu.Unlock()
			if took > tc.within {
				t.Errorf("%d tables took %s (%d calls, at most %d at once); want under %s, where one table after the other takes %s",
					tc.tables, took, db.calls, db.most, tc.within, time.Duration(tc.tables)*delay)
			}
			if db.most > checkParallelism {
				t.Errorf("%d calls at once, want at most %d", db.most, checkParallelism)
			}
			if len(db.withoutDeadline) > 0 {
				t.Errorf("calls without a deadline: %v", db.withoutDeadline)
			}
			t.Logf("%d tables: %d calls, at most %d at once, %s", tc.tables, db.calls, db.most, took.Round(time.Millisecond))
		})
	}
}

// Tables found to exist are not described again within the cache's TTL;
// missing ones are.
func TestCheckTablesCache(t *testing.T) {
	db := &slowDynamoDB{missing: set("t02")}
	x, err := New(testConfig(), Deps{DynamoDB: db})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if msg, err := x.CheckTables(context.Background(), tableNames(4)); err != nil || !strings.Contains(msg, "`t02`") {
			t.Fatalf("%q, %v", msg, err)
		}
	}
	if db.calls != 5 {
		t.Fatalf("two checks of four tables, one missing, made %d calls; want 5", db.calls)
	}
}

// A check whose own context ends stops waiting at once.
func TestCheckTablesContext(t *testing.T) {
	db := &slowDynamoDB{stall: set("t00")}
	x, err := New(testConfig(), Deps{DynamoDB: db})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = x.CheckTables(ctx, tableNames(2))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("%v after %s", err, time.Since(start))
	}
}
