package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/osio/osio-bot/config"
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

	victim, other := runnerOf(t, w, ps, id)
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

// runnerOf is the process running request id's job.
func runnerOf(t *testing.T, w *world, ps [2]*proc, id string) (victim, other *proc) {
	t.Helper()
	req, err := storeOf(t, w).Get(id)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range ps {
		if strings.HasSuffix(req.Runner, "-"+strconv.Itoa(p.cmd.Process.Pid)) {
			return p, ps[1-i]
		}
	}
	t.Fatalf("the job's runner %q is neither process", req.Runner)
	return nil, nil
}

// Acceptance 4: the replica holding a job's lease is paused (SIGSTOP)
// past the lease's expiry; the other takes the job over and finishes it.
// Woken (SIGCONT), the paused replica finds its lease lost: its writes
// are refused, it makes no side effect, and it logs that it lost the
// lease.
func TestPausedReplicaLosesItsLease(t *testing.T) {
	w, _, ps := twoReplicas(t, 0)
	w.table("prod_pause", 5)
	w.DP.Hold("prod_pause")
	_, id := w.request(testenv.Requester, "prod_pause")
	if id == "" {
		t.Fatal("no request id")
	}
	w.click(testenv.Approver, "approve", id)
	w.waitThread(id, "is RUNNING")
	paused, other := runnerOf(t, w, ps, id)
	if err := paused.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = paused.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
	defer cancel()
	if err := w.WaitThread(ctx, id, "Resumed by replica"); err != nil {
		t.Fatalf("no takeover while the runner was paused: %v\n%s", err, w.ThreadText(id))
	}
	w.DP.Release("prod_pause")
	if err := w.WaitThread(ctx, id, "Request finished"); err != nil {
		t.Fatalf("not finished: %v", err)
	}
	before := w.ThreadText(id)
	if err := paused.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	// Give the woken replica time to renew, find the lease lost, and try
	// whatever it was about to do.
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(paused.log)
		if strings.Contains(string(data), "lost the job's lease") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the woken replica did not log that it lost the lease:\n%s", data)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	pid, _ := w.DP.PipelineIDByName("prod_pause")
	if a := w.DP.Activations(pid); a != 1 {
		t.Errorf("%d activations, want 1", a)
	}
	if c := w.DP.Calls("CreatePipeline"); c != 1 {
		t.Errorf("CreatePipeline called %d times, want 1", c)
	}
	if after := w.ThreadText(id); after != before {
		t.Errorf("the thread changed after the paused replica woke:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if c := strings.Count(before, "Request finished"); c != 1 {
		t.Errorf("'Request finished' %d times", c)
	}
	if data, _ := os.ReadFile(other.log); !strings.Contains(string(data), "took over the job from another replica") {
		t.Errorf("the other replica did not log the takeover")
	}
}

// Acceptance 6: with two replicas and 20 requests in one channel, the
// channel sees at most one post per slack.min_post_interval across both
// (scaled down here to 250 ms: the same code paces 1 s in production), and
// no 429.
func TestTwoReplicasPaceOneChannel(t *testing.T) {
	w := newWorld(t, testenv.Options{SharedStore: true, SlackRedeliver: 0.2, Tweak: func(c *config.Config) {
		c.Slack.MinPostInterval = config.Duration(250 * time.Millisecond)
	}})
	bin := buildBot(t)
	startProc(t, w, bin, 1)
	startProc(t, w, bin, 2)
	if err := w.Slack.WaitFor(w.ctx, func() bool { return w.Slack.LiveConnections() == 2 }); err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := 0; i < n; i++ {
		w.table(fmt.Sprintf("prod_pace%d", i), 1)
	}
	for i := 0; i < n; i++ {
		if _, id := w.request(testenv.Requester, fmt.Sprintf("prod_pace%d", i)); id == "" {
			t.Fatalf("request %d: no id", i)
		}
	}
	ctx, cancel := context.WithTimeout(w.ctx, 60*time.Second)
	defer cancel()
	if err := w.Slack.WaitFor(ctx, func() bool { return len(w.Slack.Messages(testenv.Channel)) >= n }); err != nil {
		t.Fatalf("%d cards of %d", len(w.Slack.Messages(testenv.Channel)), n)
	}
	var at []time.Time
	for _, m := range w.Slack.Messages(testenv.Channel) {
		at = append(at, m.Posted)
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	minGap := time.Hour
	for i := 1; i < len(at); i++ {
		minGap = min(minGap, at[i].Sub(at[i-1]))
	}
	t.Logf("%d posts to the channel; smallest gap %v", len(at), minGap.Round(time.Millisecond))
	if minGap < 245*time.Millisecond {
		t.Errorf("two posts to one channel %v apart, under the 250 ms pace across replicas", minGap)
	}
	if len(at) != n {
		t.Errorf("%d posts, want %d cards", len(at), n)
	}
}

// restart stops p gracefully (SIGTERM, as Kubernetes does in a rolling
// update) and starts a new process in its place.
func restart(t *testing.T, w *world, bin string, p *proc, n int) *proc {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("replica stopped with %v", err)
	}
	return startProc(t, w, bin, n)
}

// Acceptance 5: a rolling restart of both replicas while requests are
// pending, approved and running. Nothing is lost or done twice, and a
// slash command typed while one replica is down is acked by the other.
func TestRollingRestart(t *testing.T) {
	w, bin, ps := twoReplicas(t, 0.2)
	for _, name := range []string{"prod_roll_run", "prod_roll_pend", "prod_roll_new"} {
		w.table(name, 4)
	}
	w.DP.Hold("prod_roll_run")
	_, running := w.request(testenv.Requester, "prod_roll_run")
	w.click(testenv.Approver, "approve", running)
	w.waitThread(running, "is RUNNING")
	_, pending := w.request(testenv.Requester, "prod_roll_pend")
	if running == "" || pending == "" {
		t.Fatal("no request ids")
	}

	// Replica 1 goes down; a command typed now is acked by replica 2.
	if err := ps[0].cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := ps[0].cmd.Wait(); err != nil {
		t.Errorf("replica 1 stopped with %v", err)
	}
	ack, during := w.request(testenv.Requester, "prod_roll_new")
	if during == "" {
		t.Fatalf("the command typed during the restart was not taken: %q", ack)
	}
	ps[0] = startProc(t, w, bin, 3)
	// Then replica 2, while the job runs and the others wait.
	ps[1] = restart(t, w, bin, ps[1], 4)
	if err := w.Slack.WaitFor(w.ctx, func() bool { return w.Slack.LiveConnections() == 2 }); err != nil {
		t.Fatal(err)
	}

	w.click(testenv.Approver, "approve", pending)
	w.click(testenv.Approver, "approve", during)
	w.DP.Release("prod_roll_run")
	for _, id := range []string{running, pending, during} {
		w.waitThread(id, "Request finished")
	}
	if c := w.DP.Calls("CreatePipeline"); c != 3 {
		t.Errorf("CreatePipeline called %d times, want 3", c)
	}
	for _, name := range []string{"prod_roll_run", "prod_roll_pend", "prod_roll_new"} {
		pid, _ := w.DP.PipelineIDByName(name)
		if a := w.DP.Activations(pid); a != 1 {
			t.Errorf("%s: %d activations, want 1", name, a)
		}
	}
	for _, id := range []string{running, pending, during} {
		th := w.ThreadText(id)
		for _, line := range []string{"activated pipeline", "Request finished"} {
			if c := strings.Count(th, line); c != 1 {
				t.Errorf("%s: %q %d times:\n%s", id, line, c, th)
			}
		}
	}
	if th := w.ThreadText(running); strings.Count(th, "Resumed by replica") < 1 {
		t.Errorf("the running export's thread does not say it moved:\n%s", th)
	}
}

// Acceptance 2 (resets): two password resets through two replicas, with
// envelopes delivered twice: each UpdateLoginProfile and each mail
// happens once, and the mailed password is the one IAM holds.
func TestTwoReplicasResetOnce(t *testing.T) {
	dana, erin := newPerson(t, "dana", ""), newPerson(t, "erin", "")
	w := resetWorld(t, []person{dana, erin}, testenv.Options{SharedStore: true, SlackRedeliver: 0.3, Proxies: testenv.Proxies{AWS: true}})
	bin := buildBot(t)
	startProc(t, w, bin, 1)
	startProc(t, w, bin, 2)
	if err := w.Slack.WaitFor(w.ctx, func() bool { return w.Slack.LiveConnections() == 2 }); err != nil {
		t.Fatal(err)
	}
	people := map[string]person{"dana": dana, "erin": erin}
	ids := map[string]string{}
	for _, user := range []string{"dana", "erin"} {
		ack, id := w.resetRequest(testenv.Requester, user+" --method inplace")
		if id == "" {
			t.Fatalf("reset of %s refused: %s", user, ack)
		}
		ids[user] = id
	}
	for _, id := range ids {
		w.clickValue(testenv.Approver, "approve", id+"/inplace", id)
	}
	for _, id := range ids {
		w.waitThread(id, "Request finished")
	}
	if c := w.AWSProxy.Count("UpdateLoginProfile"); c != 2 {
		t.Errorf("UpdateLoginProfile called %d times, want 2", c)
	}
	msgs := w.SMTP.Messages()
	if len(msgs) != 2 {
		t.Fatalf("%d mails, want 2", len(msgs))
	}
	for _, m := range msgs {
		user := strings.TrimSuffix(m.To[0], "@example.com")
		p, ok := people[user]
		if !ok {
			t.Fatalf("mail to %v", m.To)
		}
		if pw := decrypt(t, m.Data, p.priv); pw != motoPassword(t, w, user) {
			t.Errorf("%s: the mailed password is not the one IAM holds", user)
		}
	}
	for user, id := range ids {
		th := w.ThreadText(id)
		if c := strings.Count(th, "Request finished"); c != 1 {
			t.Errorf("%s: 'Request finished' %d times:\n%s", user, c, th)
		}
	}
}

// Acceptance 8: a bot on the bolt store with requests in several states
// (finished, refused, pending, running) is stopped, its store migrated
// to DynamoDB with `osio-bot store migrate`, and two replicas on the table
// go on: the running export finishes without a second activation, the
// pending one is approved and runs, and the finished threads stay as
// they were.
func TestMigrateThenTwoReplicas(t *testing.T) {
	w := newWorld(t, testenv.Options{SharedStore: true})
	bin := buildBot(t)
	raw, err := os.ReadFile(w.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	boltCfg := filepath.Join(w.Dir, "bolt.yaml")
	if !strings.Contains(string(raw), "backend: dynamodb") {
		t.Fatalf("config has no dynamodb backend:\n%s", raw)
	}
	if err := os.WriteFile(boltCfg, []byte(strings.Replace(string(raw), "backend: dynamodb", "backend: bolt", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"prod_mig_done", "prod_mig_run", "prod_mig_pend"} {
		w.table(name, 4)
	}
	single := startProcConfig(t, w, bin, 1, boltCfg)
	_, done := w.request(testenv.Requester, "prod_mig_done")
	w.click(testenv.Approver, "approve", done)
	w.waitThread(done, "Request finished")
	refusal, _ := w.request(testenv.Requester, "no_such_table")
	if !strings.Contains(refusal, "no_such_table") {
		t.Fatalf("refusal: %q", refusal)
	}
	w.DP.Hold("prod_mig_run")
	_, running := w.request(testenv.Requester, "prod_mig_run")
	w.click(testenv.Approver, "approve", running)
	w.waitThread(running, "is RUNNING")
	_, pending := w.request(testenv.Requester, "prod_mig_pend")
	if done == "" || running == "" || pending == "" {
		t.Fatal("no request ids")
	}
	doneThread := w.ThreadText(done)
	if err := single.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := single.cmd.Wait(); err != nil {
		t.Errorf("the single replica stopped with %v", err)
	}

	mig := exec.Command(bin, "store", "migrate", "--from", "bolt:"+w.Config.Store.Path, "--to", "dynamodb:"+w.StoreTable, "--config", w.ConfigPath)
	mig.Env = w.Environ()
	out, err := mig.CombinedOutput()
	if err != nil {
		t.Fatalf("store migrate: %v\n%s", err, out)
	}
	t.Logf("store migrate:\n%s", out)

	startProc(t, w, bin, 2)
	startProc(t, w, bin, 3)
	w.DP.Release("prod_mig_run")
	w.waitThread(running, "Request finished")
	w.click(testenv.Approver, "approve", pending)
	w.waitThread(pending, "Request finished")
	if c := w.DP.Calls("CreatePipeline"); c != 3 {
		t.Errorf("CreatePipeline called %d times, want 3", c)
	}
	for _, name := range []string{"prod_mig_done", "prod_mig_run", "prod_mig_pend"} {
		pid, _ := w.DP.PipelineIDByName(name)
		if a := w.DP.Activations(pid); a != 1 {
			t.Errorf("%s: %d activations, want 1", name, a)
		}
	}
	for _, id := range []string{running, pending} {
		th := w.ThreadText(id)
		for _, line := range []string{"activated pipeline", "Request finished"} {
			if c := strings.Count(th, line); c != 1 {
				t.Errorf("%s: %q %d times:\n%s", id, line, c, th)
			}
		}
	}
	if th := w.ThreadText(done); th != doneThread {
		t.Errorf("the finished request's thread changed after the move:\nbefore:\n%s\nafter:\n%s", doneThread, th)
	}
	st := storeOf(t, w)
	for id, want := range map[string]string{done: "succeeded", running: "succeeded", pending: "succeeded"} {
		if q, err := st.Get(id); err != nil || string(q.State) != want {
			t.Errorf("%s in the table: %v %v, want %s", id, q, err, want)
		}
	}
}
