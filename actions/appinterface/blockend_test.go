package appinterface

import (
	"strings"
	"testing"
)

// A file without a final newline whose last value is a block scalar ("A: |"
// then " /"): adding a line after it gives the scalar a line break it did
// not have ("/" becomes "/\n"). Found by FuzzAppendResetPassword in CI; the
// restore had the same fault. An edit may refuse such a file, but must not
// change a value it was not asked to change.
func TestEditsLeaveABlockScalarAtTheEndAlone(t *testing.T) {
	for _, f := range []string{"A: |\n /", "A: >\n /", "A: |+\n /", "roles:\n- $ref: /r/two.yml\n- |\n  x"} {
		if err := checkAppend(AppendResetPassword, []byte(f), "/u/b.yml", "r2"); err != nil {
			t.Errorf("append to %q: %v", f, err)
		}
		if err := checkRestoreInto(RestoreRoleRefs, []byte(f), []Removed{{Ref: "/r/one.yml", Line: "- $ref: /r/one.yml\n"}}); err != nil {
			t.Errorf("restore into %q: %v", f, err)
		}
	}
	// The same files with a final newline are edited as before.
	out, err := AppendResetPassword([]byte("A: |\n /\n"), "/u/b.yml", "r2")
	if err != nil {
		t.Fatal(err)
	}
	if want := "A: |\n /\nresetPasswords:\n- user: {$ref: /u/b.yml}\n  requestId: r2\n"; string(out) != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

// Lines ending in LF and others in CRLF: when the last line goes, or a line
// is added, the break it takes cannot match both. Found by the fuzzers
// (FuzzRemoveRoleRefs, FuzzRestoreRoleRefs); such a file is refused.
func TestEditsRefuseMixedLineBreaks(t *testing.T) {
	f := []byte("s: {}\nroles:\n- f\n- $ref: /r/two.yml\r\n- $ref: /r/one.yml")
	if _, _, err := RemoveRoleRefs(f, []string{"/r/one.yml"}); err == nil || !strings.Contains(err.Error(), "mixes LF and CRLF") {
		t.Errorf("remove: %v", err)
	}
	if _, _, err := RestoreRoleRefs(f, []Removed{{Ref: "/r/three.yml", Line: "- $ref: /r/three.yml\n"}}); err == nil || !strings.Contains(err.Error(), "mixes LF and CRLF") {
		t.Errorf("restore: %v", err)
	}
	if _, err := AppendResetPassword(f, "/u/b.yml", "r2"); err == nil || !strings.Contains(err.Error(), "mixes LF and CRLF") {
		t.Errorf("append: %v", err)
	}
	// One kind throughout is edited.
	if _, _, err := RemoveRoleRefs([]byte(strings.ReplaceAll(string(f), "\r\n", "\n")), []string{"/r/one.yml"}); err != nil {
		t.Errorf("LF only: %v", err)
	}
}

// A file without a final newline whose last item is removed, with a blank
// line above it: the blank line stays, and restoring the item gives the
// file back byte for byte. (The blank line, left last, lost its newline
// and so was gone: found by FuzzRemoveRoleRefs in CI.)
func TestRemovingTheLastItemKeepsTheBlankLineAbove(t *testing.T) {
	for _, f := range []string{"roles:\n- a\n\n- $ref: /r/one.yml", "roles:\n- \n\n\n- $ref: /r/one.yml", "roles:\r\n- a\r\n  \r\n- $ref: /r/one.yml"} {
		out, removed, err := RemoveRoleRefs([]byte(f), []string{"/r/one.yml"})
		if err != nil {
			t.Fatalf("remove from %q: %v", f, err)
		}
		if want := strings.TrimSuffix(f, "- $ref: /r/one.yml"); string(out) != want {
			t.Errorf("remove from %q = %q, want %q", f, out, want)
		}
		back, skipped, err := RestoreRoleRefs(out, removed)
		if err != nil || len(skipped) != 0 || string(back) != f {
			t.Errorf("restore into %q = %q (skipped %v, %v), want %q", out, back, skipped, err, f)
		}
	}
}
