package export

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/osio/osio-bot/actions"
)

// Failpoint prefixes of the two export methods (see actions.FailpointEnv).
// Data Pipeline checkpoints: created, defined, checked, activating (the
// intent, written before ActivatePipeline), activated, finished, verified.
// Native: starting (before ExportTableToPointInTime), started, finished,
// verified.
const (
	FailpointDataPipeline = "datapipeline"
	FailpointNative       = "native"
)

// Method is the configured default export method.
func (e *Exporter) Method() string { return e.cfg.Method }

// CheckNative checks, before approval, that every table can be exported
// natively: point-in-time recovery must be on. Like CheckTables it asks
// for all tables at once, each call bounded, and answers as asking them in
// order would.
func (e *Exporter) CheckNative(ctx context.Context, tables []string) (string, error) {
	disabled := make([]bool, len(tables))
	errs := e.eachTable(ctx, tables, func(ctx context.Context, i int, t string) error {
		out, err := e.ddb.DescribeContinuousBackups(ctx, &dynamodb.DescribeContinuousBackupsInput{TableName: aws.String(t)})
		if err != nil {
			return fmt.Errorf("describing continuous backups of %s: %w", t, err)
		}
		d := out.ContinuousBackupsDescription
		disabled[i] = d == nil || d.PointInTimeRecoveryDescription == nil ||
			d.PointInTimeRecoveryDescription.PointInTimeRecoveryStatus != ddbtypes.PointInTimeRecoveryStatusEnabled
		return nil
	})
	var off []string
	for i, t := range tables {
		if errs[i] != nil {
			return "", errs[i]
		}
		if disabled[i] {
			off = append(off, t)
		}
	}
	if len(off) == 0 {
		return "", nil
	}
	return pitrOffText(off, e.source.Name, tables), nil
}

// startNative records the table's schema and starts the export.
func (e *Exporter) startNative(ctx context.Context, jc *actions.JobContext, table string, st *TableState) error {
	key := "table:" + table
	desc, err := e.ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		return fmt.Errorf("describing table %s: %w", table, err)
	}
	st.KeySchema, st.Attributes = desc.Table.KeySchema, desc.Table.AttributeDefinitions
	if st.StartedAt.IsZero() {
		st.StartedAt = e.now().UTC()
	}
	if err := jc.Save(key, st); err != nil {
		return err
	}
	jc.Failpoint(ctx, FailpointNative, "starting")
	out, err := e.ddb.ExportTableToPointInTime(ctx, &dynamodb.ExportTableToPointInTimeInput{
		TableArn:      desc.Table.TableArn,
		S3Bucket:      aws.String(e.cfg.Bucket),
		S3BucketOwner: aws.String(e.dest.ID),
		S3Prefix:      aws.String(e.cfg.BackupsPrefix + "/" + table),
		ExportFormat:  ddbtypes.ExportFormatDynamodbJson,
		// Stable per request and table: a resumed job repeating the call gets
		// the same export back (AWS keeps tokens for 8 h).
		ClientToken: aws.String(actions.IdempotencyToken(jc.Request.ID, table)),
	})
	var pitr *ddbtypes.PointInTimeRecoveryUnavailableException
	if errors.As(err, &pitr) {
		return fmt.Errorf("point-in-time recovery was turned off for %s after the request was made; enable it or use the Data Pipeline method", table)
	}
	if err != nil {
		return fmt.Errorf("starting the native export of %s: %w", table, err)
	}
	st.ExportARN = aws.ToString(out.ExportDescription.ExportArn)
	if err := jc.SaveSay(key, st, "%s", nativeStartedText(table, st.ExportARN, e.OutputLocation(table), e.dest.ID)); err != nil {
		return err
	}
	jc.Failpoint(ctx, FailpointNative, "started")
	return nil
}

// finishNative watches the export with DescribeExport and verifies its
// folder from the dev account.
func (e *Exporter) finishNative(ctx context.Context, jc *actions.JobContext, table string, st *TableState) error {
	key := "table:" + table
	if !st.Finished {
		b := actions.Backoff{Next: e.cfg.PollInterval.D(), Max: e.cfg.PollMaxInterval.D(), Factor: e.cfg.PollBackoff}
		err := actions.Poll(ctx, b, e.cfg.RunTimeout.D(), true, func() (bool, error) {
			out, err := e.ddb.DescribeExport(ctx, &dynamodb.DescribeExportInput{ExportArn: aws.String(st.ExportARN)})
			if err != nil {
				return false, fmt.Errorf("describing export %s: %w", st.ExportARN, err)
			}
			d := out.ExportDescription
			if err := jc.Progress("%s", exportStatusText(table, string(d.ExportStatus), e.now().UTC().Format("15:04:05"))); err != nil {
				return false, err
			}
			switch d.ExportStatus {
			case ddbtypes.ExportStatusCompleted:
				st.Items = aws.ToInt64(d.ItemCount)
				if m := aws.ToString(d.ExportManifest); m != "" {
					st.Folder = strings.TrimPrefix(path.Dir(m), e.cfg.BackupsPrefix+"/"+table+"/")
				}
				st.Finished = true
				return true, jc.Save(key, st)
			case ddbtypes.ExportStatusFailed:
				return false, fmt.Errorf("export %s FAILED: %s: %s", st.ExportARN, aws.ToString(d.FailureCode), aws.ToString(d.FailureMessage))
			}
			return false, nil
		})
		if errors.Is(err, actions.ErrTimedOut) {
			return fmt.Errorf("export %s did not finish within %s", st.ExportARN, e.cfg.RunTimeout.D())
		}
		if err != nil {
			return err
		}
		jc.Failpoint(ctx, FailpointNative, "finished")
	}
	if st.Folder == "" {
		folder, err := e.findExportFolder(ctx, table, st)
		if err != nil {
			return err
		}
		st.Folder = folder
	}
	prefix := fmt.Sprintf("%s/%s/%s/", e.cfg.BackupsPrefix, table, st.Folder)
	files, bytes, _, err := e.countFolder(ctx, prefix)
	if err != nil {
		return fmt.Errorf("verifying s3://%s/%s from account %s: %w", e.cfg.Bucket, prefix, e.dest.Name, err)
	}
	if files == 0 {
		return fmt.Errorf("the export completed but `s3://%s/%s` is empty when read from account %s", e.cfg.Bucket, prefix, e.dest.Name)
	}
	st.Files, st.Bytes, st.Verified, st.DataPrefix = files, bytes, true, prefix+"data/"
	if err := jc.SaveSay(key, st, "%s", verifiedText(table, e.dest.Name, e.dest.ID, fmt.Sprintf("s3://%s/%s", e.cfg.Bucket, prefix), files, bytes, itemsExportedNote(st.Items))); err != nil {
		return err
	}
	jc.Failpoint(ctx, FailpointNative, "verified")
	return nil
}

// findExportFolder finds the export's folder under PREFIX/AWSDynamoDB/ when
// DescribeExport names no manifest: first the folder named after the
// export id (AWS's layout), else the newest folder written since the export
// started (moto names its folder independently of the export id).
func (e *Exporter) findExportFolder(ctx context.Context, table string, st *TableState) (string, error) {
	base := fmt.Sprintf("%s/%s/AWSDynamoDB/", e.cfg.BackupsPrefix, table)
	id := st.ExportARN[strings.LastIndex(st.ExportARN, "/")+1:]
	newest := map[string]time.Time{}
	var token *string
	for {
		out, err := e.devS3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(e.cfg.Bucket), Prefix: aws.String(base), ContinuationToken: token})
		if err != nil {
			return "", fmt.Errorf("listing s3://%s/%s from account %s: %w", e.cfg.Bucket, base, e.dest.Name, err)
		}
		for _, o := range out.Contents {
			rest := strings.TrimPrefix(aws.ToString(o.Key), base)
			dir, _, ok := strings.Cut(rest, "/")
			if !ok {
				continue
			}
			if dir == id {
				return "AWSDynamoDB/" + id, nil
			}
			if t := aws.ToTime(o.LastModified); t.After(newest[dir]) {
				newest[dir] = t
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		token = out.NextContinuationToken
	}
	var dirs []string
	for d, t := range newest {
		if !t.Before(st.StartedAt.Add(-5 * time.Second)) {
			dirs = append(dirs, d)
		}
	}
	if len(dirs) == 0 {
		return "", fmt.Errorf("no export folder under s3://%s/%s written since %s", e.cfg.Bucket, base, st.StartedAt.Format(time.RFC3339))
	}
	sort.Slice(dirs, func(i, j int) bool { return newest[dirs[i]].After(newest[dirs[j]]) })
	return "AWSDynamoDB/" + dirs[0], nil
}
