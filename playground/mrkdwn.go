package playground

import (
	"fmt"
	"html"
	"net/url"
	"regexp"
	"strings"
)

// names resolves Slack ids to what Slack shows for them.
type names struct {
	users    map[string]string // user id -> display name
	channels map[string]string // channel id -> name
	groups   map[string]string // user group id -> handle
}

func (n names) user(id string) string {
	if s, ok := n.users[id]; ok {
		return s
	}
	return id
}

// Slack's emoji for the shortcodes the bot uses; others stay as typed.
var emoji = map[string]string{
	"white_check_mark": "✅", "no_entry": "⛔", "x": "❌", "warning": "⚠️",
	"hourglass_flowing_sand": "⏳", "hourglass": "⌛", "alarm_clock": "⏰",
	"wastebasket": "🗑️", "leftwards_arrow_with_hook": "↩️", "inbox_tray": "📥",
	"gear": "⚙️", "boom": "💥", "arrows_counterclockwise": "🔄", "aws": "☁️",
	"lock": "🔒", "key": "🔑", "email": "📧", "tada": "🎉", "information_source": "ℹ️",
}

var emojiRe = regexp.MustCompile(`:([a-z0-9_+-]+):`)

// withEmoji replaces known :shortcodes: in already escaped HTML.
func withEmoji(s string) string {
	return emojiRe.ReplaceAllStringFunc(s, func(m string) string {
		if e, ok := emoji[m[1:len(m)-1]]; ok {
			return e
		}
		return m
	})
}

// unescape undoes Slack's message escaping (&amp; &lt; &gt;), the only
// entities Slack uses.
var unescape = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")

// plain renders a plain_text object: escaped, emoji resolved.
func plain(s string) string { return withEmoji(html.EscapeString(s)) }

// Placeholders for the pieces cut out before formatting: private-use
// characters that are stripped from the input first.
const (
	phOpen  = '\uE000'
	phClose = '\uE001'
)

var (
	fenceRe   = regexp.MustCompile("(?s)```(.*?)```")
	codeRe    = regexp.MustCompile("`([^`\n]+)`")
	boldRe    = regexp.MustCompile(`(^|[\s(\p{P}])\*([^*\s](?:[^*\n]*[^*\s])?)\*`)
	italicRe  = regexp.MustCompile(`(^|[\s(\p{P}])_([^_\s](?:[^_\n]*[^_\s])?)_`)
	bareURLRe = regexp.MustCompile(`https?://[^\s<>"\x60\x{E000}\x{E001}]+`)
	strikeRe  = regexp.MustCompile(`(^|[\s(\p{P}])~([^~\s](?:[^~\n]*[^~\s])?)~`)
)

// mrkdwn renders Slack mrkdwn as HTML. The input is message text as Slack
// holds it (&, <, > escaped by the sender); every character of it reaches
// the page escaped, so text can never become markup: a "<b>" the sender
// escaped shows as "<b>", and one it did not escape is not a Slack
// sequence either and is shown as typed. Links (<http…|label>, mailto),
// user, channel and group mentions, *bold*, _italic_, ~strike~, `code`,
// ```pre``` and line breaks are rendered.
func (n names) mrkdwn(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == phOpen || r == phClose {
			return -1
		}
		return r
	}, s)
	var pieces []string
	hold := func(h string) string {
		pieces = append(pieces, h)
		return fmt.Sprintf("%c%d%c", phOpen, len(pieces)-1, phClose)
	}
	// Angle-bracket sequences first: they are what Slack parses.
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			b.WriteString(s)
			break
		}
		j := strings.IndexByte(s[i:], '>')
		if j < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		b.WriteString(hold(n.angle(s[i+1 : i+j])))
		s = s[i+j+1:]
	}
	s = unescape.Replace(b.String())
	// Code is cut out before formatting, which does not apply inside it.
	s = fenceRe.ReplaceAllStringFunc(s, func(m string) string {
		body := strings.Trim(m[3:len(m)-3], "\n")
		return hold("<pre class=\"mk-pre\">" + restore(html.EscapeString(body), pieces) + "</pre>")
	})
	s = codeRe.ReplaceAllStringFunc(s, func(m string) string {
		return hold("<code>" + restore(html.EscapeString(m[1:len(m)-1]), pieces) + "</code>")
	})
	// Slack links bare URLs in message text.
	s = bareURLRe.ReplaceAllStringFunc(s, func(m string) string {
		trail := strings.TrimRight(m, ".,;:!?)")
		return hold(link(trail, html.EscapeString(trail))) + m[len(trail):]
	})
	s = html.EscapeString(s)
	s = boldRe.ReplaceAllString(s, "$1<b>$2</b>")
	s = italicRe.ReplaceAllString(s, "$1<i>$2</i>")
	s = strikeRe.ReplaceAllString(s, "$1<s>$2</s>")
	s = strings.ReplaceAll(s, "\n", "<br>")
	return withEmoji(restore(s, pieces))
}

var phRe = regexp.MustCompile("\uE000([0-9]+)\uE001")

// restore puts the cut-out pieces back, innermost last.
func restore(s string, pieces []string) string {
	for phRe.MatchString(s) {
		s = phRe.ReplaceAllStringFunc(s, func(m string) string {
			var i int
			fmt.Sscanf(m[len("\uE000"):], "%d", &i)
			if i < len(pieces) {
				return pieces[i]
			}
			return ""
		})
	}
	return s
}

// angle renders the inside of a <…> sequence as HTML.
func (n names) angle(in string) string {
	target, label, hasLabel := strings.Cut(in, "|")
	lbl := func(def string) string {
		if hasLabel && label != "" {
			return html.EscapeString(unescape.Replace(label))
		}
		return html.EscapeString(def)
	}
	switch {
	case strings.HasPrefix(target, "@U") || strings.HasPrefix(target, "@W"):
		return `<span class="mention">@` + lbl(n.user(target[1:])) + `</span>`
	case strings.HasPrefix(target, "#C"):
		name := target[1:]
		if c, ok := n.channels[name]; ok {
			name = c
		}
		return `<span class="mention">#` + lbl(name) + `</span>`
	case strings.HasPrefix(target, "!subteam^"):
		id := strings.TrimPrefix(target, "!subteam^")
		h := id
		if g, ok := n.groups[id]; ok {
			h = g
		}
		if hasLabel && label != "" {
			return `<span class="mention">` + lbl("") + `</span>`
		}
		return `<span class="mention">@` + html.EscapeString(h) + `</span>`
	case target == "!here" || target == "!channel" || target == "!everyone":
		return `<span class="mention">@` + html.EscapeString(target[1:]) + `</span>`
	case strings.HasPrefix(target, "!date^"):
		if hasLabel {
			return lbl("")
		}
	}
	raw := unescape.Replace(target)
	if u, err := url.Parse(raw); err == nil && (u.Scheme == "http" || u.Scheme == "https" || u.Scheme == "mailto") {
		def := raw
		if u.Scheme == "mailto" {
			def = u.Opaque
		}
		return link(u.String(), lbl(def))
	}
	// Not a Slack sequence: shown as it was written.
	return html.EscapeString("<" + unescape.Replace(in) + ">")
}

// link is an anchor to url (http, https or mailto, checked by the caller)
// with label (HTML, escaped by the caller), opened in a new tab.
func link(url, label string) string {
	return `<a href="` + html.EscapeString(url) + `" target="_blank" rel="noopener noreferrer">` + label + `</a>`
}
