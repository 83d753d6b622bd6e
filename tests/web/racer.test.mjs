// SPDX-License-Identifier: ISC
// racer.js unit tests: node --test tests/web/racer.test.mjs
// The library needs no DOM: a scripted fake WebSocket plays the server,
// so the resume logic, close-code classes, ids and sends are tested
// frame by frame.  E2E_VECTOR (secret, chat, text, body made by PyNaCl)
// is checked when the caller sets it.
import {test} from "node:test";
import assert from "node:assert/strict";
import {webcrypto} from "node:crypto";
import {fileURLToPath} from "node:url";
import path from "node:path";

if (!globalThis.crypto) globalThis.crypto = webcrypto;
if (!globalThis.atob)
  globalThis.atob = (s) => Buffer.from(s, "base64").toString("binary");

const here = path.dirname(fileURLToPath(import.meta.url));
const web = path.join(here, "..", "..", "contrib", "web");
const racer = (await import(path.join(web, "racer.js"))).default;

// A fake WebSocket: records what the client sends; the test plays the
// server with server(frame) and end(code).
class FakeWS {
  static all = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.readyState = 0;
    FakeWS.all.push(this);
    setTimeout(() => { this.readyState = 1; }, 0);
  }
  send(s) { this.sent.push(JSON.parse(s)); }
  close(code = 1005) { this.end(code); }
  server(f) {
    this.readyState = 1;
    this.onmessage?.({data: JSON.stringify(f)});
  }
  end(code, reason = "") {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({code, reason});
  }
  msgs() { return this.sent.filter((f) => f.type === "msg"); }
}

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));
async function until(pred, ms = 3000) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error("timed out");
    await tick(5);
  }
}
const welcome = (seq, session = "S1", epoch = "E1") =>
  ({type: "welcome", chat: "room", user: "alice", session, epoch, seq,
    window: 120});
const env = (seq, from = "bob", body = "b" + seq, id = "x" + seq) =>
  ({type: "msg", chat: "room", seq, id, from, ts: 1700000000000, body});

const okFetch = async () => ({ok: true, status: 200,
  json: async () => ({members: []})});

function newChat(opts = {}) {
  FakeWS.all = [];
  const chat = racer.connect("ws://h:1/pre/", "room",
    {user: "alice", WebSocket: FakeWS, fetch: okFetch, ...opts});
  const log = {message: [], state: [], resumed: [], gap: [], presence: [],
    error: []};
  for (const k of Object.keys(log)) chat.on(k, (x) => log[k].push(x));
  return {chat, log};
}

test("close-code classes", () => {
  for (const c of [4000, 4001, 4003, 4009, 4099, 1000, 1002, 1007, 1008])
    assert.equal(racer.closeAction(c), "stop", String(c));
  for (const c of [4200, 4208, 4299, 1001])
    assert.equal(racer.closeAction(c), "resume", String(c));
  for (const c of [4100, 4199]) assert.equal(racer.closeAction(c), "slow");
  for (const c of [1006, 1011, 3000]) assert.equal(racer.closeAction(c),
    "backoff");
});

test("back-off grows, is capped and jittered", () => {
  assert.equal(racer.backoff(0, 250, () => 0), 125);
  assert.equal(racer.backoff(0, 250, () => 0.9999), 250);
  assert.equal(racer.backoff(3, 250, () => 0), 1000);
  assert.equal(racer.backoff(30, 250, () => 0), 7500);
  assert.ok(racer.backoff(30, 250, () => 0.9999) <= 15000);
  const seen = new Set();
  for (let i = 0; i < 20; i++) seen.add(racer.backoff(2));
  assert.ok(seen.size > 1, "no jitter");
});

test("endpoints, ids and tokens", () => {
  assert.deepEqual(racer.endpoints("ws://h:1/pre/"),
    {ws: "ws://h:1/pre", http: "http://h:1/pre"});
  assert.deepEqual(racer.endpoints("https://x.example"),
    {ws: "wss://x.example", http: "https://x.example"});
  assert.deepEqual(racer.endpoints("", {protocol: "https:", host: "a:2"}),
    {ws: "wss://a:2", http: "https://a:2"});
  assert.throws(() => racer.endpoints("ftp://x"));
  assert.ok(racer.validId("a.b:c-d_9"));
  for (const bad of ["", ".", "..", "a b", "a/b", "x".repeat(129)])
    assert.ok(!racer.validId(bad), bad);
  assert.ok(!racer.validId("x".repeat(65), 64));
  assert.match(racer.makeId(), /^c-[0-9a-f]{16}$/);
  assert.notEqual(racer.makeId(), racer.makeId());
  const claims = Buffer.from(JSON.stringify({sub: "a", exp: 1234}))
    .toString("base64url");
  assert.equal(racer.tokenExpiry("h." + claims + ".s"), 1234);
  assert.equal(racer.tokenExpiry("garbage"), null);
  assert.throws(() => racer.connect("ws://h", "bad id"));
});

test("join, send, echo resolves with the seq, once in order", async () => {
  const {chat, log} = newChat();
  await until(() => FakeWS.all.length === 1);
  const ws = FakeWS.all[0];
  assert.equal(ws.url, "ws://h:1/pre/ws/room?user=alice");
  ws.server(welcome(4));
  assert.equal(chat.state, "connected");
  const p = chat.send("hello");
  await until(() => ws.msgs().length === 1);
  const f = ws.msgs()[0];
  assert.match(f.id, /^c-[0-9a-f]{16}$/);
  assert.equal(f.body, "hello");
  ws.server(env(5));
  ws.server(env(5)); // a duplicate is not delivered twice
  ws.server(env(6, "alice", "hello", f.id));
  assert.equal(await p, 6);
  ws.server(env(3)); // older than what we have
  assert.deepEqual(log.message.map((m) => m.seq), [5, 6]);
  ws.server({type: "presence", event: "join", user: "bob"});
  assert.deepEqual(log.presence, [{event: "join", user: "bob"}]);
  chat.close();
  assert.equal(chat.state, "closed");
});

test("a lost connection resumes with session and last; a send in flight "
  + "goes again with its id and resolves once", async () => {
  const {chat, log} = newChat();
  await until(() => FakeWS.all.length === 1);
  const ws1 = FakeWS.all[0];
  ws1.server(welcome(0));
  ws1.server(env(1));
  const p = chat.send("again");
  await until(() => ws1.msgs().length === 1);
  const id = ws1.msgs()[0].id;
  ws1.end(4200); // resume at once
  assert.equal(chat.state, "resuming");
  await until(() => FakeWS.all.length === 2, 500);
  const ws2 = FakeWS.all[1];
  assert.equal(ws2.url,
    "ws://h:1/pre/ws/room?user=alice&session=S1&last=1&epoch=E1");
  ws2.server(welcome(3));
  assert.equal(chat.state, "resuming"); // until "resumed"
  await until(() => ws2.msgs().length === 1);
  assert.equal(ws2.msgs()[0].id, id, "re-sent with another id");
  ws2.server(env(2));
  ws2.server(env(3, "alice", "again", id));
  ws2.server({type: "resumed", from: 1, to: 3, replayed: 2, complete: true});
  assert.equal(await p, 3);
  assert.equal(chat.state, "connected");
  assert.deepEqual(log.message.map((m) => [m.seq, !!m.replayed]),
    [[1, false], [2, true], [3, true]]);
  assert.deepEqual(log.resumed, [{from: 1, to: 3, replayed: 2,
    complete: true}]);
  chat.close();
});

test("4000-4099 stops; 4100 backs off; a failed resume joins with since",
  async () => {
    let {chat, log} = newChat();
    await until(() => FakeWS.all.length === 1);
    FakeWS.all[0].server(welcome(0));
    const p = chat.send("never");
    FakeWS.all[0].end(4009, "taken over");
    assert.equal(chat.state, "closed");
    await assert.rejects(p);
    assert.equal(log.error[0].close, 4009);
    await tick(300);
    assert.equal(FakeWS.all.length, 1, "reconnected after 4009");

    ({chat, log} = newChat());
    await until(() => FakeWS.all.length === 1);
    FakeWS.all[0].server(welcome(7));
    FakeWS.all[0].end(4100);
    await tick(400);
    assert.equal(FakeWS.all.length, 1, "4100 did not back off 500 ms");
    await until(() => FakeWS.all.length === 2, 1500);
    // This resume fails before its welcome (a 401 looks like 1006).
    FakeWS.all[1].end(1006);
    await until(() => FakeWS.all.length === 3, 1500);
    assert.equal(FakeWS.all[2].url,
      "ws://h:1/pre/ws/room?user=alice&since=7&epoch=E1");
    chat.close();
  });

test("never let in: a 401 or 403 over HTTP stops, anything else retries",
  async () => {
    let status = 200;
    const urls = [];
    const fetch = async (url, init) => {
      urls.push([url, init.headers.Authorization]);
      return {ok: status === 200, status, json: async () => ({})};
    };
    let {chat, log} = newChat({fetch, token: "T0"});
    await until(() => FakeWS.all.length === 1);
    FakeWS.all[0].end(1006);
    await until(() => FakeWS.all.length === 2, 1500);
    assert.deepEqual(urls[0], ["http://h:1/pre/chats/room/presence",
      "Bearer T0"]);
    status = 401;
    FakeWS.all[1].end(1006);
    await until(() => chat.state === "closed", 1500);
    assert.equal(log.error.at(-1).code, "unauthorized");
    await tick(600);
    assert.equal(FakeWS.all.length, 2, "retried after a 401");
    ({chat, log} = newChat({fetch}));
    status = 403;
    await until(() => FakeWS.all.length === 1);
    FakeWS.all[0].end(1006);
    await until(() => chat.state === "closed", 1500);
    assert.equal(log.error.at(-1).code, "forbidden");
  });

test("an incomplete resume reads the gap from history, in order",
  async () => {
    const pages = [];
    const fetch = async (url) => {
      pages.push(url);
      const since = Number(new URL(url).searchParams.get("since"));
      const messages = [];
      for (let s = since + 1; s <= 5; s++) messages.push(env(s));
      return {ok: true, status: 200,
        json: async () => ({messages, latest: 5, epoch: "E1", next: null})};
    };
    const {chat, log} = newChat({fetch});
    await until(() => FakeWS.all.length === 1);
    FakeWS.all[0].server(welcome(0));
    FakeWS.all[0].server(env(1));
    FakeWS.all[0].end(1006);
    await until(() => FakeWS.all.length === 2, 1500);
    const ws = FakeWS.all[1];
    ws.server(welcome(5));
    ws.server({type: "resumed", from: 1, to: 5, replayed: 0,
      complete: false});
    ws.server(env(6)); // live, while the gap is read: held
    await until(() => log.gap.length === 1);
    assert.match(pages[0], /\/chats\/room\/messages\?since=1&limit=1000$/);
    assert.deepEqual(log.gap, [{from: 1, to: 5, recovered: 4, lost: 0}]);
    assert.deepEqual(log.message.map((m) => m.seq), [1, 2, 3, 4, 5, 6]);
    assert.equal(chat.state, "connected");
    chat.close();
  });

test("getToken is asked before each connection and refreshes before exp",
  async () => {
    let n = 0;
    const exp = Math.floor(Date.now() / 1000) + 31; // refresh in ~1 s
    const tok = () => "h." + Buffer.from(JSON.stringify({exp, n: ++n}))
      .toString("base64url") + ".s";
    const {chat} = newChat({getToken: async () => tok()});
    await until(() => FakeWS.all.length === 1);
    assert.match(FakeWS.all[0].url, /token=h\./);
    FakeWS.all[0].server(welcome(0));
    await until(() => FakeWS.all[0].sent.some((f) => f.type === "refresh"),
      3000);
    const r = FakeWS.all[0].sent.find((f) => f.type === "refresh");
    assert.equal(n, 2);
    assert.match(r.token, /^h\./);
    chat.close();
  });

test("unavailable and rate_limited sends are retried with the same id",
  async () => {
    const {chat} = newChat();
    await until(() => FakeWS.all.length === 1);
    const ws = FakeWS.all[0];
    ws.server(welcome(0));
    const p = chat.send("retry me");
    await until(() => ws.msgs().length === 1);
    const id = ws.msgs()[0].id;
    ws.server({type: "error", code: "unavailable", message: "x", id});
    await until(() => ws.msgs().length === 2, 2000);
    assert.equal(ws.msgs()[1].id, id);
    ws.server(env(1, "alice", "retry me", id));
    assert.equal(await p, 1);
    const q = chat.send("too big");
    await until(() => ws.msgs().length === 3);
    ws.server({type: "error", code: "too_large", message: "no",
      id: ws.msgs()[2].id});
    await assert.rejects(q, /too_large/);
    chat.close();
  });

test("end to end: seal and open, and PyNaCl's vector", async () => {
  const sodium = await racer.loadSodium(path.join(web, "vendor",
    "libsodium-wrappers.mjs"));
  const box = await racer.e2eBox("s3cret", "room", sodium);
  const body = box.seal("caf\u00e9 \u2713");
  assert.match(body, /^e2e1:[A-Za-z0-9+/]+=*$/);
  assert.equal(box.open(body), "caf\u00e9 \u2713");
  assert.equal(box.open("e2e1:AAAA"), null);
  assert.equal(box.open("plain"), null);
  const other = await racer.e2eBox("s3cret", "room2", sodium);
  assert.equal(other.open(body), null, "opened under another chat id");
  // The known answer of racerd-protocol(7).
  const lobby = await racer.e2eBox("correct horse battery staple", "lobby",
    sodium);
  assert.equal(lobby.open("e2e1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYX" +
    "hlqHn3z3jwMpF1/zI12zxTf4qYRL"), "hello");
  if (process.env.E2E_VECTOR) {
    const [secret, chatId, text, sealed] =
      JSON.parse(process.env.E2E_VECTOR);
    const b = await racer.e2eBox(secret, chatId, sodium);
    assert.equal(b.open(sealed), text);
    console.log("E2E_SEALED=" + JSON.stringify(b.seal(text)));
  }
});
