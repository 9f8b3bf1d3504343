package actions

import "context"

// FailpointEnv names the one failpoint a process arms, as
// "<job>.<checkpoint>" (for example "datapipeline.activating"). A job that
// reaches it stops there and waits until its context ends, so that a test
// can SIGKILL the process at a known point. Never set it in production.
const FailpointEnv = "OSIO_BOT_FAILPOINT"

// Failpoint is called by jobs right after each checkpoint is durably
// written, with the checkpoint's full name "<job>.<checkpoint>".
type Failpoint func(ctx context.Context, name string)

// ArmFailpoint returns a Failpoint that blocks until ctx ends when it is
// reached at name, after calling reached (for a log line); nil when name
// is empty.
func ArmFailpoint(name string, reached func(name string)) Failpoint {
	if name == "" {
		return nil
	}
	return func(ctx context.Context, at string) {
		if at != name {
			return
		}
		if reached != nil {
			reached(at)
		}
		<-ctx.Done()
	}
}

// Failpoint marks that the job's checkpoint name (without the job prefix)
// was just recorded; job is the job's failpoint prefix (for example
// "inplace"). It blocks when that failpoint is armed.
func (jc *JobContext) Failpoint(ctx context.Context, job, name string) {
	if jc.failpoint != nil {
		jc.failpoint(ctx, job+"."+name)
	}
}
