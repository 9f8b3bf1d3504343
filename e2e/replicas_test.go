package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/osio/osio-bot/store/dynamo"
	"github.com/osio/osio-bot/testservers/testenv"
)

// Issue 10: several replicas on one DynamoDB store (moto) and one Slack
// server that spreads envelopes over the app's connections at random and
// delivers a share of them a second time, to the other connection.

// twoReplicas starts two bot processes on a shared store.
func twoReplicas(t *testing.T, redeliver float64) (*world, string, [2]*proc) {
	t.Helper()
	w := newWorld(t, testenv.Options{SharedStore: true, SlackRedeliver: redeliver})
	bin := buildBot(t)
	ps := [2]*proc{startProc(t, w, bin, 1), startProc(t, w, bin, 2)}
	if err := w.Slack.WaitFor(w.ctx, func() bool { return w.Slack.LiveConnections() == 2 }); err != nil {
		t.Fatalf("live connections: %d", w.Slack.LiveConnections())
	}
	return w, bin, ps
}

// storeOf reads the world's shared store, as a third client.
func storeOf(t *testing.T, w *world) *dynamo.Store {
	t.Helper()
	c := dynamodb.NewFromConfig(w.Moto.Base(testenv.Region), func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(w.Config.Store.DynamoDB.Endpoint)
	})
	st, err := dynamo.New(c, dynamo.Options{Table: w.StoreTable})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Acceptance 2 (exports): 10 exports through two replicas, with 30% of the
// envelopes delivered twice. Every side effect happens once and every
// thread is complete, in order, without a duplicate reply.
func TestTwoReplicasExportOnce(t *testing.T) {
	w, _, ps := twoReplicas(t, 0.3)
	const n = 10
	var ids []string
	for i := 0; i < n; i++ {
		w.table(fmt.Sprintf("prod_rep%d", i), 3)
	}
	for i := 0; i < n; i++ {
		_, id := w.request(testenv.Requester, fmt.Sprintf("prod_rep%d", i))
		if id == "" {
			t.Fatalf("export %d: no request id", i)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		w.click(testenv.Approver, "approve", id)
	}
	for _, id := range ids {
		w.waitThread(id, "Request finished")
	}
	if c := w.DP.Calls("CreatePipeline"); c != n {
		t.Errorf("CreatePipeline called %d times, want %d", c, n)
	}
	for i := 0; i < n; i++ {
		pid, ok := w.DP.PipelineIDByName(fmt.Sprintf("prod_rep%d", i))
		if !ok {
			t.Errorf("no pipeline for prod_rep%d", i)
			continue
		}
		if a := w.DP.Activations(pid); a != 1 {
			t.Errorf("prod_rep%d: %d activations, want 1", i, a)
		}
	}
	for _, id := range ids {
		th := w.ThreadText(id)
		for _, line := range []string{"activated pipeline", "Good luck!", "Request finished"} {
			if c := strings.Count(th, line); c != 1 {
				t.Errorf("%s: %q appears %d times in the thread:\n%s", id, line, c, th)
			}
		}
		if strings.Index(th, "activated pipeline") > strings.Index(th, "Good luck!") {
			t.Errorf("%s: thread out of order:\n%s", id, th)
		}
	}
	again, conns := 0, map[int]int{}
	for _, d := range w.Slack.Deliveries() {
		if d.Attempt > 0 {
			again++
		}
		conns[d.Conn]++
	}
	t.Logf("%d deliveries, %d of them second deliveries; per connection %v", len(w.Slack.Deliveries()), again, conns)
	if again == 0 || len(conns) < 2 {
		t.Errorf("the Slack server did not spread and redeliver envelopes (%d again, connections %v)", again, conns)
	}
	// Both replicas did jobs (the lease decides who, not the approval).
	for i, p := range ps {
		data, _ := os.ReadFile(p.log)
		t.Logf("replica %d: %d job(s) succeeded", i+1, strings.Count(string(data), `"job succeeded"`))
	}
}

// Acceptance 3: the replica running an export is SIGKILLed mid-watch. The
// other takes the job over once its lease expires, goes on from the
// checkpoints, and activates nothing again; the thread says so in one line.
func TestReplicaKilledMidWatch(t *testing.T) {
	w, _, ps := twoReplicas(t, 0)
	w.table("prod_kill", 5)
	w.DP.Hold("prod_kill")
	_, id := w.request(testenv.Requester, "prod_kill")
	if id == "" {
		t.Fatal("no request id")
	}
	w.click(testenv.Approver, "approve", id)
	w.waitThread(id, "is RUNNING")

	st := storeOf(t, w)
	req, err := st.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	var victim, other *proc
	for i, p := range ps {
		if strings.HasSuffix(req.Runner, "-"+strconv.Itoa(p.cmd.Process.Pid)) {
			victim, other = p, ps[1-i]
		}
	}
	if victim == nil {
		t.Fatalf("the job's runner %q is neither process", req.Runner)
	}
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = victim.cmd.Wait()
	killed := time.Now()
	w.DP.Release("prod_kill")
	ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
	defer cancel()
	if err := w.WaitThread(ctx, id, "Request finished"); err != nil {
		t.Fatalf("not finished after the kill: %v\n%s", err, w.ThreadText(id))
	}
	took := time.Since(killed)
	lease := w.Config.Store.LeaseTTL.D()
	t.Logf("finished %v after the kill (lease %v, resume interval %v)", took.Round(time.Millisecond), lease, w.Config.Store.ResumeInterval.D())
	if took > lease+w.Config.Store.ResumeInterval.D()+5*time.Second {
		t.Errorf("took %v to finish after the kill", took)
	}
	pid, _ := w.DP.PipelineIDByName("prod_kill")
	if a := w.DP.Activations(pid); a != 1 {
		t.Errorf("%d activations, want 1", a)
	}
	if c := w.DP.Calls("CreatePipeline"); c != 1 {
		t.Errorf("CreatePipeline called %d times, want 1", c)
	}
	th := w.ThreadText(id)
	if c := strings.Count(th, "Resumed by replica"); c != 1 {
		t.Errorf("%d takeover lines, want 1:\n%s", c, th)
	}
	if c := strings.Count(th, "activated pipeline"); c != 1 {
		t.Errorf("'activated pipeline' %d times:\n%s", c, th)
	}
	if data, _ := os.ReadFile(other.log); !strings.Contains(string(data), "took over the job from another replica") {
		t.Errorf("the surviving replica did not log the takeover")
	}
}
