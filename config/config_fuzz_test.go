package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fuzzing the config loader (issue 8, "Bad input, fuzzed"): for any file
// and any environment, Parse and Validate never panic, and no secret from
// the environment shows in Redacted(), a Problem, %v / %+v / %#v or JSON.
//
// Run: go test -run '^$' -fuzz '^FuzzConfig$' -fuzztime 10s ./config

// secretMark starts every fuzzed secret, so that a secret found in the
// output came from the environment, not from the file.
const secretMark = "Zq9SECRET"

var secretEnv = []string{"SLACK_APP_TOKEN", "SLACK_BOT_TOKEN", "SMTP_PASSWORD", "GITLAB_TOKEN", "APP_INTERFACE_TOKEN"}

func FuzzConfig(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("..", "deploy", "config.example.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		validYAML,
		validYAML + resetYAML + "directory:\n  email_domains: [example.com]\n",
		string(example),
		"",
		"slack: {approvals_channel: C1}\n---\nx: 1\n",
		"export:\n  read_throughput_ratio: .nan\n  poll_backoff: .inf\n",
		"approval:\n  expiry: 1e400h\n",
		"slack:\n  app_token: xapp-in-the-file\n",
		"accounts: [{name: a, id: 1, role_arn: x, region: y}]\n",
		"directory:\n  mappings: {U1: jdoe}\n  email_domains: [\"@x\", '', ~]\n",
		"a: &a [*a]\n",
		"reset: {enabled: true}\nmail: {username: u}\n",
		"store: !!binary aGVsbG8=\n",
	} {
		f.Add(s, "xapp-1", "xoxb-2", "pw", "")
	}
	f.Fuzz(func(t *testing.T, data, app, bot, smtp, gitlab string) {
		env := map[string]string{}
		for i, v := range []string{app, bot, smtp, gitlab, gitlab + "-ai"} {
			env[secretEnv[i]] = secretMark + v
		}
		if err := checkConfig(Parse, []byte(data), env); err != nil {
			t.Fatal(err)
		}
	})
}

// checkConfig parses data with env, validates and renders the result every
// way it can reach a log or a reply, and reports a secret that shows.
func checkConfig(parse func([]byte, func(string) (string, bool)) (Config, error), data []byte, env map[string]string) error {
	if strings.Contains(string(data), secretMark) {
		return nil // the file itself holds the mark: not a leak
	}
	c, err := parse(data, envOf(env))
	var outputs []string
	if err != nil {
		outputs = append(outputs, err.Error())
	}
	for _, p := range c.Validate() {
		outputs = append(outputs, p.String())
	}
	js, jerr := json.Marshal(c)
	if jerr != nil {
		js = []byte(jerr.Error())
	}
	outputs = append(outputs, c.Redacted(), fmt.Sprintf("%v|%+v|%#v", c, c, c), string(js))
	for _, o := range outputs {
		for _, k := range secretEnv {
			v := strings.TrimSpace(env[k])
			if i := strings.Index(o, v); v != "" && i >= 0 {
				return fmt.Errorf("%s's value shows in the output: %q", k, o[max(i-60, 0):min(i+len(v)+20, len(o))])
			}
		}
	}
	return nil
}

// TestConfigCheckCatchesLeaks shows that the fuzz target's check fails a
// loader that leaks a secret into what it prints.
func TestConfigCheckCatchesLeaks(t *testing.T) {
	env := map[string]string{}
	for _, k := range secretEnv {
		env[k] = secretMark + "-" + strings.ToLower(k)
	}
	if err := checkConfig(Parse, []byte(validYAML), env); err != nil {
		t.Fatalf("the real Parse: %v", err)
	}
	broken := map[string]func([]byte, func(string) (string, bool)) (Config, error){
		"keeps the bot token in a plain field": func(d []byte, e func(string) (string, bool)) (Config, error) {
			c, err := Parse(d, e)
			c.Slack.APIURL = c.Slack.BotToken.Reveal()
			return c, err
		},
		"names the SMTP password in its error": func(d []byte, e func(string) (string, bool)) (Config, error) {
			c, _ := Parse(d, e)
			return c, fmt.Errorf("bad password %s", c.Mail.Password.Reveal())
		},
		"uses the GitLab token as a label": func(d []byte, e func(string) (string, bool)) (Config, error) {
			c, err := Parse(d, e)
			c.AppInterface.Labels = []string{c.AppInterface.GitLabToken.Reveal()}
			return c, err
		},
	}
	for name, parse := range broken {
		if err := checkConfig(parse, []byte(validYAML), env); err == nil {
			t.Errorf("a loader that %s: not caught", name)
		} else {
			t.Logf("a loader that %s: %v", name, firstLine(err))
		}
	}
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
