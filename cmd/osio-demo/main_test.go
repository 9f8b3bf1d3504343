package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/osio/osio-bot/demo"
)

// --flow list names every flow with its line; a bad name does too, on
// stderr, with exit code 2, and starts nothing.
func TestFlowList(t *testing.T) {
	for _, c := range []struct {
		name string
		code int
	}{{"list", 0}, {"nosuchflow", 2}} {
		var out, errOut bytes.Buffer
		if code := run(&out, &errOut, c.name, 1, false); code != c.code {
			t.Errorf("--flow %s: exit %d, want %d", c.name, code, c.code)
		}
		listed := out.String()
		if c.code != 0 {
			listed = errOut.String()
			if !strings.Contains(listed, `no flow "nosuchflow"`) || out.Len() != 0 {
				t.Errorf("--flow %s: stdout %q stderr %q", c.name, out.String(), listed)
			}
		}
		for _, f := range demo.Flows() {
			if !strings.Contains(listed, f.Name) || !strings.Contains(listed, f.About) {
				t.Errorf("--flow %s does not list %s:\n%s", c.name, f.Name, listed)
			}
		}
	}
}

// With no --flow the five default flows run, in the order; a
// name picks one.
func TestChoose(t *testing.T) {
	fs, ok := choose("")
	var names []string
	for _, f := range fs {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, " "); !ok || got != "datapipeline native reset recreate resetpasswords" {
		t.Errorf("default flows: %q", got)
	}
	if fs, ok := choose("native"); !ok || len(fs) != 1 || fs[0].Name != "native" {
		t.Errorf("choose(native) = %v, %v", fs, ok)
	}
}

// Without moto_server the demo says how to install it and exits 1.
func TestMotoMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	var out, errOut bytes.Buffer
	if code := run(&out, &errOut, "", 1, false); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), "pip install 'moto[server]==5.2.1'") {
		t.Errorf("stderr does not say how to install moto_server:\n%s", errOut.String())
	}
}
