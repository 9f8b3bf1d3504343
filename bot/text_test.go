package bot

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// Issue 8, item 7: clip cuts on a character boundary and keeps within its
// bound in characters.
func TestClipKeepsWholeCharacters(t *testing.T) {
	s := "a" + strings.Repeat("é", 50)
	for n := 1; n < 60; n++ {
		if got := clip(s, n); !utf8.ValidString(got) {
			t.Fatalf("clip(%q, %d) = %q: splits a character", s, n, got)
		}
	}
	for n := 1; n < 60; n++ {
		if c := utf8.RuneCountInString(clip(s, n)); c > n {
			t.Fatalf("clip(…, %d) has %d characters", n, c)
		}
	}
}
