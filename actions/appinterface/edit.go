// Package appinterface holds the Slack-free building blocks of the console
// password reset through app-interface (DESIGN.md, job 3):
//
//   - byte-preserving edits of app-interface YAML files: removing and restoring
//     role $refs in a user file (/access/user-1.yml), and appending a
//     resetPasswords entry to an account file (/aws/account-1.yml);
//   - a client for app-interface's GraphQL API (qontract-server): the user's
//     file, roles and the accounts those roles grant, and the account's file;
//   - a thin wrapper over the official GitLab client for reading files at the
//     target branch and proposing one-commit merge requests idempotently.
//
// The edits never re-marshal a document: yaml.v3's node API says where the
// items are, and the bytes are spliced line by line, so comments, order,
// blank lines, indentation and quoting stay as they were.
package appinterface

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// Removed is one role reference taken out of a user file's roles: list by
// RemoveRoleRefs, with what RestoreRoleRefs needs to put it back. It is plain
// data (JSON-friendly) so that a job can checkpoint it between the two merge
// requests.
type Removed struct {
	// Ref is the role file's path as written in the $ref.
	Ref string
	// Index is the item's position in roles: before the removal (0-based).
	Index int
	// Line is the exact removed bytes: the item's line(s), each with its line
	// terminator (the last one without, if it was the file's last line and
	// the file did not end in a newline).
	Line string
	// Below counts the lines (blank or comment) that stood between the item
	// and the next item kept in roles: (or the end of roles:). RestoreRoleRefs
	// puts Line back above that many of them, so that a comment that belongs
	// to the next item stays with it. Zero puts it right above the next item.
	Below int
	// After is the ref of the item just before this one in roles: ("" for
	// the first item, or when that item is not a plain $ref), and Before the
	// ref of the next item that stayed ("" if none). RestoreRoleRefs puts
	// Line back after After, else before Before, when the list still has
	// them, and at Index otherwise, so that roles others added or removed
	// meanwhile do not move it away from its neighbours.
	After, Before string
}

// refOf returns the $ref of a list item that is exactly one "$ref: scalar"
// pair, in block ("- $ref: x") or flow ("- {$ref: x}") form, quoted or not.
func refOf(n *yaml.Node) (string, bool) {
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		return "", false
	}
	k, v := n.Content[0], n.Content[1]
	if k.Kind != yaml.ScalarNode || k.Value != "$ref" || v.Kind != yaml.ScalarNode {
		return "", false
	}
	if v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 || v.Tag != "!!str" {
		return "", false
	}
	return v.Value, true
}

// roleRefs lists the refs of a parsed file's roles: list (empty when roles is
// missing, null or empty; "" for items that are not plain $refs).
func roleRefs(file []byte) ([]string, error) {
	m, err := parseTop(file)
	if err != nil {
		return nil, err
	}
	f, ok, err := lookup(splitText(file), m, "roles")
	if err != nil || !ok || f.val.Kind != yaml.SequenceNode {
		return nil, err
	}
	out := make([]string, len(f.val.Content))
	for i, n := range f.val.Content {
		out[i], _ = refOf(n)
	}
	return out, nil
}

// RemoveRoleRefs removes from the top-level roles: list of a YAML file
// exactly the items "- $ref: REF" (also "- {$ref: REF}", and quoted REFs)
// whose REF is in refs, every other byte of the file staying as it was. It
// returns the new file and what was removed, in list order. Refs that are not
// in the list are not an error: removed then holds fewer entries (none, and
// out is file, when nothing matched). Items that repeat a ref are all
// removed.
//
// Errors: the file is not a single YAML document with a top-level block
// mapping, roles: is not a list, or a matching item sits in a flow sequence
// (roles: [...]) that cannot be edited by line.
func RemoveRoleRefs(file []byte, refs []string) (out []byte, removed []Removed, err error) {
	if len(refs) == 0 {
		return file, nil, nil
	}
	m, err := parseTop(file)
	if err != nil {
		return nil, nil, err
	}
	t := splitText(file)
	f, ok, err := lookup(t, m, "roles")
	if err != nil {
		return nil, nil, err
	}
	if !ok || isNull(f.val) {
		return file, nil, nil
	}
	want := map[string]bool{}
	for _, r := range refs {
		want[r] = true
	}
	if f.val.Kind == yaml.SequenceNode && f.val.Style&yaml.FlowStyle != 0 {
		for _, n := range f.val.Content {
			if r, ok := refOf(n); ok && want[r] {
				return nil, nil, fmt.Errorf("roles %w", errFlowSeq)
			}
		}
		return file, nil, nil
	}
	its, err := items(t, f)
	if err != nil {
		return nil, nil, err
	}
	drop := make([]bool, len(its))
	var found bool
	for i, it := range its {
		if r, ok := refOf(it.node); ok && want[r] {
			drop[i], found = true, true
		}
	}
	if !found {
		return file, nil, nil
	}

	dropLine := make([]bool, t.n())
	for i, it := range its {
		if drop[i] {
			for l := it.start; l <= it.end; l++ {
				dropLine[l] = true
			}
		}
	}
	for i, it := range its {
		if !drop[i] {
			continue
		}
		hi, before := f.end, ""
		for j := i + 1; j < len(its); j++ {
			if !drop[j] {
				hi = its[j].start
				before, _ = refOf(its[j].node)
				break
			}
		}
		below := 0
		for l := it.end + 1; l < hi; l++ {
			if !dropLine[l] {
				below++
			}
		}
		var after string
		if i > 0 {
			after, _ = refOf(its[i-1].node)
		}
		r, _ := refOf(it.node)
		removed = append(removed, Removed{Ref: r, Index: i, Line: string(t.span(it.start, it.end+1)), Below: below, After: after, Before: before})
	}

	var b bytes.Buffer
	b.Grow(len(file))
	for l := 0; l < t.n(); l++ {
		if !dropLine[l] {
			b.Write(t.raw(l))
		}
	}
	out = b.Bytes()
	if !t.endsWithNewline() && dropLine[t.n()-1] && !blankLast(out) {
		// The file had no final newline and its last line went: the line
		// now last loses the newline it had before, as the file had none.
		// A blank line keeps it: without it the line would be gone, and
		// restoring the item would not bring it back (FuzzRemoveRoleRefs
		// in CI: "roles:\n- a\n\n- $ref: x" lost its blank line).
		out = bytes.TrimSuffix(out, []byte("\n"))
		out = bytes.TrimSuffix(out, []byte("\r"))
	}

	before, err := roleRefs(file)
	if err != nil {
		return nil, nil, err
	}
	var expect []string
	for i, r := range before {
		if !drop[i] {
			expect = append(expect, r)
		}
	}
	got, err := roleRefs(out)
	if err != nil {
		return nil, nil, fmt.Errorf("the edited file does not parse: %w", err)
	}
	if !slices.Equal(got, expect) {
		return nil, nil, fmt.Errorf("the edited file's roles are %q, want %q", got, expect)
	}
	target := func(n *yaml.Node) bool { r, ok := refOf(n); return ok && want[r] }
	if err := sameBesides(file, out, "roles", target, never); err != nil {
		return nil, nil, err
	}
	return out, removed, nil
}

// RestoreRoleRefs puts the lines RemoveRoleRefs removed back into the
// top-level roles: list of the file as it is now, each where it was: right
// after the item that preceded it (Removed.After), else right before the
// item that followed it (Removed.Before), else at its old position
// (Removed.Index, clamped to the list's current length); and above as many
// of the following blank or comment lines as were below it. Refs that the list holds already
// are not added again and are returned in skipped. When roles: is missing it
// is added at the end of the file; when it is empty (roles:, roles: [] or
// roles: ~) the value is dropped from its line and the items go below it.
// The lines are re-indented if the list's items now start at another column.
// Every other byte of the file stays as it was.
func RestoreRoleRefs(file []byte, removed []Removed) (out []byte, skipped []string, err error) {
	for _, r := range removed {
		if err := checkRemoved(r); err != nil {
			return nil, nil, err
		}
	}
	present, err := roleRefs(file)
	if err != nil {
		return nil, nil, err
	}
	have := map[string]bool{}
	for _, r := range present {
		have[r] = true
	}
	var todo []Removed
	for _, r := range removed {
		if have[r.Ref] {
			skipped = append(skipped, r.Ref)
			continue
		}
		todo = append(todo, r)
	}
	if len(todo) == 0 {
		return file, skipped, nil
	}
	sort.SliceStable(todo, func(i, j int) bool { return todo[i].Index < todo[j].Index })

	out, err = prepareRoles(file)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range todo {
		if out, err = insertRole(out, r); err != nil {
			return nil, nil, fmt.Errorf("restoring %s: %w", r.Ref, err)
		}
	}

	got, err := roleRefs(out)
	if err != nil {
		return nil, nil, fmt.Errorf("the edited file does not parse: %w", err)
	}
	for _, r := range todo {
		if !slices.Contains(got, r.Ref) {
			return nil, nil, fmt.Errorf("the edited file's roles %q lack %s", got, r.Ref)
		}
	}
	if len(got) != len(present)+len(todo) {
		return nil, nil, fmt.Errorf("the edited file has %d roles, want %d", len(got), len(present)+len(todo))
	}
	added := map[string]bool{}
	for _, r := range todo {
		added[r.Ref] = true
	}
	restored := func(n *yaml.Node) bool { r, ok := refOf(n); return ok && added[r] }
	if err := sameBesides(file, out, "roles", never, restored); err != nil {
		return nil, nil, err
	}
	return out, skipped, nil
}

// checkRemoved makes sure a Removed (perhaps read back from a checkpoint)
// is one list item holding exactly its $ref.
func checkRemoved(r Removed) error {
	if r.Ref == "" || strings.TrimSpace(r.Line) == "" {
		return errors.New("a removed role has no ref or no line")
	}
	if r.Index < 0 || r.Below < 0 {
		return fmt.Errorf("removed role %s has a negative position", r.Ref)
	}
	var v []yaml.Node
	if err := yaml.Unmarshal([]byte(dedent(r.Line)), &v); err != nil || len(v) != 1 {
		return fmt.Errorf("removed role %s: its line is not one list item", r.Ref)
	}
	if got, ok := refOf(&v[0]); !ok || got != r.Ref {
		return fmt.Errorf("removed role %s: its line does not hold that $ref", r.Ref)
	}
	return nil
}

// dedent removes the first line's indentation from every line of s.
func dedent(s string) string {
	return reindent(s, -leading([]byte(s)))
}

// reindent shifts every line of s right (delta > 0) or left by delta spaces.
func reindent(s string, delta int) string {
	if delta == 0 {
		return s
	}
	ls := strings.SplitAfter(s, "\n")
	for i, l := range ls {
		if l == "" {
			continue
		}
		if delta > 0 {
			ls[i] = strings.Repeat(" ", delta) + l
		} else {
			ls[i] = l[min(-delta, leading([]byte(l))):]
		}
	}
	return strings.Join(ls, "")
}

// prepareRoles makes sure the file has a roles: key that block items can go
// under: it appends "roles:" when the key is missing and empties "roles: []"
// or "roles: ~".
func prepareRoles(file []byte) ([]byte, error) {
	m, err := parseTop(file)
	if err != nil {
		return nil, err
	}
	t := splitText(file)
	f, ok, err := lookup(t, m, "roles")
	if err != nil {
		return nil, err
	}
	switch {
	case !ok:
		var b bytes.Buffer
		b.Write(file)
		if len(file) > 0 && !t.endsWithNewline() {
			b.WriteString(t.newline())
		}
		b.WriteString("roles:" + t.newline())
		return b.Bytes(), nil
	case isNull(f.val), f.val.Kind == yaml.SequenceNode && len(f.val.Content) == 0:
		return stripEmptyValue(t, f)
	case f.val.Kind == yaml.SequenceNode && f.val.Style&yaml.FlowStyle != 0:
		return nil, fmt.Errorf("roles %w", errFlowSeq)
	case f.val.Kind != yaml.SequenceNode:
		return nil, errors.New(`"roles" is not a list`)
	}
	return file, nil
}

// insertRole puts r.Line into the roles: list of file (prepared by
// prepareRoles) at position r.Index, clamped.
func insertRole(file []byte, r Removed) ([]byte, error) {
	m, err := parseTop(file)
	if err != nil {
		return nil, err
	}
	t := splitText(file)
	f, ok, err := lookup(t, m, "roles")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errors.New("roles: disappeared")
	}
	var its []item
	if !isNull(f.val) {
		if its, err = items(t, f); err != nil {
			return nil, err
		}
	}
	k := -1
	if r.After != "" {
		if j := refIndex(its, r.After); j >= 0 {
			k = j + 1
		}
	}
	if k < 0 && r.Before != "" {
		k = refIndex(its, r.Before)
	}
	byIndex := k < 0
	if byIndex {
		k = min(max(r.Index, 0), len(its))
	}
	lo, hi := f.keyLine+1, f.end
	if k > 0 {
		lo = its[k-1].end + 1
	}
	if k < len(its) {
		hi = its[k].start
	}
	at := max(lo, hi-r.Below)
	if byIndex && r.Index > len(its) {
		// The list is shorter than it was: the item goes right after the
		// last one, what followed it then is not there to go by.
		at = lo
	}

	line := r.Line
	if len(its) > 0 {
		line = reindent(line, its[0].dash-leading([]byte(line)))
	}
	var b bytes.Buffer
	b.Grow(len(file) + len(line) + 2)
	b.Write(t.span(0, at))
	if at == t.n() {
		if len(file) > 0 && !t.endsWithNewline() {
			b.WriteString(t.newline())
		}
		b.WriteString(line)
	} else {
		b.WriteString(line)
		if !strings.HasSuffix(line, "\n") {
			b.WriteString(t.newline())
		}
		b.Write(t.src[t.offset(at):])
	}
	return b.Bytes(), nil
}

// refIndex is the position of the first plain $ref item holding ref, or -1.
func refIndex(its []item, ref string) int {
	for i, it := range its {
		if r, ok := refOf(it.node); ok && r == ref {
			return i
		}
	}
	return -1
}

// plainSafe matches the strings a plain (unquoted) scalar may hold here;
// anything else is written double-quoted.
var plainSafe = regexp.MustCompile(`^[A-Za-z0-9_./][A-Za-z0-9_./@+-]*$`)

// scalar writes s as a YAML scalar that is safe in block and flow context:
// plain when it reads back as the same string, double-quoted otherwise.
func scalar(s string) string {
	if plainSafe.MatchString(s) {
		var v any
		if err := yaml.Unmarshal([]byte(s), &v); err == nil {
			if got, ok := v.(string); ok && got == s {
				return s
			}
		}
	}
	q, _ := json.Marshal(s) // a JSON string is a YAML double-quoted scalar
	return string(q)
}

// ErrRequestIDConflict is returned by AppendResetPassword when the account
// file already has an entry with the request id, for another user.
var ErrRequestIDConflict = errors.New("requestId already used for another user")

// AppendResetPassword appends the entry
//
//	resetPasswords:
//	...
//	- user: {$ref: USER_REF}
//	  requestId: REQUEST_ID
//
// to the top-level resetPasswords: list of an app-interface account file
// (/aws/account-1.yml), after the list's last item and with that item's
// indentation; the rest of the file stays unchanged byte for byte. A missing
// resetPasswords: key is added at the end of the file (its items indented as
// the file's other top-level lists are); "resetPasswords: []" becomes
// "resetPasswords:" with the entry below it. Scalars are written plain when
// that is safe and double-quoted otherwise.
//
// It is idempotent: when an entry with requestID exists for userRef the file
// is returned unchanged; for another user that is ErrRequestIDConflict.
// requestID must not be empty nor contain white space, and userRef must be a
// non-empty single line.
func AppendResetPassword(accountFile []byte, userRef, requestID string) ([]byte, error) {
	if requestID == "" || strings.IndexFunc(requestID, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return nil, fmt.Errorf("requestId %q: must be non-empty, without white space", requestID)
	}
	if strings.TrimSpace(userRef) == "" || strings.IndexFunc(userRef, unicode.IsControl) >= 0 {
		return nil, fmt.Errorf("user ref %q: must be a non-empty single line", userRef)
	}
	m, err := parseTop(accountFile)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("the account file is empty")
	}
	t := splitText(accountFile)
	f, ok, err := lookup(t, m, "resetPasswords")
	if err != nil {
		return nil, err
	}
	nl := t.newline()
	entry := func(dash, key int) string {
		return strings.Repeat(" ", dash) + "-" + strings.Repeat(" ", max(key-dash-1, 1)) +
			"user: {$ref: " + scalar(userRef) + "}" + nl +
			strings.Repeat(" ", max(key, dash+2)) + "requestId: " + scalar(requestID) + nl
	}

	var out []byte
	switch {
	case !ok:
		dash := listIndent(t, m)
		var b bytes.Buffer
		b.Write(accountFile)
		if !t.endsWithNewline() {
			b.WriteString(nl)
		}
		b.WriteString("resetPasswords:" + nl)
		b.WriteString(entry(dash, dash+2))
		out = b.Bytes()
	case isNull(f.val), f.val.Kind == yaml.SequenceNode && len(f.val.Content) == 0:
		stripped, err := stripEmptyValue(t, f)
		if err != nil {
			return nil, err
		}
		st := splitText(stripped)
		dash := listIndent(t, m)
		var b bytes.Buffer
		b.Write(st.span(0, f.keyLine+1))
		if f.keyLine+1 == st.n() && !st.endsWithNewline() {
			b.WriteString(nl)
		}
		b.WriteString(entry(dash, dash+2))
		b.Write(stripped[st.offset(f.keyLine+1):])
		out = b.Bytes()
	default:
		its, err := items(t, f)
		if err != nil {
			return nil, err
		}
		for _, it := range its {
			rid, user, ok := resetEntry(it.node)
			if !ok || rid != requestID {
				continue
			}
			if user != userRef {
				return nil, fmt.Errorf("requestId %s is in the file for %s: %w", requestID, user, ErrRequestIDConflict)
			}
			return accountFile, nil
		}
		last := its[len(its)-1]
		key := last.dash + 2
		if last.node.Kind == yaml.MappingNode && last.node.Style&yaml.FlowStyle == 0 && last.node.Line-1 == last.start {
			key = t.byteCol(last.start, last.node.Column)
		}
		var b bytes.Buffer
		b.Write(t.span(0, last.end+1))
		if last.end+1 == t.n() && !t.endsWithNewline() {
			b.WriteString(nl)
		}
		b.WriteString(entry(last.dash, key))
		b.Write(accountFile[t.offset(last.end+1):])
		out = b.Bytes()
	}

	if err := checkAppended(accountFile, out, userRef, requestID); err != nil {
		return nil, err
	}
	added := func(n *yaml.Node) bool {
		rid, user, ok := resetEntry(n)
		return ok && rid == requestID && user == userRef
	}
	if err := sameBesides(accountFile, out, "resetPasswords", never, added); err != nil {
		return nil, err
	}
	return out, nil
}

// resetEntry reads one resetPasswords item: its requestId and user $ref.
func resetEntry(n *yaml.Node) (requestID, userRef string, ok bool) {
	var e struct {
		User struct {
			Ref string `yaml:"$ref"`
		} `yaml:"user"`
		RequestID string `yaml:"requestId"`
	}
	if n.Kind != yaml.MappingNode || n.Decode(&e) != nil {
		return "", "", false
	}
	return e.RequestID, e.User.Ref, true
}

// resetEntries decodes the resetPasswords list of an account file.
func resetEntries(file []byte) ([][2]string, error) {
	m, err := parseTop(file)
	if err != nil {
		return nil, err
	}
	f, ok, err := lookup(splitText(file), m, "resetPasswords")
	if err != nil || !ok || f.val.Kind != yaml.SequenceNode {
		return nil, err
	}
	var out [][2]string
	for _, n := range f.val.Content {
		rid, user, _ := resetEntry(n)
		out = append(out, [2]string{user, rid})
	}
	return out, nil
}

// checkAppended re-reads the edited account file: it must hold the old
// entries and then the new one.
func checkAppended(before, after []byte, userRef, requestID string) error {
	old, err := resetEntries(before)
	if err != nil {
		return err
	}
	got, err := resetEntries(after)
	if err != nil {
		return fmt.Errorf("the edited file does not parse: %w", err)
	}
	want := append(slices.Clone(old), [2]string{userRef, requestID})
	if !slices.Equal(got, want) {
		return fmt.Errorf("the edited file's resetPasswords are %q, want %q", got, want)
	}
	return nil
}

// listIndent guesses how far the file indents the dash of a top-level key's
// block list relative to the key: the first such list says; 0 (the
// app-interface style, "key:\n- item") when there is none.
func listIndent(t text, m *yaml.Node) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		v := m.Content[i+1]
		if v.Kind != yaml.SequenceNode || v.Style&yaml.FlowStyle != 0 || len(v.Content) == 0 {
			continue
		}
		f, ok, err := lookup(t, m, m.Content[i].Value)
		if err != nil || !ok {
			continue
		}
		its, err := items(t, f)
		if err != nil || len(its) == 0 {
			continue
		}
		return max(its[0].dash-leading(t.line(f.keyLine)), 0)
	}
	return 0
}

// sameBesides makes sure an edit changed nothing but the items it was
// asked to remove or add: before and after must decode to the same values
// once the items of key's list for which dropBefore and dropAfter say so
// are taken out of each (an emptied or null list counts as no key). The
// line edits keep every other byte, but a byte is not always a value: a
// block scalar ("A: |") at the end of a file without a final newline gains
// a line break when a line is added below it. Such an edit is refused.
func sameBesides(before, after []byte, key string, dropBefore, dropAfter func(*yaml.Node) bool) error {
	a, err := valuesBesides(before, key, dropBefore)
	if err != nil {
		return err
	}
	b, err := valuesBesides(after, key, dropAfter)
	if err != nil {
		return fmt.Errorf("the edited file does not parse: %w", err)
	}
	if !bytes.Equal(a, b) {
		return fmt.Errorf("the edit would change values other than the %s items it was asked to change (does the file end in a block scalar without a final newline?)", key)
	}
	return nil
}

// valuesBesides is the file's values, minus the dropped items of key's
// list, in a canonical form (YAML written from the decoded values, so that
// comments, styles and NaNs compare as values do).
func valuesBesides(file []byte, key string, drop func(*yaml.Node) bool) ([]byte, error) {
	m, err := parseTop(file)
	if err != nil || m == nil {
		return nil, err
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Kind != yaml.ScalarNode || m.Content[i].Value != key {
			continue
		}
		v := m.Content[i+1]
		if v.Kind == yaml.SequenceNode {
			v.Content = slices.DeleteFunc(v.Content, drop)
		}
		if isNull(v) || v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
			m.Content = slices.Delete(m.Content, i, i+2)
		}
		break
	}
	var vals any
	if err := m.Decode(&vals); err != nil {
		return nil, err
	}
	return yaml.Marshal(vals)
}

func never(*yaml.Node) bool { return false }

// blankLast says whether the last line of b (ending in a newline) holds
// only spaces and tabs.
func blankLast(b []byte) bool {
	b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
	if len(b) == 0 {
		return false // no line: nothing to keep
	}
	i := bytes.LastIndexByte(b, '\n')
	return len(bytes.Trim(b[i+1:], " \t")) == 0
}
