// racerd chat page, built on racer.js.  SPDX-License-Identifier: ISC
import racer from "./racer.js";

const $ = (id) => document.getElementById(id);
const PAGE = 100; // messages per "load older"
const FIRST_PAGE = 50; // shown on joining

const app = {
  chat: null,
  states: [], // every state the chat went through (tests read it)
  unread: 0,
  oldest: null, // lowest seq shown
  newest: 0,
  noOlder: false,
  marker: null, // the marker of the connection loss being recovered
  members: new Map(),
  loadingOlder: false,
};
globalThis.racerApp = app;

// --- Joining and leaving ---

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  for (const k of ["chat", "user", "token"]) {
    if (p.get(k)) $("f-" + k).value = p.get(k);
  }
  if (p.get("token")) $("f-more").open = true;
  return p.get("chat") && (p.get("user") || p.get("token"));
}

function joinError(text) {
  $("join-error").textContent = text;
  $("join-error").hidden = !text;
}

function join(ev) {
  if (ev) ev.preventDefault();
  const chatId = $("f-chat").value.trim();
  const user = $("f-user").value.trim();
  const token = $("f-token").value.trim();
  const secret = $("f-secret").value;
  if (!racer.validId(chatId)) {
    joinError("A chat id is 1 to 128 letters, digits or . _ : -");
    return;
  }
  if (user && !racer.validId(user, 64)) {
    joinError("A name is 1 to 64 letters, digits or . _ : -");
    return;
  }
  joinError("");
  try {
    localStorage.setItem("racer.chat", chatId);
    if (user) localStorage.setItem("racer.user", user);
  } catch (e) { /* private mode */ }
  const opts = {};
  if (user) opts.user = user;
  if (token) opts.token = token;
  if (secret) opts.secret = secret;
  start(racer.connect("", chatId, opts), !!secret);
}

function start(chat, e2e) {
  app.chat = chat;
  app.e2e = e2e;
  app.states = [];
  app.oldest = null;
  app.newest = 0;
  app.noOlder = false;
  app.marker = null;
  app.members.clear();
  $("c-log").replaceChildren();
  $("c-pending").replaceChildren();
  $("c-title").textContent = chat.chat;
  $("c-lock").hidden = !e2e;
  $("c-older").disabled = false;
  $("c-older").textContent = "Load older messages";
  $("join-view").hidden = true;
  $("chat-view").hidden = false;
  renderMembers();
  showState(chat.state);
  let first = true;
  chat.on("state", showState);
  chat.on("welcome", (w) => {
    refreshMembers();
    if (first) {
      first = false;
      loadOlder(w.seq + 1, FIRST_PAGE);
    }
  });
  chat.on("message", (m) => addMessage(m));
  chat.on("presence", onPresence);
  chat.on("resumed", onResumed);
  chat.on("gap", onGap);
  chat.on("error", onError);
  setTitle();
  $("c-input").focus();
}

function leave() {
  if (app.chat) app.chat.close();
  app.chat = null;
  $("chat-view").hidden = true;
  $("join-view").hidden = false;
  document.title = "racerd chat";
  $("f-chat").focus();
}

// --- State and markers ---

const STATE_TEXT = {
  connecting: "connecting\u2026",
  connected: "connected",
  resuming: "resuming\u2026",
  offline: "offline, retrying\u2026",
  closed: "disconnected",
};

function showState(s) {
  const prev = app.states[app.states.length - 1];
  app.states.push(s);
  const el = $("c-state");
  el.textContent = STATE_TEXT[s] || s;
  el.className = "state " + s;
  $("c-send").disabled = s === "closed";
  if ((s === "resuming" || s === "offline") && prev === "connected" &&
      !app.marker) {
    app.marker = addMarker("Connection lost \u2014 resuming\u2026");
  }
}

function addMarker(text, cls) {
  const li = document.createElement("li");
  li.className = "marker" + (cls ? " " + cls : "");
  li.textContent = text;
  li.setAttribute("role", "note");
  appendToLog(li);
  return li;
}

function plural(n, what) {
  return n + " " + what + (n === 1 ? "" : "s");
}

function onResumed(r) {
  if (!r.complete) return; // the gap event follows
  const text = r.replayed > 0 ?
    "Reconnected \u2014 " + plural(r.replayed, "missed message") +
      " recovered below" :
    "Reconnected \u2014 nothing was missed";
  if (app.marker) {
    app.marker.textContent = text;
    app.marker.dataset.recovered = String(r.replayed);
  } else if (r.replayed > 0) {
    addMarker(text);
  }
  app.marker = null;
}

function onGap(g) {
  let text = "Reconnected \u2014 " + plural(g.recovered, "missed message") +
    " recovered from history";
  if (g.lost > 0) text += ", " + plural(g.lost, "message") +
    " no longer available";
  const m = app.marker || addMarker(text);
  m.textContent = text;
  m.dataset.recovered = String(g.recovered);
  if (g.lost > 0) m.classList.add("gap");
  app.marker = null;
}

function onError(e) {
  if (["closed", "e2e", "unauthorized", "forbidden"].includes(e.code)) {
    addMarker(e.message, "gap");
  }
}

// --- Messages ---

function fmtTime(ts) {
  const d = new Date(ts);
  const now = new Date();
  const hm = d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
  if (d.toDateString() === now.toDateString()) return hm;
  return d.toLocaleDateString([], {month: "short", day: "numeric"}) + " " + hm;
}

function messageEl(m) {
  const li = document.createElement("li");
  li.className = "msg";
  li.dataset.seq = String(m.seq);
  li.dataset.from = m.from;
  if (m.from === app.chat.user) li.classList.add("mine");
  const meta = document.createElement("div");
  meta.className = "meta";
  const from = document.createElement("span");
  from.className = "from";
  from.textContent = m.from;
  const time = document.createElement("time");
  if (typeof m.ts === "number") {
    time.dateTime = new Date(m.ts).toISOString();
    time.textContent = fmtTime(m.ts);
    time.title = new Date(m.ts).toLocaleString();
  }
  meta.append(from, time);
  const body = document.createElement("div");
  body.className = "body";
  if (m.unreadable) {
    li.classList.add("unreadable");
    body.textContent = "[encrypted message it cannot read]";
  } else if (!app.e2e && typeof m.body === "string" &&
             m.body.startsWith("e2e1:")) {
    li.classList.add("unreadable");
    body.textContent = "[encrypted message: join with the chat secret " +
      "to read it]";
  } else {
    body.textContent = m.body;
  }
  li.append(meta, body);
  return li;
}

function nearBottom() {
  const w = document.querySelector(".log-wrap");
  return w.scrollHeight - w.scrollTop - w.clientHeight < 80;
}

function scrollToBottom() {
  const w = document.querySelector(".log-wrap");
  w.scrollTop = w.scrollHeight;
}

function appendToLog(el) {
  const stick = nearBottom();
  $("c-log").append(el);
  if (stick) scrollToBottom();
}

function addMessage(m) {
  if (document.querySelector('#c-log [data-seq="' + m.seq + '"]')) return;
  appendToLog(messageEl(m));
  app.newest = Math.max(app.newest, m.seq);
  if (app.oldest == null) app.oldest = m.seq;
  if (m.from !== app.chat.user && (document.hidden || !document.hasFocus())) {
    app.unread++;
    setTitle();
  }
}

// Prepend an older page, oldest first, skipping what is shown already.
function prependPage(messages) {
  const w = document.querySelector(".log-wrap");
  const log = $("c-log");
  const before = w.scrollHeight - w.scrollTop;
  const frag = document.createDocumentFragment();
  for (const m of messages) {
    if (app.oldest != null && m.seq >= app.oldest) continue;
    frag.append(messageEl(m));
  }
  log.prepend(frag);
  if (messages.length > 0) {
    const low = messages[0].seq;
    app.oldest = app.oldest == null ? low : Math.min(app.oldest, low);
  }
  w.scrollTop = w.scrollHeight - before;
}

async function loadOlder(before, limit) {
  if (app.loadingOlder || app.noOlder || !app.chat) return;
  const chat = app.chat;
  const btn = $("c-older");
  app.loadingOlder = true;
  btn.disabled = true;
  btn.textContent = "Loading\u2026";
  try {
    const page = await chat.history({before, limit: limit || PAGE});
    if (chat !== app.chat) return;
    const first = app.oldest == null;
    prependPage(page.messages);
    if (first) scrollToBottom();
    if (page.messages.length === 0 || page.messages[0].seq <= 1) {
      app.noOlder = true;
    }
  } catch (e) {
    addMarker("Could not load older messages: " + e.message, "gap");
  } finally {
    app.loadingOlder = false;
    btn.disabled = app.noOlder;
    btn.textContent = app.noOlder ? "This is the beginning of the chat" :
      "Load older messages";
  }
}

// --- Presence ---

async function refreshMembers() {
  try {
    const list = await app.chat.presence();
    app.members.clear();
    for (const m of list) app.members.set(m.user, m.state);
    if (app.chat.user) app.members.set(app.chat.user, "connected");
    renderMembers();
  } catch (e) { /* events still arrive */ }
}

function onPresence(p) {
  if (p.event === "leave") app.members.delete(p.user);
  else app.members.set(p.user, p.event === "away" ? "away" : "connected");
  renderMembers();
}

function renderMembers() {
  const ul = $("c-members");
  const names = [...app.members.keys()].sort();
  ul.replaceChildren(...names.map((u) => {
    const li = document.createElement("li");
    li.textContent = u + (u === app.chat?.user ? " (you)" : "");
    li.dataset.user = u;
    if (app.members.get(u) === "away") {
      li.classList.add("away");
      li.title = "away";
      li.append(" \u2014 away");
    }
    return li;
  }));
  $("c-count").textContent = String(names.length);
}

// --- Sending ---

function send(ev) {
  if (ev) ev.preventDefault();
  const input = $("c-input");
  const text = input.value.replace(/\s+$/, "");
  if (!text || !app.chat) return;
  input.value = "";
  autosize();
  const ghost = document.createElement("li");
  ghost.className = "msg mine pending";
  ghost.innerHTML = '<div class="meta"><span class="from"></span>' +
    "<time>sending\u2026</time></div><div class=\"body\"></div>";
  ghost.querySelector(".from").textContent = app.chat.user || "you";
  ghost.querySelector(".body").textContent = text;
  $("c-pending").append(ghost);
  scrollToBottom();
  app.chat.send(text).then(() => ghost.remove(), (e) => {
    ghost.querySelector("time").textContent = "not sent: " + e.message;
  });
}

function autosize() {
  const t = $("c-input");
  t.style.height = "auto";
  t.style.height = Math.min(t.scrollHeight + 2, 160) + "px";
}

// --- The title's unread count ---

function setTitle() {
  const name = app.chat ? app.chat.chat + " \u2014 racerd" : "racerd chat";
  document.title = (app.unread > 0 ? "(" + app.unread + ") " : "") + name;
}

function seen() {
  if (document.hidden || !document.hasFocus()) return;
  if (app.unread === 0) return;
  app.unread = 0;
  setTitle();
}

// --- Wiring ---

function init() {
  // The pending list sits under the log; made here to keep the HTML short.
  const pending = document.createElement("ol");
  pending.id = "c-pending";
  pending.className = "log";
  pending.setAttribute("aria-label", "Messages being sent");
  $("c-log").after(pending);

  $("join-form").addEventListener("submit", join);
  $("c-form").addEventListener("submit", send);
  $("c-leave").addEventListener("click", leave);
  $("c-older").addEventListener("click",
    () => loadOlder(app.oldest ?? app.newest + 1));
  $("c-people-toggle").addEventListener("click", () => {
    const open = $("c-people").classList.toggle("open");
    $("c-people-toggle").setAttribute("aria-expanded", String(open));
  });
  $("c-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) send(e);
  });
  $("c-input").addEventListener("input", autosize);
  document.addEventListener("visibilitychange", seen);
  window.addEventListener("focus", seen);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !$("chat-view").hidden) $("c-input").focus();
  });
  try {
    $("f-chat").value = $("f-chat").value || localStorage.getItem("racer.chat") || "";
    $("f-user").value = $("f-user").value || localStorage.getItem("racer.user") || "";
  } catch (e) { /* private mode */ }
  if (readHash()) join();
}

init();
