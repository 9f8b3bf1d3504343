package export

import (
	"fmt"
	"strings"

	"github.com/osio/osio-bot/bot/mrkdwn"
)

// Every text the export job words for people, in one place: the refusals
// the requester reads, the plan on the card, and the thread's replies.
// Style as bot/messages.go: a sentence, what happened, to what (table,
// pipeline, S3 folder), and what to do next; AWS names in code.

// ---- refusals (the requester, before anything is requested) ----

const noTablesText = "Name at least one table: `/osio-export TABLE [TABLE...]`."

func invalidNameText(name string) string {
	return fmt.Sprintf("%s is not a valid DynamoDB table name: use 3 to 255 characters from a-z, A-Z, 0-9, `_`, `-` and `.` (this one has %s).",
		mrkdwn.Code(name, 60), mrkdwn.Count(mrkdwn.Len(name), "character"))
}

func tooManyTablesText(max, named int) string {
	return fmt.Sprintf("One request may export at most %s; you named %d. Split the request.", mrkdwn.Count(max, "table"), named)
}

func noSuchTableText(account, accountID, region string, missing []string) string {
	return fmt.Sprintf("No such table in account %s (%s, %s): %s. Check the name (it is case-sensitive); nothing was requested.",
		account, accountID, region, tableList(missing))
}

func pitrOffText(off []string, account string, tables []string) string {
	return fmt.Sprintf("Point-in-time recovery is off for %s in account %s, and the native export needs it. Ask the table's owner to enable it "+
		"(`aws dynamodb update-continuous-backups --table-name TABLE --point-in-time-recovery-specification PointInTimeRecoveryEnabled=true`), "+
		"or use the runbook's method: `/osio-export --datapipeline %s`. Nothing was requested.",
		tableList(off), account, strings.Join(tables, " "))
}

// ---- the plan on the approval card ----

func planNativeLine(table, owner, dest string) string {
	return fmt.Sprintf("`%s`: ExportTableToPointInTime (DYNAMODB_JSON, bucket owner %s) → `%s/AWSDynamoDB/<export id>/`", table, owner, dest)
}

func planUnlistedLine(table string, err error, dest string) string {
	return fmt.Sprintf("`%s`: could not list pipelines (%v); will find or create pipeline `%s` → `%s`", table, err, table, dest)
}

func planActivateLine(table, id, dest string) string {
	return fmt.Sprintf("`%s`: activate existing pipeline `%s` → `%s`", table, id, dest)
}

func planSharedNameLine(table string, ids []string) string {
	return fmt.Sprintf("`%s`: %d pipelines share this name (%s); the job will stop until one is deleted", table, len(ids), strings.Join(ids, ", "))
}

func planCreateLine(table, dest string) string {
	return fmt.Sprintf("`%s`: create pipeline `%s` from template \"Export DynamoDB table to S3\" → `%s`", table, table, dest)
}

// ---- the thread: Data Pipeline ----

func createdPipelineText(table, id, postStep, warnings string) string {
	text := fmt.Sprintf("`%s`: created pipeline `%s` from template \"Export DynamoDB table to S3\" with post-step command `%s`.", table, id, postStep)
	if warnings != "" {
		text += "\n:warning: Validation warnings (expected: the dev account's bucket cannot be validated from this account; not fatal):\n" + warnings
	}
	return text
}

func activatedText(table, id, output string) string {
	return fmt.Sprintf("`%s`: activated pipeline `%s`; output `%s`.", table, id, output)
}

func pipelineStatusText(table, id, status, at string) string {
	return fmt.Sprintf("`%s`: pipeline `%s` is %s (checked %s UTC)", table, id, status, at)
}

func pipelineFinishedText(table, id string) string {
	return fmt.Sprintf("`%s`: pipeline `%s` FINISHED.", table, id)
}

// verifiedText: a finished export's folder, as the dev account reads it;
// note is what else is known ("with the `_SUCCESS` marker", "100 items
// exported"), with its leading punctuation.
func verifiedText(table, account, accountID, uri string, files int, bytes int64, note string) string {
	return fmt.Sprintf(":white_check_mark: `%s`: verified from account %s (%s): `%s` holds %s, %s%s.",
		table, account, accountID, uri, mrkdwn.Count(files, "file"), mrkdwn.Count(bytes, "byte"), note)
}

func successMarkerNote(found bool) string {
	if found {
		return ", with the `_SUCCESS` marker"
	}
	return ", without a `_SUCCESS` marker"
}

// ---- the thread: native export ----

func nativeStartedText(table, arn, dest, owner string) string {
	return fmt.Sprintf("`%s`: started native export `%s` to `%s/` (bucket owner %s).", table, arn, dest, owner)
}

func exportStatusText(table, status, at string) string {
	return fmt.Sprintf("`%s`: export is %s (checked %s UTC)", table, status, at)
}

func itemsExportedNote(items int64) string {
	return " (" + mrkdwn.Count(items, "item") + " exported)"
}

// ---- the thread: a table that failed, and the job's failure ----

// tableFailedText: one table's export stopped; the others go on.
func tableFailedText(table string, err error) string {
	return fmt.Sprintf(":x: `%s` was not exported. Detail: %s", table, mrkdwn.Code(strings.Join(strings.Fields(err.Error()), " "), 400))
}

// notExportedText is the job's failure (actions.Failure's Text): which
// tables were not exported, and whether the others were.
func notExportedText(failed []string, exported int) string {
	verb := "was"
	if len(failed) > 1 {
		verb = "were"
	}
	text := fmt.Sprintf("%s %s not exported", tableList(failed), verb)
	if exported > 0 {
		text += fmt.Sprintf(" (%s exported; see the follow-up)", mrkdwn.Count(exported, "other table"))
	}
	return text
}

// ---- the follow-ups (to the requester, in the thread) ----

// folderLine is one exported table's folder in a follow-up.
func folderLine(uri string, files int, bytes int64) string {
	return fmt.Sprintf("• `%s` (%s, %s)", uri, mrkdwn.Count(files, "file"), mrkdwn.Count(bytes, "byte"))
}

// followUpText is the runbook's follow-up after a Data Pipeline export.
func followUpText(requester, account, bucket string, folders []string) string {
	return fmt.Sprintf(`<@%s> I have created a backup of all the requested tables and used a Data Pipeline to have that backup created in the "%s" account.

In order to restore the data to your tables, follow this manual:

https://docs.aws.amazon.com/datapipeline/latest/DeveloperGuide/dp-importexport-ddb-part1.html

The bucket name which holds all the backups is called "%s" (you should have read access to it).
%s

Good luck!`, requester, account, bucket, strings.Join(folders, "\n"))
}

// followUpNativeText is the follow-up after a native export: where the
// files are, and how to import them; sources are the exports' data
// prefixes (s3://…/data/), one per exported table, in order.
func followUpNativeText(requester, account, bucket, id string, folders, tables, sources []string) string {
	source := "`" + sources[0] + "`"
	if len(sources) > 1 {
		var each []string
		for i, s := range sources {
			each = append(each, fmt.Sprintf("`%s` (for `%s`)", s, tables[i]))
		}
		source = "one of " + strings.Join(each, ", ")
	}
	return fmt.Sprintf(`<@%s> I have exported the requested tables with DynamoDB's native export to S3; the files are in the "%s" account's bucket "%s" (you should have read access to it):
%s

To restore one into a new table in %s, ask the bot: `+"`/osio-restore %s TABLE NEW_TABLE_NAME`"+`.
To import it yourself: DynamoDB console → Imports from S3 → source %s, format DynamoDB JSON, compression GZIP; see https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataImport.HowItWorks.html

Good luck!`, requester, account, bucket, strings.Join(folders, "\n"), account, id, source)
}

// tableList names tables in code: "`a`, `b`".
func tableList(tables []string) string {
	return "`" + strings.Join(tables, "`, `") + "`"
}
