package appinterface

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Fuzzing the app-interface YAML edits (issue 8, "Bad input, fuzzed"). For
// any file, an edit either refuses (an error) or:
//   - its output parses with yaml.v3 (and decodes, when the input did);
//   - every top-level key but the edited list decodes as before;
//   - the edited list holds what the edit says, and nothing else changed in it;
//   - line by line, the output is the input with exactly the edit's lines
//     deleted or inserted (a line diff), every other line byte for byte.
// The checks below are written from the functions' documentation, not from
// their code, and each takes the edit as a function so that the tests at
// the end can show that a broken edit is caught.
//
// Run: go test -run '^$' -fuzz '^FuzzRemoveRoleRefs$' -fuzztime 10s ./actions/appinterface

type (
	removeFunc  func(file []byte, refs []string) ([]byte, []Removed, error)
	restoreFunc func(file []byte, removed []Removed) ([]byte, []string, error)
	appendFunc  func(file []byte, userRef, requestID string) ([]byte, error)
)

// seedFiles are user and account files in the shapes the unit tests use
// (with a short key: a long line makes every minimization slow).
func seedFiles() []string {
	user := strings.Replace(userFile, gpgKey, "mQINBGQZx9Kp2Lw4AAE=", 1)
	return []string{
		user,
		accountFile,
		accountFileNoResets,
		strings.ReplaceAll(user, "\n", "\r\n"),
		"$schema: /access/user-1.yml\nname: A\norg_username: a\nroles:\n- $ref: /r/one.yml\n- $ref: /r/two.yml\n\n# three\n- $ref: /r/three.yml",
		"name: B\norg_username: b\nroles:\n  # first\n  - $ref: /r/one.yml\n\n  - $ref: /r/two.yml\n  # about three\n  - $ref: /r/three.yml\n# bye\n\n",
		"org_username: c\nroles:\n-\n  $ref: /r/one.yml\n- $ref: /r/two.yml\n-   $ref: /r/three.yml\nname: C\n",
		"org_username: d\nroles:\n- $ref: /r/one.yml\n  note: keep me\n- $ref: /r/two.yml\n- /r/plain.yml\n- $ref: /r/three.yml\n",
		"org_username: jdoe\nroles: [] # emptied by hand\nname: Jane\n",
		"roles: ~\nname: Jane\n",
		"name: Jane\nroles:",
		"roles: [{$ref: /r/one.yml}]\n",
		"name: osio\nsso: false\nresetPasswords: [] # none yet\npremiumSupport: false\n",
		"name: osio\nsso: false\nresetPasswords:",
		"a: &x {$ref: /r/one.yml}\nroles:\n- *x\n- $ref: /r/one.yml\n",
		"roles:\n- &x {$ref: /r/one.yml}\nb: *x\n",
		"roles:\n- $ref: /r/one.yml\n---\nroles: []\n",
		"resetPasswords:\n- user:\n    $ref: /u/a.yml\n  requestId: r1\n- {user: {$ref: /u/b.yml}, requestId: r2}\n",
		// Shapes a hand-edited file may have.
		"roles: # granted by the team\n  - {$ref: /r/one.yml,\n     }\n  - $ref: >-\n      /r/two.yml\n  - &a $ref: /r/three.yml\n",
		"\ufeffname: Zoë # ünïcode\nroles:\n- $ref: /r/one.yml # - $ref: /r/two.yml\n- $ref: \"/r/thr\\u00e9e.yml\"\n...\n",
		"roles:\n\t# a tab before a comment\n- $ref: /r/one.yml\n-\t$ref: /r/two.yml\n",
		"roles:\n- $ref: /r/one.yml\n  # indented comment inside the item\n- $ref: /r/two.yml\nresetPasswords: ~ # later\n",
		"roles:\n- ? $ref\n  : /r/one.yml\n- \"$ref\": /r/two.yml\n- $ref: !!str /r/three.yml\n",
		"resetPasswords:\n  - user: {$ref: /u/a.yml}\n    requestId: r1\n  # trailing\nroles: []\n",
		"resetPasswords:\n- user: {$ref: /u/a.yml}\n  requestId: osio-bot-r42\n",
		// A block scalar last, with no final newline (found by the fuzzer).
		"roles:\n- $ref: /r/one.yml\nA: |\n /",
	}
}

func FuzzRemoveRoleRefs(f *testing.F) {
	for _, file := range seedFiles() {
		f.Add(file, "/r/one.yml\n/r/three.yml")
		f.Add(file, strings.Join(userRefs, "\n"))
		f.Add(file, refOsio)
	}
	f.Fuzz(func(t *testing.T, file, refs string) {
		if err := checkRemove(RemoveRoleRefs, []byte(file), strings.Split(refs, "\n")); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzRestoreRoleRefs(f *testing.F) {
	files := seedFiles()
	for i, file := range files {
		f.Add(file, "/r/one.yml\n/r/three.yml", files[(i+1)%len(files)])
		f.Add(file, strings.Join(userRefs, "\n"), files[(i+3)%len(files)])
		f.Add(file, refOsio, file)
	}
	f.Fuzz(func(t *testing.T, file, refs, other string) {
		if err := checkRestore(RemoveRoleRefs, RestoreRoleRefs, []byte(file), strings.Split(refs, "\n"), []byte(other)); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzAppendResetPassword(f *testing.F) {
	for _, file := range seedFiles() {
		f.Add(file, "/teams/devtools/users/jdoe.yml", "osio-bot-r42")
		f.Add(file, "/u/b.yml", "r2")
		f.Add(file, `/odd: "path" # x`, "r:1")
	}
	f.Fuzz(func(t *testing.T, file, userRef, requestID string) {
		if err := checkAppend(AppendResetPassword, []byte(file), userRef, requestID); err != nil {
			t.Fatal(err)
		}
	})
}

// checkRemove runs remove and reports how its answer breaks the contract.
func checkRemove(remove removeFunc, file []byte, refs []string) error {
	out, removed, err := remove(slices.Clone(file), refs)
	if err != nil {
		return nil // refusing is always allowed
	}
	if err := parses(file, out); err != nil {
		return err
	}
	want := map[string]bool{}
	for _, r := range refs {
		want[r] = true
	}
	isTarget := func(n *yaml.Node) bool { r, ok := plainRef(n); return ok && want[r] }
	before, beforeOK := topList(file, "roles")
	after, afterOK := topList(out, "roles")
	if err := sameOutside(file, out, "roles"); err != nil {
		return err
	}
	// The list lost exactly its target items, the others kept in order.
	var wantItems, gotItems []any
	var n int
	for _, it := range before {
		if isTarget(it) {
			n++
			continue
		}
		wantItems = append(wantItems, decoded(it))
	}
	for _, it := range after {
		gotItems = append(gotItems, decoded(it))
	}
	if beforeOK != afterOK && n == 0 || !equalValues(gotItems, wantItems) {
		return fmt.Errorf("roles are %v, want %v", gotItems, wantItems)
	}
	if len(removed) != n {
		return fmt.Errorf("removed %d items, the list had %d targets", len(removed), n)
	}
	for _, r := range removed {
		if !want[r.Ref] {
			return fmt.Errorf("removed %q, which was not asked for", r.Ref)
		}
	}
	// Line by line: only the removed lines went, in order.
	nl := newlineOf(file)
	del, ins := lineDiff(norm(file, nl), norm(out, nl))
	if len(ins) != 0 {
		return fmt.Errorf("removing inserted lines %q", ins)
	}
	var wantDel string
	for _, r := range removed {
		wantDel += string(norm([]byte(r.Line), nl))
	}
	if strings.Join(del, "") != wantDel && !deletedExactly(norm(file, nl), norm(out, nl), splitLines([]byte(wantDel))) {
		return fmt.Errorf("removing deleted lines %q, want %q", strings.Join(del, ""), wantDel)
	}
	if len(removed) == 0 && !bytes.Equal(out, file) {
		return errors.New("nothing removed, yet the file changed")
	}
	return nil
}

// checkRestore checks the round trip (remove, then restore, gives the file
// back byte for byte; restoring into the original skips everything) and
// then restoring the same lines into another file.
func checkRestore(remove removeFunc, restore restoreFunc, file []byte, refs []string, other []byte) error {
	out, removed, err := remove(slices.Clone(file), refs)
	if err != nil || len(removed) == 0 {
		removed = nil
	} else {
		back, skipped, err := restore(slices.Clone(out), removed)
		if err != nil {
			return fmt.Errorf("restoring what was just removed: %w", err)
		}
		if !bytes.Equal(back, file) || len(skipped) != 0 {
			del, ins := lineDiff(file, back)
			return fmt.Errorf("round trip differs from the file (skipped %q): lost %q, gained %q", skipped, del, ins)
		}
		again, skipped, err := restore(slices.Clone(file), removed)
		if err != nil || !bytes.Equal(again, file) || len(skipped) != len(removed) {
			return fmt.Errorf("restoring into the unchanged file: changed %v, skipped %q of %d, %v", !bytes.Equal(again, file), skipped, len(removed), err)
		}
	}
	if len(removed) == 0 {
		// Lines as a checkpoint could hold them, for the other file.
		for i, r := range refs {
			if r != "" && !strings.ContainsAny(r, "\r\n") {
				removed = append(removed, Removed{Ref: r, Index: i, Line: "- $ref: " + scalar(r) + "\n"})
			}
		}
	}
	return checkRestoreInto(restore, other, removed)
}

// checkRestoreInto restores removed into file, which may have changed in
// any way since.
func checkRestoreInto(restore restoreFunc, file []byte, removed []Removed) error {
	out, skipped, err := restore(slices.Clone(file), removed)
	if err != nil {
		return nil
	}
	if err := parses(file, out); err != nil {
		return err
	}
	if err := sameOutside(file, out, "roles"); err != nil {
		return err
	}
	before, _ := topList(file, "roles")
	after, ok := topList(out, "roles")
	present := map[string]bool{}
	for _, it := range before {
		if r, ok := plainRef(it); ok {
			present[r] = true
		}
	}
	var todo []Removed
	var wantSkipped []string
	for _, r := range removed {
		if present[r.Ref] {
			wantSkipped = append(wantSkipped, r.Ref)
		} else {
			todo = append(todo, r)
		}
	}
	if !slices.Equal(skipped, wantSkipped) {
		return fmt.Errorf("skipped %q, want %q", skipped, wantSkipped)
	}
	if len(todo) == 0 {
		if !bytes.Equal(out, file) {
			return errors.New("nothing to restore, yet the file changed")
		}
		return nil
	}
	if !ok {
		return errors.New("the restored file has no roles: list")
	}
	// The old items stay, in order; the new ones are the todo refs.
	var extra []string
	i := 0
	for _, it := range after {
		if i < len(before) && sameItem(it, before[i]) {
			i++
			continue
		}
		r, ok := plainRef(it)
		if !ok {
			return fmt.Errorf("the restored roles hold a new item that is not a $ref: %v", decoded(it))
		}
		extra = append(extra, r)
	}
	var wantExtra []string
	for _, r := range todo {
		wantExtra = append(wantExtra, r.Ref)
	}
	sort.Strings(extra)
	sort.Strings(wantExtra)
	if i != len(before) || !slices.Equal(extra, wantExtra) {
		return fmt.Errorf("restored roles %v: old items kept %d of %d, added %q, want %q", decodedAll(after), i, len(before), extra, wantExtra)
	}
	// Line by line: the todo lines went in (perhaps re-indented), plus the
	// roles: key line when it was missing or held an empty value; nothing
	// but that key line went out.
	nl := newlineOf(file)
	del, ins := lineDiff(norm(file, nl), norm(out, nl))
	if len(del) > 1 || len(del) == 1 && !isKeyLine(del[0], "roles") {
		return fmt.Errorf("restoring deleted lines %q", del)
	}
	var wantIns []string
	for _, r := range todo {
		for _, l := range splitLines(norm([]byte(r.Line), nl)) {
			wantIns = append(wantIns, strings.TrimLeft(l, " "))
		}
	}
	var gotIns []string
	keyLines := 0
	for _, l := range ins {
		if isKeyLine(l, "roles") {
			keyLines++
			continue
		}
		gotIns = append(gotIns, strings.TrimLeft(l, " "))
	}
	sort.Strings(wantIns)
	sort.Strings(gotIns)
	if keyLines > 1 || !slices.Equal(gotIns, wantIns) {
		return fmt.Errorf("restoring inserted lines %q, want %q (re-indented) and at most a roles: line", ins, wantIns)
	}
	return nil
}

// checkAppend runs appendFn and checks its answer.
func checkAppend(appendFn appendFunc, file []byte, userRef, requestID string) error {
	out, err := appendFn(slices.Clone(file), userRef, requestID)
	if err != nil {
		return nil
	}
	if err := parses(file, out); err != nil {
		return err
	}
	if err := sameOutside(file, out, "resetPasswords"); err != nil {
		return err
	}
	before, _ := topList(file, "resetPasswords")
	after, ok := topList(out, "resetPasswords")
	for _, it := range before {
		if rid, user, ok := resetEntry(it); ok && rid == requestID && user == userRef {
			if !bytes.Equal(out, file) {
				return errors.New("the entry was there already, yet the file changed")
			}
			return nil
		}
	}
	if !ok || len(after) != len(before)+1 {
		return fmt.Errorf("resetPasswords has %d items, want %d", len(after), len(before)+1)
	}
	for i := range before {
		if !equalValues(decoded(after[i]), decoded(before[i])) {
			return fmt.Errorf("resetPasswords item %d changed: %v", i, decoded(after[i]))
		}
	}
	last := after[len(after)-1]
	if rid, user, ok := resetEntry(last); !ok || rid != requestID || user != userRef {
		return fmt.Errorf("the new entry is %v, want user %q, requestId %q", decoded(last), userRef, requestID)
	}
	if m := last; m.Kind != yaml.MappingNode || len(m.Content) != 4 {
		return fmt.Errorf("the new entry %v has other keys", decoded(last))
	}
	nl := newlineOf(file)
	del, ins := lineDiff(norm(file, nl), norm(out, nl))
	if len(del) > 1 || len(del) == 1 && !isKeyLine(del[0], "resetPasswords") {
		return fmt.Errorf("appending deleted lines %q", del)
	}
	entry := 0
	for _, l := range ins {
		if !isKeyLine(l, "resetPasswords") {
			entry++
		}
	}
	if entry != 2 || len(ins) > 3 {
		return fmt.Errorf("appending inserted lines %q, want the entry's two and at most a resetPasswords: line", ins)
	}
	return nil
}

// ---- what the checks share ----

// parses says whether out is YAML: one document whose top level is a
// mapping, which decodes into Go values whenever file's does.
func parses(file, out []byte) error {
	var n yaml.Node
	if err := yaml.Unmarshal(out, &n); err != nil {
		return fmt.Errorf("the output is not YAML: %v\n%q", err, out)
	}
	var v any
	if yaml.Unmarshal(file, &v) == nil {
		if err := yaml.Unmarshal(out, &v); err != nil {
			return fmt.Errorf("the output does not decode, the input did: %v\n%q", err, out)
		}
	}
	if !utf8.Valid(out) && utf8.Valid(file) {
		return fmt.Errorf("the output is not UTF-8: %q", out)
	}
	return nil
}

// top decodes a file's top-level mapping into key -> value ("" and false
// when it does not decode to a string-keyed mapping).
func top(file []byte) (map[string]any, bool) {
	var v any
	if err := yaml.Unmarshal(file, &v); err != nil {
		return nil, false
	}
	m, ok := v.(map[string]any)
	return m, ok
}

// sameOutside says whether every top-level key but key decodes alike in
// file and out (when file decodes at all).
func sameOutside(file, out []byte, key string) error {
	a, ok := top(file)
	if !ok {
		return nil
	}
	b, ok := top(out)
	if !ok {
		return fmt.Errorf("the output's top level is not a mapping: %q", out)
	}
	delete(a, key)
	delete(b, key)
	if !equalValues(a, b) {
		return fmt.Errorf("keys other than %s changed:\n%v\nbecame\n%v", key, a, b)
	}
	return nil
}

// topList is the items of the top-level block or flow list under key (nil
// and false when the key is missing, or its value is not a list).
func topList(file []byte, key string) ([]*yaml.Node, bool) {
	var doc yaml.Node
	if yaml.Unmarshal(file, &doc) != nil || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, false
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Kind == yaml.ScalarNode && m.Content[i].Value == key {
			v := m.Content[i+1]
			if v.Kind == yaml.SequenceNode {
				return v.Content, true
			}
			return nil, v.Kind == yaml.ScalarNode && v.Tag == "!!null"
		}
	}
	return nil, false
}

// plainRef is the documented target: an item that is exactly one
// "$ref: string" pair (block or flow, quoted or not, not a block scalar).
func plainRef(n *yaml.Node) (string, bool) {
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		return "", false
	}
	k, v := n.Content[0], n.Content[1]
	if k.Kind != yaml.ScalarNode || k.Value != "$ref" || v.Kind != yaml.ScalarNode || v.Tag != "!!str" ||
		v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return "", false
	}
	return v.Value, true
}

// sameItem says whether two list items are written alike: same kind (an
// alias is not the mapping it points at), tag and style, decoding alike.
func sameItem(a, b *yaml.Node) bool {
	if a.Kind != b.Kind || a.Tag != b.Tag || a.Style != b.Style || a.Anchor != b.Anchor ||
		a.Kind == yaml.AliasNode && a.Value != b.Value {
		return false
	}
	return equalValues(decoded(a), decoded(b))
}

func decoded(n *yaml.Node) any {
	var v any
	if err := n.Decode(&v); err != nil {
		return fmt.Sprintf("(undecodable: %v)", err)
	}
	return v
}

func decodedAll(ns []*yaml.Node) []any {
	var out []any
	for _, n := range ns {
		out = append(out, decoded(n))
	}
	return out
}

// equalValues compares decoded YAML, NaN equal to NaN.
func equalValues(a, b any) bool {
	if reflect.DeepEqual(a, b) {
		return true
	}
	x, err1 := yaml.Marshal(a)
	y, err2 := yaml.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// newlineOf is the file's line terminator ("\r\n" when its first line ends
// so).
func newlineOf(file []byte) string {
	if i := bytes.IndexByte(file, '\n'); i > 0 && file[i-1] == '\r' {
		return "\r\n"
	}
	return "\n"
}

// norm gives a non-empty text a final line terminator, so that "the last
// line lost or gained its newline" is no difference.
func norm(b []byte, nl string) []byte {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return append(slices.Clone(b), nl...)
	}
	return b
}

func splitLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	ls := strings.SplitAfter(string(b), "\n")
	if ls[len(ls)-1] == "" {
		ls = ls[:len(ls)-1]
	}
	return ls
}

// deletedExactly says whether b is a with the lines want deleted, in
// order, and nothing else: some alignment of the three, where lineDiff
// reports one. A file with equal lines near the edit has several ("-",
// " $ref: x", "-" less one item is "-" either way), and lineDiff, which
// matches the common prefix first, may report the deletion one line off
// (found by FuzzRemoveRoleRefs in CI).
func deletedExactly(a, b []byte, want []string) bool {
	x, y := splitLines(a), splitLines(b)
	if len(x) != len(y)+len(want) {
		return false
	}
	// ok[i][k]: x[i:] aligns with y[i-k:] and want[k:].
	seen := map[[2]int]bool{}
	var ok func(i, k int) bool
	ok = func(i, k int) bool {
		if i == len(x) {
			return k == len(want)
		}
		key := [2]int{i, k}
		if v, done := seen[key]; done {
			return v
		}
		j := i - k
		v := j < len(y) && x[i] == y[j] && ok(i+1, k) || k < len(want) && x[i] == want[k] && ok(i+1, k+1)
		seen[key] = v
		return v
	}
	return ok(0, 0)
}

// lineDiff is a longest-common-subsequence line diff: the lines of a not in
// b (deleted) and of b not in a (inserted), each in order.
func lineDiff(a, b []byte) (deleted, inserted []string) {
	x, y := splitLines(a), splitLines(b)
	// Common prefix and suffix first: edits are small.
	p := 0
	for p < len(x) && p < len(y) && x[p] == y[p] {
		p++
	}
	s := 0
	for s < len(x)-p && s < len(y)-p && x[len(x)-1-s] == y[len(y)-1-s] {
		s++
	}
	x, y = x[p:len(x)-s], y[p:len(y)-s]
	l := make([][]int, len(x)+1)
	for i := range l {
		l[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				l[i][j] = l[i+1][j+1] + 1
			} else {
				l[i][j] = max(l[i+1][j], l[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < len(x) && j < len(y) {
		switch {
		case x[i] == y[j]:
			i++
			j++
		case l[i+1][j] >= l[i][j+1]:
			deleted = append(deleted, x[i])
			i++
		default:
			inserted = append(inserted, y[j])
			j++
		}
	}
	deleted = append(deleted, x[i:]...)
	inserted = append(inserted, y[j:]...)
	return deleted, inserted
}

// isKeyLine says whether l is a top-level "key:" line (with or without a
// value or comment).
func isKeyLine(l, key string) bool {
	return strings.HasPrefix(l, key+":")
}

// ---- the checks catch broken edits ----

// TestFuzzChecksCatchBrokenEdits feeds each check an edit that is right
// except for one deliberate fault, and expects the check to report it: a
// fuzz target whose check cannot fail would prove nothing.
func TestFuzzChecksCatchBrokenEdits(t *testing.T) {
	file := []byte(userFile)
	refs := []string{refOsio}
	acct := []byte(accountFile)
	const user, rid = "/teams/devtools/users/jdoe.yml", "osio-bot-r42"
	// The real edits pass.
	if err := checkRemove(RemoveRoleRefs, file, refs); err != nil {
		t.Fatalf("real RemoveRoleRefs: %v", err)
	}
	if err := checkRestore(RemoveRoleRefs, RestoreRoleRefs, file, refs, []byte("name: x\nroles: []\n")); err != nil {
		t.Fatalf("real RestoreRoleRefs: %v", err)
	}
	if err := checkAppend(AppendResetPassword, acct, user, rid); err != nil {
		t.Fatalf("real AppendResetPassword: %v", err)
	}

	after := func(fn removeFunc, edit func([]byte) []byte) removeFunc {
		return func(f []byte, r []string) ([]byte, []Removed, error) {
			out, rm, err := fn(f, r)
			return edit(out), rm, err
		}
	}
	replace := func(old, new string) func([]byte) []byte {
		return func(b []byte) []byte { return bytes.Replace(b, []byte(old), []byte(new), 1) }
	}
	removes := map[string]removeFunc{
		"drops a comment too":       after(RemoveRoleRefs, replace("# App-SRE\n", "")),
		"leaves invalid YAML":       after(RemoveRoleRefs, func(b []byte) []byte { return append(b, "roles: [\n"...) }),
		"changes another key":       after(RemoveRoleRefs, replace("quay_username: jdoe", "quay_username: jdoe2")),
		"re-indents a kept comment": after(RemoveRoleRefs, replace("# end of roles", "  # end of roles")),
		"removes one ref too many": func(f []byte, r []string) ([]byte, []Removed, error) {
			return RemoveRoleRefs(f, append(r, refViewer))
		},
		"reports no removal": func(f []byte, r []string) ([]byte, []Removed, error) {
			out, _, err := RemoveRoleRefs(f, r)
			return out, nil, err
		},
	}
	for name, fn := range removes {
		if err := checkRemove(fn, file, refs); err == nil {
			t.Errorf("remove that %s: not caught", name)
		} else {
			t.Logf("remove that %s: %v", name, firstLine(err))
		}
	}

	restores := map[string]restoreFunc{
		"puts the line back twice": func(f []byte, rm []Removed) ([]byte, []string, error) {
			out, sk, err := RestoreRoleRefs(f, rm)
			if err == nil && len(rm) > 0 && !bytes.Equal(out, f) {
				out = bytes.Replace(out, []byte(rm[0].Line), []byte(rm[0].Line+rm[0].Line), 1)
			}
			return out, sk, err
		},
		"drops a blank line": func(f []byte, rm []Removed) ([]byte, []string, error) {
			out, sk, err := RestoreRoleRefs(f, rm)
			return bytes.Replace(out, []byte("\n\n"), []byte("\n"), 1), sk, err
		},
		"loses the skipped refs": func(f []byte, rm []Removed) ([]byte, []string, error) {
			out, _, err := RestoreRoleRefs(f, rm)
			return out, nil, err
		},
	}
	for name, fn := range restores {
		if err := checkRestore(RemoveRoleRefs, fn, file, refs, []byte("name: x\nroles: []\n")); err == nil {
			t.Errorf("restore that %s: not caught", name)
		} else {
			t.Logf("restore that %s: %v", name, firstLine(err))
		}
	}
	// Into another file: a restore that writes the item at column 0 under
	// an indented list breaks the YAML.
	other := []byte("roles:\n  - $ref: /r/a.yml\nname: x\n")
	flat := func(f []byte, rm []Removed) ([]byte, []string, error) {
		return bytes.Replace(f, []byte("name: x\n"), []byte(rm[0].Line+"name: x\n"), 1), nil, nil
	}
	if err := checkRestoreInto(flat, other, []Removed{{Ref: "/r/b.yml", Line: "- $ref: /r/b.yml\n"}}); err == nil {
		t.Error("restore that writes outside the list: not caught")
	}

	appends := map[string]appendFunc{
		"writes another request id": func(f []byte, u, r string) ([]byte, error) { return AppendResetPassword(f, u, r+"x") },
		"drops the trailing comment": func(f []byte, u, r string) ([]byte, error) {
			out, err := AppendResetPassword(f, u, r)
			return replace("# keep this list short: remove entries once done\n", "")(out), err
		},
		"appends twice": func(f []byte, u, r string) ([]byte, error) {
			out, err := AppendResetPassword(f, u, r)
			if err != nil {
				return nil, err
			}
			return AppendResetPassword(out, u, r+"-2")
		},
		"breaks the indentation": func(f []byte, u, r string) ([]byte, error) {
			out, err := AppendResetPassword(f, u, r)
			return replace("  requestId: "+r, " requestId: "+r)(out), err
		},
	}
	for name, fn := range appends {
		if err := checkAppend(fn, acct, user, rid); err == nil {
			t.Errorf("append that %s: not caught", name)
		} else {
			t.Logf("append that %s: %v", name, firstLine(err))
		}
	}
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
