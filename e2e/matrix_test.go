package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/osio/osio-bot/actions/export"
	"github.com/osio/osio-bot/actions/passwordreset"
	"github.com/osio/osio-bot/actions/restore"
	"github.com/osio/osio-bot/testservers/faultproxy"
	gitlabserver "github.com/osio/osio-bot/testservers/gitlab"
	"github.com/osio/osio-bot/testservers/qontract"
	"github.com/osio/osio-bot/testservers/testenv"
)

// The standing fault matrix (issue 8; docs/reliability.md). Rows are the
// jobs' checkpoints and the peers' side-effect operations; columns are the
// faults: SIGKILL at the checkpoint and restart; a 5xx; a timeout; a lost
// answer. Each cell runs the built bot in its own world (its own Slack,
// Data Pipeline, SMTP, GitLab and GraphQL servers and fault proxies; the
// shared moto_server with table and user names of its own) and asserts:
//   - each external side effect happened once, or was idempotent by
//     construction (same client token, same password, same ciphertext);
//   - the request reached its true end state;
//   - the thread holds every expected reply once, in order, and one card.
//
// Every cell asserts. OSIO_MATRIX_RUN=SUBSTRING runs the cells whose name holds
// it; OSIO_MATRIX_PARALLEL sets how many run at once (default 6).

// The jobs (failpoint prefixes).
const (
	jobDP      = "datapipeline"
	jobNative  = "native"
	jobRestore = "restore"
	jobInPlace = "inplace"
	jobRecr    = "recreate"
	jobRP      = "resetpasswords"
)

// The columns.
const (
	colKill    = "kill"
	colFail5xx = "5xx"
	colTimeout = "timeout"
	colLost    = "lost"
)

// The peers a fault can be put on.
const (
	peerDP     = "dp"     // the Data Pipeline server (AWS JSON protocol)
	peerAWS    = "aws"    // moto: DynamoDB, IAM, STS, S3
	peerSMTP   = "smtp"   // the SMTP server itself
	peerGitLab = "gitlab" // GitLab REST
	peerSlack  = "slack"  // Slack Web API
)

// End states.
const (
	endSucceeded = "succeeded"
	endResend    = "failed with Resend, then succeeded after Resend"
)

type mcell struct {
	row, col string
	job      string
	// failpoint for kill cells.
	failpoint string
	// peer and op for fault cells (op: the proxy's operation pattern).
	peer, op string
	end      string
}

func (c mcell) name() string { return c.row + "/" + c.col }

// matrixFailpoints are the rows of checkpoints, in each job's order.
func matrixFailpoints() map[string][]string {
	return map[string][]string{
		jobDP:      {"created", "defined", "checked", "activating", "activated", "finished", "verified"},
		jobNative:  {"starting", "started", "finished", "verified"},
		jobRestore: {"importing", "imported", "done"},
		jobInPlace: {"encrypted", "set", "mailed"},
		jobRecr:    {"removing", "mr1", "merged1", "gone", "mr2", "merged2", "back"},
		jobRP:      {"mr", "merged", "profile"},
	}
}

type matrixOp struct{ row, job, peer, op string }

// matrixOps are the rows of peer operations.
func matrixOps() []matrixOp {
	return []matrixOp{
		{"aws.ActivatePipeline", jobDP, peerDP, "ActivatePipeline"},
		{"aws.ExportTableToPointInTime", jobNative, peerAWS, "ExportTableToPointInTime"},
		{"aws.ImportTable", jobRestore, peerAWS, "ImportTable"},
		{"aws.UpdateLoginProfile", jobInPlace, peerAWS, "UpdateLoginProfile"},
		{"aws.CreateLoginProfile", jobInPlace, peerAWS, "CreateLoginProfile"}, // a user with no console password yet
		{"smtp.DATA", jobInPlace, peerSMTP, "DATA"},
		{"gitlab.createMR(recreate)", jobRecr, peerGitLab, "POST /api/v4/projects/*/merge_requests"},
		{"gitlab.createMR(resetpasswords)", jobRP, peerGitLab, "POST /api/v4/projects/*/merge_requests"},
		{"gitlab.createCommit(resetpasswords)", jobRP, peerGitLab, "POST /api/v4/projects/*/repository/commits"},
		{"slack.chat.postMessage", jobDP, peerSlack, "chat.postMessage"},
	}
}

func matrixCells() []mcell {
	var cells []mcell
	for _, job := range []string{jobDP, jobNative, jobRestore, jobInPlace, jobRecr, jobRP} {
		for _, fp := range matrixFailpoints()[job] {
			cells = append(cells, mcell{row: job + "." + fp, col: colKill, job: job, failpoint: job + "." + fp, end: endSucceeded})
		}
	}
	for _, o := range matrixOps() {
		for _, col := range []string{colFail5xx, colTimeout, colLost} {
			end := endSucceeded
			if o.peer == peerSMTP && col == colFail5xx {
				end = endResend // 5xx is permanent in SMTP
			}
			cells = append(cells, mcell{row: o.row, col: col, job: o.job, peer: o.peer, op: o.op, end: end})
		}
	}
	return cells
}

// Fault parameters. A 5xx is answered twice in a row: the clients' own
// retries (AWS SDK: 3 attempts; client-go: 5xx retried; the reporter)
// must absorb it. A timeout holds the call for holdFor, longer than any
// deadline the bot should have; the SMTP stall outlasts the mail client's
// 30 s deadline.
const (
	times5xx  = 2
	holdFor   = 40 * time.Second
	smtpStall = 40 * time.Second
)

// cellT reports a cell's failures.
type cellT struct{ *testing.T }

func (c *cellT) fail(format string, args ...any) {
	c.Helper()
	c.Errorf(format, args...)
}

func (c *cellT) fatal(format string, args ...any) {
	c.Helper()
	c.Fatalf(format, args...)
}

// The matrix is standing: every jc.Failpoint call in the jobs has its row.
func TestFaultMatrixCoversEveryFailpoint(t *testing.T) {
	names := map[string]string{
		"FailpointDataPipeline": export.FailpointDataPipeline, "FailpointNative": export.FailpointNative,
		"Failpoint":        restore.Failpoint,
		"FailpointInPlace": passwordreset.FailpointInPlace, "FailpointRecreate": passwordreset.FailpointRecreate,
		"FailpointResetPasswords": passwordreset.FailpointResetPasswords,
		"CheckpointEncrypted":     passwordreset.CheckpointEncrypted, "CheckpointSet": passwordreset.CheckpointSet,
		"CheckpointMailed": passwordreset.CheckpointMailed,
	}
	call := regexp.MustCompile(`jc\.Failpoint\(ctx, (\w+), ("\w+"|\w+)\)`)
	var inCode []string
	for _, dir := range []string{"../actions/export", "../actions/restore", "../actions/passwordreset"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range call.FindAllStringSubmatch(string(src), -1) {
				job, ok := names[m[1]]
				cp := strings.Trim(m[2], `"`)
				if !strings.HasPrefix(m[2], `"`) {
					cp, ok = names[m[2]], ok && names[m[2]] != ""
				}
				if !ok {
					t.Errorf("%s: %s: a failpoint named by an identifier this test does not know; add it to names", f, m[0])
					continue
				}
				inCode = append(inCode, job+"."+cp)
			}
		}
	}
	var inMatrix []string
	for _, c := range matrixCells() {
		if c.col == colKill {
			inMatrix = append(inMatrix, c.failpoint)
		}
	}
	slices.Sort(inCode)
	slices.Sort(inMatrix)
	if len(inCode) < 20 || !slices.Equal(inCode, inMatrix) {
		t.Errorf("the jobs' failpoints and the matrix's kill rows differ; add the new checkpoints to matrixFailpoints (and docs/reliability.md)\njobs:   %v\nmatrix: %v", inCode, inMatrix)
	}
}

func TestFaultMatrix(t *testing.T) {
	start := time.Now()
	bin := buildBot(t)
	cells := matrixCells()
	par := 6
	if v, err := strconv.Atoi(os.Getenv("OSIO_MATRIX_PARALLEL")); err == nil && v > 0 {
		par = v
	}
	only := os.Getenv("OSIO_MATRIX_RUN")
	// t.Run from several goroutines runs cells at once without the -parallel
	// limit (GOMAXPROCS, 2 in CI): the cells mostly wait on their peers.
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	var mu sync.Mutex
	durations := map[string]time.Duration{}
	// Names unique to this run, so that -count=N reuses no moto name.
	run := strconv.FormatInt(time.Now().UnixNano()/int64(time.Millisecond)%(36*36*36*36), 36)
	for i, c := range cells {
		if only != "" && !strings.Contains(c.name(), only) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			t.Run(c.name(), func(t *testing.T) {
				ct := &cellT{T: t}
				cs := time.Now()
				defer func() {
					mu.Lock()
					durations[c.name()] = time.Since(cs)
					mu.Unlock()
				}()
				runCell(ct, bin, c, fmt.Sprintf("%s%02d", run, i))
			})
		}()
	}
	wg.Wait()
	var lines []string
	for _, c := range cells {
		if d, ok := durations[c.name()]; ok {
			lines = append(lines, fmt.Sprintf("  %-45s %-8s %5.1fs", c.row, c.col, d.Seconds()))
		}
	}
	t.Logf("fault matrix: %d cells in %s (parallel %d)\n%s", len(lines), time.Since(start).Round(time.Second), par, strings.Join(lines, "\n"))
}

// mworld is one cell's world.
type mworld struct {
	*world
	c      *cellT
	cell   mcell
	bin    string
	n      string // the cell's name suffix
	table  string
	user   person
	procs  int
	proc   *proc
	armed  bool
	export string // restore: the native export's request id
	// userFile is the app-interface user file as seeded.
	userFile string
}

func allProxies() testenv.Proxies {
	return testenv.Proxies{Slack: true, AWS: true, DP: true, GitLab: true}
}

// runCell runs one cell; n names its tables and users in the shared moto.
func runCell(c *cellT, bin string, cell mcell, n string) {
	m := &mworld{c: c, cell: cell, bin: bin, n: n}
	o := testenv.Options{KeepMoto: true, Proxies: allProxies(), ProxyHoldMax: holdFor}
	switch cell.job {
	case jobDP, jobNative, jobRestore:
		m.world = newWorld(c.T, o)
		m.table = "mx_tab_" + m.n
		var err error
		if cell.job == jobDP {
			err = m.CreateTable(m.ctx, m.table, 5)
		} else {
			err = m.CreateRichTable(m.ctx, m.table, 20, true)
		}
		if err != nil {
			c.Fatal(err)
		}
	case jobInPlace:
		m.user = newPerson(c.T, "mxuser"+m.n, "")
		m.world = resetWorld(c.T, []person{m.user}, o)
		if cell.op == "CreateLoginProfile" {
			if _, err := iam.NewFromConfig(m.Dev).DeleteLoginProfile(m.ctx, &iam.DeleteLoginProfileInput{UserName: aws.String(m.user.OrgUsername)}); err != nil {
				c.Fatal(err)
			}
		}
	case jobRecr, jobRP:
		o.AppInterface = true
		m.user = newPerson(c.T, "mxuser"+m.n, "")
		m.world = resetWorld(c.T, []person{m.user}, o)
		m.seedAppInterface()
	}
	if cell.col == colKill {
		m.Vars["OSIO_BOT_FAILPOINT"] = cell.failpoint
	}
	m.start()

	var id string
	switch cell.job {
	case jobDP:
		id = m.approveExport(m.table)
	case jobNative:
		id = m.approveExport("--native " + m.table)
	case jobRestore:
		// The export it restores from, with no fault.
		m.export = m.approveExport("--native " + m.table)
		if !m.waitEnd(m.export, "Request finished") {
			m.c.FailNow()
		}
		var ack string
		ack, id = m.slash("/osio-restore", m.export+" "+m.table+" mx_new_"+m.n)
		if id == "" {
			c.Fatalf("restore refused: %s", ack)
		}
		m.armIf(jobRestore)
		m.click(testenv.Approver, "approve", id)
	case jobInPlace, jobRecr, jobRP:
		method := map[string]string{jobInPlace: "inplace", jobRecr: "recreate", jobRP: "resetpasswords"}[cell.job]
		ack, rid := m.slash("/osio-reset-password", m.user.OrgUsername+" --method "+method)
		if rid == "" {
			c.Fatalf("reset refused: %s", ack)
		}
		id = rid
		if _, err := m.Card(m.ctx, id); err != nil {
			c.Fatal(err)
		}
		m.armIf(cell.job)
		m.clickValue(testenv.Approver, "approve", id+"/"+method, id)
	}

	if cell.col == colKill {
		m.killAtFailpoint(id)
	}
	m.finish(id)
}

// slash types a command; when the bot answers that its checks did not
// finish in time (a fixed 2 s deadline, reachable when six bots share one
// moto_server) it tries again, as the message asks a person to.
func (m *mworld) slash(command, text string) (string, string) {
	for i := 0; ; i++ {
		ack, id, err := m.Slash(m.ctx, testenv.Requester, command, text)
		if err != nil {
			m.c.Fatal(err)
		}
		if id != "" || !strings.Contains(ack, "Try again") || i == 4 {
			return ack, id
		}
		m.c.Logf("%s %s: %q; trying again", command, text, ack)
		time.Sleep(300 * time.Millisecond)
	}
}

// approveExport requests an export and approves it, arming the cell's
// fault first.
func (m *mworld) approveExport(text string) string {
	ack, id := m.slash("/osio-export", text)
	if id == "" {
		m.c.Fatalf("export refused: %s", ack)
	}
	if _, err := m.Card(m.ctx, id); err != nil {
		m.c.Fatal(err)
	}
	m.armIf(jobDP, jobNative)
	m.click(testenv.Approver, "approve", id)
	return id
}

// armIf arms the cell's fault once, when the cell's job is one of jobs.
func (m *mworld) armIf(jobs ...string) {
	if m.armed || m.cell.col == colKill || !slices.Contains(jobs, m.cell.job) {
		return
	}
	m.armed = true
	if m.cell.peer == peerSMTP {
		switch m.cell.col {
		case colFail5xx:
			m.SMTP.FailNext(1, 554, "5.7.1 Message rejected")
		case colTimeout:
			m.SMTP.StallNext(1, smtpStall)
		case colLost:
			m.SMTP.LoseNext(1)
		}
		return
	}
	r := faultproxy.Rule{Op: m.cell.op, Times: 1}
	switch m.cell.col {
	case colFail5xx:
		r.Fault, r.Times = faultproxy.Fail5xx, times5xx
	case colTimeout:
		r.Fault = faultproxy.Timeout
	case colLost:
		r.Fault = faultproxy.Lost
	}
	m.peerProxy().Arm(r)
}

func (m *mworld) peerProxy() *faultproxy.Proxy {
	return map[string]*faultproxy.Proxy{peerDP: m.DPProxy, peerAWS: m.AWSProxy, peerGitLab: m.GitLabProxy, peerSlack: m.SlackProxy}[m.cell.peer]
}

func (m *mworld) start() {
	m.procs++
	m.proc = startProc(m.c.T, m.world, m.bin, m.procs)
}

// killAtFailpoint waits for the first process to reach the failpoint,
// SIGKILLs it and starts a second one without the failpoint.
func (m *mworld) killAtFailpoint(id string) {
	if err := m.Slack.WaitFor(m.ctx, func() bool {
		b, _ := os.ReadFile(m.proc.log)
		return strings.Contains(string(b), "failpoint reached")
	}); err != nil {
		b, _ := os.ReadFile(m.proc.log)
		m.c.fatal("failpoint %s never reached: %v\nthread:\n%s\nlog tail:\n%s", m.cell.failpoint, err, m.ThreadText(id), tailBytes(b, 3000))
	}
	if err := m.proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		m.c.Fatal(err)
	}
	_ = m.proc.cmd.Wait()
	delete(m.Vars, "OSIO_BOT_FAILPOINT")
	m.start()
}

// tailBytes is the last n bytes of b.
func tailBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// waitEnd waits until request id's thread says want, or that it failed.
// A request that never ends stops the cell; one that ended otherwise is a
// failure, and the cell goes on to count the side effects.
func (m *mworld) waitEnd(id, want string) bool {
	err := m.Slack.WaitFor(m.ctx, func() bool {
		th := m.ThreadText(id)
		return strings.Contains(th, want) || strings.Contains(th, "* failed: ")
	})
	th := m.ThreadText(id)
	if !strings.Contains(th, want) {
		b, _ := os.ReadFile(m.proc.log)
		if err != nil {
			m.c.fatal("request %s never ended (%v); thread:\n%s\nlog tail:\n%s", id, err, th, tailBytes(b, 3000))
		}
		m.c.fail("request %s failed, want %q; thread:\n%s", id, want, th)
		return false
	}
	return true
}

// finish drives the request to its end state and checks the cell.
func (m *mworld) finish(id string) {
	c := m.c
	ended := true
	if m.cell.end == endResend {
		if err := m.Slack.WaitFor(m.ctx, func() bool { return strings.Contains(cardState(c.T, m.world, id), `"retry"`) }); err != nil {
			c.fatal("no Resend button after a 554; thread:\n%s", m.ThreadText(id))
		}
		m.clickValue(testenv.Approver, "retry", id, id)
		if err := m.Slack.WaitFor(m.ctx, func() bool { return strings.Count(m.ThreadText(id), "Request finished") == 1 }); err != nil {
			c.fatal("Resend did not finish the request; thread:\n%s", m.ThreadText(id))
		}
	} else {
		ended = m.waitEnd(id, "Request finished")
	}
	// Let anything still in flight (a duplicate post, a second call) land.
	time.Sleep(700 * time.Millisecond)
	m.checkEffects(id)
	m.checkThread(id, ended)
	m.checkFault()
}

// checkEffects counts each side effect at its peer.
func (m *mworld) checkEffects(id string) {
	c := m.c
	defer func() { c.Logf("side effects: %s", m.effects()) }()
	switch m.cell.job {
	case jobDP:
		pid, ok := m.DP.PipelineIDByName(m.table)
		if !ok {
			c.fatal("no pipeline named %s", m.table)
		}
		if n := m.DP.Activations(pid); n != 1 {
			c.fail("%d activations of pipeline %s, want 1", n, pid)
		}
		if n := m.DPProxy.Count("CreatePipeline"); n != 1 {
			// uniqueId makes a repeat idempotent: check all carried the same.
			if u := distinctJSON(m.DPProxy.Bodies("CreatePipeline"), "uniqueId"); u != 1 {
				c.fail("CreatePipeline called %d times with %d distinct uniqueIds", n, u)
			}
		}
	case jobNative:
		m.checkExports()
	case jobRestore:
		m.checkImports()
	case jobInPlace:
		msgs := m.SMTP.Messages()
		if len(msgs) == 0 {
			c.fatal("no mail delivered")
		}
		// What IAM holds: the passwords the bot set, as seen on the wire
		// (moto's data.json cannot be read while other cells' exports are
		// in it).
		var pws []string
		for _, b := range append(m.AWSProxy.Bodies("UpdateLoginProfile"), m.AWSProxy.Bodies("CreateLoginProfile")...) {
			v, _ := url.ParseQuery(string(b))
			if !slices.Contains(pws, v.Get("Password")) {
				pws = append(pws, v.Get("Password"))
			}
		}
		if len(pws) != 1 {
			c.fatal("%d distinct passwords set (UpdateLoginProfile called %d times), want 1", len(pws), m.AWSProxy.Count("UpdateLoginProfile"))
		}
		cts := map[string]bool{}
		for _, mm := range msgs {
			if got := decrypt(c.T, mm.Data, m.user.priv); got != pws[0] {
				c.fail("a mailed password is not the one set in IAM")
			}
			cts[string(armoredRe.Find(mm.Data))] = true
		}
		// A lost SMTP answer may deliver the same message twice: SMTP has
		// no idempotency key. It must then be the same ciphertext.
		if len(msgs) != 1 && !(m.cell.peer == peerSMTP && m.cell.col == colLost && len(cts) == 1) {
			c.fail("%d mails (%d distinct ciphertexts), want 1", len(msgs), len(cts))
		}
	case jobRecr, jobRP:
		want := map[string]int{jobRecr: 2, jobRP: 1}[m.cell.job]
		mrs := m.GitLab.MRs()
		if len(mrs) != want {
			var s []string
			for _, mr := range mrs {
				s = append(s, fmt.Sprintf("!%d %s %s", mr.IID, mr.State, mr.Title))
			}
			c.fail("%d MRs, want %d: %s", len(mrs), want, strings.Join(s, "; "))
		}
		for _, mr := range mrs {
			if mr.State != "merged" {
				c.fail("MR !%d is %s", mr.IID, mr.State)
			}
		}
		if n := len(m.SMTP.Messages()); n != 0 {
			c.fail("the bot mailed %d messages; app-interface mails", n)
		}
		// The true end: the user file has its roles back (recreate); the
		// account file asks app-interface once for this request.
		user, _ := m.GitLab.File("master", "data/teams/osio/users/"+m.user.OrgUsername+".yml")
		acct, _ := m.GitLab.File("master", "data"+accountPath)
		if m.cell.job == jobRecr && string(user) != m.userFile {
			c.fail("the user file on master is not the original; the user keeps no roles for osio-dev:\n%s", user)
		}
		if n := strings.Count(string(acct), "requestId: "+id+"\n"); m.cell.job == jobRP && n != 1 {
			c.fail("the account file on master holds %d entries for %s, want 1", n, id)
		}
	}
}

// effects is a one-line count of the cell's side effects, for the log.
func (m *mworld) effects() string {
	switch m.cell.job {
	case jobDP:
		pid, _ := m.DP.PipelineIDByName(m.table)
		return fmt.Sprintf("activations=%d CreatePipeline=%d", m.DP.Activations(pid), m.DPProxy.Count("CreatePipeline"))
	case jobNative:
		return fmt.Sprintf("ExportTableToPointInTime calls=%d reached=%d", m.AWSProxy.Count("ExportTableToPointInTime"), m.AWSProxy.Reached("ExportTableToPointInTime"))
	case jobRestore:
		return fmt.Sprintf("ImportTable calls=%d reached=%d", m.AWSProxy.Count("ImportTable"), m.AWSProxy.Reached("ImportTable"))
	case jobInPlace:
		return fmt.Sprintf("UpdateLoginProfile calls=%d reached=%d CreateLoginProfile calls=%d reached=%d mails=%d", m.AWSProxy.Count("UpdateLoginProfile"), m.AWSProxy.Reached("UpdateLoginProfile"),
			m.AWSProxy.Count("CreateLoginProfile"), m.AWSProxy.Reached("CreateLoginProfile"), len(m.SMTP.Messages()))
	default:
		return fmt.Sprintf("MRs=%d commits calls=%d", len(m.GitLab.MRs()), m.GitLabProxy.Count("POST /api/v4/projects/"+url.PathEscape(m.GitLab.ProjectPath())+"/repository/commits"))
	}
}

// distinctJSON counts the distinct values of a top-level JSON field.
func distinctJSON(bodies [][]byte, field string) int {
	seen := map[string]bool{}
	for _, b := range bodies {
		var v map[string]any
		_ = json.Unmarshal(b, &v)
		seen[fmt.Sprint(v[field])] = true
	}
	return len(seen)
}

// checkExports: one export (the AWS proxy honours ClientToken as AWS
// does, which moto 5.2.1 does not).
func (m *mworld) checkExports() {
	c := m.c
	db := dynamodb.NewFromConfig(m.Prod)
	d, err := db.DescribeTable(m.ctx, &dynamodb.DescribeTableInput{TableName: aws.String(m.table)})
	if err != nil {
		c.Fatal(err)
	}
	out, err := db.ListExports(m.ctx, &dynamodb.ListExportsInput{TableArn: d.Table.TableArn})
	if err != nil {
		c.Fatal(err)
	}
	if n := len(out.ExportSummaries); n != 1 {
		c.fail("%d exports of %s from %d calls, want 1", n, m.table, m.AWSProxy.Count("ExportTableToPointInTime"))
	}
}

// checkImports: one import into the new table, holding every item.
func (m *mworld) checkImports() {
	c := m.c
	db := dynamodb.NewFromConfig(m.Dev)
	table := "mx_new_" + m.n
	// moto 5.2.1 has no ListImports: count the ImportTable calls that
	// reached it (a repeated ClientToken is answered by the proxy, as AWS
	// answers it).
	if n := m.AWSProxy.Reached("ImportTable"); n != 1 {
		c.fail("%d ImportTable calls reached DynamoDB (%d made), want 1", n, m.AWSProxy.Count("ImportTable"))
	}
	items, err := testenv.Scan(m.ctx, db, table)
	if err != nil || len(items) != 20 {
		c.fail("restored table holds %d items (%v), want 20", len(items), err)
	}
}

// expectedReplies are substrings each of which one reply must hold, in
// this order.
func (m *mworld) expectedReplies() []string {
	switch m.cell.job {
	case jobDP:
		return []string{"created pipeline", "activated pipeline", "FINISHED.", "verified from account", "Request finished"}
	case jobNative:
		return []string{"started native export", "verified from account", "Request finished"}
	case jobRestore:
		return []string{"Started import", "is ready in osio-dev", "Request finished"}
	case jobInPlace:
		if m.cell.end == endResend {
			return []string{"they must choose a new one at first sign-in", "* failed: ", "Done: the console password", "Request finished"}
		}
		return []string{"they must choose a new one at first sign-in", "Done: the console password", "Request finished"}
	case jobRecr:
		return []string{"MR 1 opened", "is gone from osio-dev", "MR 2 opened", "was recreated in osio-dev", "Request finished"}
	case jobRP:
		return []string{"MR opened:", "was reset by app-interface", "Request finished"}
	}
	return nil
}

// checkThread checks one card, no reply twice, and, when the request
// ended as it should (ended), every expected reply once and in order.
func (m *mworld) checkThread(id string, ended bool) {
	c := m.c
	var cards []string
	for _, msg := range m.Slack.Messages(testenv.Channel) {
		if strings.Contains(string(msg.Blocks), id) {
			cards = append(cards, msg.TS)
		}
	}
	if len(cards) != 1 {
		c.fail("%d approval cards for %s, want 1", len(cards), id)
		if len(cards) == 0 {
			return
		}
	}
	replies := m.Slack.Thread(testenv.Channel, cards[0])
	var texts []string
	seen := map[string]int{}
	for _, r := range replies {
		texts = append(texts, r.Text)
		seen[r.Text]++
	}
	thread := strings.Join(texts, "\n---\n")
	for text, n := range seen {
		if n > 1 {
			c.fail("the thread holds this reply %d times: %q\nthread:\n%s", n, text, thread)
		}
	}
	if !ended {
		return
	}
	last := -1
	for _, want := range m.expectedReplies() {
		at := -1
		count := 0
		for i, r := range texts {
			if strings.Contains(r, want) {
				count++
				if at < 0 {
					at = i
				}
			}
		}
		switch {
		case count != 1:
			c.fail("%d replies hold %q, want 1; thread:\n%s", count, want, thread)
		case at < last:
			c.fail("%q is out of order; thread:\n%s", want, thread)
		}
		last = max(last, at)
	}
}

// checkFault checks the fault was injected, and for a timeout that the bot
// gave up on the held call by itself (a deadline shorter than holdFor).
func (m *mworld) checkFault() {
	c := m.c
	if m.cell.col == colKill {
		return
	}
	if m.cell.peer == peerSMTP {
		if m.cell.col == colTimeout && m.SMTP.Stalls() != 1 {
			c.fail("the SMTP stall was not reached")
		}
		return
	}
	p := m.peerProxy()
	if p.Pending() != 0 {
		c.fail("the %s fault on %s was never (fully) injected", m.cell.col, m.cell.op)
	}
	if m.cell.col == colTimeout {
		for _, h := range p.Holds() {
			if !h.ClientGaveUp {
				c.fail("the bot waited on a held %s call until the peer dropped it after %s: the call has no deadline", h.Op, h.Held.Round(time.Second))
			}
		}
	}
}

// seedAppInterface is aiWorld for the cell's own user, with app-interface
// merging bot/automerge MRs and the reconciler acting on each merge.
func (m *mworld) seedAppInterface() {
	u := m.user.OrgUsername
	upath := "/teams/osio/users/" + u + ".yml"
	m.Qontract.AddAccount(qontract.Account{Path: accountPath, Name: "osio-dev", UID: testenv.DevAccount})
	m.Qontract.AddAccount(qontract.Account{Path: "/aws/osio/account.yml", Name: "osio", UID: testenv.ProdAccount})
	m.Qontract.AddRole(qontract.Role{Path: "/teams/osio/roles/osio-prod-readonly.yml", Name: "osio-prod-readonly",
		AWSGroups: []qontract.Ref{{Path: "/aws/osio/groups/readonly.yml", Name: "readonly", Account: "osio"}}})
	m.Qontract.AddRole(qontract.Role{Path: devRole, Name: "osio-dev-developers",
		AWSGroups:    []qontract.Ref{{Path: "/aws/osio-dev/groups/developers.yml", Name: "developers", Account: "osio-dev"}},
		UserPolicies: []qontract.Ref{{Path: "/aws/osio-dev/policies/dynamodb.yml", Name: "dynamodb", Account: "osio-dev"}}})
	m.Qontract.AddRole(qontract.Role{Path: "/teams/devtools/roles/devtools.yml", Name: "devtools"})
	m.Qontract.AddUser(qontract.User{Path: upath, Name: "Dana Developer", OrgUsername: u, GithubUsername: u + "-dev",
		PublicGPGKey: m.user.PublicGPGKey, Roles: []string{"/teams/osio/roles/osio-prod-readonly.yml", devRole, "/teams/devtools/roles/devtools.yml"}})
	m.userFile = strings.ReplaceAll(userFile(m.user.PublicGPGKey), "dana", u)
	m.GitLab.SeedFile("master", "data"+upath, []byte(m.userFile))
	m.GitLab.SeedFile("master", "data"+accountPath, []byte(accountFile))
	m.GitLab.AutoMerge("bot/automerge", 200*time.Millisecond)

	c := iam.NewFromConfig(m.Dev)
	m.GitLab.OnMerge(func(gitlabserver.MR) {
		ctx := m.ctx
		user, _ := m.GitLab.File("master", "data"+upath)
		acct, _ := m.GitLab.File("master", "data"+accountPath)
		_, err := c.GetUser(ctx, &iam.GetUserInput{UserName: aws.String(u)})
		exists := err == nil
		granted := strings.Contains(string(user), devRole)
		switch {
		case !granted && exists:
			_, _ = c.DeleteLoginProfile(ctx, &iam.DeleteLoginProfileInput{UserName: aws.String(u)})
			_, _ = c.DeleteUser(ctx, &iam.DeleteUserInput{UserName: aws.String(u)})
		case granted && !exists:
			_, _ = c.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(u)})
			_, _ = c.CreateLoginProfile(ctx, &iam.CreateLoginProfileInput{UserName: aws.String(u), Password: aws.String("Recreated-Pass-1234567890-ABCDEFG!"), PasswordResetRequired: true})
		}
		if strings.Contains(string(acct), "requestId: R-") && exists {
			// As reconciler: moto 5.2.1 dates a login profile by its user.
			time.Sleep(1100 * time.Millisecond)
			_, _ = c.DeleteLoginProfile(ctx, &iam.DeleteLoginProfileInput{UserName: aws.String(u)})
			_, _ = c.DeleteUser(ctx, &iam.DeleteUserInput{UserName: aws.String(u)})
			_, _ = c.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(u)})
			_, _ = c.CreateLoginProfile(ctx, &iam.CreateLoginProfileInput{UserName: aws.String(u), Password: aws.String("Reset-Pass-1234567890-ABCDEFGHIJ!"), PasswordResetRequired: true})
		}
	})
}
