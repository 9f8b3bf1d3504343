package store

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/osio/osio-bot/store/storetest"
)

// TestConformance runs the store contract on bbolt. bbolt is one process's
// file, so the two clients are the same *Store.
func TestConformance(t *testing.T) {
	n := storetest.Run(t, func(t *testing.T, now func() time.Time) (a, b storetest.Backend) {
		s := openAt(t, filepath.Join(t.TempDir(), "osio-bot.db"), now)
		t.Cleanup(func() { s.Close() })
		return s, s
	})
	t.Logf("%d conformance cases", n)
}
