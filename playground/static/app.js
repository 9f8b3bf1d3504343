// The playground's script: it fetches the server-rendered panes, sends
// the composer's slash commands and the buttons' clicks as the chosen
// person, shows a button's confirm dialog before its click, and fetches a
// pane again when the server's events say it changed. It never builds
// markup from data: the panes come escaped from the server.
"use strict";

const $ = (sel) => document.querySelector(sel);
const slackPane = $("#slack"), worldPane = $("#world"), who = $("#as"), statusLine = $("#status");

function say(text, bad) {
  statusLine.textContent = text;
  statusLine.className = bad ? "bad" : "";
}

// refresher fetches a pane, one fetch at a time; a change during a fetch
// fetches again once it is done. The pane is redrawn only when its markup
// changed: most Slack events are about what another person sees, and a
// redraw swaps every button for a copy, so a click pressed on the old one
// would be lost. dataset.loaded marks every fetch, redrawn or not.
function refresher(pane, url) {
  let busy = false, again = false, shown = "";
  return async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      do {
        again = false;
        const u = url();
        const r = await fetch(u);
        if (!r.ok) { say(await r.text(), true); break; }
        const html = await r.text();
        if (u + "\n" + html !== shown) {
          const scroll = pane.scrollTop;
          pane.innerHTML = html;
          pane.scrollTop = scroll;
          shown = u + "\n" + html;
        }
        pane.dataset.loaded = String(Date.now());
        pane.dataset.src = u; // whose view it is (a fetch begun before a switch renders the old one first)
      } while (again);
    } catch (e) {
      say("the playground server does not answer: " + e, true);
    } finally {
      busy = false;
    }
  };
}

const refreshSlack = refresher(slackPane, () => "/frag/slack?as=" + encodeURIComponent(who.value));
const refreshWorld = refresher(worldPane, () => "/frag/world");

async function post(url, fields) {
  const body = new URLSearchParams(fields);
  const r = await fetch(url, {method: "POST", body});
  const text = await r.text();
  say(text, !r.ok);
  return r.ok;
}

$("#composer").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = $("#command");
  if (await post("/api/slash", {user: who.value, text: input.value})) input.value = "";
  refreshSlack();
});

who.addEventListener("change", () => { say(""); refreshSlack(); });

// ask shows a button's confirm dialog and resolves to whether it was confirmed.
function ask(tpl) {
  const dlg = $("#confirm"), body = dlg.querySelector(".confirm-body");
  body.replaceChildren(tpl.content.cloneNode(true));
  return new Promise((resolve) => {
    const done = (ok) => { dlg.close(); resolve(ok); };
    body.querySelectorAll("button").forEach((b) => b.addEventListener("click", (e) => { e.preventDefault(); done(b.value === "ok"); }));
    dlg.addEventListener("cancel", () => resolve(false), {once: true});
    dlg.showModal();
  });
}

slackPane.addEventListener("click", async (ev) => {
  const b = ev.target.closest("button[data-action-id]");
  if (!b) return;
  const tpl = b.parentElement.querySelector("template.bk-confirm");
  if (tpl && !(await ask(tpl))) { say("not clicked"); return; }
  if (b.dataset.url) window.open(b.dataset.url, "_blank", "noopener");
  await post("/api/click", {user: who.value, channel: b.dataset.channel, ts: b.dataset.ts,
    action_id: b.dataset.actionId, block_id: b.dataset.blockId, value: b.dataset.value});
  refreshSlack();
});

worldPane.addEventListener("click", async (ev) => {
  const b = ev.target.closest("button[data-op]");
  if (!b) return;
  b.disabled = true;
  try {
    await post("/api/world", Object.assign({}, b.dataset));
  } finally {
    b.disabled = false; // the pane may come back the same, and not be redrawn
  }
  refreshWorld();
});

const events = new EventSource("/events");
events.addEventListener("slack", refreshSlack);
events.addEventListener("world", refreshWorld);
events.addEventListener("hello", () => { refreshSlack(); refreshWorld(); });
refreshSlack();
refreshWorld();
