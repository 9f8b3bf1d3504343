// Package restore is the /osio-restore job: it imports a finished native
// export into a new table in the dev account with DynamoDB ImportTable,
// closing the loop the runbook leaves to developers.
package restore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/actions/export"
	"github.com/osio/osio-bot/bot/mrkdwn"
	"github.com/osio/osio-bot/config"
)

// The job's texts in the thread, in one place (the checks' refusals are
// in Check). Style as bot/messages.go.

func startedText(arn, source, table, account, exportID, thread string) string {
	return fmt.Sprintf("Started import `%s` of `%s` into new table `%s` in %s. Source export: %s (%s).", arn, source, table, account, exportID, link(thread))
}

func importStatusText(table, status, at string) string {
	return fmt.Sprintf("`%s`: import is %s (checked %s UTC)", table, status, at)
}

func readyText(requester string, a Args, dest config.Account, items int64, arn string) string {
	return fmt.Sprintf(":white_check_mark: <@%s> Table `%s` is ready in %s (%s): %s imported from the export of `%s` in %s (%s). ARN `%s`.",
		requester, a.NewTable, dest.Name, dest.ID, mrkdwn.Count(items, "item"), a.Table, a.ExportID, link(a.ExportThread), arn)
}

func link(permalink string) string {
	if permalink == "" {
		return "thread not posted"
	}
	return "<" + permalink + "|thread>"
}

// Kind is the request kind of restores.
const Kind = "restore"

// RunbookRestoreManual is where the runbook sends people to restore a Data
// Pipeline export.
const RunbookRestoreManual = "https://docs.aws.amazon.com/datapipeline/latest/DeveloperGuide/dp-importexport-ddb-part1.html"

// DynamoDB is what a restore needs of the dev account's DynamoDB.
type DynamoDB interface {
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	ImportTable(ctx context.Context, in *dynamodb.ImportTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ImportTableOutput, error)
	DescribeImport(ctx context.Context, in *dynamodb.DescribeImportInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeImportOutput, error)
}

// Requests is how a restore reads the export it restores.
type Requests interface {
	Get(id string) (*actions.Request, error)
	LoadCheckpoint(id, key string, v any) (bool, error)
}

// Args are a restore request's arguments, resolved at request time so the
// job needs nothing else.
type Args struct {
	ExportID     string                         `json:"export_id"`
	ExportThread string                         `json:"export_thread,omitempty"`
	Table        string                         `json:"table"`
	NewTable     string                         `json:"new_table"`
	Bucket       string                         `json:"bucket"`
	DataPrefix   string                         `json:"data_prefix"`
	KeySchema    []ddbtypes.KeySchemaElement    `json:"key_schema"`
	Attributes   []ddbtypes.AttributeDefinition `json:"attributes"`
}

// Restorer checks and runs restores.
type Restorer struct {
	ddb      DynamoDB
	requests Requests
	cfg      config.Export
	dest     config.Account
	now      func() time.Time
}

// New builds a Restorer working in the export's destination account.
func New(cfg config.Config, ddb DynamoDB, requests Requests) (*Restorer, error) {
	dst, ok := cfg.Account(cfg.Export.DestAccount)
	if !ok {
		return nil, fmt.Errorf("export.dest_account %q is not configured", cfg.Export.DestAccount)
	}
	return &Restorer{ddb: ddb, requests: requests, cfg: cfg.Export, dest: dst, now: time.Now}, nil
}

// DestAccount names the account restores write to.
func (r *Restorer) DestAccount() config.Account { return r.dest }

var tableNameRe = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,255}$`)

// Check resolves "/osio-restore EXPORT TABLE NEW" into Args, or returns a
// message for the requester. An error means AWS or the store failed.
func (r *Restorer) Check(ctx context.Context, exportID, table, newTable string) (Args, string, error) {
	exp, err := r.requests.Get(exportID)
	if errors.Is(err, actions.ErrNotFound) {
		return Args{}, fmt.Sprintf("There is no request `%s`. `/osio-export status` lists recent exports.", clipName(exportID)), nil
	}
	if err != nil {
		return Args{}, "", err
	}
	if exp.Kind != export.Kind {
		return Args{}, fmt.Sprintf("`%s` is a %s request, not an export.", exp.ID, exp.Kind), nil
	}
	switch exp.State {
	case actions.Succeeded:
	case actions.Received, actions.Pending, actions.Approved, actions.Running:
		return Args{}, fmt.Sprintf("`%s` is still %s; restore it once it has succeeded.", exp.ID, exp.State), nil
	default:
		return Args{}, fmt.Sprintf("`%s` ended %s, so there is no export to restore. Request a new export.", exp.ID, exp.State), nil
	}
	var ea export.Args
	if err := exp.DecodeArgs(&ea); err != nil {
		return Args{}, "", err
	}
	if ea.Method != export.MethodNative {
		return Args{}, fmt.Sprintf("`%s` was exported with Data Pipeline, whose files are not in the format ImportTable reads, so I cannot restore it. "+
			"Restore it with the runbook's manual: %s — or request a native export (`/osio-export --native %s`) and restore that.",
			exp.ID, RunbookRestoreManual, strings.Join(ea.Tables, " ")), nil
	}
	if !slices.Contains(ea.Tables, table) {
		return Args{}, fmt.Sprintf("`%s` did not export `%s`; it exported `%s`.", exp.ID, clipName(table), strings.Join(ea.Tables, "`, `")), nil
	}
	var st export.TableState
	if ok, err := r.requests.LoadCheckpoint(exp.ID, "table:"+table, &st); err != nil {
		return Args{}, "", err
	} else if !ok || !st.Verified || st.DataPrefix == "" || len(st.KeySchema) == 0 {
		return Args{}, fmt.Sprintf("`%s` has no verified native export of `%s` to restore.", exp.ID, table), nil
	}
	if !tableNameRe.MatchString(newTable) {
		return Args{}, fmt.Sprintf("`%s` is not a valid DynamoDB table name: use 3 to 255 characters from a-z, A-Z, 0-9, `_`, `-` and `.`.", clipName(newTable)), nil
	}
	_, err = r.ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(newTable)})
	var nf *ddbtypes.ResourceNotFoundException
	switch {
	case err == nil:
		return Args{}, fmt.Sprintf("A table named `%s` already exists in %s (%s). ImportTable always creates a new table: choose another name.", newTable, r.dest.Name, r.dest.ID), nil
	case !errors.As(err, &nf):
		return Args{}, "", fmt.Errorf("describing table %s in %s: %w", newTable, r.dest.Name, err)
	}
	return Args{ExportID: exp.ID, ExportThread: exp.Thread.Permalink, Table: table, NewTable: newTable, Bucket: r.cfg.Bucket,
		DataPrefix: st.DataPrefix, KeySchema: st.KeySchema, Attributes: st.Attributes}, "", nil
}

// clipName is user text for inside a code span: clipped, escaped.
func clipName(s string) string {
	return mrkdwn.Escape(mrkdwn.Clip(strings.ReplaceAll(s, "`", "'"), 60))
}

// Locks is what a restore holds: the new table's name in the dev account.
func Locks(a Args) []string { return []string{"restore:" + a.NewTable} }

// Plan is the approval card's plan.
func (r *Restorer) Plan(a Args) []string {
	return []string{fmt.Sprintf("ImportTable into new table `%s` in %s (%s), on-demand billing, from `s3://%s/%s` (DynamoDB JSON, GZIP)",
		a.NewTable, r.dest.Name, r.dest.ID, a.Bucket, a.DataPrefix)}
}

// Failpoint is the restore job's failpoint prefix (see
// actions.FailpointEnv); its checkpoints: importing (before ImportTable),
// imported, done.
const Failpoint = "restore"

type state struct {
	ImportARN   string    `json:"import_arn,omitempty"`
	RequestedAt time.Time `json:"requested_at,omitempty"`
	Done        bool      `json:"done,omitempty"`
	Items       int64     `json:"items,omitempty"`
}

// Run imports the export into the new table and watches the import.
func (r *Restorer) Run(ctx context.Context, jc *actions.JobContext) error {
	var a Args
	if err := jc.Request.DecodeArgs(&a); err != nil {
		return err
	}
	var st state
	if _, err := jc.Load("import", &st); err != nil {
		return err
	}
	if st.ImportARN == "" {
		st.RequestedAt = r.now().UTC()
		if err := jc.Save("import", &st); err != nil {
			return err
		}
		jc.Failpoint(ctx, Failpoint, "importing")
		out, err := r.ddb.ImportTable(ctx, &dynamodb.ImportTableInput{
			ClientToken:          aws.String(actions.IdempotencyToken("restore", jc.Request.ID)),
			S3BucketSource:       &ddbtypes.S3BucketSource{S3Bucket: aws.String(a.Bucket), S3BucketOwner: aws.String(r.dest.ID), S3KeyPrefix: aws.String(a.DataPrefix)},
			InputFormat:          ddbtypes.InputFormatDynamodbJson,
			InputCompressionType: ddbtypes.InputCompressionTypeGzip,
			TableCreationParameters: &ddbtypes.TableCreationParameters{
				TableName: aws.String(a.NewTable), KeySchema: a.KeySchema, AttributeDefinitions: a.Attributes,
				BillingMode: ddbtypes.BillingModePayPerRequest,
			},
		})
		if err != nil {
			return fmt.Errorf("starting the import into %s: %w", a.NewTable, err)
		}
		st.ImportARN = aws.ToString(out.ImportTableDescription.ImportArn)
		if err := jc.SaveSay("import", &st, "%s", startedText(st.ImportARN, fmt.Sprintf("s3://%s/%s", a.Bucket, a.DataPrefix), a.NewTable, r.dest.Name, a.ExportID, a.ExportThread)); err != nil {
			return err
		}
		jc.Failpoint(ctx, Failpoint, "imported")
	}
	if !st.Done {
		b := actions.Backoff{Next: r.cfg.PollInterval.D(), Max: r.cfg.PollMaxInterval.D(), Factor: r.cfg.PollBackoff}
		err := actions.Poll(ctx, b, r.cfg.RunTimeout.D(), true, func() (bool, error) {
			out, err := r.ddb.DescribeImport(ctx, &dynamodb.DescribeImportInput{ImportArn: aws.String(st.ImportARN)})
			if err != nil {
				return false, fmt.Errorf("describing import %s: %w", st.ImportARN, err)
			}
			d := out.ImportTableDescription
			if err := jc.Progress("%s", importStatusText(a.NewTable, string(d.ImportStatus), r.now().UTC().Format("15:04:05"))); err != nil {
				return false, err
			}
			switch d.ImportStatus {
			case ddbtypes.ImportStatusCompleted:
				st.Done, st.Items = true, d.ImportedItemCount
				return true, jc.Save("import", &st)
			case ddbtypes.ImportStatusFailed, ddbtypes.ImportStatusCancelled:
				return false, fmt.Errorf("import %s %s: %s: %s", st.ImportARN, d.ImportStatus, aws.ToString(d.FailureCode), aws.ToString(d.FailureMessage))
			}
			return false, nil
		})
		if errors.Is(err, actions.ErrTimedOut) {
			return fmt.Errorf("import %s did not finish within %s", st.ImportARN, r.cfg.RunTimeout.D())
		}
		if err != nil {
			return err
		}
		jc.Failpoint(ctx, Failpoint, "done")
	}
	desc, err := r.ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(a.NewTable)})
	if err != nil {
		return fmt.Errorf("describing the new table %s: %w", a.NewTable, err)
	}
	return jc.SayLast("%s", readyText(jc.Request.Requester, a, r.dest, st.Items, aws.ToString(desc.Table.TableArn)))
}
