package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

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
		if code := run(context.Background(), &out, &errOut, options{flow: c.name, items: 1}); code != c.code {
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
	if code := run(context.Background(), &out, &errOut, options{items: 1}); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), "pip install 'moto[server]==5.2.1'") {
		t.Errorf("stderr does not say how to install moto_server:\n%s", errOut.String())
	}
}

// --ui starts the world and serves the playground until Ctrl-C: the URL
// is printed, the page answers, and an interrupt ends it with exit 0.
func TestUI(t *testing.T) {
	if _, err := exec.LookPath("moto_server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("moto_server is not installed")
		}
		t.Skip("moto_server is not installed")
	}
	// main's Ctrl-C context, here one the test ends.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	pr, pw := io.Pipe()
	var errOut bytes.Buffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, pw, &errOut, options{items: 1, ui: "127.0.0.1:0"})
		pw.Close()
	}()
	urlRe := regexp.MustCompile(`The playground is at (http://127\.0\.0\.1:[0-9]+/)`)
	lines := bufio.NewScanner(pr)
	var url string
	for url == "" && lines.Scan() {
		if m := urlRe.FindStringSubmatch(lines.Text()); m != nil {
			url = m[1]
		}
	}
	go io.Copy(io.Discard, pr)
	if url == "" {
		t.Fatalf("no URL printed; exit %v, stderr:\n%s", <-code, errOut.String())
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "osio-bot playground") {
		t.Errorf("GET %s: %d\n%s", url, resp.StatusCode, page)
	}
	stop() // Ctrl-C

	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit %d after Ctrl-C, want 0; stderr:\n%s", c, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the playground did not end after Ctrl-C")
	}
}
