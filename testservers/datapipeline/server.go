// Package dpserver is an in-memory AWS Data Pipeline server for tests.
//
// It speaks the AWS JSON 1.1 protocol (POST /, X-Amz-Target: DataPipeline.<Op>)
// well enough for the real github.com/aws/aws-sdk-go-v2/service/datapipeline
// client, pointed at it with BaseEndpoint or AWS_ENDPOINT_URL_DATA_PIPELINE.
// moto does not implement QueryObjects, runs or uniqueId idempotency, hence this.
//
// What it models:
//   - CreatePipeline (idempotent on (name, uniqueId)), PutPipelineDefinition,
//     ValidatePipelineDefinition, GetPipelineDefinition, ActivatePipeline,
//     DeactivatePipeline, DescribePipelines (25 ids at most), ListPipelines,
//     QueryObjects (COMPONENT, INSTANCE, ATTEMPT; EQ, REF_EQ, LE, GE, BETWEEN
//     selectors), DescribeObjects (25 ids at most) and DeletePipeline.
//   - Validation: errors (errored=true; the definition is stored but cannot be
//     activated) for a missing Default object, an object without type, an
//     empty field, a refValue to a missing object, an EmrActivity without step,
//     a #{myParam} without a parameter object; warnings for S3 buckets listed in
//     Options.CrossAccountBuckets ("Unable to validate S3 Access for role ...").
//   - One run per activation of the pipeline's EmrActivity, with instance and
//     attempt objects: WAITING_FOR_RUNNER -> RUNNING -> FINISHED | FAILED, driven
//     by a goroutine per run and stopped by Close. As on AWS, a run's objects
//     appear some time after ActivatePipeline returns, not at once
//     (Options.InstanceDelay): until then QueryObjects does not list them and
//     DescribeObjects skips them. Re-activating a pipeline whose run is not
//     finished cancels that run (CANCELED) and starts a new one: the AWS API
//     reference says "If you activate an on-demand pipeline that is already
//     running, it will cancel all running objects and re-run the pipeline".
//     Activations counts every accepted activation, so a test sees a second one.
//   - DescribePipelines fields @lastActivationTime (set when ActivatePipeline is
//     applied), @pipelineState (PENDING, SCHEDULED, FINISHED, INACTIVE),
//     @latestRunTime (the last run's @scheduledStartTime), @healthStatus,
//     @creationTime, @version; times in Data Pipeline's layout
//     2006-01-02T15:04:05, UTC, whole seconds. Options.ClockOffset shifts the
//     server's clock, to model an AWS clock that differs from the bot's.
//   - Lost answers (LoseAnswers): a request is applied, then its answer is held
//     until ReleaseAnswers, Close or the client going away (HoldAnswer), or
//     the connection is closed without a response (DropAnswer).
//   - On FINISHED the run has done what the "Export DynamoDB table to S3"
//     template's EMR step does: it evaluates the input node's tableName and
//     the output node's directoryPath (parameters and
//     #{format(@scheduledStartTime, '...')} only), scans the table through
//     Options.Source and writes data files (one JSON line per item, lower-case
//     type keys as the EMR DynamoDB tools write them), a manifest and an empty
//     _SUCCESS through Options.Sink.
//
// What it does NOT model: the ACTIVATING and WAITING_ON_DEPENDENCIES states
// and AWS's real delays (EMR start-up takes minutes there; InstanceDelay,
// WaitingFor and RunningFor are short here); @lastActivationTime is exact to
// the second, while AWS's own lag between accepting an activation and
// recording it is not modelled; no faults but lost answers (no throttling,
// no 5xx except while closing, no request that AWS applies after its caller
// gave up); SigV4 signatures are not verified (an Authorization
// header is merely required); there is no EMR, no Task Runner, no PollForTask
// or task reporting, no tags API (tags given to CreatePipeline are kept and
// described), no schedules other than ONDEMAND (activation of any other
// scheduleType is refused), no retries (maximumRetries is ignored, one attempt
// per run), no data node instances, no preconditions, no pipeline versions
// (GetPipelineDefinition always returns the latest definition), no
// evaluateExpressions, no IAM checks of role/resourceRole, and no execution of
// postStepCommand: the commands are recorded on the run (see Runs) and logged,
// nothing more. startTimestamp, which AWS ignores for on-demand pipelines, sets
// the run's @scheduledStartTime here so that tests can predict the folder.
package dpserver

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/datapipeline/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Scanner is the part of a DynamoDB client a run uses to read the table.
type Scanner interface {
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// Putter is the part of an S3 client a run uses to write the export.
type Putter interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// Options configures a Server. Zero values take the documented defaults.
type Options struct {
	Source              Scanner  // DynamoDB of the table's account
	Sink                Putter   // S3 of the bucket owner's account
	CrossAccountBuckets []string // buckets that get a "cannot validate" warning
	PageSize            int      // ListPipelines page size, default 25
	WaitingFor          time.Duration
	RunningFor          time.Duration // defaults 300ms and 500ms
	// InstanceDelay is how long a run's instance and attempt objects stay
	// invisible to QueryObjects and DescribeObjects after ActivatePipeline
	// (AWS shows them some time after activation, not at once). Default
	// 250ms; a negative value shows them at once.
	InstanceDelay time.Duration
	// ClockOffset is added to the server's clock in every time it reports
	// (@lastActivationTime, @creationTime, @actualStartTime, ...): a
	// negative offset models an AWS clock that is behind the bot's.
	ClockOffset time.Duration
	Logf        func(string, ...any)
}

// AnswerFault is what happens to the answer of a request that the server
// applied: the work is done, the caller never learns it.
type AnswerFault int

const (
	// HoldAnswer keeps the answer until ReleaseAnswers, Close, or the
	// client going away (a killed process, a timed-out call).
	HoldAnswer AnswerFault = iota + 1
	// DropAnswer closes the connection without a response.
	DropAnswer
)

// Run is a snapshot of one activation, for tests.
type Run struct {
	PipelineID         string
	ActivityInstanceID string
	ScheduledStartTime time.Time
	Status             string
	ErrorMessage       string
	Table              string   // evaluated tableName of the input node
	OutputDirectory    string   // evaluated directoryPath of the output node
	WrittenKeys        []string // s3://bucket/key of every object written
	PostStepCommands   []string // seen on the EmrActivity, never executed
}

// Server is the fake Data Pipeline endpoint. Create it with New.
type Server struct {
	opts   Options
	srv    *http.Server
	url    string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	pipelines map[string]*pipeline
	order     []string
	unique    map[[2]string]string
	calls     map[string]int
	held      map[string]bool
	failNext  map[string]string
	faults    map[string][]AnswerFault // op -> faults for its next requests
	holding   map[string]int           // op -> answers held now
	release   chan struct{}            // closed by ReleaseAnswers
}

type pipeline struct {
	id, name, uniqueID, description string
	tags                            []wTag
	created, lastActivation         time.Time
	deleted, inactive, errored      bool
	defined                         bool
	version, activations            int
	objects                         []wObject
	params                          []wParam
	values                          []wValue
	instances                       map[string]*instance
	runs                            []*run
}

type instance struct {
	sphere string
	obj    wObject
	owner  *run
}

// Wire types, with the JSON member names of the AWS JSON 1.1 protocol.
type wField struct {
	Key         string  `json:"key"`
	StringValue *string `json:"stringValue,omitempty"`
	RefValue    *string `json:"refValue,omitempty"`
}
type wObject struct {
	ID     string   `json:"id"`
	Name   string   `json:"name"`
	Fields []wField `json:"fields"`
}
type wAttr struct {
	Key         string `json:"key"`
	StringValue string `json:"stringValue"`
}
type wParam struct {
	ID         string  `json:"id"`
	Attributes []wAttr `json:"attributes"`
}
type wValue struct {
	ID          string `json:"id"`
	StringValue string `json:"stringValue"`
}
type wTag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}
type wValidation struct {
	ID       string   `json:"id"`
	Errors   []string `json:"errors,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

type apiError struct{ code, msg string }

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func invalid(format string, a ...any) error {
	return &apiError{"InvalidRequestException", fmt.Sprintf(format, a...)}
}

// New starts a server on 127.0.0.1 with a free port.
func New(opts Options) (*Server, error) {
	if opts.PageSize <= 0 {
		opts.PageSize = 25
	}
	if opts.WaitingFor <= 0 {
		opts.WaitingFor = 300 * time.Millisecond
	}
	if opts.RunningFor <= 0 {
		opts.RunningFor = 500 * time.Millisecond
	}
	if opts.InstanceDelay == 0 {
		opts.InstanceDelay = 250 * time.Millisecond
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("dpserver: listening: %w", err)
	}
	s := &Server{
		opts: opts, url: "http://" + ln.Addr().String(),
		pipelines: map[string]*pipeline{}, unique: map[[2]string]string{},
		calls: map[string]int{}, held: map[string]bool{}, failNext: map[string]string{},
		faults: map[string][]AnswerFault{}, holding: map[string]int{}, release: make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is the endpoint to give the SDK client, http://127.0.0.1:PORT.
func (s *Server) URL() string { return s.url }

// Close stops the HTTP server and every run, and waits for the runs' goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if s.srv.Shutdown(ctx) != nil { // waits for in-flight requests
		_ = s.srv.Close()
	}
	s.wg.Wait()
}

// ServeHTTP handles one AWS JSON 1.1 request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op := strings.TrimPrefix(target, "DataPipeline.")
	s.mu.Lock()
	s.calls[op]++
	s.mu.Unlock()
	var out any
	var err error
	switch _, ok := handlers[op]; {
	case r.Method != http.MethodPost || !strings.HasPrefix(target, "DataPipeline.") || !ok:
		err = &apiError{"UnknownOperationException", fmt.Sprintf("unknown operation %q", target)}
	case r.Header.Get("Authorization") == "":
		err = &apiError{"MissingAuthenticationTokenException", "Missing Authentication Token"}
	default:
		out, err = s.call(op, r.Body)
	}
	if f := s.takeFault(op); f != 0 && !s.loseAnswer(w, r, op, f) {
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("x-amzn-RequestId", newUUID())
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{"InternalServiceError", err.Error()}
		}
		status := http.StatusBadRequest
		switch ae.code {
		case "InternalServiceError":
			status = http.StatusInternalServerError
		case "MissingAuthenticationTokenException":
			status = http.StatusForbidden
		}
		s.opts.Logf("dpserver: %s: %s", op, ae)
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": ae.code, "message": ae.msg})
		return
	}
	if out == nil {
		out = struct{}{}
	}
	_ = json.NewEncoder(w).Encode(out)
}

// takeFault pops the fault armed for op's next request, 0 if none.
func (s *Server) takeFault(op string) AnswerFault {
	s.mu.Lock()
	defer s.mu.Unlock()
	fs := s.faults[op]
	if len(fs) == 0 {
		return 0
	}
	s.faults[op] = fs[1:]
	return fs[0]
}

// loseAnswer applies fault f to the answer of an applied request. It
// reports whether the answer is still to be written (a held answer that
// was released).
func (s *Server) loseAnswer(w http.ResponseWriter, r *http.Request, op string, f AnswerFault) bool {
	switch f {
	case DropAnswer:
		s.opts.Logf("dpserver: %s applied; dropping the connection without an answer", op)
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return false
			}
		}
		panic(http.ErrAbortHandler) // closes the connection all the same
	case HoldAnswer:
		s.mu.Lock()
		s.holding[op]++
		release := s.release
		s.mu.Unlock()
		s.opts.Logf("dpserver: %s applied; holding its answer", op)
		defer func() {
			s.mu.Lock()
			s.holding[op]--
			s.mu.Unlock()
		}()
		select {
		case <-release:
			return true
		case <-r.Context().Done(): // the client went away
		case <-s.ctx.Done():
		}
		return false
	}
	return true
}

// request holds the input members of every modelled operation.
type request struct {
	PipelineID     string    `json:"pipelineId"`
	Name           string    `json:"name"`
	UniqueID       string    `json:"uniqueId"`
	Description    string    `json:"description"`
	Tags           []wTag    `json:"tags"`
	Objects        []wObject `json:"pipelineObjects"`
	Params         []wParam  `json:"parameterObjects"`
	Values         []wValue  `json:"parameterValues"`
	StartTimestamp *float64  `json:"startTimestamp"`
	CancelActive   *bool     `json:"cancelActive"`
	PipelineIDs    []string  `json:"pipelineIds"`
	ObjectIDs      []string  `json:"objectIds"`
	Sphere         string    `json:"sphere"`
	Query          *struct {
		Selectors []selector `json:"selectors"`
	} `json:"query"`
	Marker string `json:"marker"`
	Limit  *int   `json:"limit"`
}

// A handler runs with s.mu held; p is the request's pipeline, nil for the
// operations that do not name one.
type handler func(s *Server, in *request, p *pipeline) (any, error)

var handlers = map[string]handler{
	"CreatePipeline": (*Server).createPipeline, "PutPipelineDefinition": (*Server).putDefinition,
	"ValidatePipelineDefinition": (*Server).validateDefinition, "GetPipelineDefinition": (*Server).getDefinition,
	"ActivatePipeline": (*Server).activate, "DeactivatePipeline": (*Server).deactivate,
	"DescribePipelines": (*Server).describePipelines, "ListPipelines": (*Server).listPipelines,
	"QueryObjects": (*Server).queryObjects, "DescribeObjects": (*Server).describeObjects,
	"DeletePipeline": (*Server).deletePipeline,
}

func (s *Server) call(op string, body io.Reader) (any, error) {
	var in request
	if err := json.NewDecoder(body).Decode(&in); err != nil {
		return nil, &apiError{"SerializationException", err.Error()}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var p *pipeline
	if op != "CreatePipeline" && op != "ListPipelines" && op != "DescribePipelines" {
		var err error
		if p, err = s.get(in.PipelineID); err != nil {
			return nil, err
		}
	}
	return handlers[op](s, &in, p)
}

// get returns a live pipeline; the caller holds s.mu.
func (s *Server) get(id string) (*pipeline, error) {
	p, ok := s.pipelines[id]
	switch {
	case !ok:
		return nil, &apiError{"PipelineNotFoundException", fmt.Sprintf("Pipeline with id %s does not exist", id)}
	case p.deleted:
		return nil, &apiError{"PipelineDeletedException", fmt.Sprintf("Pipeline with id %s was deleted", id)}
	}
	return p, nil
}

func (s *Server) createPipeline(in *request, _ *pipeline) (any, error) {
	if in.Name == "" || in.UniqueID == "" {
		return nil, invalid("name and uniqueId are required")
	}
	return map[string]string{"pipelineId": s.create(in.Name, in.UniqueID, in.Description, in.Tags)}, nil
}

// create is idempotent on (name, uniqueID); the caller holds s.mu.
func (s *Server) create(name, uniqueID, description string, tags []wTag) string {
	key := [2]string{name, uniqueID}
	if id, ok := s.unique[key]; ok {
		return id
	}
	id := newPipelineID()
	s.pipelines[id] = &pipeline{id: id, name: name, uniqueID: uniqueID, description: description,
		tags: tags, created: s.now(), instances: map[string]*instance{}}
	s.order = append(s.order, id)
	s.unique[key] = id
	return id
}

type validationOut struct {
	Errored  bool          `json:"errored"`
	Errors   []wValidation `json:"validationErrors,omitempty"`
	Warnings []wValidation `json:"validationWarnings,omitempty"`
}

func (s *Server) putDefinition(in *request, p *pipeline) (any, error) {
	return s.store(p, in.Objects, in.Params, in.Values), nil
}

// store validates and saves a definition, even an errored one; the caller holds s.mu.
func (s *Server) store(p *pipeline, objs []wObject, params []wParam, values []wValue) validationOut {
	errs, warns := validate(objs, params, values, s.opts.CrossAccountBuckets)
	p.objects, p.params, p.values = objs, params, values
	p.errored, p.defined = len(errs) > 0, true
	p.version++
	return validationOut{Errored: len(errs) > 0, Errors: errs, Warnings: warns}
}

func (s *Server) validateDefinition(in *request, _ *pipeline) (any, error) {
	errs, warns := validate(in.Objects, in.Params, in.Values, s.opts.CrossAccountBuckets)
	return validationOut{Errored: len(errs) > 0, Errors: errs, Warnings: warns}, nil
}

func (s *Server) getDefinition(_ *request, p *pipeline) (any, error) {
	return struct {
		Objects []wObject `json:"pipelineObjects"`
		Params  []wParam  `json:"parameterObjects"`
		Values  []wValue  `json:"parameterValues"`
	}{nonNil(p.objects), nonNil(p.params), nonNil(p.values)}, nil
}

func (s *Server) activate(in *request, p *pipeline) (any, error) {
	switch {
	case s.closed:
		return nil, &apiError{"InternalServiceError", "server is closing"}
	case !p.defined || len(p.objects) == 0:
		return nil, invalid("Pipeline %s has no pipeline definition", p.id)
	case p.errored:
		return nil, invalid("Pipeline %s has a definition with validation errors and cannot be activated", p.id)
	}
	if len(in.Values) > 0 {
		p.values = mergeValues(p.values, in.Values)
	}
	sched := s.now()
	if in.StartTimestamp != nil {
		sec, frac := math.Modf(*in.StartTimestamp)
		sched = time.Unix(int64(sec), int64(frac*1e9)).UTC()
	}
	r, err := s.newRun(p, sched.Truncate(time.Second))
	if err != nil {
		return nil, err
	}
	for _, old := range p.runs {
		if !terminal(old.status) {
			s.setStatus(old, "CANCELED", "")
		}
	}
	if msg, ok := s.failNext[p.name]; ok {
		r.failMsg = msg
		delete(s.failNext, p.name)
	}
	p.runs = append(p.runs, r)
	p.activations++
	p.inactive = false
	p.lastActivation = s.now()
	for _, c := range r.postStep {
		s.opts.Logf("dpserver: %s: recorded postStepCommand (not executed): %s", r.actInst, c)
	}
	s.wg.Add(1)
	go s.drive(r)
	return nil, nil
}

func (s *Server) deactivate(in *request, p *pipeline) (any, error) {
	p.inactive = true
	if in.CancelActive == nil || *in.CancelActive {
		s.cancelRuns(p)
	}
	return nil, nil
}

func (s *Server) deletePipeline(_ *request, p *pipeline) (any, error) {
	s.cancelRuns(p)
	p.deleted = true
	delete(s.unique, [2]string{p.name, p.uniqueID})
	return nil, nil
}

func (s *Server) cancelRuns(p *pipeline) {
	for _, r := range p.runs {
		if !terminal(r.status) {
			s.setStatus(r, "CANCELED", "")
		}
	}
}

func (s *Server) describePipelines(in *request, _ *pipeline) (any, error) {
	if len(in.PipelineIDs) == 0 || len(in.PipelineIDs) > 25 {
		return nil, invalid("pipelineIds must hold between 1 and 25 ids, got %d", len(in.PipelineIDs))
	}
	type desc struct {
		ID          string   `json:"pipelineId"`
		Name        string   `json:"name"`
		Fields      []wField `json:"fields"`
		Description string   `json:"description,omitempty"`
		Tags        []wTag   `json:"tags,omitempty"`
	}
	var list []desc
	for _, id := range in.PipelineIDs {
		p, err := s.get(id)
		if err != nil {
			return nil, err
		}
		o := wObject{}
		o.set("@id", p.id)
		o.set("name", p.name)
		o.set("uniqueId", p.uniqueID)
		o.set("@sphere", "PIPELINE")
		o.set("@creationTime", p.created.Format(dpTime))
		o.set("@pipelineState", p.state())
		o.set("@version", strconv.Itoa(p.version))
		if n := len(p.runs); n > 0 {
			last := p.runs[n-1]
			o.set("@lastActivationTime", p.lastActivation.Format(dpTime))
			o.set("@latestRunTime", last.scheduled.Format(dpTime))
			health := "HEALTHY"
			if last.status == "FAILED" {
				health = "ERROR"
			}
			o.set("@healthStatus", health)
		}
		list = append(list, desc{p.id, p.name, o.Fields, p.description, p.tags})
	}
	return map[string]any{"pipelineDescriptionList": list}, nil
}

func (p *pipeline) state() string {
	switch {
	case p.inactive:
		return "INACTIVE"
	case len(p.runs) == 0:
		return "PENDING"
	case terminal(p.runs[len(p.runs)-1].status):
		return "FINISHED"
	}
	return "SCHEDULED"
}

func (s *Server) listPipelines(in *request, _ *pipeline) (any, error) {
	type idName struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	var all []idName
	for _, id := range s.order {
		if p := s.pipelines[id]; !p.deleted {
			all = append(all, idName{p.id, p.name})
		}
	}
	page, marker, more, err := paginate(all, in.Marker, s.opts.PageSize)
	if err != nil {
		return nil, err
	}
	return map[string]any{"pipelineIdList": nonNil(page), "marker": marker, "hasMoreResults": more}, nil
}

// paginate cuts a page at the offset encoded in marker; the next marker is
// empty when there are no more results.
func paginate[T any](all []T, marker string, size int) (page []T, next string, more bool, err error) {
	start := 0
	if marker != "" {
		if start, err = strconv.Atoi(marker); err != nil || start < 0 || start > len(all) {
			return nil, "", false, invalid("invalid marker %q", marker)
		}
	}
	end := min(start+size, len(all))
	if end < len(all) {
		next, more = strconv.Itoa(end), true
	}
	return all[start:end], next, more, nil
}

type selector struct {
	FieldName string `json:"fieldName"`
	Operator  struct {
		Type   string   `json:"type"`
		Values []string `json:"values"`
	} `json:"operator"`
}

func (s *Server) queryObjects(in *request, p *pipeline) (any, error) {
	limit := 100
	if in.Limit != nil && *in.Limit > 0 {
		limit = min(*in.Limit, 500)
	}
	var objs []wObject
	switch in.Sphere {
	case "COMPONENT":
		objs = p.objects
	case "INSTANCE", "ATTEMPT":
		for _, inst := range p.instances {
			if inst.sphere == in.Sphere && inst.visible() {
				objs = append(objs, inst.obj)
			}
		}
	default:
		return nil, invalid("sphere must be COMPONENT, INSTANCE or ATTEMPT, got %q", in.Sphere)
	}
	var ids []string
	for _, o := range objs {
		ok := true
		for i := 0; in.Query != nil && i < len(in.Query.Selectors); i++ {
			m, err := in.Query.Selectors[i].match(o)
			if err != nil {
				return nil, err
			}
			ok = ok && m
		}
		if ok {
			ids = append(ids, o.ID)
		}
	}
	if in.Sphere != "COMPONENT" {
		sort.Strings(ids)
	}
	page, marker, more, err := paginate(ids, in.Marker, limit)
	if err != nil {
		return nil, err
	}
	return map[string]any{"ids": nonNil(page), "marker": marker, "hasMoreResults": more}, nil
}

func (sel selector) match(o wObject) (bool, error) {
	vals := sel.Operator.Values
	for _, f := range o.Fields {
		if f.Key != sel.FieldName {
			continue
		}
		switch op := sel.Operator.Type; {
		case op == "REF_EQ" && f.RefValue != nil:
			return slices.Contains(vals, *f.RefValue), nil
		case f.StringValue == nil:
		case op == "EQ":
			return slices.Contains(vals, *f.StringValue), nil
		case op == "LE" && len(vals) == 1:
			return *f.StringValue <= vals[0], nil
		case op == "GE" && len(vals) == 1:
			return *f.StringValue >= vals[0], nil
		case op == "BETWEEN" && len(vals) == 2:
			return vals[0] <= *f.StringValue && *f.StringValue <= vals[1], nil
		case op != "REF_EQ":
			return false, invalid("unsupported operator %q with %d values", op, len(vals))
		}
	}
	return false, nil
}

// describeObjects skips ids that name no object.
func (s *Server) describeObjects(in *request, p *pipeline) (any, error) {
	if len(in.ObjectIDs) == 0 || len(in.ObjectIDs) > 25 {
		return nil, invalid("objectIds must hold between 1 and 25 ids, got %d", len(in.ObjectIDs))
	}
	var out []wObject
	for _, id := range in.ObjectIDs {
		if inst, ok := p.instances[id]; ok {
			if inst.visible() {
				out = append(out, inst.obj.clone())
			}
		} else if i := slices.IndexFunc(p.objects, func(o wObject) bool { return o.ID == id }); i >= 0 {
			c := p.objects[i].clone()
			c.set("@sphere", "COMPONENT")
			c.set("@pipelineId", p.id)
			out = append(out, c)
		}
	}
	return map[string]any{"pipelineObjects": nonNil(out), "hasMoreResults": false}, nil
}

// LoseAnswers makes the next n requests for op (e.g. "ActivatePipeline")
// be applied as usual and then lose their answer as f says.
func (s *Server) LoseAnswers(op string, f AnswerFault, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ; n > 0; n-- {
		s.faults[op] = append(s.faults[op], f)
	}
}

// HeldAnswers reports how many answers to op are being held now.
func (s *Server) HeldAnswers(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.holding[op]
}

// ReleaseAnswers sends every answer held now, late, to clients still
// waiting for it.
func (s *Server) ReleaseAnswers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.release)
	s.release = make(chan struct{})
}

// now is the server's clock, UTC, shifted by Options.ClockOffset.
func (s *Server) now() time.Time { return time.Now().UTC().Add(s.opts.ClockOffset) }

// Calls reports how many requests named op (e.g. "ActivatePipeline") arrived.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Activations reports the successful activations of a pipeline.
func (s *Server) Activations(pipelineID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.pipelines[pipelineID]; ok {
		return p.activations
	}
	return 0
}

// PipelineIDByName returns the first created, not deleted pipeline with that name.
func (s *Server) PipelineIDByName(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.order {
		if p := s.pipelines[id]; !p.deleted && p.name == name {
			return id, true
		}
	}
	return "", false
}

// Definition returns a copy of the stored definition of a pipeline.
func (s *Server) Definition(pipelineID string) (objects []types.PipelineObject, params []types.ParameterObject, values []types.ParameterValue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pipelines[pipelineID]
	if !ok {
		return nil, nil, nil
	}
	return toSDK(p.objects, p.params, p.values)
}

// SeedPipeline creates a pipeline with a stored definition, as if someone had
// made it before the test. The definition is validated like PutPipelineDefinition.
func (s *Server) SeedPipeline(name string, objects []types.PipelineObject, params []types.ParameterObject, values []types.ParameterValue) (id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id = s.create(name, "seed-"+name, "", nil)
	o, pa, v := fromSDK(objects, params, values)
	s.store(s.pipelines[id], o, pa, v)
	return id
}

// Hold keeps the runs of the pipelines named name RUNNING until Release.
func (s *Server) Hold(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held[name] = true
}

// Release lets held runs of the pipelines named name finish.
func (s *Server) Release(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.held, name)
}

// FailNext makes the next run of the pipeline named name end FAILED with msg.
func (s *Server) FailNext(name, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext[name] = msg
}

// Runs returns snapshots of a pipeline's runs, oldest first.
func (s *Server) Runs(pipelineID string) []Run {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pipelines[pipelineID]
	if !ok {
		return nil
	}
	var out []Run
	for _, r := range p.runs {
		out = append(out, Run{
			PipelineID: p.id, ActivityInstanceID: r.actInst, ScheduledStartTime: r.scheduled,
			Status: r.status, ErrorMessage: r.errMsg, Table: r.table, OutputDirectory: r.outputDir,
			WrittenKeys:      append([]string(nil), r.keys...),
			PostStepCommands: append([]string(nil), r.postStep...),
		})
	}
	return out
}

func (o *wObject) set(key, v string) { o.setField(wField{Key: key, StringValue: &v}) }

func (o *wObject) setRef(key, v string) { o.setField(wField{Key: key, RefValue: &v}) }

func (o *wObject) setField(f wField) {
	for i := range o.Fields {
		if o.Fields[i].Key == f.Key {
			o.Fields[i] = f
			return
		}
	}
	o.Fields = append(o.Fields, f)
}

// str returns the first string value of key.
func (o wObject) str(key string) string {
	for _, f := range o.Fields {
		if f.Key == key && f.StringValue != nil {
			return *f.StringValue
		}
	}
	return ""
}

func (o wObject) ref(key string) string {
	for _, f := range o.Fields {
		if f.Key == key && f.RefValue != nil {
			return *f.RefValue
		}
	}
	return ""
}

func (o wObject) strs(key string) []string {
	var out []string
	for _, f := range o.Fields {
		if f.Key == key && f.StringValue != nil {
			out = append(out, *f.StringValue)
		}
	}
	return out
}

func (o wObject) clone() wObject {
	o.Fields = append([]wField(nil), o.Fields...)
	return o
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func mergeValues(old, upd []wValue) []wValue {
	replaced := map[string]bool{}
	for _, v := range upd {
		replaced[v.ID] = true
	}
	var out []wValue
	for _, v := range old {
		if !replaced[v.ID] {
			out = append(out, v)
		}
	}
	return append(out, upd...)
}

func newPipelineID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 19)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "df-" + string(b)
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func ptr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func cp(s *string) *string {
	if s == nil {
		return nil
	}
	return new(*s)
}

func toSDK(objs []wObject, params []wParam, values []wValue) ([]types.PipelineObject, []types.ParameterObject, []types.ParameterValue) {
	var o []types.PipelineObject
	for _, w := range objs {
		po := types.PipelineObject{Id: new(w.ID), Name: new(w.Name)}
		for _, f := range w.Fields {
			po.Fields = append(po.Fields, types.Field{Key: new(f.Key), StringValue: cp(f.StringValue), RefValue: cp(f.RefValue)})
		}
		o = append(o, po)
	}
	var p []types.ParameterObject
	for _, w := range params {
		po := types.ParameterObject{Id: new(w.ID)}
		for _, a := range w.Attributes {
			po.Attributes = append(po.Attributes, types.ParameterAttribute{Key: new(a.Key), StringValue: new(a.StringValue)})
		}
		p = append(p, po)
	}
	var v []types.ParameterValue
	for _, w := range values {
		v = append(v, types.ParameterValue{Id: new(w.ID), StringValue: new(w.StringValue)})
	}
	return o, p, v
}

func fromSDK(objs []types.PipelineObject, params []types.ParameterObject, values []types.ParameterValue) ([]wObject, []wParam, []wValue) {
	var o []wObject
	for _, po := range objs {
		w := wObject{ID: ptr(po.Id), Name: ptr(po.Name)}
		for _, f := range po.Fields {
			w.Fields = append(w.Fields, wField{Key: ptr(f.Key), StringValue: cp(f.StringValue), RefValue: cp(f.RefValue)})
		}
		o = append(o, w)
	}
	var p []wParam
	for _, po := range params {
		w := wParam{ID: ptr(po.Id)}
		for _, a := range po.Attributes {
			w.Attributes = append(w.Attributes, wAttr{ptr(a.Key), ptr(a.StringValue)})
		}
		p = append(p, w)
	}
	var v []wValue
	for _, pv := range values {
		v = append(v, wValue{ptr(pv.Id), ptr(pv.StringValue)})
	}
	return o, p, v
}
