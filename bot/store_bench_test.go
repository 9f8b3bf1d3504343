package bot_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/osio/osio-bot/bot"
	"github.com/osio/osio-bot/store"
	"github.com/osio/osio-bot/store/dynamo"
	"github.com/osio/osio-bot/testservers/moto"
)

// benchStore opens the store of one backend for a benchmark: bolt on the
// local disk, or dynamodb in moto_server behind a proxy that hands moto
// one request at a time (moto's transactions are not isolated: the MOTO
// GAP in store/dynamo). moto, single-threaded Python on the same 2 cores,
// is then the bound, not DynamoDB.
func benchStore(b *testing.B, backend string) bot.Store {
	b.Helper()
	switch backend {
	case "bolt":
		st, err := store.Open(filepath.Join(b.TempDir(), "bench.db"), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return st
	}
	srv, err := moto.Start(context.Background(), filepath.Join(b.TempDir(), "moto.log"))
	if errors.Is(err, moto.ErrMissing) && os.Getenv("CI") != "true" {
		b.Skip(err)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	endpoint, stop := srv.OneAtATime()
	b.Cleanup(stop)
	c := dynamodb.NewFromConfig(srv.Base("us-east-1"), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(endpoint) })
	if err := dynamo.CreateTable(context.Background(), c, "bench"); err != nil {
		b.Fatal(err)
	}
	st, err := dynamo.New(c, dynamo.Options{Table: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkSlashAckByStore is BenchmarkSlashAck on each store backend
// (issue 10, acceptance 7): envelope received -> ack sent for
// "/osio-export TABLE", each a new durable intake, at 1 and 50 at once.
//
//	go test ./bot -run '^$' -bench BenchmarkSlashAckByStore -benchtime 40x
func BenchmarkSlashAckByStore(b *testing.B) {
	for _, backend := range []string{"bolt", "dynamodb"} {
		for _, conc := range []int{1, 50} {
			b.Run(fmt.Sprintf("store=%s/concurrent=%d", backend, conc), func(b *testing.B) {
				slashAck(b, benchStore(b, backend), conc)
			})
		}
	}
}
