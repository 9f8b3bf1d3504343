package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/store"
)

// soundStore writes a store file with n requests.
func soundStore(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "osio-bot.db")
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		r := &actions.Request{Kind: "export", Plan: []string{strings.Repeat("x", 400)}}
		if _, err := s.Create(r, fmt.Sprint("env", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// scribble overwrites four pages in the middle of a store file.
func scribble(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 16*4096 {
		t.Fatalf("store is only %d bytes", len(data))
	}
	for i := 4 * 4096; i < 8*4096; i++ {
		data[i] = 0xff
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestStoreCheck(t *testing.T) {
	setTokens(t)
	good := soundStore(t, 300)
	bad := soundStore(t, 300)
	scribble(t, bad)
	cfgBad := writeConfig(t, strings.Replace(validConfig, "/var/lib/osio-bot/test.db", bad, 1))

	code, out, errOut := runCmd("store", "check", "--file", good)
	if code != 0 || !strings.Contains(out, good+": ok, 300 requests, newest R-000300") {
		t.Errorf("store check of a sound file: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = runCmd("store", "check", "--config", cfgBad)
	if code != 1 || !strings.Contains(out, bad+": CORRUPT") || !strings.Contains(out, "backup") {
		t.Errorf("store check of a corrupt file: exit %d, stdout %q, stderr %q; want exit 1 naming the file, its damage and how to recover", code, out, errOut)
	}
	code, _, errOut = runCmd("store", "check", "--file", filepath.Join(t.TempDir(), "missing.db"))
	if code != 1 || !strings.Contains(errOut, "missing.db") {
		t.Errorf("store check of a missing file: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCmd("store", "frobnicate")
	if code != 2 {
		t.Errorf("store frobnicate: exit %d, stderr %q, want 2", code, errOut)
	}
}

// TestRunCorruptStoreFailsAtStart: a damaged store stops the start with
// an error that names the file and how to recover, before anything else
// is reached (the config's Slack is not there).
func TestRunCorruptStoreFailsAtStart(t *testing.T) {
	setTokens(t)
	bad := soundStore(t, 300)
	scribble(t, bad)
	cfg := writeConfig(t, strings.Replace(validConfig, "/var/lib/osio-bot/test.db", bad, 1)+"metrics:\n  listen: \"\"\n")
	code, _, errOut := runCmd("run", "--config", cfg)
	if code != 1 {
		t.Errorf("run on a corrupt store: exit %d, want 1", code)
	}
	for _, want := range []string{bad, "is corrupt", "store check", "backup"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("run on a corrupt store: stderr does not say %q:\n%s", want, errOut)
		}
	}
}
