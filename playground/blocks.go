package playground

import (
	"encoding/json"
	"html"
	"strings"
)

// textObj is a Block Kit text object.
type textObj struct {
	Type  string `json:"type"`
	Text  string `json:"text"`
	Emoji bool   `json:"emoji"`
}

type confirmObj struct {
	Title   *textObj `json:"title"`
	Text    *textObj `json:"text"`
	Confirm *textObj `json:"confirm"`
	Deny    *textObj `json:"deny"`
	Style   string   `json:"style"`
}

type element struct {
	Type     string      `json:"type"`
	Text     *textObj    `json:"text"`
	ActionID string      `json:"action_id"`
	Value    string      `json:"value"`
	URL      string      `json:"url"`
	Style    string      `json:"style"`
	Confirm  *confirmObj `json:"confirm"`
	AltText  string      `json:"alt_text"`
}

type block struct {
	Type      string    `json:"type"`
	BlockID   string    `json:"block_id"`
	Text      *textObj  `json:"text"`
	Fields    []textObj `json:"fields"`
	Accessory *element  `json:"accessory"`
	Elements  []rawElem `json:"elements"`
	AltText   string    `json:"alt_text"`
}

// rawElem keeps an element's JSON: a context block's elements are text
// objects, whose "text" is a string, not an object.
type rawElem json.RawMessage

func (r *rawElem) UnmarshalJSON(b []byte) error { *r = append((*r)[:0], b...); return nil }

// where is the message a block is on, for its buttons' clicks.
type where struct{ channel, ts string }

// text renders a text object by its type.
func (n names) text(t *textObj) string {
	if t == nil {
		return ""
	}
	if t.Type == "mrkdwn" {
		return n.mrkdwn(t.Text)
	}
	return strings.ReplaceAll(plain(t.Text), "\n", "<br>")
}

// blocks renders a message's blocks as HTML; ok is false when they do not
// parse (the caller shows the message's text instead).
func (n names) blocks(raw json.RawMessage, at where) (string, bool) {
	var bs []block
	if len(raw) == 0 || json.Unmarshal(raw, &bs) != nil || len(bs) == 0 {
		return "", false
	}
	var b strings.Builder
	for _, bl := range bs {
		switch bl.Type {
		case "header":
			b.WriteString(`<div class="bk-header">` + n.text(bl.Text) + `</div>`)
		case "section":
			b.WriteString(`<div class="bk-section"><div class="bk-section-body">`)
			if bl.Text != nil {
				b.WriteString(`<div class="bk-text">` + n.text(bl.Text) + `</div>`)
			}
			if len(bl.Fields) > 0 {
				b.WriteString(`<div class="bk-fields">`)
				for i := range bl.Fields {
					b.WriteString(`<div>` + n.text(&bl.Fields[i]) + `</div>`)
				}
				b.WriteString(`</div>`)
			}
			b.WriteString(`</div>`)
			if bl.Accessory != nil {
				b.WriteString(n.element(*bl.Accessory, bl.BlockID, at))
			}
			b.WriteString(`</div>`)
		case "context":
			b.WriteString(`<div class="bk-context">`)
			for _, re := range bl.Elements {
				var e element
				var t textObj
				if json.Unmarshal(re, &t) == nil && (t.Type == "mrkdwn" || t.Type == "plain_text") {
					b.WriteString(`<span>` + n.text(&t) + `</span>`)
				} else if json.Unmarshal(re, &e) == nil && e.Type == "image" {
					b.WriteString(`<span class="bk-image" title="image">` + html.EscapeString(e.AltText) + `</span>`)
				}
			}
			b.WriteString(`</div>`)
		case "actions":
			b.WriteString(`<div class="bk-actions">`)
			for _, re := range bl.Elements {
				var e element
				if json.Unmarshal(re, &e) == nil {
					b.WriteString(n.element(e, bl.BlockID, at))
				}
			}
			b.WriteString(`</div>`)
		case "divider":
			b.WriteString(`<hr class="bk-divider">`)
		case "image":
			b.WriteString(`<div class="bk-image">` + html.EscapeString(bl.AltText) + `</div>`)
		default:
			b.WriteString(`<div class="bk-unsupported">[` + html.EscapeString(bl.Type) + ` block]</div>`)
		}
	}
	return b.String(), true
}

// element renders an interactive element. A button carries what its click
// sends (the message, action_id, block_id, value) and its confirm dialog,
// which the page shows before the click goes through.
func (n names) element(e element, blockID string, at where) string {
	if e.Type != "button" {
		return `<span class="bk-unsupported">[` + html.EscapeString(e.Type) + `]</span>`
	}
	cls := "bk-btn"
	if e.Style == "primary" || e.Style == "danger" {
		cls += " " + e.Style
	}
	attr := func(k, v string) string { return " " + k + `="` + html.EscapeString(v) + `"` }
	var b strings.Builder
	b.WriteString(`<span class="bk-btn-wrap"><button type="button"` + attr("class", cls) +
		attr("data-channel", at.channel) + attr("data-ts", at.ts) + attr("data-action-id", e.ActionID) +
		attr("data-block-id", blockID) + attr("data-value", e.Value))
	if e.URL != "" {
		b.WriteString(attr("data-url", e.URL))
	}
	b.WriteString(`>` + n.text(e.Text) + `</button>`)
	if c := e.Confirm; c != nil {
		ok, deny := "Confirm", "Cancel"
		if c.Confirm != nil {
			ok = plain(c.Confirm.Text)
		}
		if c.Deny != nil {
			deny = plain(c.Deny.Text)
		}
		okCls := "bk-btn primary"
		if c.Style == "danger" {
			okCls = "bk-btn danger"
		}
		b.WriteString(`<template class="bk-confirm"><h3>` + n.text(c.Title) + `</h3><div class="bk-confirm-text">` + n.text(c.Text) +
			`</div><div class="bk-confirm-buttons"><button type="button" class="bk-btn" value="deny">` + deny +
			`</button><button type="button" class="` + okCls + `" value="ok">` + ok + `</button></div></template>`)
	}
	b.WriteString(`</span>`)
	return b.String()
}
