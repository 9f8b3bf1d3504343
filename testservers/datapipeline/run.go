package dpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// dpTime is the layout of Data Pipeline date-time fields.
const dpTime = "2006-01-02T15:04:05"

type run struct {
	p                        *pipeline
	scheduled                time.Time
	visibleAt                time.Time // real clock; its objects are hidden before
	actInst, attempt, clInst string
	status, errMsg, failMsg  string
	setupErr                 error
	table, outputDir         string
	postStep, keys           []string
}

// visible reports whether QueryObjects and DescribeObjects show the object.
func (i *instance) visible() bool { return i.owner == nil || !time.Now().Before(i.owner.visibleAt) }

func terminal(status string) bool {
	switch status {
	case "FINISHED", "FAILED", "CANCELED", "CASCADE_FAILED", "TIMEDOUT", "SKIPPED":
		return true
	}
	return false
}

// newRun builds a run and its instance objects; the caller holds s.mu.
func (s *Server) newRun(p *pipeline, sched time.Time) (*run, error) {
	byID := map[string]wObject{}
	var act *wObject
	for i, o := range p.objects {
		byID[o.ID] = o
		if act == nil && o.str("type") == "EmrActivity" {
			act = &p.objects[i]
		}
	}
	if st := byID["Default"].str("scheduleType"); st != "ONDEMAND" {
		return nil, invalid("dpserver models only scheduleType ONDEMAND, the Default object has %q", st)
	}
	if act == nil {
		return nil, invalid("dpserver runs only pipelines with an EmrActivity")
	}
	params := paramValues(p.params, p.values)
	for _, o := range p.objects {
		for _, f := range o.Fields {
			for _, id := range paramRefs(ptr(f.StringValue)) {
				if _, ok := params[id]; !ok {
					return nil, invalid("Missing value for parameter '%s' referenced by %s.%s", id, o.ID, f.Key)
				}
			}
		}
	}
	ts := sched.Format(dpTime)
	r := &run{p: p, scheduled: sched, visibleAt: time.Now().Add(max(s.opts.InstanceDelay, 0)), actInst: "@" + act.ID + "_" + ts, postStep: act.strs("postStepCommand")}
	r.attempt = r.actInst + "_Attempt=1"
	r.table, r.outputDir, r.setupErr = resolveIO(byID, *act, params, sched)

	now := s.now().Format(dpTime)
	newInst := func(id, sphere, component, typ string) *wObject {
		o := wObject{ID: id, Name: id}
		o.set("@sphere", sphere)
		o.set("type", typ)
		o.setRef("@componentParent", component)
		o.set("@pipelineId", p.id)
		o.set("@scheduledStartTime", ts)
		o.set("@version", fmt.Sprint(p.version))
		// An earlier run with the same @scheduledStartTime loses its objects.
		p.instances[id] = &instance{sphere: sphere, obj: o, owner: r}
		return &p.instances[id].obj
	}
	ai := newInst(r.actInst, "INSTANCE", act.ID, "EmrActivity")
	ai.setRef("@headAttempt", r.attempt)
	at := newInst(r.attempt, "ATTEMPT", act.ID, "EmrActivity")
	at.setRef("@instanceParent", r.actInst)
	at.set("@attemptCount", "1")
	if cl := act.ref("runsOn"); cl != "" {
		r.clInst = "@" + cl + "_" + ts
		ai.setRef("@resource", r.clInst)
		ci := newInst(r.clInst, "INSTANCE", cl, byID[cl].str("type"))
		ci.set("@actualStartTime", now)
	}
	s.setStatus(r, "WAITING_FOR_RUNNER", "")
	return r, nil
}

// setStatus moves a run and its objects to status; the caller holds s.mu.
func (s *Server) setStatus(r *run, status, errMsg string) {
	r.status, r.errMsg = status, errMsg
	now := s.now().Format(dpTime)
	for _, id := range []string{r.actInst, r.attempt} {
		inst, ok := r.p.instances[id]
		if !ok || inst.owner != r {
			continue
		}
		o := &inst.obj
		o.set("@status", status)
		switch status {
		case "RUNNING":
			o.set("@actualStartTime", now)
		case "FAILED":
			o.set("errorMessage", errMsg)
			o.set("errorStackTrace", "java.lang.RuntimeException: "+errMsg+"\n\tat org.apache.hadoop.dynamodb.tools.DynamoDBExport.run(DynamoDBExport.java)")
			o.set("errorId", "dpserver-"+newUUID())
		}
		if terminal(status) {
			o.set("@actualEndTime", now)
		}
	}
	if inst, ok := r.p.instances[r.clInst]; ok && inst.owner == r {
		cs := status
		switch status {
		case "WAITING_FOR_RUNNER":
			cs = "CREATING"
		case "FAILED":
			cs = "CASCADE_FAILED"
			inst.obj.setRef("@cascadeFailedOn", r.actInst)
		}
		inst.obj.set("@status", cs)
		if terminal(cs) {
			inst.obj.set("@actualEndTime", now)
		}
	}
	s.opts.Logf("dpserver: %s %s: %s %s", r.p.id, r.actInst, status, errMsg)
}

// drive moves a run through its states in time; it stops with the server.
func (s *Server) drive(r *run) {
	defer s.wg.Done()
	step := func(d time.Duration) bool { // false when the run is over
		select {
		case <-s.ctx.Done():
			return false
		case <-time.After(d):
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return r.status != "CANCELED"
	}
	if !step(max(s.opts.InstanceDelay, 0) + s.opts.WaitingFor) {
		return
	}
	s.mu.Lock()
	if r.status != "CANCELED" {
		s.setStatus(r, "RUNNING", "")
	}
	s.mu.Unlock()
	if !step(s.opts.RunningFor) {
		return
	}
	for {
		s.mu.Lock()
		held := s.held[r.p.name]
		s.mu.Unlock()
		if !held {
			break
		}
		if !step(10 * time.Millisecond) {
			return
		}
	}
	var keys []string
	err := r.setupErr
	switch {
	case r.failMsg != "":
		err = errors.New(r.failMsg)
	case err == nil:
		keys, err = s.export(s.ctx, r)
	}
	if s.ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r.keys = keys
	if r.status == "CANCELED" {
		return
	}
	if err != nil {
		s.setStatus(r, "FAILED", err.Error())
	} else {
		s.setStatus(r, "FINISHED", "")
	}
}

// export does what the template's DynamoDBExport step does. It runs without s.mu.
func (s *Server) export(ctx context.Context, r *run) ([]string, error) {
	if s.opts.Source == nil || s.opts.Sink == nil {
		return nil, errors.New("dpserver: Options.Source and Options.Sink are required to run an export")
	}
	bucket, dir, ok := strings.Cut(strings.TrimPrefix(r.outputDir, "s3://"), "/")
	if !strings.HasPrefix(r.outputDir, "s3://") || !ok || bucket == "" {
		return nil, fmt.Errorf("output directoryPath %q is not s3://bucket/prefix", r.outputDir)
	}
	var keys []string
	put := func(name string, body []byte) error {
		key := dir + "/" + name
		if _, err := s.opts.Sink.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(body)}); err != nil {
			return fmt.Errorf("writing s3://%s/%s: %w", bucket, key, err)
		}
		keys = append(keys, "s3://"+bucket+"/"+key)
		return nil
	}
	var start map[string]ddbtypes.AttributeValue
	for {
		out, err := s.opts.Source.Scan(ctx, &dynamodb.ScanInput{TableName: &r.table, ExclusiveStartKey: start})
		if err != nil {
			return keys, fmt.Errorf("scanning table %s: %w", r.table, err)
		}
		if len(out.Items) > 0 {
			var buf bytes.Buffer
			for _, item := range out.Items {
				line, err := ItemJSON(item)
				if err != nil {
					return keys, err
				}
				buf.Write(line)
				buf.WriteByte('\n')
			}
			if err := put(newUUID(), buf.Bytes()); err != nil {
				return keys, err
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		start = out.LastEvaluatedKey
	}
	var m strings.Builder
	m.WriteString(`{"name":"DynamoDB-export","version":3,` + "\n" + `"entries":[` + "\n")
	for i, k := range keys {
		u, _ := json.Marshal(k)
		sep := ",\n"
		if i == len(keys)-1 {
			sep = "\n"
		}
		fmt.Fprintf(&m, `{"url":%s,"mandatory":true}%s`, u, sep)
	}
	m.WriteString("]}\n")
	if err := put("manifest", []byte(m.String())); err != nil {
		return keys, err
	}
	return keys, put("_SUCCESS", nil)
}

// ItemJSON renders a DynamoDB item the way the EMR DynamoDB export writes a
// line: attribute values as JSON objects with lower-case type keys
// (s, n, b, sS, nS, bS, m, l, nULL, bOOL); binary values in base64.
func ItemJSON(item map[string]ddbtypes.AttributeValue) ([]byte, error) {
	m := map[string]any{}
	for k, v := range item {
		j, err := attrJSON(v)
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", k, err)
		}
		m[k] = j
	}
	return json.Marshal(m)
}

func attrJSON(v ddbtypes.AttributeValue) (any, error) {
	switch t := v.(type) {
	case *ddbtypes.AttributeValueMemberS:
		return map[string]any{"s": t.Value}, nil
	case *ddbtypes.AttributeValueMemberN:
		return map[string]any{"n": t.Value}, nil
	case *ddbtypes.AttributeValueMemberB:
		return map[string]any{"b": t.Value}, nil
	case *ddbtypes.AttributeValueMemberSS:
		return map[string]any{"sS": t.Value}, nil
	case *ddbtypes.AttributeValueMemberNS:
		return map[string]any{"nS": t.Value}, nil
	case *ddbtypes.AttributeValueMemberBS:
		return map[string]any{"bS": t.Value}, nil
	case *ddbtypes.AttributeValueMemberNULL:
		return map[string]any{"nULL": t.Value}, nil
	case *ddbtypes.AttributeValueMemberBOOL:
		return map[string]any{"bOOL": t.Value}, nil
	case *ddbtypes.AttributeValueMemberM:
		m := map[string]any{}
		for k, e := range t.Value {
			j, err := attrJSON(e)
			if err != nil {
				return nil, err
			}
			m[k] = j
		}
		return map[string]any{"m": m}, nil
	case *ddbtypes.AttributeValueMemberL:
		l := []any{}
		for _, e := range t.Value {
			j, err := attrJSON(e)
			if err != nil {
				return nil, err
			}
			l = append(l, j)
		}
		return map[string]any{"l": l}, nil
	}
	return nil, fmt.Errorf("unsupported attribute value %T", v)
}

var (
	exprRe   = regexp.MustCompile(`#\{([^}]*)\}`)
	quotedRe = regexp.MustCompile(`'[^']*'`)
	paramRe  = regexp.MustCompile(`(?:^|[^\w.@])(my\w*)`)
	formatRe = regexp.MustCompile(`^format\(\s*@scheduledStartTime\s*,\s*'([^']*)'\s*\)$`)
	joda     = strings.NewReplacer("YYYY", "2006", "yyyy", "2006", "MM", "01", "dd", "02", "HH", "15", "mm", "04", "ss", "05")
)

// paramRefs lists the parameter ids (my...) used in the #{...} expressions of s.
func paramRefs(s string) []string {
	var out []string
	for _, m := range exprRe.FindAllStringSubmatch(s, -1) {
		for _, p := range paramRe.FindAllStringSubmatch(quotedRe.ReplaceAllString(m[1], "''"), -1) {
			out = append(out, p[1])
		}
	}
	return out
}

// paramValues maps parameter ids to their value, else their default.
func paramValues(params []wParam, values []wValue) map[string]string {
	out := map[string]string{}
	for _, p := range params {
		for _, a := range p.Attributes {
			if a.Key == "default" {
				out[p.ID] = a.StringValue
			}
		}
	}
	for _, v := range values {
		out[v.ID] = v.StringValue
	}
	return out
}

// evalExpr evaluates #{myParam}, #{@scheduledStartTime} and
// #{format(@scheduledStartTime, 'joda pattern')}; sched == zero leaves the
// time expressions as they are.
func evalExpr(s string, params map[string]string, sched time.Time) (string, error) {
	var err error
	out := exprRe.ReplaceAllStringFunc(s, func(m string) string {
		inner := strings.TrimSpace(m[2 : len(m)-1])
		if v, ok := params[inner]; ok {
			return v
		}
		if sched.IsZero() {
			return m
		}
		if inner == "@scheduledStartTime" {
			return sched.Format(dpTime)
		}
		if f := formatRe.FindStringSubmatch(inner); f != nil {
			return sched.Format(joda.Replace(f[1]))
		}
		if err == nil {
			err = fmt.Errorf("dpserver cannot evaluate %s", m)
		}
		return m
	})
	return out, err
}

func resolveIO(byID map[string]wObject, act wObject, params map[string]string, sched time.Time) (table, dir string, err error) {
	in, ok1 := byID[act.ref("input")]
	out, ok2 := byID[act.ref("output")]
	if !ok1 || !ok2 {
		return "", "", fmt.Errorf("EmrActivity %s needs input and output data nodes", act.ID)
	}
	if table, err = evalExpr(in.str("tableName"), params, sched); err == nil && table == "" {
		err = fmt.Errorf("data node %s has no tableName", in.ID)
	}
	if err != nil {
		return "", "", err
	}
	if dir, err = evalExpr(out.str("directoryPath"), params, sched); err == nil && dir == "" {
		err = fmt.Errorf("data node %s has no directoryPath", out.ID)
	}
	return table, dir, err
}

// validate checks a definition the way the fake documents; it returns the
// errors and warnings grouped by object id.
func validate(objs []wObject, params []wParam, values []wValue, cross []string) (errs, warns []wValidation) {
	add := func(list *[]wValidation, warn bool, id, format string, a ...any) {
		msg := fmt.Sprintf(format, a...)
		i := slices.IndexFunc(*list, func(v wValidation) bool { return v.ID == id })
		if i < 0 {
			*list = append(*list, wValidation{ID: id})
			i = len(*list) - 1
		}
		if warn {
			(*list)[i].Warnings = append((*list)[i].Warnings, msg)
		} else {
			(*list)[i].Errors = append((*list)[i].Errors, msg)
		}
	}
	ids := map[string]int{}
	role := "DataPipelineDefaultRole"
	for _, o := range objs {
		ids[o.ID]++
		if r := o.str("role"); o.ID == "Default" && r != "" {
			role = r
		}
	}
	if ids["Default"] == 0 {
		add(&errs, false, "Default", "MISSING_OBJECT: the pipeline has no 'Default' object")
	}
	paramIDs := map[string]bool{}
	for _, p := range params {
		paramIDs[p.ID] = true
	}
	pv := paramValues(params, values)
	for _, o := range objs {
		if o.ID == "" {
			add(&errs, false, "", "MISSING_REQUIRED_FIELD: an object has no id")
			continue
		}
		if ids[o.ID] > 1 {
			add(&errs, false, o.ID, "DUPLICATE_OBJECT: more than one object has the id '%s'", o.ID)
		}
		typ := o.str("type")
		if typ == "" && o.ID != "Default" {
			add(&errs, false, o.ID, "MISSING_REQUIRED_FIELD: 'type'")
		}
		if typ == "EmrActivity" && o.str("step") == "" {
			add(&errs, false, o.ID, "MISSING_REQUIRED_FIELD: 'step' is required for an EmrActivity")
		}
		warned := map[string]bool{}
		for _, f := range o.Fields {
			switch {
			case f.RefValue != nil && *f.RefValue == "", f.StringValue != nil && *f.StringValue == "":
				add(&errs, false, o.ID, "INVALID_FIELD_VALUE: '%s' must have a value", f.Key)
			case f.RefValue != nil:
				if ids[*f.RefValue] == 0 {
					add(&errs, false, o.ID, "INVALID_FIELD_VALUE: '%s' refers to the missing object '%s'", f.Key, *f.RefValue)
				}
			case f.StringValue != nil:
				for _, p := range paramRefs(*f.StringValue) {
					if !paramIDs[p] {
						add(&errs, false, o.ID, "INVALID_FIELD_VALUE: '%s' refers to the undefined parameter '%s'", f.Key, p)
					}
				}
				v, _ := evalExpr(*f.StringValue, pv, time.Time{})
				if b, ok := strings.CutPrefix(v, "s3://"); ok {
					b, _, _ = strings.Cut(b, "/")
					if slices.Contains(cross, b) && !warned[b] {
						warned[b] = true
						add(&warns, true, o.ID, "Unable to validate S3 Access for role: %s on bucket %s", role, b)
					}
				}
			default:
				add(&errs, false, o.ID, "INVALID_FIELD_VALUE: '%s' has neither a stringValue nor a refValue", f.Key)
			}
		}
	}
	return errs, warns
}
