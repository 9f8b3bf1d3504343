package playground

import (
	"html"
	"slices"
	"strings"

	"github.com/osio/osio-bot/demo"
	slackserver "github.com/osio/osio-bot/testservers/slack"
	"github.com/osio/osio-bot/testservers/testenv"
)

// person is someone the composer can act as.
type person struct{ ID, Name, Role string }

// cast are the world's people (testenv's Slack users), in the composer's
// order.
var cast = []person{
	{demo.Developer, "Dana Developer", "developer"},
	{demo.Catcher, "Ian Catcher", "interrupt catcher"},
	{demo.Catcher2, "Ivy Catcher", "interrupt catcher"},
	{demo.Stranger, "Olly Outsider", "stranger"},
}

// channel is a channel the Slack pane shows.
type channel struct{ ID, Name string }

var channels = []channel{{testenv.Channel, "osio-approvals"}, {testenv.DevChannel, "osio-dev"}}

func worldNames() names {
	n := names{users: map[string]string{slackserver.BotUserID: "osio-bot"}, channels: map[string]string{},
		groups: map[string]string{testenv.Group: "interrupt-catchers"}}
	for _, p := range cast {
		n.users[p.ID] = p.Name
	}
	for _, c := range channels {
		n.channels[c.ID] = c.Name
	}
	return n
}

// slackSource is what the Slack pane reads: the Slack test server.
type slackSource interface {
	Messages(channel string) []slackserver.Message
	Thread(channel, ts string) []slackserver.Message
	Receipts(user string) []slackserver.Message
	Ephemerals(user string) []slackserver.Message
}

// renderSlack renders the channels as user sees them: every channel
// message and thread reply, and the ephemeral messages (slash command
// receipts, chat.postEphemeral, response_url posts) meant for user only.
func renderSlack(src slackSource, n names, user string) string {
	mine := append(src.Receipts(user), src.Ephemerals(user)...)
	var b strings.Builder
	chans := channels
	if dm := src.Messages(user); len(dm) > 0 {
		chans = append(slices.Clone(chans), channel{user, "direct messages from osio-bot"})
	}
	for _, c := range chans {
		var top []slackserver.Message
		top = append(top, src.Messages(c.ID)...)
		parents := map[string]bool{}
		for _, m := range top {
			parents[m.TS] = true
		}
		replies := map[string][]slackserver.Message{}
		for _, m := range mine {
			switch {
			case m.Channel != c.ID:
			case m.ThreadTS != "" && parents[m.ThreadTS]:
				replies[m.ThreadTS] = append(replies[m.ThreadTS], m)
			default:
				top = append(top, m)
			}
		}
		slices.SortStableFunc(top, func(a, b slackserver.Message) int { return strings.Compare(a.TS, b.TS) })
		b.WriteString(`<section class="channel" data-channel="` + html.EscapeString(c.ID) + `"><h2># ` + html.EscapeString(c.Name) + `</h2>`)
		if len(top) == 0 {
			b.WriteString(`<p class="empty">No messages yet.</p>`)
		}
		for _, m := range top {
			var thread []slackserver.Message
			if !ephemeral(m) {
				thread = append(src.Thread(c.ID, m.TS), replies[m.TS]...)
				slices.SortStableFunc(thread, func(a, b slackserver.Message) int { return strings.Compare(a.TS, b.TS) })
			}
			b.WriteString(n.message(m, thread))
		}
		b.WriteString(`</section>`)
	}
	return b.String()
}

func ephemeral(m slackserver.Message) bool {
	return m.Source != "chat.postMessage" && m.Source != "user"
}

// message renders one message and its thread.
func (n names) message(m slackserver.Message, thread []slackserver.Message) string {
	author := "osio-bot"
	if m.Source == "user" {
		author = n.user(m.User)
	}
	cls := "msg"
	if ephemeral(m) {
		cls += " ephemeral"
	}
	var b strings.Builder
	b.WriteString(`<article class="` + cls + `" data-ts="` + html.EscapeString(m.TS) + `"><div class="msg-head"><span class="author">` +
		html.EscapeString(author) + `</span>`)
	if author == "osio-bot" {
		b.WriteString(`<span class="app">APP</span>`)
	}
	b.WriteString(`<time>` + m.Posted.Format("15:04:05") + `</time>`)
	if m.Edits > 0 || m.Replaced > 0 {
		b.WriteString(`<span class="edited">(edited)</span>`)
	}
	if ephemeral(m) {
		b.WriteString(`<span class="only-you">Only visible to you</span>`)
	}
	b.WriteString(`</div><div class="msg-body">`)
	body, ok := n.blocks(m.Blocks, where{m.Channel, m.TS})
	if !ok {
		body = `<div class="bk-text">` + n.mrkdwn(m.Text) + `</div>`
	}
	b.WriteString(body + `</div>`)
	if len(thread) > 0 {
		noun := "replies"
		if len(thread) == 1 {
			noun = "reply"
		}
		b.WriteString(`<div class="thread"><div class="thread-count">` + itoa(len(thread)) + " " + noun + `</div>`)
		for _, r := range thread {
			b.WriteString(n.message(r, nil))
		}
		b.WriteString(`</div>`)
	}
	b.WriteString(`</article>`)
	return b.String()
}
