package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/bot"
	"github.com/osio/osio-bot/config"
	"github.com/osio/osio-bot/store"
	"github.com/osio/osio-bot/store/dynamo"
)

// Store is the store the bot runs on, whichever backend: what the bot and
// the runner need, leases, and the housekeeping of the app itself.
type Store interface {
	bot.Store
	actions.Leases
	Ping(ctx context.Context) error
	Close() error
}

// OpenStore opens the store cfg names. shared is true for a store several
// replicas may use at once (dynamodb): jobs then run under leases. The
// DynamoDB table must exist (osio-bot store init); its absence is an error
// that says so.
func OpenStore(ctx context.Context, cfg config.Config) (st Store, shared bool, err error) {
	switch cfg.Store.Backend {
	case "", "bolt":
		s, err := store.Open(cfg.Store.Path, store.Options{})
		if err != nil {
			return nil, false, err
		}
		return s, false, nil
	case "dynamodb":
		c, err := DynamoDBClient(ctx, cfg)
		if err != nil {
			return nil, false, err
		}
		s, err := dynamo.New(c, dynamo.Options{Table: cfg.Store.DynamoDB.Table, CallTimeout: cfg.Store.DynamoDB.CallTimeout.D()})
		if err != nil {
			return nil, false, err
		}
		if err := s.Ping(ctx); err != nil {
			if _, ok := errors.AsType[*types.ResourceNotFoundException](err); ok {
				return nil, false, fmt.Errorf("store.dynamodb.table %s does not exist in %s: create it with `osio-bot store init` (deploy/dynamodb/): %w",
					cfg.Store.DynamoDB.Table, cfg.Store.DynamoDB.Region, err)
			}
			return nil, false, fmt.Errorf("store.dynamodb.table %s: %w", cfg.Store.DynamoDB.Table, err)
		}
		return s, true, nil
	default:
		return nil, false, fmt.Errorf("store.backend %q is not a backend (bolt or dynamodb)", cfg.Store.Backend)
	}
}

// DynamoDBClient is the client of the dynamodb store: the bot's base AWS
// credentials (not an account role), the table's region, and
// store.dynamodb.endpoint when set. Each call is bounded by
// store.dynamodb.call_timeout.
func DynamoDBClient(ctx context.Context, cfg config.Config) (*dynamodb.Client, error) {
	d := cfg.Store.DynamoDB
	timeout := d.CallTimeout.D()
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	base, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(d.Region), awsconfig.WithHTTPClient(AWSHTTPClient(timeout)))
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration for the store: %w", err)
	}
	return dynamodb.NewFromConfig(base, func(o *dynamodb.Options) {
		if d.Endpoint != "" {
			o.BaseEndpoint = aws.String(d.Endpoint)
		}
	}), nil
}

// ReplicaName names this process in leases and in threads: the host name
// (a pod's name in Kubernetes) and the process id.
func ReplicaName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "osio-bot"
	}
	return fmt.Sprintf("%s-%d", h, os.Getpid())
}
