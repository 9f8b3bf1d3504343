package appinterface

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// text is a file split into lines without copying. Line i (0-based) is
// src[start[i]:start[i+1]] and includes its terminator ("\n" or "\r\n"),
// except possibly the last line of a file that does not end in a newline.
type text struct {
	src   []byte
	start []int // len = lines+1; the last entry is len(src)
}

func splitText(src []byte) text {
	t := text{src: src, start: []int{0}}
	for i, c := range src {
		if c == '\n' && i+1 < len(src) {
			t.start = append(t.start, i+1)
		}
	}
	if len(src) == 0 {
		t.start = t.start[:0]
	}
	t.start = append(t.start, len(src))
	return t
}

// n is the number of lines; a final newline does not start another line.
func (t text) n() int { return len(t.start) - 1 }

// raw is line i with its terminator.
func (t text) raw(i int) []byte { return t.src[t.start[i]:t.start[i+1]] }

// line is line i without its terminator.
func (t text) line(i int) []byte { return bytes.TrimRight(t.raw(i), "\r\n") }

// span is lines [i, j) with their terminators.
func (t text) span(i, j int) []byte { return t.src[t.start[i]:t.start[j]] }

// offset is the byte offset where line i starts (i may be n: the end).
func (t text) offset(i int) int { return t.start[i] }

// endsWithNewline says whether the file's last byte is a line break.
func (t text) endsWithNewline() bool { return len(t.src) > 0 && t.src[len(t.src)-1] == '\n' }

// newline is the line terminator the file uses ("\r\n" when its first line
// ends so, "\n" otherwise).
func (t text) newline() string {
	if t.n() > 0 && bytes.HasSuffix(t.raw(0), []byte("\r\n")) {
		return "\r\n"
	}
	return "\n"
}

// filler says whether line i holds nothing YAML reads as content: blank,
// a comment, or a document end marker.
func (t text) filler(i int) bool {
	s := strings.TrimSpace(string(t.line(i)))
	return s == "" || s[0] == '#' || s == "..."
}

// byteCol turns a 1-based yaml.v3 column (counted in characters) on line i
// into a byte offset within the line.
func (t text) byteCol(i, col int) int {
	l := t.line(i)
	off := 0
	for c := 1; c < col && off < len(l); c++ {
		_, w := utf8.DecodeRune(l[off:])
		off += w
	}
	return off
}

// leading counts the spaces that indent s.
func leading(s []byte) int {
	n := 0
	for n < len(s) && s[n] == ' ' {
		n++
	}
	return n
}

// parseTop parses a single-document YAML file whose root is a mapping and
// returns that mapping. An empty file yields a nil mapping.
func parseTop(file []byte) (*yaml.Node, error) {
	if bytes.ContainsRune(file, '\r') && bytes.Count(file, []byte("\r")) != bytes.Count(file, []byte("\r\n")) {
		return nil, errors.New("the file has line breaks other than LF and CRLF")
	}
	if crlf := bytes.Count(file, []byte("\r\n")); crlf != 0 && crlf != bytes.Count(file, []byte("\n")) {
		// Edits keep each line's own break, but a line that becomes the
		// last, or a new one, can only take the file's: with two kinds
		// there is none.
		return nil, errors.New("the file mixes LF and CRLF line breaks")
	}
	dec := yaml.NewDecoder(bytes.NewReader(file))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("parsing YAML: %w", err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return nil, errors.New("the file holds more than one YAML document")
	} else if !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parsing YAML: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, errors.New("the file is not a YAML document")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, errors.New("the file's top level is not a YAML mapping")
	}
	if root.Style&yaml.FlowStyle != 0 {
		return nil, errors.New("the file's top level is a flow mapping; only block mappings are edited")
	}
	return root, nil
}

// field is one top-level key of a mapping and where it sits.
type field struct {
	key, val *yaml.Node
	keyLine  int // 0-based
	// end is the 0-based line where the next top-level key starts, or the
	// number of lines when this is the last key: the value, its comments and
	// the next key's head comments lie in [keyLine, end).
	end int
}

// lookup finds key in the top-level mapping m of file t. ok is false when
// the key is absent; a duplicate key is an error.
func lookup(t text, m *yaml.Node, key string) (f field, ok bool, err error) {
	if m == nil {
		return field{}, false, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if k.Kind != yaml.ScalarNode || k.Value != key {
			continue
		}
		if ok {
			return field{}, false, fmt.Errorf("key %q appears more than once", key)
		}
		f = field{key: k, val: m.Content[i+1], keyLine: k.Line - 1, end: t.n()}
		if i+2 < len(m.Content) {
			f.end = m.Content[i+2].Line - 1
		}
		ok = true
	}
	return f, ok, nil
}

// item is the line span of one block sequence item: from the line of its
// dash to its last line of content, both 0-based and inclusive.
type item struct {
	node       *yaml.Node
	start, end int
	dash       int // byte column of the dash
}

var errFlowSeq = errors.New("is a flow sequence ([...]); only block sequences (- item per line) are edited")

// items locates the items of the block sequence f.val in t. Blank and
// comment lines after an item's content belong to the gap before the next
// item (or the next key), not to the item.
func items(t text, f field) ([]item, error) {
	seq := f.val
	if seq.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%q is not a list", f.key.Value)
	}
	if seq.Style&yaml.FlowStyle != 0 {
		if len(seq.Content) == 0 {
			return nil, nil
		}
		return nil, fmt.Errorf("%q %w", f.key.Value, errFlowSeq)
	}
	out := make([]item, len(seq.Content))
	for i, n := range seq.Content {
		start := n.Line - 1
		prefix := t.line(start)[:t.byteCol(start, n.Column)]
		if !bytes.Contains(prefix, []byte("-")) {
			// "-" alone on a line, the item's content below it.
			found := false
			for s := start - 1; s > f.keyLine; s-- {
				if t.filler(s) {
					continue
				}
				if bytes.HasPrefix(bytes.TrimSpace(t.line(s)), []byte("-")) {
					start, found = s, true
				}
				break
			}
			if !found {
				return nil, fmt.Errorf("cannot find the dash of %q item %d (line %d)", f.key.Value, i, n.Line)
			}
		}
		if i > 0 && start <= out[i-1].start {
			return nil, fmt.Errorf("%q items %d and %d share line %d", f.key.Value, i-1, i, start+1)
		}
		out[i] = item{node: n, start: start, dash: bytes.IndexByte(t.line(start), '-')}
	}
	for i := range out {
		next := f.end
		if i+1 < len(out) {
			next = out[i+1].start
		}
		end := next - 1
		for end > out[i].start && t.filler(end) {
			end--
		}
		out[i].end = end
	}
	return out, nil
}

// isNull says whether a value node is YAML null (absent value, ~, null).
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// stripEmptyValue rewrites "key: []" or "key: ~" / "key: null" on the key's
// own line to "key:" (keeping any comment after it), so that block items can
// follow. A value with no token at all is left as it is.
func stripEmptyValue(t text, f field) ([]byte, error) {
	v := f.val
	if v.Kind == yaml.ScalarNode && v.Value == "" {
		return t.src, nil
	}
	if v.Line-1 != f.keyLine {
		return nil, fmt.Errorf("the empty value of %q is not on the key's line", f.key.Value)
	}
	l := t.line(f.keyLine)
	from := t.byteCol(f.keyLine, v.Column)
	to := from
	switch {
	case v.Kind == yaml.SequenceNode:
		i := bytes.IndexByte(l[from:], ']')
		if i < 0 {
			return nil, fmt.Errorf("cannot find the end of %q's empty list", f.key.Value)
		}
		to = from + i + 1
	case isNull(v):
		to = from + len(v.Value)
	default:
		return nil, fmt.Errorf("%q has an unexpected value", f.key.Value)
	}
	head := bytes.TrimRight(l[:from], " \t")
	var b bytes.Buffer
	b.Write(t.span(0, f.keyLine))
	b.Write(head)
	b.Write(l[to:])
	b.Write(t.raw(f.keyLine)[len(l):])
	b.Write(t.src[t.offset(f.keyLine+1):])
	return b.Bytes(), nil
}
