package bot

import (
	"context"
	"strings"
	"testing"
)

func TestCommandDispatchAndHelp(t *testing.T) {
	var got []string
	c := Command{Name: "/x", Summary: "does x.", Subs: []Sub{
		{Name: "help", Help: "shows this help."},
		{Name: "status", Args: "[ID]", Help: "lists.", Run: func(_ context.Context, inv Invocation) Reply {
			got = append(got, "status:"+strings.Join(inv.Args, ","))
			return Reply{Text: "status"}
		}},
		{Args: "THING...", Help: "does it.", Run: func(_ context.Context, inv Invocation) Reply {
			got = append(got, "default:"+strings.Join(inv.Args, ","))
			return Reply{Text: "default"}
		}},
	}}
	help := c.HelpText()
	for _, want := range []string{"*/x*: does x.", "`/x help`  shows this help.", "`/x status [ID]`  lists.", "`/x THING...`  does it."} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
	tests := []struct {
		args []string
		want string
	}{
		{nil, help},
		{[]string{"help"}, help},
		{[]string{"HELP"}, help},
		{[]string{"status", "R-1"}, "status"},
		{[]string{"a", "b"}, "default"},
	}
	for _, tc := range tests {
		if r := c.Dispatch(context.Background(), Invocation{Args: tc.args}); r.Text != tc.want {
			t.Errorf("Dispatch(%q) = %q, want %q", tc.args, r.Text, tc.want)
		}
	}
	if strings.Join(got, " ") != "status:R-1 default:a,b" {
		t.Errorf("handlers saw %q", got)
	}
	c.EmptyRunsDefault = true
	if r := c.Dispatch(context.Background(), Invocation{}); r.Text != "default" {
		t.Errorf("EmptyRunsDefault: %q", r.Text)
	}
}

// A flow that is off answers every form, help included, with why.
func TestDisabledCommand(t *testing.T) {
	c := DisabledCommand("/osio-reset-password", "password resets are not turned on here (reset.enabled).")
	for _, args := range [][]string{nil, {"help"}, {"status"}, {"jdoe", "--account", "osio"}} {
		got := c.Dispatch(context.Background(), Invocation{Args: args}).Text
		if got != "/osio-reset-password is off in this bot: password resets are not turned on here (reset.enabled)." {
			t.Errorf("%v: %q", args, got)
		}
	}
}
