package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/osio/osio-bot/app"
	"github.com/osio/osio-bot/testservers/testenv"
)

// Issue 13, part 4: least privilege, checked.
//
// Every AWS operation the bot calls through an account's role, across the
// flows (Data Pipeline export, native export and restore, reset in place
// of a user with and without a console password), must be allowed by that
// account's policy in deploy/iam/; and every action the policies grant
// must be one the code calls, or one AWS needs on the bot's behalf for a
// call it makes (implied, below). The test prints the table.

// iamPrefix is the IAM action prefix of an SDK service id.
var iamPrefix = map[string]string{"DynamoDB": "dynamodb", "S3": "s3", "IAM": "iam", "Data Pipeline": "datapipeline"}

// iamAction is the action an operation needs (S3 names some differently).
func iamAction(service, op string) string {
	p := iamPrefix[service]
	if p == "" {
		p = strings.ToLower(strings.ReplaceAll(service, " ", ""))
	}
	switch p + ":" + op {
	case "s3:HeadObject":
		return "s3:GetObject"
	case "s3:ListObjectsV2":
		return "s3:ListBucket"
	}
	return p + ":" + op
}

// implied are the actions AWS checks on the caller's role for a call it
// makes, besides the call's own action.
var implied = map[string][]string{
	// DynamoDB writes the export's files with the caller's permissions.
	"dynamodb:ExportTableToPointInTime": {"s3:PutObject", "s3:PutObjectAcl", "s3:AbortMultipartUpload"},
	// The pipeline runs as the default roles, passed by the creator; tags
	// given at creation need AddTags.
	"datapipeline:CreatePipeline": {"iam:PassRole", "datapipeline:AddTags"},
	// ImportTable creates the table, reads the export from S3 and logs to
	// CloudWatch Logs as the caller.
	"dynamodb:ImportTable": {"dynamodb:CreateTable", "s3:GetObject", "s3:ListBucket", "logs:CreateLogGroup", "logs:CreateLogStream",
		"logs:DescribeLogStreams", "logs:PutLogEvents", "logs:PutRetentionPolicy", "logs:DescribeLogGroups"},
}

// policyActions reads the actions a policy file allows.
func policyActions(t *testing.T, file string) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Statement []struct {
			Effect string
			Action json.RawMessage
		}
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, s := range p.Statement {
		var list []string
		if json.Unmarshal(s.Action, &list) != nil {
			var one string
			if err := json.Unmarshal(s.Action, &one); err != nil {
				t.Fatalf("%s: action %s", file, s.Action)
			}
			list = []string{one}
		}
		for _, a := range list {
			if s.Effect == "Allow" {
				out[a] = true
			}
		}
	}
	return out
}

// codeOperations are the AWS operations the bot's code can call: the
// methods of its narrow SDK interfaces (SDK signatures), by package.
func codeOperations(t *testing.T) map[string]bool {
	t.Helper()
	sig := regexp.MustCompile(`(?m)^\s+([A-Z]\w+)\(\w+ context\.Context, \w+ \*(\w+)\.\w+Input, \w+ \.\.\.func\(\*(\w+)\.Options\)\)`)
	pkg := map[string]string{"dynamodb": "dynamodb", "s3": "s3", "iam": "iam", "datapipeline": "datapipeline"}
	out := map[string]bool{}
	for _, root := range []string{"../actions", "../audit"} {
		err := filepath.Walk(root, func(path string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range sig.FindAllStringSubmatch(string(src), -1) {
				if p, ok := pkg[m[2]]; ok {
					a := p + ":" + m[1]
					switch a {
					case "s3:HeadObject":
						a = "s3:GetObject"
					case "s3:ListObjectsV2":
						a = "s3:ListBucket"
					}
					out[a] = true
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestLeastPrivilege(t *testing.T) {
	dana, erin := newPerson(t, "dana", ""), newPerson(t, "erin", "")
	w := resetWorld(t, []person{dana, erin}, testenv.Options{})
	// erin has no console password: the reset creates one.
	if _, err := iam.NewFromConfig(w.Dev).DeleteLoginProfile(w.ctx, &iam.DeleteLoginProfileInput{UserName: aws.String("erin")}); err != nil {
		t.Fatal(err)
	}
	w.table("prod_priv_dp", 3)
	w.richTable("prod_priv_native", 20, true)

	var mu sync.Mutex
	flow := ""
	called := map[string]map[string]map[string]bool{} // account -> action -> flows
	w.start(app.Options{AWSObserved: func(account, service, op string) {
		mu.Lock()
		defer mu.Unlock()
		a := iamAction(service, op)
		if called[account] == nil {
			called[account] = map[string]map[string]bool{}
		}
		if called[account][a] == nil {
			called[account][a] = map[string]bool{}
		}
		called[account][a][flow] = true
	}})
	set := func(f string) { mu.Lock(); flow = f; mu.Unlock() }

	set("export (Data Pipeline)")
	_, id := w.request(testenv.Requester, "prod_priv_dp")
	w.click(testenv.Approver, "approve", id)
	w.waitThread(id, "Request finished")

	set("export (native)")
	_, nid := w.request(testenv.Requester, "--native prod_priv_native")
	w.click(testenv.Approver, "approve", nid)
	w.waitThread(nid, "Request finished")

	set("restore")
	_, rid := w.restore(testenv.Requester, nid+" prod_priv_native dev_priv_native")
	w.click(testenv.Approver, "approve", rid)
	w.waitThread(rid, "Request finished")

	for _, user := range []string{"dana", "erin"} {
		set("reset in place")
		_, pid := w.resetRequest(testenv.Requester, user+" --method inplace")
		if pid == "" {
			t.Fatalf("reset of %s refused", user)
		}
		w.clickValue(testenv.Approver, "approve", pid+"/inplace", pid)
		w.waitThread(pid, "Request finished")
	}
	w.stop()

	policies := map[string]string{"osio": "../deploy/iam/osio-bot-prod-policy.json", "osio-dev": "../deploy/iam/osio-bot-dev-policy.json"}
	code := codeOperations(t)
	var table []string
	mu.Lock()
	defer mu.Unlock()
	needed := map[string]bool{}
	for a := range code {
		needed[a] = true
		for _, i := range implied[a] {
			needed[i] = true
		}
	}
	for account, file := range policies {
		granted := policyActions(t, file)
		for a, flows := range called[account] {
			fs := slices.Sorted(func(yield func(string) bool) {
				for f := range flows {
					if !yield(f) {
						return
					}
				}
			})
			table = append(table, fmt.Sprintf("%-42s %-9s %s", a, account, strings.Join(fs, ", ")))
		}
		for _, p := range privilegeProblems(called[account], granted, needed) {
			t.Errorf("%s (%s): %s", filepath.Base(file), account, p)
		}
		// The check fails on a hand edit either way (acceptance 1).
		for a := range called[account] {
			cut := maps.Clone(granted)
			delete(cut, a)
			if len(privilegeProblems(called[account], cut, needed)) == 0 {
				t.Errorf("removing %s from %s goes unnoticed", a, filepath.Base(file))
			}
			break
		}
		extra := maps.Clone(granted)
		extra["iam:DeleteUser"] = true
		if len(privilegeProblems(called[account], extra, needed)) == 0 {
			t.Errorf("adding iam:DeleteUser to %s goes unnoticed", filepath.Base(file))
		}
	}
	sort.Strings(table)
	t.Logf("AWS actions called, by account and flow:\n%-42s %-9s %s\n%s", "action", "account", "flows", strings.Join(table, "\n"))
}

// privilegeProblems holds a policy's actions (granted) against the actions
// called through its role and those the code needs (needed).
func privilegeProblems(called map[string]map[string]bool, granted, needed map[string]bool) []string {
	var out []string
	for a := range called {
		if !granted[a] {
			out = append(out, "the bot calls "+a+", which the policy does not allow")
		}
	}
	for a := range granted {
		if !needed[a] {
			out = append(out, "the policy grants "+a+", which the code never calls (nor AWS on its behalf)")
		}
	}
	sort.Strings(out)
	return out
}
