package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/store"
	"github.com/osio/osio-bot/store/dynamo"
	"github.com/osio/osio-bot/store/storetest"
	"github.com/osio/osio-bot/testservers/moto"
)

// moto_server is started by the first test that needs it and stopped by
// TestMain. Without it the tests that need it skip, and fail when CI=true.
var (
	motoOnce  sync.Once
	motoSrv   *moto.Server
	motoErr   error
	motoLog   string
	motoProxy string // one request at a time (moto.OneAtATime: the MOTO GAP)
	tableSeq  atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if motoSrv != nil {
		motoSrv.Close()
		if code == 0 {
			os.RemoveAll(filepath.Dir(motoLog))
		} else {
			fmt.Fprintln(os.Stderr, "cmd/osio-bot: moto_server's log is", motoLog)
		}
	}
	os.Exit(code)
}

// motoEndpoint is the URL of moto_server (through a proxy sending it one
// request at a time), with the environment set for the AWS SDK to reach
// it: static test credentials, no profile, no other endpoint.
func motoEndpoint(t *testing.T) string {
	t.Helper()
	motoOnce.Do(func() {
		dir, err := os.MkdirTemp("", "osio-bot-moto")
		if err != nil {
			motoErr = err
			return
		}
		motoLog = filepath.Join(dir, "moto.log")
		motoSrv, motoErr = moto.Start(context.Background(), motoLog)
		if motoErr != nil {
			return
		}
		// Not closed: it lives as long as the test binary, like moto.
		motoProxy, _ = motoSrv.OneAtATime()
	})
	switch {
	case errors.Is(motoErr, moto.ErrMissing) && os.Getenv("CI") != "true":
		t.Skip(motoErr.Error() + " (CI=true makes this a failure)")
	case motoErr != nil:
		t.Fatal("starting moto_server:", motoErr)
	}
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "",
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_PROFILE": "", "AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_DYNAMODB": "", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_REGION": "", "AWS_DEFAULT_REGION": "",
	} {
		t.Setenv(k, v)
		if v == "" {
			os.Unsetenv(k)
		}
	}
	return motoProxy
}

// newTableName is a table name no other test uses.
func newTableName() string { return fmt.Sprintf("osio-bot-cmd-%d", tableSeq.Add(1)) }

// dynamoClient is a client of moto's DynamoDB for reading back.
func dynamoClient(endpoint string) *dynamodb.Client {
	return dynamodb.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		BaseEndpoint: aws.String(endpoint),
	})
}

// dynamoConfig is validConfig on the dynamodb backend.
func dynamoConfig(t *testing.T, table, endpoint string) string {
	return writeConfig(t, validConfig+fmt.Sprintf("  backend: dynamodb\n  dynamodb:\n    table: %s\n    region: us-east-1\n    endpoint: %s\n", table, endpoint))
}

func TestStoreInit(t *testing.T) {
	endpoint := motoEndpoint(t)
	table := newTableName()
	cfg := dynamoConfig(t, table, endpoint)

	code, out, errOut := runCmd("store", "init", "--config", cfg)
	if code != 0 || out != "created table "+table+" in us-east-1; TTL on (expires_at)\n" {
		t.Fatalf("store init: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = runCmd("store", "init", "--config", cfg)
	if code != 0 || out != "table "+table+" exists in us-east-1; TTL on (expires_at)\n" {
		t.Errorf("store init again: exit %d, stdout %q, stderr %q; want a no-op saying the table exists", code, out, errOut)
	}
	c := dynamoClient(endpoint)
	d, err := c.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil || d.Table.TableStatus != types.TableStatusActive || d.Table.BillingModeSummary == nil ||
		d.Table.BillingModeSummary.BillingMode != types.BillingModePayPerRequest {
		t.Errorf("the table after init: %+v, %v", d, err)
	}
	ttl, err := c.DescribeTimeToLive(t.Context(), &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err != nil || ttl.TimeToLiveDescription == nil || aws.ToString(ttl.TimeToLiveDescription.AttributeName) != "expires_at" ||
		ttl.TimeToLiveDescription.TimeToLiveStatus != types.TimeToLiveStatusEnabled {
		t.Errorf("TTL after init: %+v, %v", ttl, err)
	}

	// A table of the same name with other keys is not taken for the store.
	other := newTableName()
	_, err = c.CreateTable(t.Context(), &dynamodb.CreateTableInput{
		TableName:            aws.String(other),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCmd("store", "init", "--config", dynamoConfig(t, other, endpoint))
	if code != 1 || !strings.Contains(errOut, "is not an osio-bot store") {
		t.Errorf("store init on another table: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// The store section is checked before AWS is called.
	bad := writeConfig(t, validConfig+"  backend: dynamodb\n  dynamodb:\n    table: x\n")
	code, _, errOut = runCmd("store", "init", "--config", bad)
	if code != 1 || !strings.Contains(errOut, "store.dynamodb.table") || !strings.Contains(errOut, "store.dynamodb.region") {
		t.Errorf("store init with a bad store section: exit %d, stderr %q", code, errOut)
	}
}

func TestStoreInitBolt(t *testing.T) {
	setTokens(t)
	code, out, errOut := runCmd("store", "init", "--config", writeConfig(t, validConfig))
	if code != 0 || !strings.Contains(out, "store.backend is bolt: nothing to create") || !strings.Contains(out, "/var/lib/osio-bot/test.db") {
		t.Errorf("store init with bolt: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, err := os.Stat("/var/lib/osio-bot/test.db"); err == nil {
		t.Error("store init created the bolt file")
	}
}

// allStates are the states of actions.State, the bolt store's requests'.
var allStates = []actions.State{actions.Received, actions.Refused, actions.Pending, actions.Approved, actions.Running,
	actions.Succeeded, actions.Failed, actions.Denied, actions.Cancelled, actions.Expired}

// busyStore writes a bbolt store as a running bot leaves it: a request in
// every state (R-000001 received ... R-000010 expired, each locking
// export:tN), events partly posted, a running job with checkpoints and the
// lease its replica released when it stopped, and claimed envelopes.
func busyStore(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "osio-bot.db")
	b, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	msg := func(s string) actions.Event { return actions.Event{Kind: actions.Message, Text: s} }
	for i, st := range allStates {
		in := storetest.NewRequest(fmt.Sprintf("export:t%d", i+1))
		in.ExpiresAt = time.Now().Add(24 * time.Hour)
		if st == actions.Received {
			in.State = st
		}
		res, err := b.Create(in, fmt.Sprintf("slash-%d", i+1), actions.Event{Kind: actions.Card}, msg("created"))
		must(err)
		id := res.Request.ID
		path := map[actions.State][]actions.State{
			actions.Refused: nil, actions.Approved: {actions.Approved}, actions.Running: {actions.Approved, actions.Running},
			actions.Succeeded: {actions.Approved, actions.Running, actions.Succeeded}, actions.Failed: {actions.Approved, actions.Running, actions.Failed},
			actions.Denied: {actions.Denied}, actions.Cancelled: {actions.Cancelled}, actions.Expired: {actions.Expired},
		}[st]
		if st == actions.Refused {
			_, err := b.Transition(id, []actions.State{actions.Pending}, actions.Refused, func(r *actions.Request) { r.Error = "no such table" }, msg("refused"))
			must(err)
		}
		for _, to := range path {
			_, err := b.Transition(id, nil, to, func(r *actions.Request) {
				if to == actions.Failed {
					r.Retry, r.Error = "Resend", "mail failed"
				}
			}, msg(string(to)))
			must(err)
		}
		// Threads posted up to a point: all of the first three, the
		// next ones part way, the last ones not at all.
		evs, err := b.Events(id)
		must(err)
		switch {
		case i < 3:
			must(b.MarkDelivered(id, actions.Cursor{Delivered: uint64(len(evs)), StatusTS: fmt.Sprint(i, ".1"), LastTS: fmt.Sprint(i, ".9")}))
		case i < 7:
			must(b.MarkDelivered(id, actions.Cursor{Delivered: 1, StatusTS: fmt.Sprint(i, ".1"), LastTS: fmt.Sprint(i, ".2")}))
		}
	}
	// The running job (R-000005): its checkpoints, written under its lease,
	// which its replica released when it was stopped.
	lease, err := b.AcquireLease(actions.JobLease("R-000005"), "old-replica", 30*time.Second)
	must(err)
	must(b.SaveCheckpointEventsFenced(lease, "R-000005", "pipeline", map[string]string{"id": "df-0123"}, msg("pipeline df-0123")))
	must(b.SaveCheckpointFenced(lease, "R-000005", "activated", true))
	must(b.ReleaseLease(lease))
	must(b.SaveCheckpoint("R-000007", "reset", map[string]any{"ciphertext": "-----BEGIN PGP MESSAGE-----", "set": true}))
	ok, err := b.ClaimEnvelope("click-1")
	must(err)
	if !ok {
		t.Fatal("click not claimed")
	}
	return path
}

// jsonOf is v as JSON, for comparing.
func jsonOf(v any) string { data, _ := json.Marshal(v); return string(data) }

// scan is every item of the table, sorted, as JSON.
func scan(t *testing.T, c *dynamodb.Client, table string) []string {
	t.Helper()
	var items []string
	p := dynamodb.NewScanPaginator(c, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		out, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range out.Items {
			var m map[string]any
			for k, v := range it {
				if m == nil {
					m = map[string]any{}
				}
				m[k] = v
			}
			items = append(items, jsonOf(m))
		}
	}
	slices.Sort(items)
	return items
}

// TestStoreMigrate: a bolt store as a running bot leaves it, migrated, is
// read back through the DynamoDB store as the bolt store has it; a second
// migration changes nothing; two replicas then carry on (issue 10,
// acceptance 8).
func TestStoreMigrate(t *testing.T) {
	endpoint := motoEndpoint(t)
	table := newTableName()
	cfg := dynamoConfig(t, table, endpoint)
	if code, out, errOut := runCmd("store", "init", "--config", cfg); code != 0 {
		t.Fatalf("store init: exit %d, %s %s", code, out, errOut)
	}
	path := busyStore(t)

	code, out, errOut := runCmd("store", "migrate", "--from", "bolt:"+path, "--to", "dynamodb:"+table, "--config", cfg)
	if code != 0 {
		t.Fatalf("store migrate: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	t.Logf("store migrate:\n%s", out)
	for _, want := range []string{
		"copied bolt:" + path + " to dynamodb:" + table + " in us-east-1",
		"requests:    10 (received 1, pending 1, approved 1, running 1, succeeded 1, failed 1, refused 1, denied 1, cancelled 1, expired 1)",
		"checkpoints: 3 (of 2 requests)",
		"locks:       4",
		"envelopes:   11 claims",
		"next id:     R-000011",
		"verified: the table holds these 10 requests",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("store migrate's output lacks %q", want)
		}
	}
	c := dynamoClient(endpoint)
	first := scan(t, c, table)

	// Read back: the bolt store (opened again, the bot being stopped) and
	// the table hold the same.
	b, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	contents, err := b.Export()
	if err != nil {
		t.Fatal(err)
	}
	a, err := dynamo.New(c, dynamo.Options{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	if len(contents.Requests) != len(allStates) {
		t.Fatalf("bolt store holds %d requests", len(contents.Requests))
	}
	for _, want := range contents.Requests {
		got, err := a.Get(want.ID)
		if err != nil || jsonOf(got) != jsonOf(want) {
			t.Errorf("Get(%s) = %s, %v\nwant %s", want.ID, jsonOf(got), err, jsonOf(want))
		}
		all, err := a.Events(want.ID)
		if wantAll, _ := b.Events(want.ID); err != nil || len(all) == 0 || jsonOf(all) != jsonOf(wantAll) {
			t.Errorf("Events(%s) = %s, %v\nwant %s", want.ID, jsonOf(all), err, jsonOf(wantAll))
		}
		evs, cur, err := a.Undelivered(want.ID)
		wantEvs, wantCur, _ := b.Undelivered(want.ID)
		if err != nil || jsonOf(evs) != jsonOf(wantEvs) || cur != wantCur {
			t.Errorf("Undelivered(%s) = %s %+v %v\nwant %s %+v", want.ID, jsonOf(evs), cur, err, jsonOf(wantEvs), wantCur)
		}
		for k, v := range contents.Checkpoints[want.ID] {
			var got json.RawMessage
			if ok, err := a.LoadCheckpoint(want.ID, k, &got); !ok || err != nil || string(got) != string(v) {
				t.Errorf("checkpoint %s/%s = %s, %v, %v; want %s", want.ID, k, got, ok, err, v)
			}
		}
	}
	if n := len(contents.Checkpoints["R-000005"]); n != 2 {
		t.Errorf("the running job has %d checkpoints, want 2", n)
	}
	mid, _, _ := a.Undelivered("R-000005")
	if len(mid) == 0 || mid[0].Seq != 2 {
		t.Errorf("the running job's thread is not posted part way: undelivered %s", jsonOf(mid))
	}
	outbox, err := a.Outbox()
	wantOutbox, _ := b.Outbox()
	if err != nil || len(wantOutbox) == 0 || !slices.Equal(outbox, wantOutbox) {
		t.Errorf("Outbox = %v, %v; want %v", outbox, err, wantOutbox)
	}
	active, err := a.ListActive(nil)
	wantActive, _ := b.ListActive(nil)
	if err != nil || jsonOf(active) != jsonOf(wantActive) {
		t.Errorf("ListActive = %s, %v\nwant %s", jsonOf(active), err, jsonOf(wantActive))
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// Migrating again changes nothing.
	code, out2, errOut := runCmd("store", "migrate", "--from", "bolt:"+path, "--to", "dynamodb:"+table, "--config", cfg)
	if note := "the table already held 10 of these requests (from an earlier run): written again, nothing added twice\n"; code != 0 || out2 != note+out {
		t.Errorf("store migrate again: exit %d, stderr %q\nstdout:\n%s\nwant:\n%s", code, errOut, out2, out)
	}
	if again := scan(t, c, table); !slices.Equal(again, first) {
		t.Errorf("the table after a second migration differs from after the first:\n%s\n---\n%s", strings.Join(again, "\n"), strings.Join(first, "\n"))
	}

	// Two replicas carry on: the locks of the active requests hold, the
	// terminal ones' are free, the ids go on, envelopes stay claimed, and
	// the running job is taken over under the next epoch and finished.
	r2, err := dynamo.New(dynamoClient(endpoint), dynamo.Options{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range allStates {
		lock := fmt.Sprintf("export:t%d", i+1)
		res, err := r2.Create(storetest.NewRequest(lock), "")
		if err != nil {
			t.Fatal(err)
		}
		holder := fmt.Sprintf("R-%06d", i+1)
		if st.Terminal() {
			if res.Request == nil {
				t.Errorf("%s (of %s, %s) is still held after the migration", lock, holder, st)
				continue
			}
			if _, err := r2.Transition(res.Request.ID, nil, actions.Cancelled, nil); err != nil {
				t.Fatal(err)
			}
		} else if res.Request != nil || res.LockedBy[lock] == nil || res.LockedBy[lock].ID != holder {
			t.Errorf("%s after the migration: created %v, locked by %v; want held by %s (%s)", lock, res.Request, res.LockedBy, holder, st)
		}
	}
	res, err := a.Create(storetest.NewRequest(), "slash-3")
	if err != nil || !res.Duplicate || res.Request.ID != "R-000003" {
		t.Errorf("a redelivered slash command after the migration: %+v, %v; want the duplicate R-000003", res, err)
	}
	if ok, err := r2.ClaimEnvelope("click-1"); ok || err != nil {
		t.Errorf("a redelivered click after the migration: claimed %v, %v; want claimed before", ok, err)
	}
	res, err = a.Create(storetest.NewRequest(), "slash-new")
	if err != nil || res.Request == nil || res.Request.ID <= "R-000010" {
		t.Errorf("a new request after the migration: %+v, %v; want an id after R-000010", res, err)
	}
	lease, err := r2.AcquireLease(actions.JobLease("R-000005"), "new-replica", 30*time.Second)
	if err != nil || lease.Epoch < 2 {
		t.Fatalf("taking the migrated running job over: %+v, %v; want the epoch after the old replica's", lease, err)
	}
	var pipeline map[string]string
	if ok, err := r2.LoadCheckpoint("R-000005", "pipeline", &pipeline); !ok || err != nil || pipeline["id"] != "df-0123" {
		t.Errorf("the running job's checkpoint on the new replica: %v, %v, %v", pipeline, ok, err)
	}
	if _, err := r2.TransitionFenced(lease, "R-000005", []actions.State{actions.Running}, actions.Succeeded, nil, actions.Event{Kind: actions.Message, Text: "done"}); err != nil {
		t.Fatal(err)
	}
	if r, err := a.Get("R-000005"); err != nil || r.State != actions.Succeeded {
		t.Errorf("the finished job seen by the other replica: %+v, %v", r, err)
	}
	if res, err := a.Create(storetest.NewRequest("export:t5"), ""); err != nil || res.Request == nil {
		t.Errorf("the finished job's lock is still held: %+v, %v", res, err)
	}

	// Now the table holds requests the bolt store does not: a migration
	// from another bolt store into it is refused.
	code, _, errOut = runCmd("store", "migrate", "--from", "bolt:"+soundStore(t, 2), "--to", "dynamodb:"+table, "--config", cfg)
	if code != 1 || !strings.Contains(errOut, "another bot's") {
		t.Errorf("store migrate into a table in use: exit %d, stderr %q", code, errOut)
	}
}

// TestStoreMigrateFlags: the region and endpoint come from flags when there
// is no config; --dry-run only counts.
func TestStoreMigrateFlags(t *testing.T) {
	endpoint := motoEndpoint(t)
	table := newTableName()
	path := busyStore(t)
	code, out, errOut := runCmd("store", "migrate", "--from", "bolt:"+path, "--to", "dynamodb:"+table, "--dry-run")
	if code != 0 || !strings.HasPrefix(out, "dry run: nothing written") || !strings.Contains(out, "requests:    10 (") {
		t.Errorf("--dry-run: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	if _, err := dynamoClient(endpoint).DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(table)}); err == nil {
		t.Error("--dry-run made the table")
	}
	code, _, errOut = runCmd("store", "migrate", "--from", "bolt:"+path, "--to", "dynamodb:"+table, "--region", "us-east-1", "--endpoint", endpoint)
	if code != 1 || !strings.Contains(errOut, "does not exist") || !strings.Contains(errOut, "osio-bot store init") {
		t.Errorf("store migrate to a missing table: exit %d, stderr %q; want it to say to run store init", code, errOut)
	}
	if _, err := dynamoClient(endpoint).CreateTable(t.Context(), dynamo.TableInput(table)); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCmd("store", "migrate", "--from", "bolt:"+path, "--to", "dynamodb:"+table, "--region", "us-east-1", "--endpoint", endpoint)
	if code != 0 || !strings.Contains(out, "verified: the table holds these 10 requests") {
		t.Errorf("store migrate with --region and --endpoint: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
}

// TestStoreMigrateBoltInUse: the bolt file of a running bot is not read.
func TestStoreMigrateBoltInUse(t *testing.T) {
	path := soundStore(t, 3)
	b, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	start := time.Now()
	code, _, errOut := runCmd("store", "migrate", "--from", "bolt:"+path, "--to", "dynamodb:osio-bot", "--dry-run")
	if code != 1 || !strings.Contains(errOut, "in use") || !strings.Contains(errOut, "stop the bot first") {
		t.Errorf("store migrate of a bolt file in use: exit %d, stderr %q", code, errOut)
	}
	t.Logf("refused after %v", time.Since(start).Round(time.Millisecond))
}

func TestStoreMigrateUsage(t *testing.T) {
	for k := range map[string]bool{"AWS_REGION": true, "AWS_DEFAULT_REGION": true} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	good := soundStore(t, 1)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"store"}, 2, "osio-bot store migrate --from bolt:PATH"},
		{[]string{"store", "migrate"}, 2, "--from must be bolt:PATH"},
		{[]string{"store", "migrate", "--to", "dynamodb:t1t"}, 2, "--from must be bolt:PATH"},
		{[]string{"store", "migrate", "--from", good, "--to", "dynamodb:t1t"}, 2, "--from must be bolt:PATH"},
		{[]string{"store", "migrate", "--from", "bolt:", "--to", "dynamodb:t1t"}, 2, "--from must be bolt:PATH"},
		{[]string{"store", "migrate", "--from", "bolt:" + good}, 2, "--to must be dynamodb:TABLE"},
		{[]string{"store", "migrate", "--from", "bolt:" + good, "--to", "t1t"}, 2, "--to must be dynamodb:TABLE"},
		{[]string{"store", "migrate", "--from", "bolt:" + good, "--to", "dynamodb:"}, 2, "no table"},
		{[]string{"store", "migrate", "--from", "bolt:" + good, "--to", "dynamodb:a b"}, 2, "is not a DynamoDB table name"},
		{[]string{"store", "migrate", "--from", "bolt:" + good, "--to", "dynamodb:t1t"}, 2, "no region"},
		{[]string{"store", "migrate", "--from", "bolt:" + good, "--to", "dynamodb:t1t", "--region", "mars"}, 2, `"mars" is not a region`},
		{[]string{"store", "migrate", "--from", "bolt:" + good, "--to", "dynamodb:t1t", "--region", "us-east-1", "--endpoint", "localhost:8000"}, 2, "not an http(s) URL"},
		{[]string{"store", "migrate", "--from", "bolt:" + good, "--to", "dynamodb:t1t", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"store", "migrate", "--frm", "bolt:" + good}, 2, "flag provided but not defined: -frm"},
		{[]string{"store", "migrate", "--from", "bolt:" + good + ".missing", "--to", "dynamodb:t1t", "--dry-run"}, 1, "no such file"},
		{[]string{"store", "migrate", "--from", "bolt:" + good, "--to", "dynamodb:t1t", "--config", good + ".missing.yaml"}, 1, "reading config"},
		{[]string{"store", "init", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"store", "init", "--config", good + ".missing.yaml"}, 1, "reading config"},
		{[]string{"store", "frobnicate"}, 2, `unknown store command "frobnicate"`},
		{[]string{"store", "migrate", "-h"}, 0, "-dry-run"},
		{[]string{"store", "init", "--help"}, 0, "-config"},
	}
	for _, tt := range tests {
		code, out, errOut := runCmd(tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d saying %q", tt.args, code, out, errOut, tt.code, tt.want)
		}
	}
	if _, err := os.Stat(good + ".missing"); err == nil {
		t.Error("store migrate created a missing bolt file")
	}
}
