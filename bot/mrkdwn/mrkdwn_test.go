package mrkdwn

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"<!channel>":          "&lt;!channel&gt;",
		"<@U123|bob> & <#C1>": "&lt;@U123|bob&gt; &amp; &lt;#C1&gt;",
		"&amp;":               "&amp;amp;",
		"plain é":             "plain é",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestClip(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"aéééé", 3, "aé…"},
		{"日本語のテキスト", 4, "日本語…"},
		{"see <http://x.example/a|link> now", 12, "see …"},
		{"a &amp; b", 5, "a …"},
		{"abc", 0, ""},
	}
	for _, tc := range tests {
		got := Clip(tc.in, tc.n)
		if got != tc.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
		if !utf8.ValidString(got) || utf8.RuneCountInString(got) > max(tc.n, 0) {
			t.Errorf("Clip(%q, %d) = %q: invalid UTF-8 or over %d characters", tc.in, tc.n, got, tc.n)
		}
	}
	// Every cut of a mixed string is valid UTF-8 within its bound.
	s := strings.Repeat("aé日😀&<>", 20)
	for n := 1; n < utf8.RuneCountInString(s)+2; n++ {
		if got := Clip(s, n); !utf8.ValidString(got) || utf8.RuneCountInString(got) > n {
			t.Fatalf("Clip(…, %d) = %q", n, got)
		}
	}
}

func TestCode(t *testing.T) {
	if got := Code("`<!here>`", 40); got != "`'&lt;!here&gt;'`" {
		t.Errorf("Code = %q", got)
	}
	if got := Code(strings.Repeat("é", 100), 10); got != "`"+strings.Repeat("é", 9)+"…`" {
		t.Errorf("Code clipped = %q", got)
	}
}

// Issue 12 part 4, item 2: counts read "1 file", not "1 files".
func TestCount(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{Count(1, "file"), "1 file"},
		{Count(3, "file"), "3 files"},
		{Count(0, "item"), "0 items"},
		{Count(int64(1), "byte"), "1 byte"},
		{Count(int64(6627), "byte"), "6627 bytes"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
