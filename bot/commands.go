package bot

import (
	"context"
	"fmt"
	"strings"

	"github.com/slack-go/slack"
)

// Invocation is one slash command as the handlers see it.
type Invocation struct {
	Cmd        slack.SlashCommand
	Args       []string
	EnvelopeID string
}

// Reply is what the requester sees at once (the ack's ephemeral message),
// plus work to do after the ack has gone.
type Reply struct {
	Text   string
	Blocks []slack.Block
	// After runs once the ack is sent (e.g. planning the approval card).
	After func(ctx context.Context)
}

// Sub is one form of a command, such as "/osio-export help".
type Sub struct {
	// Name is the first word; "" is the default form, taking Args.
	Name string
	Args string
	Help string
	Run  func(ctx context.Context, inv Invocation) Reply
}

// Command is a slash command and its forms. Help is generated from this
// table, so usage text cannot drift from what is parsed.
type Command struct {
	Name    string
	Summary string
	Subs    []Sub
	// EmptyRunsDefault runs the default form with no arguments instead of
	// showing help.
	EmptyRunsDefault bool
}

// Usage is the one-line synopsis of each form.
func (c Command) Usage() []string {
	var out []string
	for _, s := range c.Subs {
		parts := []string{c.Name}
		if s.Name != "" {
			parts = append(parts, s.Name)
		}
		if s.Args != "" {
			parts = append(parts, s.Args)
		}
		out = append(out, fmt.Sprintf("`%s`  %s", strings.Join(parts, " "), s.Help))
	}
	return out
}

// HelpText is the full help of c.
func (c Command) HelpText() string {
	return fmt.Sprintf("*%s*: %s\n%s", c.Name, c.Summary, strings.Join(c.Usage(), "\n"))
}

// Dispatch finds the form of c that inv names and runs it.
func (c Command) Dispatch(ctx context.Context, inv Invocation) Reply {
	var def *Sub
	for i := range c.Subs {
		s := &c.Subs[i]
		if s.Name == "" {
			def = s
			continue
		}
		if len(inv.Args) > 0 && strings.EqualFold(inv.Args[0], s.Name) {
			if s.Name == "help" {
				return Reply{Text: c.HelpText()}
			}
			inv.Args = inv.Args[1:]
			return s.Run(ctx, inv)
		}
	}
	if def == nil || len(inv.Args) == 0 && !c.EmptyRunsDefault {
		return Reply{Text: c.HelpText()}
	}
	return def.Run(ctx, inv)
}

// lookup finds the command named name in table.
func lookup(table []Command, name string) (Command, bool) {
	for _, c := range table {
		if c.Name == name {
			return c, true
		}
	}
	return Command{}, false
}

// DisabledCommand answers every form of a command whose flow is off in the
// configuration with why, instead of Slack's "dispatch failed" or an
// unknown-command reply: the command stays in the Slack app manifest.
func DisabledCommand(name, why string) Command {
	off := func(context.Context, Invocation) Reply {
		return Reply{Text: fmt.Sprintf("%s is off in this bot: %s", name, why)}
	}
	return Command{Name: name, Summary: "off: " + why, EmptyRunsDefault: true,
		Subs: []Sub{{Help: "is off.", Run: off}, {Name: "status", Help: "is off.", Run: off}}}
}
