package dpserver

import "github.com/aws/aws-sdk-go-v2/service/datapipeline/types"

// TemplateObjects is TEST DATA: the "Export DynamoDB table to S3" template as
// shared/REFERENCE.md describes it, writing to s3://bucket/backups/table with
// logs in s3://bucket/logs. postStep, when not empty, becomes the
// EmrActivity's postStepCommand. The bot has its own template builder; this
// one exists for this package's tests and for SeedPipeline in other tests.
func TemplateObjects(bucket, table, region, postStep string) ([]types.PipelineObject, []types.ParameterObject, []types.ParameterValue) {
	type f = [3]string // key, stringValue, refValue
	obj := func(id string, fields ...f) types.PipelineObject {
		o := types.PipelineObject{Id: new(id), Name: new(id)}
		for _, x := range fields {
			fl := types.Field{Key: new(x[0])}
			if x[2] != "" {
				fl.RefValue = new(x[2])
			} else {
				fl.StringValue = new(x[1])
			}
			o.Fields = append(o.Fields, fl)
		}
		return o
	}
	activity := []f{{"type", "EmrActivity", ""}, {"input", "", "DDBSourceTable"}, {"output", "", "S3BackupLocation"},
		{"runsOn", "", "EmrClusterForBackup"}, {"maximumRetries", "2", ""}, {"resizeClusterBeforeRunning", "true", ""},
		{"step", "s3://dynamodb-dpl-#{myDDBRegion}/emr-ddb-storage-handler/4.11.0/emr-dynamodb-tools-4.11.0-SNAPSHOT-jar-with-dependencies.jar,org.apache.hadoop.dynamodb.tools.DynamoDBExport,#{output.directoryPath},#{input.tableName},#{input.readThroughputPercent}", ""}}
	if postStep != "" {
		activity = append(activity, f{"postStepCommand", postStep, ""})
	}
	objects := []types.PipelineObject{
		obj("Default", f{"scheduleType", "ONDEMAND", ""}, f{"failureAndRerunMode", "CASCADE", ""},
			f{"role", "DataPipelineDefaultRole", ""}, f{"resourceRole", "DataPipelineDefaultResourceRole", ""},
			f{"pipelineLogUri", "s3://" + bucket + "/logs", ""}),
		obj("EmrClusterForBackup", f{"type", "EmrCluster", ""}, f{"releaseLabel", "emr-5.23.0", ""},
			f{"masterInstanceType", "m3.xlarge", ""}, f{"coreInstanceType", "m3.xlarge", ""},
			f{"coreInstanceCount", "1", ""}, f{"region", "#{myDDBRegion}", ""}, f{"terminateAfter", "12 hours", ""}),
		obj("TableBackupActivity", activity...),
		obj("DDBSourceTable", f{"type", "DynamoDBDataNode", ""}, f{"tableName", "#{myDDBTableName}", ""},
			f{"readThroughputPercent", "#{myDDBReadThroughputRatio}", ""}),
		obj("S3BackupLocation", f{"type", "S3DataNode", ""},
			f{"directoryPath", "#{myOutputS3Loc}/#{format(@scheduledStartTime, 'YYYY-MM-dd-HH-mm-ss')}", ""}),
	}
	param := func(id, typ, def string) types.ParameterObject {
		p := types.ParameterObject{Id: new(id), Attributes: []types.ParameterAttribute{{Key: new("type"), StringValue: new(typ)}}}
		if def != "" {
			p.Attributes = append(p.Attributes, types.ParameterAttribute{Key: new("default"), StringValue: new(def)})
		}
		return p
	}
	params := []types.ParameterObject{
		param("myOutputS3Loc", "AWS::S3::ObjectKey", ""), param("myDDBTableName", "String", ""),
		param("myDDBReadThroughputRatio", "Double", "0.25"), param("myDDBRegion", "String", region),
	}
	values := []types.ParameterValue{
		{Id: new("myOutputS3Loc"), StringValue: new("s3://" + bucket + "/backups/" + table)},
		{Id: new("myDDBTableName"), StringValue: new(table)},
	}
	return objects, params, values
}
