// Package mrkdwn is the one place that turns text into Slack message text:
// Slack's escaping of user-supplied text, and clipping that keeps whole
// characters. It imports nothing of the bot, so the Slack-free actions
// packages use it too for the refusals they word.
package mrkdwn

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Escape applies Slack's message escaping (&, <, >) to s, so that text a
// user typed is shown as typed: it cannot become a mention (<!channel>,
// <!here>, <@U…>, <!subteam^…>), a channel or a link.
func Escape(s string) string { return escaper.Replace(s) }

// Clip shortens s to at most n characters (runes), the last one an
// ellipsis when something was cut. It cuts on a character boundary, never
// inside an escape (&amp;) and never inside a <…> link or mention, which
// the cut would break.
func Clip(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	// Byte offset of the first n-1 runes.
	cut, k := 0, 0
	for i := range s {
		if k == n-1 {
			cut = i
			break
		}
		k++
	}
	kept := s[:cut]
	if i := strings.LastIndexByte(kept, '<'); i >= 0 && strings.IndexByte(kept[i:], '>') < 0 {
		kept = kept[:i]
	}
	if i := strings.LastIndexByte(kept, '&'); i >= 0 && len(kept)-i <= 5 && strings.IndexByte(kept[i:], ';') < 0 {
		kept = kept[:i]
	}
	return kept + "…"
}

// Code shows user text inside a code span: backticks become ', it is
// clipped to n characters, then escaped.
func Code(s string, n int) string {
	return "`" + Escape(Clip(strings.ReplaceAll(s, "`", "'"), n)) + "`"
}

// Len is the number of characters (runes) in s, as a person counts them.
func Len(s string) int { return utf8.RuneCountInString(s) }

// Count is n and a noun, the noun plural unless n is 1: "1 file",
// "3 files", "0 items". Nouns are regular (an "s" is added).
func Count[T ~int | ~int64](n T, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatInt(int64(n), 10) + " " + noun + "s"
}
