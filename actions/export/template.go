package export

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	dptypes "github.com/aws/aws-sdk-go-v2/service/datapipeline/types"
)

// The template's object ids and the run's folder format.
const (
	ActivityID      = "TableBackupActivity"
	DataNodeID      = "S3BackupLocation"
	SourceID        = "DDBSourceTable"
	ClusterID       = "EmrClusterForBackup"
	DirectoryPath   = "#{myOutputS3Loc}/#{format(@scheduledStartTime, 'YYYY-MM-dd-HH-mm-ss')}"
	FolderLayout    = "2006-01-02-15-04-05"
	dpTimeLayout    = "2006-01-02T15:04:05"
	templateStepFmt = "s3://dynamodb-dpl-#{myDDBRegion}/emr-ddb-storage-handler/4.11.0/emr-dynamodb-tools-4.11.0-SNAPSHOT-jar-with-dependencies.jar,org.apache.hadoop.dynamodb.tools.DynamoDBExport,#{output.directoryPath},#{input.tableName},#{input.readThroughputPercent}"
)

// OutputLocation is the table's output folder, s3://BUCKET/PREFIX/TABLE.
func (e *Exporter) OutputLocation(table string) string {
	return fmt.Sprintf("s3://%s/%s/%s", e.cfg.Bucket, e.cfg.BackupsPrefix, table)
}

// LogURI is the pipelines' log location, s3://BUCKET/logs.
func (e *Exporter) LogURI() string { return fmt.Sprintf("s3://%s/%s", e.cfg.Bucket, e.cfg.LogsPrefix) }

// PostStepCommand is the runbook's ACL fix-up, which hands the exported
// files to the bucket owner (the dev account).
func (e *Exporter) PostStepCommand(table string) string {
	out := e.OutputLocation(table) + "/"
	return fmt.Sprintf("aws s3 cp %s %s --recursive --acl bucket-owner-full-control --storage-class STANDARD", out, out)
}

func str(k, v string) dptypes.Field {
	return dptypes.Field{Key: aws.String(k), StringValue: aws.String(v)}
}
func ref(k, v string) dptypes.Field {
	return dptypes.Field{Key: aws.String(k), RefValue: aws.String(v)}
}

// Definition is the "Export DynamoDB table to S3" template for table, with
// the post-step command added, as PutPipelineDefinition takes it.
func (e *Exporter) Definition(table string) ([]dptypes.PipelineObject, []dptypes.ParameterObject, []dptypes.ParameterValue) {
	emr := e.cfg.EMR
	cluster := []dptypes.Field{
		str("type", "EmrCluster"),
		str("releaseLabel", emr.ReleaseLabel),
		str("masterInstanceType", emr.MasterInstanceType),
		str("coreInstanceType", emr.CoreInstanceType),
		str("coreInstanceCount", strconv.Itoa(emr.CoreInstanceCount)),
		str("region", "#{myDDBRegion}"),
	}
	if emr.TerminateAfter != "" {
		cluster = append(cluster, str("terminateAfter", emr.TerminateAfter))
	}
	objects := []dptypes.PipelineObject{
		{Id: aws.String("Default"), Name: aws.String("Default"), Fields: []dptypes.Field{
			str("scheduleType", "ONDEMAND"),
			str("failureAndRerunMode", "CASCADE"),
			str("role", "DataPipelineDefaultRole"),
			str("resourceRole", "DataPipelineDefaultResourceRole"),
			str("pipelineLogUri", e.LogURI()),
		}},
		{Id: aws.String(ClusterID), Name: aws.String(ClusterID), Fields: cluster},
		{Id: aws.String(ActivityID), Name: aws.String(ActivityID), Fields: []dptypes.Field{
			str("type", "EmrActivity"),
			ref("input", SourceID),
			ref("output", DataNodeID),
			ref("runsOn", ClusterID),
			str("maximumRetries", "2"),
			str("resizeClusterBeforeRunning", "true"),
			str("step", templateStepFmt),
			str("postStepCommand", e.PostStepCommand(table)),
		}},
		{Id: aws.String(SourceID), Name: aws.String(SourceID), Fields: []dptypes.Field{
			str("type", "DynamoDBDataNode"),
			str("tableName", "#{myDDBTableName}"),
			str("readThroughputPercent", "#{myDDBReadThroughputRatio}"),
		}},
		{Id: aws.String(DataNodeID), Name: aws.String(DataNodeID), Fields: []dptypes.Field{
			str("type", "S3DataNode"),
			str("directoryPath", DirectoryPath),
		}},
	}
	param := func(id, typ, def, desc string) dptypes.ParameterObject {
		attrs := []dptypes.ParameterAttribute{
			{Key: aws.String("type"), StringValue: aws.String(typ)},
			{Key: aws.String("description"), StringValue: aws.String(desc)},
		}
		if def != "" {
			attrs = append(attrs, dptypes.ParameterAttribute{Key: aws.String("default"), StringValue: aws.String(def)})
		}
		return dptypes.ParameterObject{Id: aws.String(id), Attributes: attrs}
	}
	params := []dptypes.ParameterObject{
		param("myOutputS3Loc", "AWS::S3::ObjectKey", "", "Output S3 folder"),
		param("myDDBTableName", "String", "", "Source DynamoDB table name"),
		param("myDDBReadThroughputRatio", "Double", "0.25", "DynamoDB read throughput ratio"),
		param("myDDBRegion", "String", "us-east-1", "Region of the DynamoDB table"),
	}
	values := []dptypes.ParameterValue{
		{Id: aws.String("myOutputS3Loc"), StringValue: aws.String(e.OutputLocation(table))},
		{Id: aws.String("myDDBTableName"), StringValue: aws.String(table)},
		{Id: aws.String("myDDBReadThroughputRatio"), StringValue: aws.String(strconv.FormatFloat(e.cfg.ReadThroughputRatio, 'f', -1, 64))},
		{Id: aws.String("myDDBRegion"), StringValue: aws.String(e.region)},
	}
	return objects, params, values
}

// checkDefinition compares an existing pipeline's definition with what the
// runbook needs, returning one line per mismatch.
func (e *Exporter) checkDefinition(table string, objs []dptypes.PipelineObject, values []dptypes.ParameterValue) (activityID string, problems []string) {
	vals := map[string]string{}
	for _, v := range values {
		vals[aws.ToString(v.Id)] = aws.ToString(v.StringValue)
	}
	resolve := func(s string) string {
		for k, v := range vals {
			s = strings.ReplaceAll(s, "#{"+k+"}", v)
		}
		return s
	}
	var dirOK, postOK, tableOK bool
	wantDir := e.OutputLocation(table) + "/#{format(@scheduledStartTime, 'YYYY-MM-dd-HH-mm-ss')}"
	for _, o := range objs {
		typ := fieldValues(o.Fields, "type")
		switch {
		case contains(typ, "EmrActivity"):
			activityID = aws.ToString(o.Id)
			postOK = contains(fieldValues(o.Fields, "postStepCommand"), e.PostStepCommand(table))
		case contains(typ, "S3DataNode"):
			for _, d := range fieldValues(o.Fields, "directoryPath") {
				dirOK = dirOK || resolve(d) == wantDir
			}
		case contains(typ, "DynamoDBDataNode"):
			for _, t := range fieldValues(o.Fields, "tableName") {
				tableOK = tableOK || resolve(t) == table
			}
		}
	}
	if activityID == "" {
		problems = append(problems, "it has no EmrActivity")
	} else if !postOK {
		problems = append(problems, "its EmrActivity lacks the postStepCommand `"+e.PostStepCommand(table)+"`")
	}
	if !dirOK {
		problems = append(problems, "its S3DataNode does not write to `"+wantDir+"`")
	}
	if !tableOK {
		problems = append(problems, "its DynamoDBDataNode does not read table `"+table+"`")
	}
	return activityID, problems
}

func fieldValues(fs []dptypes.Field, key string) []string {
	var out []string
	for _, f := range fs {
		if aws.ToString(f.Key) == key {
			if f.StringValue != nil {
				out = append(out, *f.StringValue)
			} else if f.RefValue != nil {
				out = append(out, *f.RefValue)
			}
		}
	}
	return out
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
