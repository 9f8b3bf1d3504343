package directory

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Issue 13, acceptance 4: the people file is read again when it changes;
// a malformed one keeps the last good one, and the error names the line.
func TestPeopleFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "people.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("people:\n  - org_username: jdoe\n    email: jdoe@example.com\n")
	r, err := OpenReloading(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r.Now = func() time.Time { return now }
	var mu sync.Mutex
	var errs []error
	reloads := 0
	r.OnError = func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }
	r.OnReload = func(int) { mu.Lock(); reloads++; mu.Unlock() }
	ctx := context.Background()
	if _, err := r.ByOrgUsername(ctx, "jdoe"); err != nil {
		t.Fatal(err)
	}

	// A change is picked up (after Every), with no restart.
	write("people:\n  - org_username: jdoe\n    email: jdoe@example.com\n  - org_username: asmith\n    email: asmith@example.com\n    slack_user: U0ASMITH\n")
	if _, err := r.ByOrgUsername(ctx, "asmith"); !errors.Is(err, ErrNotFound) {
		t.Errorf("read again before Every passed: %v", err)
	}
	now = now.Add(2 * time.Second)
	if p, err := r.ByOrgUsername(ctx, "asmith"); err != nil || p.Email != "asmith@example.com" {
		t.Fatalf("the change was not picked up: %v %v", p, err)
	}
	if p, ok := r.BySlackUser("U0ASMITH"); !ok || p.OrgUsername != "asmith" {
		t.Errorf("the new mapping is not used")
	}

	// A malformed file keeps the last good one; the error names the line.
	write("people:\n  - org_username: jdoe\n    email: jdoe@example.com\n  - org_username: [broken\n")
	now = now.Add(2 * time.Second)
	if _, err := r.ByOrgUsername(ctx, "asmith"); err != nil {
		t.Errorf("the last good file was dropped: %v", err)
	}
	mu.Lock()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "yaml: line ") || !strings.Contains(errs[0].Error(), path) {
		t.Errorf("errors %v, want one naming %s and a line", errs, path)
	}
	mu.Unlock()
	// Told once per change, not on every lookup.
	now = now.Add(2 * time.Second)
	_, _ = r.ByOrgUsername(ctx, "jdoe")
	mu.Lock()
	if len(errs) != 1 || reloads != 1 {
		t.Errorf("%d errors, %d reloads; want 1 and 1", len(errs), reloads)
	}
	mu.Unlock()
	// A semantic error names the entry.
	write("people:\n  - org_username: jdoe\n    email: jdoe@example.com\n  - org_username: jdoe\n    email: other@example.com\n")
	now = now.Add(2 * time.Second)
	if _, err := r.ByOrgUsername(ctx, "asmith"); err != nil {
		t.Errorf("the last good file was dropped: %v", err)
	}
	mu.Lock()
	if len(errs) != 2 || !strings.Contains(errs[1].Error(), "people[1]") {
		t.Errorf("errors %v, want the second naming people[1]", errs)
	}
	mu.Unlock()
}

// The shipped example parses: a one-line base64 key and an armored key in
// a YAML block.
func TestShippedPeopleExample(t *testing.T) {
	d, err := LoadFile(filepath.Join("..", "deploy", "people.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := d.ByOrgUsername(context.Background(), "asmith")
	if err != nil || d.Len() != 2 {
		t.Fatalf("%d people, asmith: %v", d.Len(), err)
	}
	if !strings.HasPrefix(p.PublicGPGKey, "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBF") || !strings.HasSuffix(p.PublicGPGKey, "-----END PGP PUBLIC KEY BLOCK-----") {
		t.Errorf("armored key read as %q", p.PublicGPGKey)
	}
}
