"""End-to-end test of the shared budget and the failure handling of issue 5, on the local stack
(embedded Kafka, redis-server with an append-only file, the Jira emulator) with workers this
script starts itself:

  1. Retry-After: a 503 and a 429 carrying Retry-After: 2 delay the retry by at least 2 s;
  2. quarantine: a run of 401s from SCIM quarantines the site (a site.state record on the
     results and audit topics, /readyz 503, nothing dead-lettered, almost no calls while it
     lasts); when the credentials work again a probe ends it and every parked event succeeds;
  3. SIGTERM while calls wait for tokens of a small budget: the worker drains and exits;
  4. Redis loss: redis-server killed mid-run and restarted with its data: the worker pauses,
     resumes, and every event ends with one result, no user created twice.

Run by test_limits.sh (ctest integration.limits) with JP_SOURCE_DIR and JP_BUILD_DIR set.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import worker_e2e as w  # noqa: E402  (shared helpers: consume, wait_for, check, ...)


def put(env, path, body):
    r = urllib.request.Request(env["EMULATOR_CONTROL_URL"] + path, method="PUT",
                               data=json.dumps(body).encode(),
                               headers={"Content-Type": "application/json"})
    urllib.request.urlopen(r, timeout=10).read()


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def metric(text, name):
    m = re.search(r"(?m)^" + re.escape(name) + r" (\S+)$", text)
    return float(m.group(1)) if m else None


class Worker:
    """A worker with its own group, events topic and metrics port."""

    def __init__(self, tmp, base, name, extra):
        cfg = re.sub(r'(?m)^(\s*group:).*$', r'\1 "%s"' % name, base)
        cfg = re.sub(r'(?m)^(\s*events:).*$', r'\1 "%s.events"' % name, cfg)
        # Port 0: the worker binds a free port itself and logs it (a port probed free here
        # could be taken by a neighbouring test before the worker binds it).
        self._port = None
        cfg = re.sub(r'(?m)^(\s*listen:).*$', r'\1 "127.0.0.1:0"', cfg)
        cfg = re.sub(r'(?m)^(\s*bootstrap\.servers:.*)$', r'\1\n  session.timeout.ms: 6000', cfg)
        cfg = re.sub(r'(?m)^(\s*instance_id:).*$', r'\1 "%s"' % name, cfg)
        cfg += extra
        self.topic = name + ".events"
        self.path = os.path.join(tmp, name + ".yaml")
        self.log = os.path.join(tmp, name + ".log")
        with open(self.path, "w") as f:
            f.write(cfg)
        os.chmod(self.path, 0o600)
        self.proc = subprocess.Popen([w.WORKER, "--config", self.path], stderr=open(self.log, "w"))

    @property
    def port(self):
        """The metrics port, from the worker's start-up line."""
        def logged():
            with open(self.log) as f:
                m = re.search(r"http on port (\d+)", f.read())
            return int(m.group(1)) if m else None
        if self._port is None:
            self._port = w.wait_for("%s's start-up line" % self.path, logged, 30)
            if self._port is None:
                raise RuntimeError("worker %s did not log its port (see %s)" % (self.path,
                                                                                  self.log))
        return self._port

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def metrics(self):
        return http_get(self.url("/metrics"))[1]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


def produce(env, topic, events):
    lines = "".join(json.dumps(e) + "\n" for e in events)
    subprocess.run([w.PRODUCE, "-q", "-b", env["KAFKA_BOOTSTRAP"], "-t", topic, "-"],
                   input=lines, text=True, check=True, timeout=60)


def create(n, login):
    return w.event(n, "account.create", login, {"login": login, "email": login})


def scim_requests(env, status):
    c = w.emulator(env, "/counters")
    return sum(r["count"] for r in c["requests"]
               if r["route"].startswith("/scim/") and r["status"] == status)


def site_states(env, topic):
    return [rec for _, rec in w.consume(env, topic)
            if rec and rec.get("type") == "com.jiraprov.site.state"]


def retry_after(env, tmp, base):
    worker = Worker(tmp, base, "retryafter", "retry:\n  base_delay_ms: 50\n  max_delay_ms: 100\n")
    try:
        put(env, "/faults", [
            {"path": "/scim/directory/*/Users", "method": "POST", "kind": "error",
             "status": 503, "retry_after": 2, "times": 1},
        ])
        ev = create(2001, "ra-503@demo.example")
        produce(env, worker.topic, [ev])
        res = w.wait_for("the 503 event's result",
                         lambda: w.results_by_id(env).get(ev["id"]), timeout=60) or [{}]
        w.check("a 503 with Retry-After: 2 is retried after at least 2 s, then succeeds",
                res[0].get("status") == "succeeded" and res[0].get("attempts") == 2 and
                res[0].get("durationMs", 0) >= 2000, res[0])
        put(env, "/faults", [
            {"path": "/scim/directory/*/Users", "method": "POST", "kind": "rate_limit",
             "retry_after": 2, "times": 1},
        ])
        ev = create(2002, "ra-429@demo.example")
        produce(env, worker.topic, [ev])
        res = w.wait_for("the 429 event's result",
                         lambda: w.results_by_id(env).get(ev["id"]), timeout=60) or [{}]
        w.check("a 429 with Retry-After: 2 is retried after at least 2 s, then succeeds",
                res[0].get("status") == "succeeded" and res[0].get("attempts") == 2 and
                res[0].get("durationMs", 0) >= 2000, res[0])
        text = worker.metrics()
        w.check("the 429 set a shared cool-down (metrics)",
                (metric(text, "jiraprov_ratelimit_cooldowns_set_total") or 0) >= 1)
    finally:
        put(env, "/faults", [])
        worker.stop()


def quarantine(env, tmp, base):
    extra = ("rate_limits:\n  quarantine_after: 3\n  quarantine_probe_s: 2\n"
             "retry:\n  max_attempts: 3\n")
    worker = Worker(tmp, base, "quarantine", extra)
    try:
        put(env, "/faults", [{"path": "/scim/*", "kind": "error", "status": 401}])
        evs = [create(3000 + i, "q-%d@demo.example" % i) for i in range(12)]
        produce(env, worker.topic, evs)
        states = w.wait_for("a quarantined site.state record",
                            lambda: [s for s in site_states(env, env["TOPIC_RESULTS"])
                                     if s["data"]["state"] == "quarantined"], timeout=60) or []
        w.check("the quarantine is published on the results topic",
                len(states) == 1 and states[0]["data"]["site"] == "demo" and
                states[0]["data"]["api"] == "scim", states)
        w.check("and in the audit trail (site.quarantined)",
                w.wait_for("audit site.quarantined",
                           lambda: [r for _, r in w.consume(env, env["TOPIC_AUDIT"])
                                    if r and r.get("data", {}).get("operation") ==
                                    "site.quarantined"], timeout=20))
        ready = w.wait_for("/readyz says every site is quarantined",
                           lambda: (r := http_get(worker.url("/readyz")))[0] == 503 and
                           "quarantined" in r[1], timeout=20)
        w.check("/readyz is 503 while the only site is quarantined", ready)
        refused = scim_requests(env, 401)
        time.sleep(5)  # a quarantine is the absence of calls: measured over a fixed span
        during = scim_requests(env, 401) - refused
        w.check("while quarantined only probes reach the site (at most one per 2 s)",
                during <= 4, during)
        ids = [e["id"] for e in evs]
        res = w.results_by_id(env)
        w.check("nothing is answered or dead-lettered while the site is quarantined "
                "(max_attempts 3 notwithstanding)", not any(i in res for i in ids))
        w.check("the gauge shows the quarantined site",
                metric(worker.metrics(),
                       'jiraprov_site_quarantined{site="demo",api="scim"}') == 1)
        put(env, "/faults", [])
        res = w.wait_for("every parked event's result",
                         lambda: (r := w.results_by_id(env)) and all(i in r for i in ids) and r,
                         timeout=60) or {}
        w.check("after recovery every parked event succeeds",
                all(res.get(i, [{}])[0].get("status") == "succeeded" for i in ids),
                {i: res.get(i, [{}])[0].get("status") for i in ids})
        w.check("the end of the quarantine is published",
                w.wait_for("an active site.state record",
                           lambda: [s for s in site_states(env, env["TOPIC_RESULTS"])
                                    if s["data"]["state"] == "active"], timeout=20))
        w.check("/readyz is 200 again",
                w.wait_for("ready", lambda: http_get(worker.url("/readyz"))[0] == 200,
                           timeout=20))
        dlq = [rec for _, rec in w.consume(env, env["TOPIC_DLQ"])
               if rec and rec.get("data", {}).get("eventId") in ids]
        w.check("no event of the quarantined site was dead-lettered", not dlq, len(dlq))
    finally:
        put(env, "/faults", [])
        w.check("the quarantine worker exits 0", worker.stop() == 0)


def redis_loss(env, tmp, base, stack):
    worker = Worker(tmp, base, "redisloss", "")
    restarted = None
    try:
        # Slow Jira down a little so that the run is long enough to lose Redis in the middle.
        put(env, "/faults", [{"path": "/scim/*", "kind": "latency", "latency_ms": 20}])
        evs = [create(4000 + i, "rl-%d@demo.example" % i) for i in range(400)]
        produce(env, worker.topic, evs)
        ids = [e["id"] for e in evs]
        w.wait_for("some results", lambda: len([i for i in w.results_by_id(env) if i in ids]) >= 40,
                   timeout=60)
        pid = int(open(os.path.join(stack, "redis.pid")).read())
        port = env["REDIS_URL"].rsplit(":", 1)[1].split("/")[0]
        # As up.sh --redis-persist started it (its title hides the arguments).
        cmdline = ["redis-server", "--bind", "127.0.0.1", "--port", port, "--daemonize", "no",
                   "--logfile", "", "--dir", os.path.join(stack, "redis"), "--appendonly", "yes",
                   "--appendfsync", "always"]
        os.kill(pid, signal.SIGKILL)
        paused = w.wait_for("the worker pauses",
                            lambda: (m := worker.metrics()) and
                            metric(m, "jiraprov_redis_up") == 0 and
                            metric(m, "jiraprov_consumption_paused") == 1, timeout=20)
        w.check("Redis lost: the worker stops taking events (redis_up 0, paused 1)", paused)
        w.check("and is not ready", http_get(worker.url("/readyz"))[0] == 503)
        time.sleep(1)  # Redis stays away for a while: the outage being tested
        restarted = subprocess.Popen(cmdline,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        res = w.wait_for("every event's result after Redis came back",
                         lambda: (r := w.results_by_id(env)) and all(i in r for i in ids) and r,
                         timeout=120) or {}
        statuses = {i: {x["status"] for x in res.get(i, [])} for i in ids}
        w.check("every event has a result, none failed",
                all(s and "failed" not in s for s in statuses.values()),
                {i: s for i, s in statuses.items() if not s or "failed" in s})
        state = w.emulator(env, "/state")
        logins = [u.get("userName") for u in state["users"]]
        created = [e["data"]["login"] for e in evs]
        w.check("every user exists exactly once", all(logins.count(x) == 1 for x in created))
        muts = w.emulator(env, "/counters")["mutations"].get("user", {})
        twice = [k for k, v in muts.items() if v.get("create", 0) > 1]
        w.check("no user was created twice", not twice, twice[:5])
    finally:
        put(env, "/faults", [])
        w.check("the Redis-loss worker exits 0", worker.stop() == 0)
        if restarted:
            restarted.terminate()
            restarted.wait(timeout=30)


def stop_while_waiting(env, tmp, base):
    """SIGTERM while calls wait for tokens: they are released (parked, due at once) and
    nothing may start again; the worker must still drain and exit (it once spun its loop on
    the parked items' wake-up timer instead)."""
    worker = Worker(tmp, base, "stopwait", "rate_limits:\n  post_per_s: 2\n")
    try:
        produce(env, worker.topic,
                [create(6000 + i, "sw-%03d@demo.example" % i) for i in range(300)])
        waiting = w.wait_for("calls waiting for a token",
                             lambda: (metric(worker.metrics(), "jiraprov_ratelimit_waiting") or 0)
                             > 0, timeout=60)
        w.check("calls wait for tokens of a 2/s budget", waiting)
        t0 = time.monotonic()
        worker.proc.terminate()
        try:
            rc = worker.proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            rc = None
        w.check("SIGTERM with calls waiting for tokens: the worker drains and exits 0 "
                "within 25 s", rc == 0, "rc %s after %.1f s" % (rc, time.monotonic() - t0))
    finally:
        worker.stop()


def main():
    tmp = tempfile.mkdtemp(prefix="jiraprov-limits-e2e.")
    stack = os.path.join(tmp, "stack")
    up = subprocess.run([os.path.join(w.SRC, "deploy/local/up.sh"), "--state", stack,
                         "--workers", "0", "--redis-persist"],
                        capture_output=True, text=True, timeout=120)
    if up.returncode != 0:
        w.say("up.sh failed:\n" + up.stdout + up.stderr)
        return 1
    try:
        env = w.read_env(os.path.join(stack, "stack.env"))
        base = open(env["WORKER_CONFIG"]).read()
        retry_after(env, tmp, base)
        quarantine(env, tmp, base)
        stop_while_waiting(env, tmp, base)
        redis_loss(env, tmp, base, stack)  # last: it leaves no Redis behind
    finally:
        subprocess.run([os.path.join(w.SRC, "deploy/local/down.sh"), "--state", stack],
                       capture_output=True, timeout=60)
    if w.failures:
        w.say(f"{len(w.failures)} check(s) failed; logs in {tmp}")
        for name in ("retryafter.log", "quarantine.log", "redisloss.log", "stopwait.log"):
            p = os.path.join(tmp, name)
            if os.path.exists(p):
                w.say(f"--- tail of {name}")
                print("".join(open(p).readlines()[-25:]))
        return 1
    w.say("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
