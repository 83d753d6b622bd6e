#!/usr/bin/python3
# SPDX-License-Identifier: ISC
# racerd integration tests: the web page in a real, headless Chromium.
"""Drive the chat page (contrib/web) in Debian's chromium through
chromium-driver and python3-selenium, and check what a person would see.

Usage: browser.py SCENARIO --port PORT --tmp DIR [options]

  order     two pages exchange messages; both show the same order
  kill      a worker is killed -9 under an open page: "resuming", then
            every message a racer sent meanwhile appears once, in order
  older     "Load older" pages back through history without gaps
  presence  a second page joining and leaving shows in the first's list
  e2e       two pages with one secret read each other; a third with a
            wrong one cannot; racer(1) with the secret reads them
  shot      a screenshot of the page, for people (--out FILE)

Every wait is bounded; every failed check prints "FAIL: ..." and the exit
status is 1.  Chromium's profiles live under --tmp, so that the caller can
find and stop anything left behind by pid.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from wslib import FAILS, check, fail, note

DRIVERS = []


def quit_all(*_):
    while DRIVERS:
        d = DRIVERS.pop()
        try:
            d.quit()
        except Exception:
            pass


def on_term(*_):
    quit_all()
    sys.exit(1)


class Page:
    """One browser (own profile) with the chat page open."""

    def __init__(self, a, name, width=1000, height=700):
        o = webdriver.ChromeOptions()
        o.binary_location = a.chromium
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--no-first-run",
                    "--disable-extensions", "--mute-audio",
                    "--disable-background-timer-throttling",
                    "--disable-renderer-backgrounding",
                    "--window-size=%d,%d" % (width, height),
                    "--user-data-dir=%s/chromium-%s" % (a.tmp, name)):
            o.add_argument(arg)
        svc = Service(a.chromedriver,
                      log_path=os.path.join(a.tmp, "chromedriver-%s.log" %
                                            name))
        self.d = webdriver.Chrome(service=svc, options=o)
        DRIVERS.append(self.d)
        self.d.set_script_timeout(30)
        self.name = name
        self.base = "http://127.0.0.1:%d" % a.port

    def open(self, path="/"):
        self.d.get(self.base + path)

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def join(self, chat, user=None, secret=None, token=None):
        self.open("/")
        self.wait(lambda: self.js("return !!document.getElementById"
                                  "('f-chat') && !!window.racerApp"),
                  10, "%s: page loaded" % self.name)
        f = self.d.find_element(By.ID, "f-chat")
        f.clear()
        f.send_keys(chat)
        u = self.d.find_element(By.ID, "f-user")
        u.clear()
        if user:
            u.send_keys(user)
        if secret or token:
            self.d.find_element(By.CSS_SELECTOR, "#f-more summary").click()
        if secret:
            self.d.find_element(By.ID, "f-secret").send_keys(secret)
        if token:
            self.d.find_element(By.ID, "f-token").send_keys(token)
        # Keyboard only: Enter in the form joins.
        u.send_keys(Keys.ENTER)
        return self.wait(lambda: self.state() == "connected", 20,
                         "%s: connected" % self.name)

    def state(self):
        return self.js("var a = window.racerApp; return a && a.chat ? "
                       "a.chat.state : null")

    def states(self):
        return self.js("return window.racerApp.states")

    def say(self, text):
        """Type a message and press Enter, as a person does."""
        t = self.d.find_element(By.ID, "c-input")
        t.send_keys(text)
        t.send_keys(Keys.ENTER)

    def messages(self):
        return self.js("""
            return Array.from(document.querySelectorAll('#c-log li.msg'))
              .map(li => [Number(li.dataset.seq), li.dataset.from,
                          li.querySelector('.body').textContent,
                          li.querySelector('time').textContent]);""")

    def members(self):
        return self.js("""return Array.from(document.querySelectorAll(
            '#c-members li')).map(li => [li.dataset.user,
            li.classList.contains('away')]);""")

    def markers(self):
        return self.js("""return Array.from(document.querySelectorAll(
            '#c-log li.marker')).map(li => li.textContent);""")

    def wait(self, pred, timeout, what):
        end = time.time() + timeout
        while True:
            try:
                if pred():
                    return True
            except Exception:  # a page between loads
                pass
            if time.time() > end:
                fail("timed out (%d s) waiting for: %s" % (timeout, what))
                return False
            time.sleep(0.05)

    def console_errors(self):
        try:
            return [e for e in self.d.get_log("browser")
                    if e.get("level") == "SEVERE"]
        except Exception:
            return []


def http_json(a, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (a.port, path),
                                timeout=10) as r:
        return json.load(r)


def history(a, chat):
    out, since = [], 0
    while since is not None:
        page = http_json(a, "/chats/%s/messages?since=%d&limit=1000" %
                         (chat, since))
        out += page["messages"]
        since = page.get("next")
    return out


def check_order(msgs, n, who):
    seqs = [m[0] for m in msgs]
    check(seqs == sorted(set(seqs)), "%s: seqs not increasing once each: %s"
          % (who, seqs))
    check(len(msgs) == n, "%s: %d messages, wanted %d" % (who, len(msgs), n))


# --- scenarios ---

def do_order(a):
    chat = "web-order"
    pa, pb = Page(a, "a"), Page(a, "b")
    pa.join(chat, "alice")
    pb.join(chat, "bob")
    n = 8
    for i in range(1, n + 1):
        pa.say("alice %d: caf\u00e9 <b>not bold</b>" % i)
        pb.say("bob %d" % i)
    for p in (pa, pb):
        p.wait(lambda p=p: len(p.messages()) >= 2 * n, 20,
               "%s shows %d messages" % (p.name, 2 * n))
    ma, mb = pa.messages(), pb.messages()
    check_order(ma, 2 * n, "alice's page")
    check([m[:3] for m in ma] == [m[:3] for m in mb],
          "the two pages differ:\n%s\n%s" % (ma, mb))
    hist = [(m["seq"], m["from"], m["body"]) for m in history(a, chat)]
    check([tuple(m[:3]) for m in ma] == hist,
          "the pages differ from HTTP history: %s vs %s" % (ma[:3], hist[:3]))
    check(all(m[3] for m in ma), "a message without its time: %s" % ma[:2])
    for who in ("alice", "bob"):
        got = [m[2] for m in ma if m[1] == who]
        want = [("alice %d: caf\u00e9 <b>not bold</b>" if who == "alice"
                 else "bob %d") % i for i in range(1, n + 1)]
        check(got == want, "%s's messages: %s" % (who, got))
    check(pa.js("return document.querySelectorAll('#c-log b').length") == 0,
          "a message body became HTML")
    check(pa.js("return document.querySelectorAll('#c-pending li').length")
          == 0, "sends still pending on alice's page")
    # Unread count: while alice's page is not looked at, bob's messages
    # count in her title; looking again clears it.
    pa.js("document.hasFocus = () => false;")
    pb.say("are you there?")
    pb.say("hello?")
    pa.wait(lambda: pa.d.title.startswith("(2) web-order"), 10,
            "alice's title counts 2 unread (%s)" % pa.d.title)
    pa.js("document.hasFocus = () => true;"
          "window.dispatchEvent(new Event('focus'));")
    pa.wait(lambda: pa.d.title == "web-order \u2014 racerd", 10,
            "alice's title without a count (%s)" % pa.d.title)
    note("two pages, %d messages, one order; unread count in the title" %
         (2 * n))


def regdump(a):
    out = subprocess.run([a.regdump, "/racerd-" + a.instance],
                         capture_output=True, text=True, timeout=10).stdout
    slots = {}
    for line in out.splitlines():
        w = line.split()
        if w and w[0] == "slot":
            slots[int(w[1])] = (int(w[3]), int(w[5]))
    return slots


def do_kill(a):
    chat = "web-kill"
    p = Page(a, "k")
    p.join(chat, "watcher")
    # The only connection so far is the page's: its worker has conns 1.
    busy = []
    deadline = time.time() + 10
    while time.time() < deadline:
        busy = [pid for (pid, conns) in regdump(a).values() if conns > 0]
        if len(busy) == 1:
            break
        time.sleep(0.1)
    if not check(len(busy) == 1, "cannot tell the page's worker: %s" %
                 regdump(a)):
        return
    victim = busy[0]
    # The sender goes to the other worker if it can (a few tries), so that
    # it publishes while the page is away and the resume replays.
    apart = False
    for attempt in range(8):
        out = open(os.path.join(a.tmp, "sender.out"), "w")
        racer = subprocess.Popen([a.racer, "-u", "sender",
                                  "ws://127.0.0.1:%d" % a.port, chat],
                                 stdin=subprocess.PIPE, stdout=out,
                                 stderr=subprocess.STDOUT)
        p.wait(lambda: any(u == "sender" for u, _ in p.members()), 10,
               "the sender in the page's presence list")
        slots = regdump(a)
        apart = any(pid != victim and conns > 0
                    for (pid, conns) in slots.values())
        if apart or len(slots) < 2:
            break
        racer.stdin.close()
        racer.wait(10)
        p.wait(lambda: not any(u == "sender" for u, _ in p.members()), 10,
               "the sender gone from the page's list")
    note("the sender is %s the page's worker" %
         ("apart from" if apart else "on"))
    before = len(p.messages())
    note("killing worker pid %d under the page" % victim)
    os.kill(victim, signal.SIGKILL)
    n = 30
    for i in range(1, n + 1):
        racer.stdin.write(("while away %d\n" % i).encode())
        racer.stdin.flush()
        if i == 10:
            p.wait(lambda: "resuming" in p.states(), 10,
                   "the page says resuming")
    p.wait(lambda: len(p.messages()) >= before + n, 30,
           "the page shows the %d messages" % n)
    p.wait(lambda: p.state() == "connected", 10, "connected again")
    msgs = p.messages()
    check_order(msgs, before + n, "the page")
    got = [m[2] for m in msgs if m[1] == "sender"]
    check(got == ["while away %d" % i for i in range(1, n + 1)],
          "the sender's messages on the page: %s" % got)
    st = p.states()
    check("resuming" in st and st[-1] == "connected",
          "states went %s" % st)
    check(any("Reconnected" in t for t in p.markers()),
          "no recovery marker: %s" % p.markers())
    recovered = p.js("var m = document.querySelector('#c-log li.marker');"
                     "return m ? Number(m.dataset.recovered || 0) : 0")
    if apart:
        check(recovered > 0, "nothing was replayed on the resume, though "
              "the sender published while the page was away")
    check(p.js("return document.getElementById('c-state').textContent")
          == "connected", "the state shown is not 'connected'")
    note("states %s; markers %s" % (st, p.markers()))
    racer.stdin.close()
    try:
        racer.wait(20)
    except subprocess.TimeoutExpired:
        racer.kill()
        fail("the racer did not finish")
    check(racer.returncode == 0, "the racer exited %s" % racer.returncode)
    check([m["body"] for m in history(a, chat)
           if m["from"] == "sender"] == ["while away %d" % i
                                         for i in range(1, n + 1)],
          "history does not hold each message once, in order")


def do_older(a):
    chat = a.chat or "web-older"
    total = a.count
    p = Page(a, "o")
    p.join(chat, "reader")
    p.wait(lambda: len(p.messages()) >= 50, 10, "the first page shown")
    clicks = 0
    btn = p.d.find_element(By.ID, "c-older")
    while clicks < 20:
        if not btn.is_enabled() and \
                "beginning" in btn.text:
            break
        if btn.is_enabled():
            # Keyboard: focus the button and press Enter.
            btn.send_keys(Keys.ENTER)
            clicks += 1
        time.sleep(0.15)
    p.wait(lambda: "beginning" in btn.text, 10, "the beginning reached")
    msgs = p.messages()
    check([m[0] for m in msgs] == list(range(1, total + 1)),
          "seqs shown are not 1..%d: %d shown, first %s, holes %s" %
          (total, len(msgs), [m[0] for m in msgs[:3]],
           sorted(set(range(1, total + 1)) - {m[0] for m in msgs})[:10]))
    check([m[2] for m in msgs] == ["m%d" % i for i in range(1, total + 1)],
          "bodies shown are not m1..m%d" % total)
    note("%d messages after %d 'load older'" % (len(msgs), clicks))


def do_presence(a):
    chat = "web-presence"
    pa = Page(a, "pa")
    pa.join(chat, "alice")
    pa.wait(lambda: [u for u, _ in pa.members()] == ["alice"], 10,
            "alice alone in her list")
    pb = Page(a, "pb")
    pb.join(chat, "bob")
    pa.wait(lambda: ["bob", False] in pa.members(), 10,
            "bob joins alice's list")
    pb.wait(lambda: sorted(u for u, _ in pb.members()) == ["alice", "bob"],
            10, "bob sees alice and himself")
    check(pa.js("return document.getElementById('c-count').textContent")
          == "2", "the count is not 2")
    pb.d.find_element(By.ID, "c-leave").send_keys(Keys.ENTER)
    pa.wait(lambda: [u for u, _ in pa.members()] == ["alice"], 10,
            "bob leaves alice's list")
    note("join and leave seen: %s" % pa.members())


def do_e2e(a):
    chat = "web-e2e"
    secret = a.secret
    pa, pb, pc = Page(a, "ea"), Page(a, "eb"), Page(a, "ec")
    pa.join(chat, "alice", secret=secret)
    pb.join(chat, "bob", secret=secret)
    pc.join(chat, "carol", secret="not the secret")
    check(pa.js("return !document.getElementById('c-lock').hidden"),
          "no lock shown on an encrypted chat")
    pa.say("sealed hello from alice")
    pb.say("and bob, sealed too")
    for p in (pa, pb, pc):
        p.wait(lambda p=p: len(p.messages()) >= 2, 20,
               "%s shows 2 messages" % p.name)
    for p in (pa, pb):
        check([m[1:3] for m in p.messages()] ==
              [["alice", "sealed hello from alice"],
               ["bob", "and bob, sealed too"]],
              "%s reads %s" % (p.name, p.messages()))
    check([m[2] for m in pc.messages()] ==
          ["[encrypted message it cannot read]"] * 2,
          "the wrong secret reads %s" % pc.messages())
    hist = history(a, chat)
    check(len(hist) >= 2 and all(m["body"].startswith("e2e1:")
                                 for m in hist),
          "HTTP history holds %s" % [m["body"] for m in hist])
    check(not any("alice" in m["body"] or "bob" in m["body"]
                  for m in hist), "HTTP history holds plain text")
    # racer(1) with the secret reads the browser's messages, and the
    # browsers read racer's.
    env = dict(os.environ, RACER_E2E_SECRET=secret)
    r = subprocess.run([a.racer, "-u", "term", "--json", "-n", "10",
                        "-m", "from the terminal",
                        "ws://127.0.0.1:%d" % a.port, chat], env=env,
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "racer --send exited %d: %s" %
          (r.returncode, r.stderr))
    path = os.path.join(a.tmp, "term2.out")
    with open(path, "w") as f:
        out = subprocess.Popen([a.racer, "-u", "term2", "--json", "-n",
                                "10", "-l", "ws://127.0.0.1:%d" % a.port,
                                chat], env=env, stdout=f)
    lines = []
    end = time.time() + 20
    while time.time() < end and len(lines) < 3:
        time.sleep(0.1)
        lines = []
        for line in open(path).read().splitlines():
            m = json.loads(line)
            if m.get("type") == "msg":
                lines.append((m.get("from"), m.get("body"), m.get("e2e")))
    out.kill()
    out.wait()
    check(lines == [("alice", "sealed hello from alice", True),
                    ("bob", "and bob, sealed too", True),
                    ("term", "from the terminal", True)],
          "racer with the secret read %s" % lines)
    pa.wait(lambda: len(pa.messages()) >= 3, 10, "alice sees racer's")
    check(pa.messages()[-1][1:3] == ["term", "from the terminal"],
          "alice's page read %s" % pa.messages()[-1:])
    note("e2e: pages and racer read each other; history only e2e1:")


def do_shot(a):
    w, h = (390, 780) if a.phone else (1000, 640)
    p = Page(a, "s", w, h)
    if a.chat:
        p.join(a.chat, a.user or "viewer")
        time.sleep(1.5)
    else:
        p.open("/")
        time.sleep(1)
    p.d.save_screenshot(a.out)
    note("screenshot in %s" % a.out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    ap.add_argument("--racer", default="racer")
    ap.add_argument("--regdump", default="regdump")
    ap.add_argument("--instance", default="")
    ap.add_argument("--secret", default="s3cret for the web test")
    ap.add_argument("--chat", default="")
    ap.add_argument("--user", default="")
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--out", default="page.png")
    ap.add_argument("--phone", action="store_true")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, on_term)
    fn = {"order": do_order, "kill": do_kill, "older": do_older,
          "presence": do_presence, "e2e": do_e2e, "shot": do_shot}.get(a.scenario)
    if fn is None:
        ap.error("unknown scenario %s" % a.scenario)
    try:
        fn(a)
    except Exception as e:
        import traceback
        traceback.print_exc()
        fail("%s: %s" % (type(e).__name__, e))
    finally:
        quit_all()
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
