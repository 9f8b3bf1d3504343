package app

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/osio/osio-bot/actions"
)

type noSocket struct{}

func (noSocket) Connected() (bool, time.Time) { return true, time.Time{} }
func (noSocket) Connects() int                { return 1 }

type noOutbox struct{}

func (noOutbox) Outbox() ([]string, error) { return nil, nil }
func (noOutbox) Undelivered(string) ([]actions.Event, actions.Cursor, error) {
	return nil, actions.Cursor{}, nil
}

// exported is every metric name the bot's registry serves, with the
// series names of its histograms.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(newMetrics().collectors(noSocket{}, noOutbox{}, []string{"export"})...)
	ch := make(chan *prometheus.Desc, 1000)
	for _, c := range newMetrics().collectors(noSocket{}, noOutbox{}, nil) {
		c.Describe(ch)
	}
	close(ch)
	names := map[string]bool{}
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		m := fq.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no name in %s", d)
		}
		for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
			names[m[1]+suffix] = true
		}
	}
	return names
}

type ruleFile struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Spec       struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	} `yaml:"spec"`
}

// Issue 11, acceptance 2: every alert of deploy/prometheus/rules.yaml
// reads only metrics the bot exports, carries a summary, a description
// and a runbook section in deploy/README.md, and passes promtool's unit
// tests (rules_test.yaml); promtool is required when CI=true.
func TestAlertRules(t *testing.T) {
	raw, err := os.ReadFile("../deploy/prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(raw, &rf); err != nil {
		t.Fatal(err)
	}
	if rf.APIVersion != "monitoring.coreos.com/v1" || rf.Kind != "PrometheusRule" {
		t.Errorf("apiVersion %q kind %q; want a monitoring.coreos.com/v1 PrometheusRule", rf.APIVersion, rf.Kind)
	}
	guide, err := os.ReadFile("../deploy/README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, alertsSection, _ := strings.Cut(string(guide), "\n### Alerts\n")
	names := exported(t)
	metricRe := regexp.MustCompile(`\bosio_bot_[a-z0-9_]+`)
	want := map[string]bool{"OsioBotSlackDisconnected": true, "OsioBotDeliveriesStuck": true, "OsioBotApprovalsChannelUnreachable": true,
		"OsioBotJobsFailing": true, "OsioBotRequestsExpiring": true, "OsioBotStoreNotWritable": true}
	for _, g := range rf.Spec.Groups {
		for _, r := range g.Rules {
			delete(want, r.Alert)
			for _, m := range metricRe.FindAllString(r.Expr, -1) {
				if !names[m] {
					t.Errorf("%s: %s is not exported by the bot", r.Alert, m)
				}
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s: no %s", r.Alert, a)
				}
			}
			if r.Labels["severity"] == "" {
				t.Errorf("%s: no severity", r.Alert)
			}
			if !strings.Contains(alertsSection, "**"+r.Alert+"**") {
				t.Errorf("%s: no runbook entry (**%s**) under deploy/README.md's ### Alerts", r.Alert, r.Alert)
			}
		}
	}
	for a := range want {
		t.Errorf("no alert %s", a)
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not installed (Debian package prometheus; .ci/run installs it)")
		}
		t.Skip("promtool is not installed: rules checked against the registry only")
	}
	dir := t.TempDir()
	var spec struct {
		Spec yaml.Node `yaml:"spec"`
	}
	if err := yaml.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	plain, err := yaml.Marshal(&spec.Spec)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("../deploy/prometheus/rules_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"rules.yaml": plain, "rules_test.yaml": tests} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "rules_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			continue
		}
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
	}
}
