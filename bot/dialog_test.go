package bot

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/actions/export"
)

// Issue 12 part 4, item 1: the Approve button's confirm dialog says what
// will run (the request's What), not the button's own label; an option's
// dialog (a reset method) names the method.
func TestApproveDialogSaysWhatRuns(t *testing.T) {
	args, _ := json.Marshal(export.Args{Tables: []string{"prod_txlog"}, Method: export.MethodDataPipeline})
	r := &actions.Request{ID: "R-000001", Kind: export.Kind, State: actions.Pending, Requester: "UDEV", Args: args,
		What: "export of `prod_txlog` by AWS Data Pipeline (runbook)"}
	c := cardRenderer{kinds: map[string]Kind{export.Kind: ExportKind(fakeChecker{})}, groups: []string{"S1"}}
	_, blocks := c.render(r)
	raw, _ := json.Marshal(blocks)
	var got []struct {
		Elements []struct {
			ActionID string `json:"action_id"`
			Confirm  *struct {
				Text struct{ Text string } `json:"text"`
			} `json:"confirm"`
		} `json:"elements"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	text := ""
	for _, b := range got {
		for _, e := range b.Elements {
			if e.ActionID == ActionApprove && e.Confirm != nil {
				text = e.Confirm.Text.Text
			}
		}
	}
	want := "Export of `prod_txlog` by AWS Data Pipeline (runbook), for <@UDEV>. It runs as soon as you approve."
	if text != want {
		t.Errorf("Approve dialog reads\n%q\nwant\n%q", text, want)
	}
	if strings.Contains(text, ": Approve.") {
		t.Errorf("the dialog names the button, not what runs: %q", text)
	}
	if got := approveDialog("R-000004", "Console password reset", "UDEV", "Reset in place", "").text; got != "Console password reset for <@UDEV>: Reset in place. It runs as soon as you approve." {
		t.Errorf("a method's dialog reads %q", got)
	}
}
