package audit

import (
	"bytes"
	"encoding/csv"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osio/osio-bot/actions"
	"github.com/osio/osio-bot/store"
)

// Export keeps the requests created in [since, until), oldest first, and
// the CSV keeps a typed formula from being run by a spreadsheet.
func TestExportWindowAndInertCSV(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := now
	st, err := store.Open(filepath.Join(t.TempDir(), "a.db"), store.Options{Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var ids []string
	for i, input := range []string{"/osio-export a", `/osio-export =HYPERLINK("http://x","y")`, "/osio-export c"} {
		clock = now.Add(time.Duration(i) * 24 * time.Hour)
		res, err := st.Create(&actions.Request{Kind: "export", State: actions.Pending, Requester: "U1", Origin: "C1", Input: input,
			ExpiresAt: clock.Add(time.Hour)}, "", actions.Event{Kind: actions.Card}, actions.Event{Kind: actions.Message, Text: "Requested by <@U1>."})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Request.ID)
	}
	recs, err := Export(st, now.Add(12*time.Hour), now.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != ids[1] {
		t.Fatalf("records %+v, want only %s", recs, ids[1])
	}
	if len(recs[0].Events) != 1 || recs[0].Events[0].Text != "Requested by <@U1>." {
		t.Errorf("events %+v (card re-renders are left out)", recs[0].Events)
	}
	all, err := Export(st, time.Time{}, now.Add(72*time.Hour))
	if err != nil || len(all) != 3 || all[0].ID != ids[0] || all[2].ID != ids[2] {
		t.Fatalf("all: %v %+v", err, all)
	}
	var b bytes.Buffer
	if err := WriteCSV(&b, recs); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if cmd := rows[1][5]; !strings.HasPrefix(cmd, "/osio-export =HYPERLINK") {
		t.Errorf("command cell %q", cmd)
	}
	if got := inert(`=HYPERLINK("http://x")`); got != `'=HYPERLINK("http://x")` {
		t.Errorf("inert = %q", got)
	}
	for _, c := range []string{"+1", "-1", "@SUM(A1)", "\tx"} {
		if !strings.HasPrefix(inert(c), "'") {
			t.Errorf("inert(%q) = %q", c, inert(c))
		}
	}
	if inert("R-000001") != "R-000001" {
		t.Errorf("a plain cell was changed")
	}
}
