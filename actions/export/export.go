// Package export is the /osio-export job: a cross-account DynamoDB export
// from the production account to the dev account's bucket, by AWS Data
// Pipeline exactly as the runbook does it (section "DynamoDB cross account
// export").
package export

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/datapipeline"
	dptypes "github.com/aws/aws-sdk-go-v2/service/datapipeline/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/config"
)

// Kind is the request kind of exports.
const Kind = "export"

// The export methods.
const (
	MethodDataPipeline = "datapipeline"
	MethodNative       = "native"
)

// DynamoDB is what the export needs of the production account's DynamoDB.
type DynamoDB interface {
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	DescribeContinuousBackups(ctx context.Context, in *dynamodb.DescribeContinuousBackupsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeContinuousBackupsOutput, error)
	ExportTableToPointInTime(ctx context.Context, in *dynamodb.ExportTableToPointInTimeInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ExportTableToPointInTimeOutput, error)
	DescribeExport(ctx context.Context, in *dynamodb.DescribeExportInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeExportOutput, error)
}

// DataPipeline is what the export needs of the production account's Data
// Pipeline.
type DataPipeline interface {
	ListPipelines(ctx context.Context, in *datapipeline.ListPipelinesInput, optFns ...func(*datapipeline.Options)) (*datapipeline.ListPipelinesOutput, error)
	CreatePipeline(ctx context.Context, in *datapipeline.CreatePipelineInput, optFns ...func(*datapipeline.Options)) (*datapipeline.CreatePipelineOutput, error)
	PutPipelineDefinition(ctx context.Context, in *datapipeline.PutPipelineDefinitionInput, optFns ...func(*datapipeline.Options)) (*datapipeline.PutPipelineDefinitionOutput, error)
	GetPipelineDefinition(ctx context.Context, in *datapipeline.GetPipelineDefinitionInput, optFns ...func(*datapipeline.Options)) (*datapipeline.GetPipelineDefinitionOutput, error)
	ActivatePipeline(ctx context.Context, in *datapipeline.ActivatePipelineInput, optFns ...func(*datapipeline.Options)) (*datapipeline.ActivatePipelineOutput, error)
	DescribePipelines(ctx context.Context, in *datapipeline.DescribePipelinesInput, optFns ...func(*datapipeline.Options)) (*datapipeline.DescribePipelinesOutput, error)
	QueryObjects(ctx context.Context, in *datapipeline.QueryObjectsInput, optFns ...func(*datapipeline.Options)) (*datapipeline.QueryObjectsOutput, error)
	DescribeObjects(ctx context.Context, in *datapipeline.DescribeObjectsInput, optFns ...func(*datapipeline.Options)) (*datapipeline.DescribeObjectsOutput, error)
}

// S3 is what the export needs of the dev account's S3, to verify.
type S3 interface {
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

// Args are an export request's arguments.
type Args struct {
	Tables []string `json:"tables"`
	Method string   `json:"method"`
}

// Exporter checks export requests and runs them.
type Exporter struct {
	cfg      config.Export
	source   config.Account
	dest     config.Account
	region   string
	ddb      DynamoDB
	dp       DataPipeline
	devS3    S3
	now      func() time.Time
	cacheTTL time.Duration
	// planTimeout bounds Plan's ListPipelines, callTimeout each call
	// around the activation, activateWait the pause before checking
	// whether an activation whose answer failed happened after all.
	planTimeout, callTimeout, activateWait time.Duration

	mu     sync.Mutex
	exists map[string]time.Time // table -> when DescribeTable last said it exists
}

// Deps are the exporter's clients: production DynamoDB and Data Pipeline,
// dev-account S3 (each through its account's assumed role).
type Deps struct {
	DynamoDB     DynamoDB
	DataPipeline DataPipeline
	DevS3        S3
	Now          func() time.Time
	// PlanTimeout bounds Plan's listing of pipelines (default
	// DefaultPlanTimeout); CallTimeout (aws.call_timeout) bounds each Data
	// Pipeline call around an activation, and each DynamoDB call of
	// CheckTables and CheckNative (default DefaultCallTimeout).
	PlanTimeout, CallTimeout time.Duration
}

// Defaults of Deps' timeouts.
const (
	DefaultPlanTimeout = 10 * time.Second
	DefaultCallTimeout = 30 * time.Second
)

// activateAttempts is how often the job sends ActivatePipeline when the
// earlier attempts failed and provably did not activate.
const activateAttempts = 3

// New builds an Exporter.
func New(cfg config.Config, d Deps) (*Exporter, error) {
	src, ok := cfg.Account(cfg.Export.SourceAccount)
	if !ok {
		return nil, fmt.Errorf("export.source_account %q is not configured", cfg.Export.SourceAccount)
	}
	dst, ok := cfg.Account(cfg.Export.DestAccount)
	if !ok {
		return nil, fmt.Errorf("export.dest_account %q is not configured", cfg.Export.DestAccount)
	}
	e := &Exporter{cfg: cfg.Export, source: src, dest: dst, region: src.Region, ddb: d.DynamoDB, dp: d.DataPipeline,
		devS3: d.DevS3, now: d.Now, cacheTTL: 5 * time.Minute, exists: map[string]time.Time{},
		planTimeout: d.PlanTimeout, callTimeout: d.CallTimeout, activateWait: time.Second}
	if e.now == nil {
		e.now = time.Now
	}
	if e.planTimeout <= 0 {
		e.planTimeout = DefaultPlanTimeout
	}
	if e.callTimeout <= 0 {
		e.callTimeout = DefaultCallTimeout
	}
	return e, nil
}

var tableNameRe = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,255}$`)

// CheckNames validates table names as DynamoDB defines them. It returns
// the names deduplicated, or a message for the requester.
func (e *Exporter) CheckNames(tables []string) ([]string, string) {
	if len(tables) == 0 {
		return nil, noTablesText
	}
	seen := map[string]bool{}
	var out []string
	for _, t := range tables {
		if !tableNameRe.MatchString(t) {
			return nil, invalidNameText(t)
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	if len(out) > e.cfg.MaxTables {
		return nil, tooManyTablesText(e.cfg.MaxTables, len(out))
	}
	return out, ""
}

// checkParallelism bounds the AWS calls one check makes at once.
const checkParallelism = 8

// eachTable calls f for every table, at most checkParallelism at once,
// each with its own context: ctx bounded by the call timeout. errs[i] is
// what f said of tables[i].
func (e *Exporter) eachTable(ctx context.Context, tables []string, f func(ctx context.Context, i int, table string) error) (errs []error) {
	errs = make([]error, len(tables))
	var g errgroup.Group
	g.SetLimit(checkParallelism)
	for i, t := range tables {
		g.Go(func() error {
			cctx, cancel := context.WithTimeout(ctx, e.callTimeout)
			defer cancel()
			errs[i] = f(cctx, i, t)
			return nil
		})
	}
	_ = g.Wait()
	return errs
}

// CheckTables checks that every table exists in the source account. A
// missing table is a message for the requester; an error means AWS could
// not be asked. Positive answers are cached briefly. The tables are
// described at once (at most checkParallelism calls, each bounded by the
// call timeout); the answer is the one asking them in order would give:
// the first table's error, else every missing table, in order.
func (e *Exporter) CheckTables(ctx context.Context, tables []string) (string, error) {
	var ask []string
	for _, t := range tables {
		e.mu.Lock()
		at, ok := e.exists[t]
		e.mu.Unlock()
		if !ok || e.now().Sub(at) >= e.cacheTTL {
			ask = append(ask, t)
		}
	}
	gone := make([]bool, len(ask))
	errs := e.eachTable(ctx, ask, func(ctx context.Context, i int, t string) error {
		_, err := e.ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(t)})
		var nf *ddbtypes.ResourceNotFoundException
		switch {
		case errors.As(err, &nf):
			gone[i] = true
		case err != nil:
			return fmt.Errorf("describing table %s: %w", t, err)
		default:
			e.mu.Lock()
			e.exists[t] = e.now()
			e.mu.Unlock()
		}
		return nil
	})
	var missing []string
	for i, t := range ask {
		if errs[i] != nil {
			return "", errs[i]
		}
		if gone[i] {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return noSuchTableText(e.source.Name, e.source.ID, e.region, missing), nil
	}
	return "", nil
}

// Locks are the resources an export of tables holds while it lives.
func Locks(tables []string) []string {
	out := make([]string, len(tables))
	for i, t := range tables {
		out[i] = "export:" + t
	}
	return out
}

// Plan says, per table, what approval will do with method. It lists the
// pipelines within its own bound (Deps.PlanTimeout), even when ctx has no
// deadline, so that a hung Data Pipeline endpoint cannot hold the
// approval card; a shorter deadline on ctx still applies.
func (e *Exporter) Plan(ctx context.Context, method string, tables []string) []string {
	if method == MethodNative {
		var out []string
		for _, t := range tables {
			out = append(out, planNativeLine(t, e.dest.ID, e.OutputLocation(t)))
		}
		return out
	}
	lctx, cancel := context.WithTimeout(ctx, e.planTimeout)
	byName, err := e.pipelinesByName(lctx)
	cancel()
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("Data Pipeline did not answer ListPipelines within %s", e.planTimeout)
	}
	var out []string
	for _, t := range tables {
		dest := e.OutputLocation(t) + "/<activation time>/"
		switch ids := byName[t]; {
		case err != nil:
			out = append(out, planUnlistedLine(t, err, dest))
		case len(ids) == 1:
			out = append(out, planActivateLine(t, ids[0], dest))
		case len(ids) > 1:
			out = append(out, planSharedNameLine(t, ids))
		default:
			out = append(out, planCreateLine(t, dest))
		}
	}
	return out
}

// pipelinesByName lists every pipeline, across all pages.
func (e *Exporter) pipelinesByName(ctx context.Context) (map[string][]string, error) {
	out := map[string][]string{}
	var marker *string
	for {
		page, err := e.dp.ListPipelines(ctx, &datapipeline.ListPipelinesInput{Marker: marker})
		if err != nil {
			return nil, fmt.Errorf("listing pipelines: %w", err)
		}
		for _, p := range page.PipelineIdList {
			out[aws.ToString(p.Name)] = append(out[aws.ToString(p.Name)], aws.ToString(p.Id))
		}
		if !page.HasMoreResults || aws.ToString(page.Marker) == "" {
			return out, nil
		}
		marker = page.Marker
	}
}

// TableState is one table's checkpoint; a finished native export's state
// is what /osio-restore imports from.
type TableState struct {
	// Native export.
	ExportARN  string                         `json:"export_arn,omitempty"`
	StartedAt  time.Time                      `json:"started_at,omitempty"`
	KeySchema  []ddbtypes.KeySchemaElement    `json:"key_schema,omitempty"`
	Attributes []ddbtypes.AttributeDefinition `json:"attributes,omitempty"`
	DataPrefix string                         `json:"data_prefix,omitempty"`
	Items      int64                          `json:"items,omitempty"`
	// Data Pipeline.
	PipelineID string    `json:"pipeline_id,omitempty"`
	ActivityID string    `json:"activity_id,omitempty"`
	Created    bool      `json:"created,omitempty"`
	Defined    bool      `json:"defined,omitempty"`
	ActivateAt time.Time `json:"activate_at,omitempty"`
	// PriorActivation is the pipeline's @lastActivationTime as read just
	// before ActivateAt was recorded ("" if it had never been activated);
	// nil in checkpoints written before the bot recorded it.
	PriorActivation *string `json:"prior_activation,omitempty"`
	// PriorRun is the @scheduledStartTime of the activity's latest
	// instance before this activation: that run and older ones are not
	// this request's, whatever their time.
	PriorRun  string `json:"prior_run,omitempty"`
	Activated bool   `json:"activated,omitempty"`
	Folder    string `json:"folder,omitempty"`
	Finished  bool   `json:"finished,omitempty"`
	Files     int    `json:"files,omitempty"`
	Bytes     int64  `json:"bytes,omitempty"`
	Verified  bool   `json:"verified,omitempty"`
	Failed    string `json:"failed,omitempty"`
}

// Run runs an approved export: per table find or create the pipeline and
// activate it; then watch each run, verify its folder from the dev account
// and post the follow-up. Every step is checkpointed, and a resumed run
// looks at the pipeline's instances before it would activate again.
func (e *Exporter) Run(ctx context.Context, jc *actions.JobContext) error {
	var args Args
	if err := jc.Request.DecodeArgs(&args); err != nil {
		return err
	}
	states := make([]*TableState, len(args.Tables))
	for i, t := range args.Tables {
		st := &TableState{}
		if _, err := jc.Load("table:"+t, st); err != nil {
			return err
		}
		states[i] = st
		if st.Failed != "" || st.Activated || st.ExportARN != "" {
			continue
		}
		start := e.start
		if args.Method == MethodNative {
			start = e.startNative
		}
		if err := start(ctx, jc, t, st); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			st.Failed = err.Error()
			if err := jc.SaveSay("table:"+t, st, "%s", tableFailedText(t, err)); err != nil {
				return err
			}
		}
	}
	for i, t := range args.Tables {
		st := states[i]
		if st.Failed != "" || st.Verified {
			continue
		}
		finish := e.finishTable
		if args.Method == MethodNative {
			finish = e.finishNative
		}
		if err := finish(ctx, jc, t, st); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			st.Failed = err.Error()
			if err := jc.SaveSay("table:"+t, st, "%s", tableFailedText(t, err)); err != nil {
				return err
			}
		}
	}
	var failed, done, folders, sources []string
	for i, t := range args.Tables {
		if states[i].Failed != "" {
			failed = append(failed, t)
			continue
		}
		done = append(done, t)
		folders = append(folders, folderLine(fmt.Sprintf("%s/%s/", e.OutputLocation(t), states[i].Folder), states[i].Files, states[i].Bytes))
		sources = append(sources, fmt.Sprintf("s3://%s/%s", e.cfg.Bucket, states[i].DataPrefix))
	}
	if len(done) > 0 {
		text := followUpText(jc.Request.Requester, e.dest.Name, e.cfg.Bucket, folders)
		if args.Method == MethodNative {
			text = followUpNativeText(jc.Request.Requester, e.dest.Name, e.cfg.Bucket, jc.Request.ID, folders, done, sources)
		}
		if err := jc.SayLast("%s", text); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		// Each table's detail is in its own reply above.
		return &actions.Failure{Text: notExportedText(failed, len(done))}
	}
	return nil
}

// start finds or creates the table's pipeline and activates it.
func (e *Exporter) start(ctx context.Context, jc *actions.JobContext, table string, st *TableState) error {
	key := "table:" + table
	if st.PipelineID == "" {
		byName, err := e.pipelinesByName(ctx)
		if err != nil {
			return err
		}
		switch ids := byName[table]; len(ids) {
		case 0:
			if err := e.create(ctx, jc, table, st); err != nil {
				return err
			}
		case 1:
			st.PipelineID = ids[0]
		default:
			sort.Strings(ids)
			return fmt.Errorf("%d pipelines are named `%s` (%s); delete the extra ones and request again", len(ids), table, strings.Join(ids, ", "))
		}
		if err := jc.Save(key, st); err != nil {
			return err
		}
	}
	if st.Created && !st.Defined {
		if err := e.define(ctx, jc, table, st); err != nil {
			return err
		}
	}
	if st.ActivityID == "" {
		def, err := e.dp.GetPipelineDefinition(ctx, &datapipeline.GetPipelineDefinitionInput{PipelineId: aws.String(st.PipelineID)})
		if err != nil {
			return fmt.Errorf("reading the definition of pipeline %s: %w", st.PipelineID, err)
		}
		activity, problems := e.checkDefinition(table, def.PipelineObjects, def.ParameterValues)
		if len(problems) > 0 {
			return fmt.Errorf("pipeline %s does not match the runbook: %s. Fix it or delete it so that the bot creates a new one", st.PipelineID, strings.Join(problems, "; "))
		}
		st.ActivityID = activity
		var said []actions.Event
		if !st.Created {
			said = append(said, actions.Event{Kind: actions.Message, Text: fmt.Sprintf("`%s`: found existing pipeline `%s`; its definition writes to `%s/` with the post-step ACL command.", table, st.PipelineID, e.OutputLocation(table))})
		}
		if err := jc.Record(key, st, said...); err != nil {
			return err
		}
		jc.Failpoint(ctx, FailpointDataPipeline, "checked")
	}
	// Write-ahead: record the pipeline's last activation and when we
	// activate before doing it, so that a resumed job can tell from the
	// pipeline's @lastActivationTime whether the activation happened. Its
	// run's instances are no evidence: AWS shows them some time after the
	// activation, and a second ActivatePipeline would cancel the run and
	// start it again on a new EMR cluster.
	if st.ActivateAt.IsZero() {
		prior, err := e.lastActivation(ctx, st.PipelineID)
		if err != nil {
			return err
		}
		prev, err := e.runInstance(ctx, st) // ActivateAt is zero: the latest run of all
		if err != nil {
			return err
		}
		st.PriorActivation, st.PriorRun = &prior, ""
		if prev != nil {
			st.PriorRun = prev.scheduled
		}
		st.ActivateAt = e.now().UTC().Truncate(time.Second)
		if err := jc.Save(key, st); err != nil {
			return err
		}
		jc.Failpoint(ctx, FailpointDataPipeline, "activating")
	} else if happened, err := e.activationHappened(ctx, jc, st); err != nil {
		return err
	} else if happened {
		jc.Log.Info("activation already happened before restart; not activating again", zap.String("table", table), zap.String("pipeline", st.PipelineID))
		return e.markActivated(ctx, jc, table, st, st.ActivateAt.Format(dpTimeLayout))
	}
	if err := e.activate(ctx, jc, st); err != nil {
		return err
	}
	return e.markActivated(ctx, jc, table, st, st.ActivateAt.Format(dpTimeLayout))
}

// activate sends ActivatePipeline, which is not idempotent: each accepted
// call cancels the running objects and re-runs the pipeline. So the SDK
// must not retry it on its own (a lost answer would become a second run);
// after a failed attempt the job waits, asks DescribePipelines whether
// the activation happened anyway, and sends it again only if it did not.
func (e *Exporter) activate(ctx context.Context, jc *actions.JobContext, st *TableState) error {
	var err error
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, e.callTimeout)
		_, err = e.dp.ActivatePipeline(actx, &datapipeline.ActivatePipelineInput{PipelineId: aws.String(st.PipelineID), StartTimestamp: aws.Time(st.ActivateAt)},
			func(o *datapipeline.Options) { o.RetryMaxAttempts = 1 })
		cancel()
		if err == nil || ctx.Err() != nil || attempt == activateAttempts || refused(err) {
			break
		}
		jc.Log.Warn("ActivatePipeline failed; checking whether it happened", zap.String("pipeline", st.PipelineID), zap.Int("attempt", attempt), zap.Error(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(e.activateWait * time.Duration(attempt)):
		}
		happened, herr := e.activationHappened(ctx, jc, st)
		if herr != nil {
			return fmt.Errorf("activating pipeline %s: %w; then %w", st.PipelineID, err, herr)
		}
		if happened {
			jc.Log.Info("ActivatePipeline's answer was lost but the activation happened", zap.String("pipeline", st.PipelineID))
			return nil
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("activating pipeline %s: %w", st.PipelineID, err)
	}
	return nil
}

// refused reports an answer saying that AWS did not activate, for a
// reason no retry changes.
func refused(err error) bool {
	var inv *dptypes.InvalidRequestException
	var nf *dptypes.PipelineNotFoundException
	var del *dptypes.PipelineDeletedException
	return errors.As(err, &inv) || errors.As(err, &nf) || errors.As(err, &del)
}

// activationSkew is how far AWS's clock may be behind the bot's when
// @lastActivationTime is compared with ActivateAt. It also absorbs the
// truncation of both to whole seconds.
const activationSkew = time.Minute

// activationHappened tells whether the activation recorded in st (as
// "activating at st.ActivateAt") reached AWS, from the pipeline's
// @lastActivationTime L, in AWS's layout and clock (UTC, whole seconds):
//
//   - L is empty: the pipeline was never activated. Not happened.
//   - st.PriorActivation is known (read just before ActivateAt was
//     recorded): the activation happened iff L differs from it. L only
//     moves forward, and an activation after that read is taken as ours:
//     the request holds the table's export lock, so the bot activates the
//     pipeline for no one else meanwhile (a person activating it by hand in
//     that window would be taken for ours). This needs no clock comparison,
//     and an activation by an earlier request, however recent, is not
//     mistaken for ours.
//   - Otherwise (a checkpoint from before PriorActivation existed): it
//     happened iff L >= ActivateAt - activationSkew. Our activation was sent
//     after ActivateAt by the bot's clock; AWS stamps it by its own clock,
//     which may be behind, and both are truncated to the second, hence the
//     allowance. An earlier activation within that minute would be
//     mistaken for ours, which costs a watched run that is not ours, never
//     a second activation.
//
// When L differs from the prior value but is older than ActivateAt -
// activationSkew, AWS's clock is more than the allowance behind: that is
// logged, and the activation still counts as happened.
func (e *Exporter) activationHappened(ctx context.Context, jc *actions.JobContext, st *TableState) (bool, error) {
	last, err := e.lastActivation(ctx, st.PipelineID)
	if err != nil || last == "" {
		return false, err
	}
	if st.PriorActivation != nil && last == *st.PriorActivation {
		return false, nil
	}
	at, err := parseDPTime(last)
	if err != nil {
		return false, fmt.Errorf("cannot tell whether pipeline %s was activated: @lastActivationTime %q: %w", st.PipelineID, last, err)
	}
	recent := !at.Before(st.ActivateAt.Add(-activationSkew))
	if st.PriorActivation == nil {
		return recent, nil
	}
	if !recent {
		jc.Log.Warn("pipeline activated after the bot recorded its activation, but @lastActivationTime is older than that: AWS's clock is behind the bot's",
			zap.String("pipeline", st.PipelineID), zap.String("lastActivationTime", last), zap.Time("activateAt", st.ActivateAt))
	}
	return true, nil
}

// lastActivation is the pipeline's @lastActivationTime as DescribePipelines
// gives it, "" if it was never activated.
func (e *Exporter) lastActivation(ctx context.Context, id string) (string, error) {
	dctx, cancel := context.WithTimeout(ctx, e.callTimeout)
	defer cancel()
	out, err := e.dp.DescribePipelines(dctx, &datapipeline.DescribePipelinesInput{PipelineIds: []string{id}})
	if err != nil {
		return "", fmt.Errorf("describing pipeline %s: %w", id, err)
	}
	for _, d := range out.PipelineDescriptionList {
		if aws.ToString(d.PipelineId) == id {
			return first(fieldValues(d.Fields, "@lastActivationTime")), nil
		}
	}
	return "", fmt.Errorf("describing pipeline %s: not in DescribePipelines' answer", id)
}

// parseDPTime parses a Data Pipeline date-time: 2006-01-02T15:04:05, UTC;
// RFC 3339 is accepted too.
func parseDPTime(v string) (time.Time, error) {
	if t, err := time.Parse(dpTimeLayout, v); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339Nano, v)
}

func (e *Exporter) markActivated(ctx context.Context, jc *actions.JobContext, table string, st *TableState, scheduled string) error {
	st.Activated = true
	if t, err := time.Parse(dpTimeLayout, scheduled); err == nil {
		st.Folder = t.Format(FolderLayout)
	}
	if err := jc.SaveSay("table:"+table, st, "%s", activatedText(table, st.PipelineID, e.OutputLocation(table)+"/"+st.Folder+"/")); err != nil {
		return err
	}
	jc.Failpoint(ctx, FailpointDataPipeline, "activated")
	return nil
}

// create makes the table's pipeline from the template. The uniqueId is
// derived from the request, so a retried create returns the same pipeline.
func (e *Exporter) create(ctx context.Context, jc *actions.JobContext, table string, st *TableState) error {
	out, err := e.dp.CreatePipeline(ctx, &datapipeline.CreatePipelineInput{
		Name:        aws.String(table),
		UniqueId:    aws.String(jc.Request.ID + "/" + table),
		Description: aws.String(fmt.Sprintf("Export of DynamoDB table %s to %s (osio-bot %s)", table, e.OutputLocation(table), jc.Request.ID)),
	})
	if err != nil {
		return fmt.Errorf("creating pipeline %s: %w", table, err)
	}
	st.PipelineID, st.Created = aws.ToString(out.PipelineId), true
	if err := jc.Save("table:"+table, st); err != nil {
		return err
	}
	jc.Failpoint(ctx, FailpointDataPipeline, "created")
	return nil
}

// define puts the template definition on a pipeline the bot created.
// PutPipelineDefinition replaces the whole definition, so it is safe to
// repeat after a restart.
func (e *Exporter) define(ctx context.Context, jc *actions.JobContext, table string, st *TableState) error {
	objs, params, values := e.Definition(table)
	put, err := e.dp.PutPipelineDefinition(ctx, &datapipeline.PutPipelineDefinitionInput{
		PipelineId: aws.String(st.PipelineID), PipelineObjects: objs, ParameterObjects: params, ParameterValues: values,
	})
	if err != nil {
		return fmt.Errorf("putting the definition of pipeline %s: %w", st.PipelineID, err)
	}
	if put.Errored || len(put.ValidationErrors) > 0 {
		return fmt.Errorf("pipeline %s's definition has validation errors: %s", st.PipelineID, validationText(put.ValidationErrors))
	}
	st.Defined = true
	if err := jc.SaveSay("table:"+table, st, "%s", createdPipelineText(table, st.PipelineID, e.PostStepCommand(table), warningText(put.ValidationWarnings))); err != nil {
		return err
	}
	jc.Failpoint(ctx, FailpointDataPipeline, "defined")
	return nil
}

func validationText(ves []dptypes.ValidationError) string {
	var b []string
	for _, v := range ves {
		b = append(b, fmt.Sprintf("%s: %s", aws.ToString(v.Id), strings.Join(v.Errors, "; ")))
	}
	return strings.Join(b, " | ")
}

func warningText(ws []dptypes.ValidationWarning) string {
	var b []string
	for _, w := range ws {
		for _, m := range w.Warnings {
			b = append(b, fmt.Sprintf("• %s: %s", aws.ToString(w.Id), m))
		}
	}
	return strings.Join(b, "\n")
}

// finishTable watches the run to its end and verifies its folder.
func (e *Exporter) finishTable(ctx context.Context, jc *actions.JobContext, table string, st *TableState) error {
	key := "table:" + table
	if !st.Finished {
		if err := e.watch(ctx, jc, table, st); err != nil {
			return err
		}
		st.Finished = true
		if err := jc.SaveSay(key, st, "%s", pipelineFinishedText(table, st.PipelineID)); err != nil {
			return err
		}
		jc.Failpoint(ctx, FailpointDataPipeline, "finished")
	}
	prefix := fmt.Sprintf("%s/%s/%s/", e.cfg.BackupsPrefix, table, st.Folder)
	files, bytes, success, err := e.countFolder(ctx, prefix)
	if err != nil {
		return fmt.Errorf("verifying s3://%s/%s from account %s: %w", e.cfg.Bucket, prefix, e.dest.Name, err)
	}
	if files == 0 {
		return fmt.Errorf("the run finished but `s3://%s/%s` is empty when read from account %s", e.cfg.Bucket, prefix, e.dest.Name)
	}
	st.Files, st.Bytes, st.Verified = files, bytes, true
	if err := jc.SaveSay(key, st, "%s", verifiedText(table, e.dest.Name, e.dest.ID, fmt.Sprintf("s3://%s/%s", e.cfg.Bucket, prefix), files, bytes, successMarkerNote(success))); err != nil {
		return err
	}
	jc.Failpoint(ctx, FailpointDataPipeline, "verified")
	return nil
}

type instance struct {
	id, status, scheduled, errMsg string
}

// runInstance finds the activity's instance of the run started at
// st.ActivateAt, or nil if there is none yet: the latest instance
// scheduled at most activationSkew before ActivateAt and after
// st.PriorRun. The instances of a new run appear some time after the
// activation; until then an earlier run (another request's, seconds
// before) must not pass for this one.
func (e *Exporter) runInstance(ctx context.Context, st *TableState) (*instance, error) {
	var ids []string
	var marker *string
	for {
		q, err := e.dp.QueryObjects(ctx, &datapipeline.QueryObjectsInput{PipelineId: aws.String(st.PipelineID), Sphere: aws.String("INSTANCE"), Marker: marker})
		if err != nil {
			return nil, fmt.Errorf("querying instances of pipeline %s: %w", st.PipelineID, err)
		}
		ids = append(ids, q.Ids...)
		if !q.HasMoreResults || aws.ToString(q.Marker) == "" {
			break
		}
		marker = q.Marker
	}
	since := st.ActivateAt.Add(-activationSkew).Format(dpTimeLayout)
	var best *instance
	for i := 0; i < len(ids); i += 25 {
		chunk := ids[i:min(i+25, len(ids))]
		var marker *string
		for {
			d, err := e.dp.DescribeObjects(ctx, &datapipeline.DescribeObjectsInput{PipelineId: aws.String(st.PipelineID), ObjectIds: chunk, Marker: marker})
			if err != nil {
				return nil, fmt.Errorf("describing instances of pipeline %s: %w", st.PipelineID, err)
			}
			for _, o := range d.PipelineObjects {
				if !contains(fieldValues(o.Fields, "@componentParent"), st.ActivityID) {
					continue
				}
				in := &instance{id: aws.ToString(o.Id), status: first(fieldValues(o.Fields, "@status")),
					scheduled: first(fieldValues(o.Fields, "@scheduledStartTime")), errMsg: first(fieldValues(o.Fields, "errorMessage"))}
				if c := first(fieldValues(o.Fields, "@cascadeFailedOn")); in.errMsg == "" && c != "" {
					in.errMsg = "cascade failed on " + c
				}
				if in.scheduled >= since && in.scheduled > st.PriorRun && (best == nil || in.scheduled > best.scheduled) {
					best = in
				}
			}
			if !d.HasMoreResults || aws.ToString(d.Marker) == "" {
				break
			}
			marker = d.Marker
		}
	}
	return best, nil
}

func first(xs []string) string {
	if len(xs) == 0 {
		return ""
	}
	return xs[0]
}

// watch polls the run's @status with backoff until it ends.
func (e *Exporter) watch(ctx context.Context, jc *actions.JobContext, table string, st *TableState) error {
	b := actions.Backoff{Next: e.cfg.PollInterval.D(), Max: e.cfg.PollMaxInterval.D(), Factor: e.cfg.PollBackoff}
	status, last := "", ""
	err := actions.Poll(ctx, b, e.cfg.RunTimeout.D(), false, func() (bool, error) {
		inst, err := e.runInstance(ctx, st)
		if err != nil {
			return false, err
		}
		status = "WAITING_FOR_INSTANCE"
		if inst != nil {
			status = inst.status
			if t, err := time.Parse(dpTimeLayout, inst.scheduled); err == nil && st.Folder != t.Format(FolderLayout) {
				st.Folder = t.Format(FolderLayout)
				if err := jc.Save("table:"+table, st); err != nil {
					return false, err
				}
			}
		}
		if status != last {
			jc.Log.Info("pipeline status", zap.String("table", table), zap.String("pipeline", st.PipelineID), zap.String("status", status))
			last = status
		}
		if err := jc.Progress("%s", pipelineStatusText(table, st.PipelineID, status, e.now().UTC().Format("15:04:05"))); err != nil {
			return false, err
		}
		switch status {
		case "FINISHED": // said with the "finished" checkpoint
			return true, nil
		case "FAILED", "CANCELED", "CASCADE_FAILED", "TIMEDOUT", "SKIPPED":
			msg := inst.errMsg
			if msg == "" {
				msg = "(no errorMessage)"
			}
			return false, fmt.Errorf("pipeline %s ended %s: errorMessage: %s", st.PipelineID, status, msg)
		}
		return false, nil
	})
	if errors.Is(err, actions.ErrTimedOut) {
		return fmt.Errorf("pipeline %s did not finish within %s (last status %s); check it in the Data Pipeline API", st.PipelineID, e.cfg.RunTimeout.D(), status)
	}
	return err
}

// countFolder lists the folder from the dev account: files, bytes and
// whether _SUCCESS is there.
func (e *Exporter) countFolder(ctx context.Context, prefix string) (int, int64, bool, error) {
	var files int
	var bytes int64
	var success bool
	var token *string
	for {
		out, err := e.devS3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(e.cfg.Bucket), Prefix: aws.String(prefix), ContinuationToken: token})
		if err != nil {
			return 0, 0, false, err
		}
		for _, o := range out.Contents {
			files++
			bytes += aws.ToInt64(o.Size)
			if strings.HasSuffix(aws.ToString(o.Key), "/_SUCCESS") {
				success = true
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return files, bytes, success, nil
		}
		token = out.NextContinuationToken
	}
}
