package playground_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/osio/osio-bot/playground"
)

// The playground acts as anyone and decrypts the developer's mail: it is
// served on the loopback interface only, and an address on another
// interface is refused with a sentence (before any world is needed).
func TestServesOnLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:8080"} {
		err := playground.Run(context.Background(), nil, addr, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("Run on %q: %v; want a refusal naming 127.0.0.1", addr, err)
		}
	}
}
