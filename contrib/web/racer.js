// racer.js -- the browser client library of racerd.
//
// One dependency-free ES module: import it from racerd itself
// (`import racer from "/racer.js"`) or copy it into your application.
//
//   const chat = racer.connect("wss://chat.example", "lobby", {user: "alice"});
//   chat.on("message", (m) => console.log(m.seq, m.from, m.body));
//   const seq = await chat.send("hello");
//
// It keeps its place by itself, as the command-line client racer(1) does:
// a connection that drops is resumed with the session token and the last
// seq seen, at once for close codes 4200-4299 and 1001, with exponential
// back-off and jitter otherwise (slower for 4100-4199), never for
// 4000-4099.  Messages are delivered to the application once each, in seq
// order, across reconnects.  A send carries an id made here, and is sent
// again with the same id after a reconnect, so the server stores it once.
//
// End-to-end encryption: with a `secret`, bodies are sealed before they
// leave and opened when they arrive ("e2e1:" bodies, XChaCha20-Poly1305
// with an Argon2id key, interoperable with racer(1)); the libsodium build
// under vendor/ is loaded only then.
//
// SPDX-License-Identifier: ISC

const CLOSE_NORMAL = 1000;
const CLOSE_GOING_AWAY = 1001;
const BACKOFF_BASE = 250; // ms, the first delay after a loss
const BACKOFF_SLOW = 1000; // ms, the first after 4100-4199
const BACKOFF_MAX = 15000; // ms
const RETRY_FIRST = 500; // ms, a send refused as "unavailable"
const RETRY_MAX = 8000;
const WELCOME_TIMEOUT = 10000; // ms without a welcome: try again
const REFRESH_EARLY = 30; // s before exp that a token is refreshed
const PAGE_MAX = 1000; // the server's largest history page

/** The states a chat goes through, in the `state` event. */
export const STATES = Object.freeze(["connecting", "connected", "resuming",
  "offline", "closed"]);

/**
 * What a close code asks of a client (racerd's close-code classes).
 * @param {number} code the WebSocket close code
 * @returns {"stop"|"resume"|"backoff"|"slow"} stop: do not reconnect;
 *   resume: reconnect and resume at once; slow: back off from a longer
 *   first delay; backoff: back off
 */
export function closeAction(code) {
  if (code >= 4000 && code <= 4099) return "stop";
  if ((code >= 4200 && code <= 4299) || code === CLOSE_GOING_AWAY)
    return "resume";
  if (code >= 4100 && code <= 4199) return "slow";
  if ([1000, 1002, 1003, 1007, 1008, 1009, 1010].includes(code))
    return "stop";
  return "backoff";
}

/**
 * A reconnect delay: exponential from base per attempt, capped at 15 s,
 * then a random point in its upper half (jitter).
 * @param {number} attempt 0 for the first retry
 * @param {number} [base=250] the first delay, in milliseconds
 * @param {function(): number} [random=Math.random] a number in [0, 1)
 * @returns {number} milliseconds
 */
export function backoff(attempt, base = BACKOFF_BASE, random = Math.random) {
  let d = base;
  for (let i = 0; i < attempt && d < BACKOFF_MAX; i++) d *= 2;
  d = Math.min(d, BACKOFF_MAX);
  return Math.floor(d / 2 + random() * (d / 2 + 1));
}

/**
 * The WebSocket and HTTP bases for a server address.  Accepts ws://,
 * wss://, http://, https:// (a path is kept as a prefix, as behind a
 * reverse proxy), or "" for the page's own origin.
 * @param {string} url
 * @param {{protocol: string, host: string}} [here=globalThis.location]
 * @returns {{ws: string, http: string}} bases without a trailing slash
 */
export function endpoints(url, here = globalThis.location) {
  let u = url || "";
  if (u === "" || u.startsWith("/")) {
    if (!here) throw new Error("racer: no server address");
    u = (here.protocol === "https:" ? "https://" : "http://") + here.host + u;
  }
  const m = /^(wss?|https?):\/\/([^/?#]+)([^?#]*)$/i.exec(u);
  if (!m) throw new Error("racer: bad server address " + url);
  const secure = /^(wss|https)$/i.test(m[1]);
  const path = m[3].replace(/\/+$/, "");
  return {
    ws: (secure ? "wss://" : "ws://") + m[2] + path,
    http: (secure ? "https://" : "http://") + m[2] + path,
  };
}

/**
 * Whether s is a valid chat or user id (1 to max bytes of
 * [A-Za-z0-9._:-], not "." or "..").
 * @param {string} s
 * @param {number} [max=128]
 * @returns {boolean}
 */
export function validId(s, max = 128) {
  return typeof s === "string" && s.length >= 1 && s.length <= max &&
    /^[A-Za-z0-9._:-]+$/.test(s) && s !== "." && s !== "..";
}

/**
 * The `exp` claim (seconds since the epoch) of a JWT, without checking
 * it: the server does that.
 * @param {string} token
 * @returns {number|null} null if the token has none or is not a JWT
 */
export function tokenExpiry(token) {
  try {
    const part = String(token).split(".")[1];
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(b64 + "===".slice((b64.length + 3) % 4)));
    return typeof claims.exp === "number" ? claims.exp : null;
  } catch (e) {
    return null;
  }
}

/** A fresh client message id: "c-" and 16 hex digits. */
export function makeId() {
  const b = new Uint8Array(8);
  globalThis.crypto.getRandomValues(b);
  return "c-" + Array.from(b, (x) => x.toString(16).padStart(2, "0"))
    .join("");
}

// --- End to end -----------------------------------------------------------

let sodiumLoad = null;

/**
 * Load libsodium (the sumo build vendored beside this file), once.
 * @param {string} [from] URL of libsodium-wrappers.mjs
 * @returns {Promise<object>} the ready libsodium object
 */
export function loadSodium(from) {
  if (!sodiumLoad) {
    const src = from || new URL("vendor/libsodium-wrappers.mjs",
      import.meta.url).href;
    sodiumLoad = import(src).then(async (mod) => {
      const s = mod.default || mod;
      await s.ready;
      return s;
    });
    sodiumLoad.catch(() => { sodiumLoad = null; });
  }
  return sodiumLoad;
}

/**
 * A chat's end-to-end box: the key derived from the secret (Argon2id13,
 * opslimit 2, memlimit 64 MiB, salt: the first 16 bytes of the unkeyed
 * BLAKE2b-256 of the chat id), and functions that seal and open bodies.
 * @param {string} secret the chat secret shared by its members
 * @param {string} chatId
 * @param {object} [sodium] a ready libsodium; loaded when absent
 * @returns {Promise<{seal: function(string): string,
 *   open: function(string): (string|null)}>}
 */
export async function e2eBox(secret, chatId, sodium) {
  const s = sodium || await loadSodium();
  const ad = s.from_string(chatId);
  const salt = s.crypto_generichash(32, ad, null).subarray(0, 16);
  const key = s.crypto_pwhash(32, s.from_string(secret), salt, 2,
    64 * 1024 * 1024, s.crypto_pwhash_ALG_ARGON2ID13);
  const NPUB = 24;
  return {
    seal(text) {
      const nonce = s.randombytes_buf(NPUB);
      const ct = s.crypto_aead_xchacha20poly1305_ietf_encrypt(
        s.from_string(text), ad, null, nonce, key);
      const box = new Uint8Array(NPUB + ct.length);
      box.set(nonce);
      box.set(ct, NPUB);
      return "e2e1:" + s.to_base64(box, s.base64_variants.ORIGINAL);
    },
    open(body) {
      if (typeof body !== "string" || !body.startsWith("e2e1:")) return null;
      try {
        const box = s.from_base64(body.slice(5), s.base64_variants.ORIGINAL);
        if (box.length < NPUB + 16) return null;
        const pt = s.crypto_aead_xchacha20poly1305_ietf_decrypt(null,
          box.subarray(NPUB), ad, box.subarray(0, NPUB), key);
        return new TextDecoder("utf-8", {fatal: true}).decode(pt);
      } catch (e) {
        return null;
      }
    },
  };
}

// --- The chat ------------------------------------------------------------

/**
 * One chat on one racerd (or a cluster behind one address).  Made by
 * connect(); emits events to the functions given to on().
 *
 * Events and what they carry:
 * - `message` (envelope): {chat, seq, id, from, ts, body}, in seq order,
 *   once each; `replayed: true` when it came with a resume or gap
 *   recovery; with a secret, `e2e: true` and the opened body, or
 *   `unreadable: true` and the body as it came.
 * - `presence` ({event: "join"|"away"|"back"|"leave", user}).
 * - `resumed` ({from, to, replayed, complete}) after a resume or a join
 *   after a known seq.
 * - `gap` ({from, to, recovered, lost}) when a resume could not replay:
 *   what history still had is delivered (as `replayed` messages) before.
 * - `state` ("connecting"|"connected"|"resuming"|"offline"|"closed").
 * - `welcome` (the welcome frame), `error` ({code, message, id?}).
 */
export class Chat {
  /**
   * Use connect() instead.
   * @param {string} url
   * @param {string} chatId
   * @param {object} opts see connect()
   */
  constructor(url, chatId, opts = {}) {
    if (!validId(chatId)) throw new Error("racer: bad chat id " + chatId);
    if (opts.user != null && !validId(opts.user, 64))
      throw new Error("racer: bad user id " + opts.user);
    this.chat = chatId;
    this.user = opts.user || null;
    this.state = "closed";
    this.seq = 0; // last seq delivered
    this.epoch = null;
    this.session = null;
    this._base = endpoints(url, opts.location);
    this._token = opts.token || null;
    this._getToken = opts.getToken || null;
    this._secret = opts.secret || null;
    this._WebSocket = opts.WebSocket || globalThis.WebSocket;
    this._fetch = opts.fetch || ((...a) => globalThis.fetch(...a));
    this._handlers = new Map();
    this._pending = new Map(); // id -> {frame, resolve, reject, sent}
    this._ws = null;
    this._attempts = 0;
    this._timer = null;
    this._refreshTimer = null;
    this._resuming = false; // this connection resumes a position
    this._replaying = false; // between welcome and resumed
    this._held = null; // live messages held while a gap is filled
    this._joinedOnce = false;
    this._live = false; // welcomed on this connection
    this._ackTimer = null;
    this._closed = false;
    this._box = null;
    this._ready = this._secret ?
      e2eBox(this._secret, chatId, opts.sodium) : Promise.resolve(null);
    this._ready.then((box) => { this._box = box; }, (e) => {
      this._emit("error", {code: "e2e", message: "cannot load end-to-end " +
        "encryption: " + e.message});
      this._finish();
    });
    this._ready.then(() => this._open(), () => {});
  }

  /**
   * Listen to an event.
   * @param {string} event message, presence, resumed, gap, state,
   *   welcome or error
   * @param {function(*)} fn
   * @returns {function()} a function that removes the listener
   */
  on(event, fn) {
    if (!this._handlers.has(event)) this._handlers.set(event, new Set());
    this._handlers.get(event).add(fn);
    return () => this.off(event, fn);
  }

  /**
   * Stop listening.
   * @param {string} event
   * @param {function(*)} fn
   */
  off(event, fn) {
    const set = this._handlers.get(event);
    if (set) set.delete(fn);
  }

  /**
   * Send a message.  It is sealed first when the chat has a secret, and
   * sent again with the same id after a reconnect until the server echoes
   * it, so it is stored once.
   * @param {string} body the text
   * @returns {Promise<number>} the message's seq, once the echo arrived
   *   (that is, once it is in history)
   */
  send(body) {
    if (this._closed) return Promise.reject(new Error("racer: closed"));
    if (typeof body !== "string" || body.length === 0)
      return Promise.reject(new Error("racer: a message is a non-empty " +
        "string"));
    return this._ready.then(() => new Promise((resolve, reject) => {
      if (this._closed) {
        reject(new Error("racer: closed"));
        return;
      }
      const id = makeId();
      const wire = this._box ? this._box.seal(body) : body;
      const frame = JSON.stringify({type: "msg", body: wire, id});
      this._pending.set(id, {frame, resolve, reject, sent: false, delay: 0});
      this._pump();
    }));
  }

  /**
   * Read a page of history over HTTP: the newest `limit` messages before
   * seq `before` (or the newest of all), oldest first, opened when the
   * chat has a secret.  Not delivered as `message` events.
   * @param {{before?: number, since?: number, limit?: number}} [q]
   * @returns {Promise<{messages: object[], latest: number, epoch: string,
   *   next: (number|null)}>}
   */
  async history(q = {}) {
    await this._ready;
    const p = new URLSearchParams();
    if (q.before != null) p.set("before", String(q.before));
    else if (q.since != null) p.set("since", String(q.since));
    else p.set("before", String(Number.MAX_SAFE_INTEGER));
    p.set("limit", String(Math.min(q.limit || 100, PAGE_MAX)));
    const headers = {};
    const token = await this._currentToken(false);
    if (token) headers.Authorization = "Bearer " + token;
    const res = await this._fetch(this._base.http + "/chats/" +
      encodeURIComponent(this.chat) + "/messages?" + p, {headers});
    let page;
    try {
      page = await res.json();
    } catch (e) {
      page = {};
    }
    if (!res.ok) {
      const err = new Error("racer: history: " + (page.error || res.status));
      err.status = res.status;
      throw err;
    }
    page.messages = (page.messages || []).map((m) => this._opened(m));
    return page;
  }

  /**
   * Who is in the chat now, on every host, over HTTP.
   * @returns {Promise<Array<{user: string, state: string}>>} state is
   *   "connected" or "away"
   */
  async presence() {
    const headers = {};
    const token = await this._currentToken(false);
    if (token) headers.Authorization = "Bearer " + token;
    const res = await this._fetch(this._base.http + "/chats/" +
      encodeURIComponent(this.chat) + "/presence", {headers});
    if (!res.ok) throw new Error("racer: presence: " + res.status);
    const o = await res.json();
    return o.members || [];
  }

  /**
   * Close the chat for good: the session ends (close code 1000) and the
   * server stores the user's position.  Sends not yet acknowledged are
   * rejected.
   */
  close() {
    if (this._closed) return;
    if (this._ws) {
      try {
        this._ws.close(CLOSE_NORMAL, "bye");
      } catch (e) { /* already closing */ }
    }
    this._finish();
  }

  // --- internals ---

  _emit(event, arg) {
    const set = this._handlers.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(arg);
      } catch (e) {
        setTimeout(() => { throw e; });
      }
    }
  }

  _setState(s) {
    if (this.state === s) return;
    this.state = s;
    this._emit("state", s);
  }

  _finish() {
    this._closed = true;
    clearTimeout(this._timer);
    clearTimeout(this._refreshTimer);
    this._ws = null;
    for (const [, p] of this._pending)
      p.reject(new Error("racer: closed before it was acknowledged"));
    this._pending.clear();
    this._setState("closed");
  }

  async _currentToken(fresh) {
    if (this._getToken && (fresh || !this._token)) {
      try {
        this._token = await this._getToken();
      } catch (e) {
        this._emit("error", {code: "token", message: String(e.message || e)});
      }
    }
    return this._token;
  }

  _query() {
    const p = new URLSearchParams();
    if (this.user) p.set("user", this.user);
    if (this._token) p.set("token", this._token);
    this._resuming = this._joinedOnce;
    if (this.session) {
      p.set("session", this.session);
      p.set("last", String(this.seq));
    } else if (this._joinedOnce) {
      p.set("since", String(this.seq));
    }
    if (this._joinedOnce && this.epoch) p.set("epoch", this.epoch);
    return p.toString();
  }

  async _open() {
    if (this._closed) return;
    this._setState(this._joinedOnce ? "resuming" : "connecting");
    if (this._getToken) await this._currentToken(true);
    if (this._closed) return;
    const q = this._query();
    const url = this._base.ws + "/ws/" + encodeURIComponent(this.chat) +
      (q ? "?" + q : "");
    let ws;
    try {
      ws = new this._WebSocket(url);
    } catch (e) {
      this._emit("error", {code: "connect", message: String(e.message)});
      this._finish();
      return;
    }
    this._ws = ws;
    let welcomed = false;
    const tried = !!this.session;
    clearTimeout(this._timer);
    this._timer = setTimeout(() => {
      if (!welcomed && this._ws === ws) ws.close(3000, "no welcome");
    }, WELCOME_TIMEOUT);
    ws.onmessage = (ev) => {
      if (this._ws !== ws) return;
      let f;
      try {
        f = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (f.type === "welcome") welcomed = true;
      this._frame(f);
    };
    ws.onclose = (ev) => {
      if (this._ws !== ws) return;
      this._ws = null;
      this._lost(ev.code, ev.reason, welcomed, tried);
    };
  }

  _lost(code, reason, welcomed, triedSession) {
    clearTimeout(this._timer);
    clearTimeout(this._refreshTimer);
    for (const p of this._pending.values()) p.sent = false;
    this._live = false;
    this._replaying = false;
    if (this._held) this._releaseHeld();
    if (this._closed) return;
    const action = closeAction(code);
    if (action === "stop") {
      this._emit("error", {code: "closed", message: "closed by the " +
        "server: " + code + (reason ? " " + reason : ""), close: code});
      this._finish();
      return;
    }
    // A browser cannot see why an upgrade failed: a session that did not
    // get back in (expired, or its worker's store record gone) is dropped,
    // and the next try joins after the last seq instead.
    if (!welcomed && triedSession) this.session = null;
    let ms;
    if (action === "resume")
      ms = this._attempts === 0 ? 0 : backoff(this._attempts - 1);
    else if (action === "slow")
      ms = backoff(this._attempts, BACKOFF_SLOW);
    else ms = backoff(this._attempts);
    this._attempts++;
    this._setState(this._joinedOnce ? "resuming" : "offline");
    if (welcomed || this._joinedOnce || this._getToken) {
      this._timer = setTimeout(() => this._open(), ms);
      return;
    }
    // Never in: ask over HTTP whether the credentials are the reason (a
    // browser hides the upgrade's 401 or 403); those do not get better
    // by trying again without a getToken.
    this._probe().then((status) => {
      if (this._closed) return;
      if (status === 401 || status === 403) {
        this._emit("error", {code: status === 401 ? "unauthorized" :
          "forbidden", message: status === 401 ? "the server wants a " +
          "valid token" : "not allowed into this chat", status});
        this._finish();
        return;
      }
      this._timer = setTimeout(() => this._open(), ms);
    });
  }

  async _probe() {
    try {
      const headers = {};
      if (this._token) headers.Authorization = "Bearer " + this._token;
      const res = await this._fetch(this._base.http + "/chats/" +
        encodeURIComponent(this.chat) + "/presence", {headers});
      return res.status;
    } catch (e) {
      return 0;
    }
  }

  _frame(f) {
    switch (f.type) {
      case "welcome": return this._welcome(f);
      case "msg": return this._message(f, this._replaying);
      case "presence": return this._emit("presence",
        {event: f.event, user: f.user});
      case "resumed": return this._resumed(f);
      case "error": return this._error(f);
      case "refreshed": return this._scheduleRefresh();
      default: return undefined;
    }
  }

  _welcome(f) {
    if (this.epoch && f.epoch !== this.epoch) {
      // The chat's history was reset: seqs start again.
      this.seq = 0;
    }
    this.epoch = f.epoch;
    this.session = f.session;
    this.user = f.user;
    if (!this._joinedOnce) this.seq = Math.max(this.seq, f.seq || 0);
    this._replaying = this._resuming;
    this._joinedOnce = true;
    this._attempts = 0;
    this._live = true;
    clearTimeout(this._timer);
    this._emit("welcome", f);
    if (!this._replaying) this._setState("connected");
    this._scheduleRefresh();
    for (const p of this._pending.values()) p.sent = false;
    this._pump();
  }

  _opened(m) {
    if (!this._box) return m;
    const text = this._box.open(m.body);
    if (text != null) return {...m, body: text, e2e: true};
    if (typeof m.body === "string" && m.body.startsWith("e2e1:"))
      return {...m, e2e: false, unreadable: true};
    return {...m, e2e: false};
  }

  _message(m, replayed) {
    const p = this._pending.get(m.id);
    if (p && m.from === this.user) {
      this._pending.delete(m.id);
      p.resolve(m.seq);
    }
    if (this._held) {
      this._held.push(m);
      return;
    }
    if (!(m.seq > this.seq)) return;
    this.seq = m.seq;
    const out = this._opened(m);
    if (replayed) out.replayed = true;
    this._emit("message", out);
    this._ack();
  }

  _ack() {
    if (this._ackTimer) return;
    this._ackTimer = setTimeout(() => {
      this._ackTimer = null;
      this._sendRaw(JSON.stringify({type: "ack", seq: this.seq}));
    }, 1000);
  }

  async _resumed(f) {
    this._replaying = false;
    this._emit("resumed", {from: f.from, to: f.to, replayed: f.replayed,
      complete: f.complete});
    if (f.complete || !(f.to > this.seq)) {
      this._setState("connected");
      return;
    }
    // Not replayable: hold live traffic and read what history still has.
    const from = this.seq;
    const to = f.to;
    this._held = [];
    let recovered = 0;
    try {
      let since = from;
      while (since < to) {
        const page = await this.history({since, limit: PAGE_MAX});
        const ms = page.messages.filter((m) => m.seq > since && m.seq <= to);
        if (ms.length === 0) break;
        for (const m of ms) {
          if (m.seq > this.seq) {
            this.seq = m.seq;
            recovered++;
            this._emit("message", {...m, replayed: true});
          }
        }
        since = ms[ms.length - 1].seq;
      }
    } catch (e) {
      this._emit("error", {code: "history", message: e.message});
    }
    this._emit("gap", {from, to, recovered, lost: to - from - recovered});
    this._releaseHeld();
    if (this._ws) this._setState("connected");
  }

  _releaseHeld() {
    const held = this._held || [];
    this._held = null;
    for (const m of held) this._message(m, false);
  }

  _error(f) {
    const p = f.id != null ? this._pending.get(f.id) : null;
    if (p && (f.code === "unavailable" || f.code === "rate_limited")) {
      p.sent = false;
      p.delay = Math.min(p.delay ? p.delay * 2 : RETRY_FIRST, RETRY_MAX);
      setTimeout(() => this._pump(), p.delay);
    } else if (p) {
      this._pending.delete(f.id);
      const err = new Error("racer: refused: " + f.code + ": " + f.message);
      err.code = f.code;
      p.reject(err);
    }
    this._emit("error", {code: f.code, message: f.message, id: f.id});
  }

  _sendRaw(s) {
    const ws = this._ws;
    if (!ws || ws.readyState !== 1) return false;
    try {
      ws.send(s);
      return true;
    } catch (e) {
      return false;
    }
  }

  _pump() {
    if (!this._live) return;
    for (const p of this._pending.values()) {
      if (p.sent) continue;
      if (!this._sendRaw(p.frame)) return;
      p.sent = true;
    }
  }

  _scheduleRefresh() {
    clearTimeout(this._refreshTimer);
    if (!this._getToken || !this._token) return;
    const exp = tokenExpiry(this._token);
    if (exp == null) return;
    // setTimeout takes at most 2^31-1 ms; a later refresh is re-armed.
    const ms = Math.min(2147483647,
      Math.max(1000, (exp - REFRESH_EARLY) * 1000 - Date.now()));
    this._refreshTimer = setTimeout(async () => {
      const t = await this._currentToken(true);
      if (t) this._sendRaw(JSON.stringify({type: "refresh", token: t}));
      this._scheduleRefresh();
    }, ms);
  }
}

/**
 * Join a chat and stay in it until close().
 * @param {string} url the server: ws://, wss://, http:// or https://
 *   host[:port] (a path is a prefix), or "" for the page's own origin
 * @param {string} chatId the chat id
 * @param {object} [opts]
 * @param {string} [opts.user] the user id when the server runs without
 *   tokens (otherwise the token's subject)
 * @param {string} [opts.token] a JWT
 * @param {function(): (string|Promise<string>)} [opts.getToken] returns a
 *   fresh JWT; called before every connection and resume, and before the
 *   token expires (then sent in a "refresh" frame)
 * @param {string} [opts.secret] the chat secret: end-to-end encryption on
 * @returns {Chat}
 */
export function connect(url, chatId, opts = {}) {
  return new Chat(url, chatId, opts);
}

export default {connect, Chat, STATES, closeAction, backoff, endpoints,
  validId, tokenExpiry, makeId, loadSodium, e2eBox};
