package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/zap"

	"github.com/osio/osio-bot/actions"
)

// S3 is the part of the S3 API the archiver calls.
type S3 interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
}

// ArchiveStore is what the archiver needs from the store: the requests
// and their events, a claim so that one replica writes each record, and
// the mark that a request's record is written.
type ArchiveStore interface {
	Source
	ClaimEnvelope(id string) (bool, error)
	Update(id string, from []actions.State, mutate func(*actions.Request) error, events ...actions.Event) (*actions.Request, error)
}

// FailpointArchived is reached after a record is written to S3 and
// before the request is marked archived (tests SIGKILL there).
const FailpointArchived = "audit.archived"

// Archiver writes each ended request's audit record to S3 once
// (audit.s3_uri), so that the trail outlives the Slack workspace's
// retention: key PREFIX/R-000123.json. A request is marked archived
// (Request.Archived, the key) after its write; a write whose mark a crash
// lost is found by HeadObject and not made again.
type Archiver struct {
	S3        S3
	Store     ArchiveStore
	Bucket    string
	Prefix    string
	Timeout   time.Duration // each S3 call; 30 s when zero
	Log       *zap.Logger
	Failpoint actions.Failpoint
}

// ParseS3URI splits "s3://bucket/prefix" into its bucket and prefix.
func ParseS3URI(uri string) (bucket, prefix string, err error) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return "", "", fmt.Errorf("%q is not s3://BUCKET[/PREFIX]", uri)
	}
	return u.Host, strings.Trim(u.Path, "/"), nil
}

// Key is the object key of request id's record.
func (a *Archiver) Key(id string) string {
	if a.Prefix == "" {
		return id + ".json"
	}
	return a.Prefix + "/" + id + ".json"
}

// Archive writes the records of the ended requests not yet archived; it
// returns how many it wrote (or found written).
func (a *Archiver) Archive(ctx context.Context) (int, error) {
	rs, err := a.Store.List(func(r *actions.Request) bool { return r.State.Terminal() && r.Archived == "" })
	if err != nil {
		return 0, fmt.Errorf("listing ended requests: %w", err)
	}
	n := 0
	for i := len(rs) - 1; i >= 0; i-- { // oldest first
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		if err := a.archive(ctx, rs[i]); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (a *Archiver) call(ctx context.Context) (context.Context, context.CancelFunc) {
	t := a.Timeout
	if t <= 0 {
		t = 30 * time.Second
	}
	return context.WithTimeout(ctx, t)
}

func (a *Archiver) archive(ctx context.Context, r *actions.Request) error {
	key := a.Key(r.ID)
	// Written before a crash lost the mark?
	cctx, cancel := a.call(ctx)
	_, err := a.S3.HeadObject(cctx, &s3.HeadObjectInput{Bucket: aws.String(a.Bucket), Key: aws.String(key)})
	cancel()
	var nf *s3types.NotFound
	switch {
	case err == nil:
		a.Log.Info("audit record already in S3; marking it", zap.String("request_id", r.ID), zap.String("key", key))
	case errors.As(err, &nf):
		// One replica writes each record (claims are shared).
		ok, err := a.Store.ClaimEnvelope("audit-s3:" + r.ID)
		if err != nil {
			return fmt.Errorf("claiming the audit write of %s: %w", r.ID, err)
		}
		if !ok {
			return nil // another replica writes it
		}
		evs, err := a.Store.Events(r.ID)
		if err != nil {
			return fmt.Errorf("reading the events of %s: %w", r.ID, err)
		}
		var b bytes.Buffer
		if err := WriteJSONL(&b, []Record{record(r, evs)}); err != nil {
			return err
		}
		cctx, cancel := a.call(ctx)
		_, err = a.S3.PutObject(cctx, &s3.PutObjectInput{Bucket: aws.String(a.Bucket), Key: aws.String(key), Body: bytes.NewReader(b.Bytes()),
			ContentType: aws.String("application/json")})
		cancel()
		if err != nil {
			return fmt.Errorf("writing the audit record of %s to s3://%s/%s: %w", r.ID, a.Bucket, key, err)
		}
		a.Log.Info("audit record written to S3", zap.String("request_id", r.ID), zap.String("key", key))
		if a.Failpoint != nil {
			a.Failpoint(ctx, FailpointArchived)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	default:
		return fmt.Errorf("looking for the audit record of %s in s3://%s/%s: %w", r.ID, a.Bucket, key, err)
	}
	_, err = a.Store.Update(r.ID, nil, func(q *actions.Request) error { q.Archived = key; return nil })
	if err != nil {
		return fmt.Errorf("marking %s archived: %w", r.ID, err)
	}
	return nil
}
