package dynamo

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/store/storetest"
)

const deployDir = "../../deploy/dynamodb/"

// policyActions reads the actions of deploy/dynamodb/iam-policy.json and
// checks that each statement is on the table alone.
func policyActions(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(deployDir + "iam-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Statement []struct {
			Effect   string
			Action   []string
			Resource string
		}
	}
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatalf("iam-policy.json: %v", err)
	}
	var out []string
	for _, st := range p.Statement {
		if st.Effect != "Allow" || !strings.HasSuffix(st.Resource, ":table/osio-bot") || strings.Contains(st.Resource, "*") {
			t.Errorf("statement %+v: want Allow on the table's ARN alone", st)
		}
		out = append(out, st.Action...)
	}
	slices.Sort(out)
	return out
}

// checkPolicy compares the IAM actions the calls needed with the policy's:
// never one missing; with exact, none more either (least privilege).
func checkPolicy(t *testing.T, called []string, exact bool) {
	t.Helper()
	if skipMoto != "" {
		return
	}
	policy := policyActions(t)
	for _, a := range called {
		if !slices.Contains(policy, a) {
			t.Errorf("the store needs %s, which deploy/dynamodb/iam-policy.json does not grant", a)
		}
	}
	if exact && !slices.Equal(called, policy) {
		t.Errorf("iam-policy.json grants %v; the store calls %v (least privilege: exactly those)", policy, called)
	}
}

// exercise calls every store method once, the paths that write and
// delete included.
func exercise(t *testing.T, s *Store, clock *storetest.Clock) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.Create(storetest.NewRequest("export:a"), "env-1", actions.Event{Kind: actions.Card})
	must(err)
	id := res.Request.ID
	_, err = s.Get(id)
	must(err)
	_, err = s.List(nil)
	must(err)
	l, err := s.AcquireLease(actions.JobLease(id), "replica-a", time.Minute)
	must(err)
	l, err = s.RenewLease(l, time.Minute)
	must(err)
	_, err = s.TransitionFenced(l, id, []actions.State{actions.Pending}, actions.Running, nil, actions.Event{Kind: actions.Message, Text: "running"})
	must(err)
	must(s.AppendEventsFenced(l, id, actions.Event{Kind: actions.Progress, Text: "1"}))
	must(s.SaveCheckpointFenced(l, id, "a", 1))
	must(s.SaveCheckpointEventsFenced(l, id, "b", 2, actions.Event{Kind: actions.Message, Text: "b"}))
	_, err = s.UpdateFenced(l, id, nil, func(r *actions.Request) error { r.Locks = []string{"export:b"}; return nil })
	must(err)
	must(s.AppendEvents(id, actions.Event{Kind: actions.Progress, Text: "2"}))
	must(s.SaveCheckpoint(id, "c", 3))
	must(s.SaveCheckpointEvents(id, "d", 4, actions.Event{Kind: actions.Message, Text: "d"}))
	var v int
	_, err = s.LoadCheckpoint(id, "a", &v)
	must(err)
	_, err = s.Update(id, nil, func(r *actions.Request) error { return nil })
	must(err)
	_, err = s.Transition(id, nil, actions.Succeeded, nil, actions.Event{Kind: actions.Card})
	must(err)
	must(s.ReleaseLease(l))
	evs, _, err := s.Undelivered(id)
	must(err)
	_, err = s.Events(id)
	must(err)
	must(s.MarkDelivered(id, actions.Cursor{Delivered: evs[len(evs)-1].Seq}))
	_, err = s.Outbox()
	must(err)
	_, err = s.ClaimEnvelope("click-1")
	must(err)
	clock.Add(time.Hour)
	n, err := s.PruneEnvelopes(clock.Now())
	must(err)
	if n != 2 {
		t.Errorf("pruned %d envelopes, want 2", n)
	}
	must(s.Ping(t.Context()))
}

// TestIAMPolicy: deploy/dynamodb/iam-policy.json grants exactly the
// actions the store (and its table init) calls.
func TestIAMPolicy(t *testing.T) {
	rec := newRecorder()
	c := client(t, rec, "")
	clock := &storetest.Clock{}
	clock.Set(storetest.T0)
	s, err := New(c, Options{Table: newTable(t, c), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	exercise(t, s, clock)
	checkPolicy(t, rec.actions(), true)
}

// TestTableJSON: deploy/dynamodb/table.json is the table CreateTable makes.
func TestTableJSON(t *testing.T) {
	data, err := os.ReadFile(deployDir + "table.json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		TableName            string
		AttributeDefinitions []struct{ AttributeName, AttributeType string }
		KeySchema            []struct{ AttributeName, KeyType string }
		BillingMode          string
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("table.json: %v", err)
	}
	want := TableInput("osio-bot")
	if got.TableName != aws.ToString(want.TableName) || got.BillingMode != string(want.BillingMode) {
		t.Errorf("table.json: %s %s, want %s %s", got.TableName, got.BillingMode, aws.ToString(want.TableName), want.BillingMode)
	}
	g := fmt.Sprint(got.AttributeDefinitions, got.KeySchema)
	var wa []struct{ AttributeName, AttributeType string }
	for _, a := range want.AttributeDefinitions {
		wa = append(wa, struct{ AttributeName, AttributeType string }{aws.ToString(a.AttributeName), string(a.AttributeType)})
	}
	var wk []struct{ AttributeName, KeyType string }
	for _, k := range want.KeySchema {
		wk = append(wk, struct{ AttributeName, KeyType string }{aws.ToString(k.AttributeName), string(k.KeyType)})
	}
	if w := fmt.Sprint(wa, wk); g != w {
		t.Errorf("table.json keys %s, want %s", g, w)
	}
}
