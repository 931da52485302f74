"""The model check: proves, under one injected failure, that jiraprov loses nothing and applies
nothing twice.

A seeded workload of account, entitlement and issue events with repeated subjects is published
to a fresh topic; from the events alone the script computes the Jira state they must produce.
Workers run while a fault is injected; afterwards the script checks that
  - every event has a terminal outcome on the results topic, and an event answered more than once
    was answered the same way each time (after a Redis wipe: never "failed", see below);
  - no event failed and nothing was dead-lettered (the workload is valid, retries are generous);
  - the emulator holds exactly the model's state: users, their active flag and attributes,
    group memberships, issues with their summary and status;
  - the emulator's mutation counters show nothing applied twice: at most one create per user and
    per issue, no more membership adds or removes than the model's effective grants and revokes;
  - the audit trail verifies (when jiraprov-audit is built).

Faults (--fault): none, crash (SIGKILL a random worker every few seconds and restart it),
rebalance (workers join and leave), redis-kept / redis-wiped (redis-server killed mid-run and
restarted with its data / empty), jira (5xx, resets, answers that never come, 5 s latency spikes,
429 storms), kafka (brokers down and up, leader moves, errors on produce, fetch and offset
commit).

Usage: model_check.py --fault NAME [--events N] [--workers N] [--seed N] [--keep]
Needs JP_SOURCE_DIR and JP_BUILD_DIR. Exit 0 when every check passed.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from jpstack import read_env, control  # noqa: E402

SRC = os.environ["JP_SOURCE_DIR"]
BUILD = os.environ["JP_BUILD_DIR"]
WORKER = os.path.join(BUILD, "worker", "jiraprov-worker")
PRODUCE = os.path.join(BUILD, "producers", "jiraprov-produce")
AUDIT = os.path.join(BUILD, "producers", "jiraprov-audit")
GROUPS = ["model-a", "model-b", "model-c"]
# The DEMO project's workflow in the emulator: status -> statuses reachable in one transition.
WORKFLOW = {"To Do": ["In Progress"], "In Progress": ["Done", "To Do"], "Done": ["To Do"]}
failures = []


def say(msg):
    print("model_check: %s" % msg, flush=True)


def check(name, cond, detail=""):
    if cond:
        say("ok: %s" % name)
    else:
        failures.append(name)
        say("FAIL: %s %s" % (name, str(detail)[:2000]))


def consume(env, topic):
    out = subprocess.run(["kcat", "-C", "-q", "-b", env["KAFKA_BOOTSTRAP"], "-t", topic,
                          "-o", "beginning", "-e", "-f", "%s\n"],
                         capture_output=True, text=True, timeout=300)
    recs = []
    for line in out.stdout.split("\n"):
        if line:
            try:
                recs.append(json.loads(line))
            except ValueError:
                pass
    return recs


class TopicTail:
    """Follows a topic from its beginning for the whole run (one kcat, records kept as they
    arrive). The embedded broker keeps about 5 MiB per partition and drops older records: a
    long run writes more results and audit records than that, so they are collected while the
    run goes on rather than read once at the end."""

    def __init__(self, env, topic, path):
        self.env, self.topic, self.path = env, topic, path
        self.lock = threading.Lock()
        self.records = []
        self.seen = {}  # partition -> highest offset read
        self.gaps = []  # (partition, first offset missing, next offset read)
        # The mock answers a fetch only when fetch.wait.max.ms is over, so the default (500 ms,
        # 1 MiB per partition) reads 2 MiB/s: a burst of records (a worker answering thousands
        # of redelivered events from the store) would outrun it and be dropped unread.
        self.stopping = False
        self.proc = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        # kcat is restarted if it exits (-E keeps it going through the errors it can survive);
        # a restart reads from the beginning again and skips what it already read.
        while not self.stopping:
            self.proc = subprocess.Popen(
                ["kcat", "-C", "-q", "-u", "-E", "-b", self.env["KAFKA_BOOTSTRAP"],
                 "-X", "fetch.wait.max.ms=20", "-X", "max.partition.fetch.bytes=8388608",
                 "-t", self.topic, "-o", "beginning", "-f", "%p %o %s\n"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self._read(self.proc.stdout)
            self.proc.wait()
            if not self.stopping:
                time.sleep(0.5)

    def _read(self, stream):
        with open(self.path, "a", buffering=1) as out:
            for line in stream:
                p, o, value = line.rstrip("\n").split(" ", 2)
                p, o = int(p), int(o)
                with self.lock:  # written before it counts as read (caught_up)
                    last = self.seen.get(p, -1)
                    if o <= last:
                        continue
                    if o != last + 1:
                        self.gaps.append((p, last + 1, o))
                    out.write(value + "\n")
                    try:
                        self.records.append(json.loads(value))
                    except ValueError:
                        pass
                    self.seen[p] = o

    def snapshot(self):
        with self.lock:
            return list(self.records)

    def caught_up(self, timeout=120):
        """Waits until every record now on the topic was read; False on timeout."""
        out = subprocess.run(["kcat", "-C", "-q", "-b", self.env["KAFKA_BOOTSTRAP"], "-t",
                              self.topic, "-o", "-1", "-e", "-f", "%p %o\n"],
                             capture_output=True, text=True, timeout=120)
        last = {}
        for line in out.stdout.split("\n"):
            if line:
                p, o = line.split()
                last[int(p)] = max(last.get(int(p), -1), int(o))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(self.seen.get(p, -1) >= o for p, o in last.items()):
                    return True
            time.sleep(0.2)
        return False

    def stop(self):
        self.stopping = True
        if self.proc:
            self.proc.terminate()
        self.thread.join(timeout=30)


# ---- the workload and its model ------------------------------------------------------------

def envelope(run, n, etype, subject, data):
    return {"specversion": "1.0", "id": "%s-%07d" % (run, n),
            "source": "https://idhub.example/model", "type": "com.idhub." + etype,
            "subject": subject, "time": "2026-11-22T10:00:00Z", "jirasite": "demo",
            "idhubactor": "model@idhub.example", "data": data}


class Model:
    """What Jira must hold after the events, computed from the events alone."""

    def __init__(self):
        self.users = {}   # login -> {"active", "title", "department", "groups": set, "deleted"}
        self.issues = {}  # ref -> {"summary", "status", "deleted"}
        self.grants = {}  # (group, login) -> effective adds
        self.revokes = {}


def workload(run, n_events, seed):
    """Events in publication order (subjects interleaved) and the model they must produce."""
    rnd = random.Random(seed)
    m = Model()
    per_subject = []
    n_users = max(4, n_events // 10)
    n_issues = max(2, n_events // 25)
    budget = n_events
    for i in range(n_users):
        login = "%s-u%05d@model.example" % (run, i)
        evs = [("account.create", login, {"login": login, "email": login,
                                          "jobTitle": "T0", "department": "D0"})]
        st = {"active": True, "title": "T0", "department": "D0", "groups": set(),
              "deleted": False}
        for _ in range(rnd.randint(2, 12)):
            op = rnd.choice(["update", "grant", "grant", "revoke", "disable", "enable"])
            if op == "update":
                t, d = "T%d" % rnd.randint(1, 9), "D%d" % rnd.randint(1, 9)
                evs.append(("account.update", login, {"login": login, "jobTitle": t,
                                                      "department": d}))
                st["title"], st["department"] = t, d
            elif op in ("grant", "revoke"):
                g = rnd.choice(GROUPS)
                evs.append(("entitlement." + op, login,
                            {"login": login, "entitlement": {"type": "group", "group": g}}))
                key = (g, login)
                if op == "grant" and g not in st["groups"]:
                    st["groups"].add(g)
                    m.grants[key] = m.grants.get(key, 0) + 1
                elif op == "revoke" and g in st["groups"]:
                    st["groups"].discard(g)
                    m.revokes[key] = m.revokes.get(key, 0) + 1
            else:
                evs.append(("account." + op, login, {"login": login}))
                st["active"] = op == "enable"
        if rnd.random() < 0.15:
            evs.append(("account.delete", login, {"login": login}))
            st["deleted"] = True
            for g in st["groups"]:  # deleting the user ends its memberships
                m.revokes[(g, login)] = m.revokes.get((g, login), 0) + 1
        m.users[login] = st
        per_subject.append(evs)
        budget -= len(evs)
    for i in range(n_issues):
        ref = "%s-issue-%04d" % (run, i)
        summary = "Model issue %d" % i
        evs = [("issue.create", ref, {"externalRef": ref, "project": "DEMO", "issueType": "Task",
                                      "summary": summary})]
        st = {"summary": summary, "status": "To Do", "deleted": False}
        for _ in range(rnd.randint(1, 6)):
            if rnd.random() < 0.5:
                summary = "Model issue %d v%d" % (i, rnd.randint(1, 99))
                evs.append(("issue.update", ref, {"externalRef": ref, "summary": summary}))
                st["summary"] = summary
            else:
                to = rnd.choice(WORKFLOW[st["status"]])
                evs.append(("issue.transition", ref, {"externalRef": ref, "status": to}))
                st["status"] = to
        if rnd.random() < 0.1:
            evs.append(("issue.delete", ref, {"externalRef": ref}))
            st["deleted"] = True
        m.issues[ref] = st
        per_subject.append(evs)
    # Interleave subjects at random while keeping each subject's order.
    order, queues = [], [list(q) for q in per_subject]
    while queues:
        q = rnd.choice(queues)
        order.append(q.pop(0))
        if not q:
            queues.remove(q)
    events = [envelope(run, n, t, s, d) for n, (t, s, d) in enumerate(order)]
    return events, m


# ---- the stack and the workers ------------------------------------------------------------------

class Stack:
    def __init__(self, tmp, brokers):
        self.tmp = tmp
        self.state = os.path.join(tmp, "stack")
        up = subprocess.run([os.path.join(SRC, "deploy/local/up.sh"), "--state", self.state,
                             "--workers", "0", "--redis-persist", "--event-partitions", "8",
                             "--brokers", str(brokers)],
                            capture_output=True, text=True, timeout=120)
        if up.returncode != 0:
            raise RuntimeError("up.sh failed:\n" + up.stdout + up.stderr)
        self.env = read_env(os.path.join(self.state, "stack.env"))
        self.redis = None  # a redis-server this script restarted

    def down(self):
        if self.redis:
            self.redis.terminate()
            self.redis.wait(timeout=30)
        subprocess.run([os.path.join(SRC, "deploy/local/down.sh"), "--state", self.state],
                       capture_output=True, timeout=120)

    def kafka_control(self, line):
        with open(self.env["KAFKA_CONTROL_FIFO"], "w") as f:
            f.write(line + "\n")

    def redis_restart(self, wipe):
        pid_file = os.path.join(self.state, "redis.pid")
        if self.redis:
            self.redis.kill()
            self.redis.wait()
        else:
            os.kill(int(open(pid_file).read()), signal.SIGKILL)
        time.sleep(1.5)  # the outage
        data = os.path.join(self.state, "redis")
        if wipe:
            shutil.rmtree(data, ignore_errors=True)
            os.makedirs(data)
        port = self.env["REDIS_URL"].rsplit(":", 1)[1].split("/")[0]
        self.redis = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", port, "--daemonize", "no",
             "--logfile", "", "--dir", data, "--appendonly", "yes", "--appendfsync", "always"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Workers:
    def __init__(self, stack, run, topic):
        base = open(stack.env["WORKER_CONFIG"]).read()
        cfg = re.sub(r'(?m)^(\s*group:).*$', r'\1 "%s"' % run, base)
        cfg = re.sub(r'(?m)^(\s*events:).*$', r'\1 "%s"' % topic, cfg)
        cfg = re.sub(r'(?m)^(\s*level:).*$', r'\1 warn', cfg)
        # A killed member blocks the group until its session expires: keep that short.
        cfg = re.sub(r'(?m)^(\s*bootstrap\.servers:.*)$', r'\1\n  session.timeout.ms: 6000', cfg)
        cfg = cfg.replace("    tls_verify: true\n", "    tls_verify: true\n    timeout_ms: 3000\n")
        cfg += ("retry:\n  max_attempts: 100\n  base_delay_ms: 100\n  max_delay_ms: 2000\n"
                "rate_limits:\n  get_per_s: 2000\n  post_per_s: 2000\n  put_per_s: 2000\n"
                "  delete_per_s: 2000\n")
        # up.sh's file has a worker: block already (the instance id): add to it.
        cfg = re.sub(r'(?m)^worker:\n', 'worker:\n  drain_timeout_ms: 5000\n', cfg)
        self.base = cfg
        self.run = run
        self.stack = stack
        self.procs = {}
        self.next = 0
        self.lock = threading.Lock()

    def start(self):
        with self.lock:
            self.next += 1
            name = "w%d" % self.next
            # Port 0: a port probed free could be taken by a neighbouring test before the
            # worker binds it (a worker started after a fault failed to start that way).
            cfg = re.sub(r'(?m)^(\s*listen:).*$', r'\1 "127.0.0.1:0"', self.base)
            cfg = re.sub(r'(?m)^(\s*instance_id:).*$', r'\1 "%s-%s"' % (self.run, name), cfg)
            path = os.path.join(self.stack.tmp, name + ".yaml")
            with open(path, "w") as f:
                f.write(cfg)
            os.chmod(path, 0o600)
            self.procs[name] = subprocess.Popen(
                [WORKER, "--config", path], stderr=open(path + ".log", "w"))
            return name

    def kill(self, name, sig):
        with self.lock:
            p = self.procs.pop(name)
        p.send_signal(sig)
        try:
            return p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait()

    def names(self):
        with self.lock:
            return list(self.procs)

    def stop_all(self):
        codes = {}
        for name in self.names():
            codes[name] = self.kill(name, signal.SIGTERM)
        return codes


# ---- faults -----------------------------------------------------------------------------------

def inject(fault, stack, workers, rnd, progress, stop, max_faults):
    """Runs in a thread until stop is set (or max_faults injections were made, 0 = no limit).
    progress() -> fraction of events answered."""
    made = [0]

    def pause(a, b):
        stop.wait(rnd.uniform(a, b))
        made[0] += 1
        if max_faults and made[0] > max_faults:
            stop.wait()
    if fault == "crash":
        # A killed member holds its partitions until its session (6 s) expires and the group
        # rejoins (about 3 s on the mock, twice: once without it, once with its successor):
        # a kill every 10-20 s leaves the group time to move between two kills.
        while not stop.is_set():
            pause(10, 20)
            names = workers.names()
            if stop.is_set() or not names:
                break
            victim = rnd.choice(names)
            say("fault: SIGKILL %s at %.0f %%" % (victim, 100 * progress()))
            workers.kill(victim, signal.SIGKILL)
            workers.start()
    elif fault == "rebalance":
        while not stop.is_set():
            pause(2, 4)
            names = workers.names()
            if stop.is_set():
                break
            if len(names) < 4 and (len(names) <= 1 or rnd.random() < 0.5):
                say("fault: a worker joins (%d running)" % len(names))
                workers.start()
            else:
                victim = rnd.choice(names)
                say("fault: %s leaves (SIGTERM)" % victim)
                workers.kill(victim, signal.SIGTERM)
    elif fault in ("redis-kept", "redis-wiped"):
        while not stop.is_set() and progress() < 0.3:
            stop.wait(0.2)
        if not stop.is_set():
            say("fault: redis-server killed at %.0f %%%s" % (
                100 * progress(), ", restarted empty" if fault == "redis-wiped" else ""))
            stack.redis_restart(fault == "redis-wiped")
    elif fault == "jira":
        control(stack.env, "PUT", "/faults", {"seed": rnd.randint(1, 1 << 30), "rules": [
            {"kind": "error", "probability": 0.10},
            {"kind": "reset", "probability": 0.02},
            {"kind": "hang", "probability": 0.01, "hang_ms": 60000},
            {"kind": "latency", "probability": 0.01, "latency_ms": 5000},
        ]})
        while not stop.is_set():
            pause(3, 6)
            if stop.is_set():
                break
            say("fault: a 429 storm")
            control(stack.env, "PUT", "/faults", {"seed": rnd.randint(1, 1 << 30), "rules": [
                {"kind": "rate_limit", "probability": 0.8, "retry_after": 1},
                {"kind": "error", "probability": 0.10},
            ]})
            stop.wait(1.5)
            control(stack.env, "PUT", "/faults", {"seed": rnd.randint(1, 1 << 30), "rules": [
                {"kind": "error", "probability": 0.10},
                {"kind": "reset", "probability": 0.02},
                {"kind": "hang", "probability": 0.01, "hang_ms": 60000},
                {"kind": "latency", "probability": 0.01, "latency_ms": 5000},
            ]})
        control(stack.env, "PUT", "/faults", [])
    elif fault == "kafka":
        topics = [stack.env["TOPIC_RESULTS"], stack.env["TOPIC_AUDIT"]]
        while not stop.is_set():
            pause(2, 4)
            if stop.is_set():
                break
            what = rnd.choice(["broker", "leader", "produce", "fetch", "commit"])
            if what == "broker":
                b = rnd.randint(2, 3)
                say("fault: broker %d down for 2 s" % b)
                stack.kafka_control("broker-down %d" % b)
                stop.wait(2)
                stack.kafka_control("broker-up %d" % b)
            elif what == "leader":
                t, p, b = rnd.choice(topics), rnd.randint(0, 3), rnd.randint(1, 3)
                say("fault: leader of %s/%d moves to broker %d" % (t, p, b))
                stack.kafka_control("leader %s %d %d" % (t, p, b))
            elif what == "produce":  # NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT
                say("fault: produce errors")
                stack.kafka_control("request-errors 0 6 7 6")
            elif what == "fetch":
                say("fault: fetch errors")
                stack.kafka_control("request-errors 1 6 7")
            else:  # NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE
                say("fault: offset commit errors")
                stack.kafka_control("request-errors 8 16 15")


# ---- the checks ------------------------------------------------------------------------------------

def compare_state(env, model):
    state = control(env, "GET", "/state")
    by_login = {u.get("userName"): u for u in state["users"]}
    groups = {g["name"]: set(g.get("members", [])) for g in state["groups"]}
    wrong = []
    for login, want in model.users.items():
        u = by_login.get(login)
        if want["deleted"]:
            if u and u.get("scim"):
                wrong.append((login, "should be deleted"))
            continue
        if not u or not u.get("scim"):
            wrong.append((login, "missing"))
            continue
        got = (u.get("active"), u.get("title"), u.get("department"))
        exp = (want["active"], want["title"], want["department"])
        if got != exp:
            wrong.append((login, "has %s, model %s" % (got, exp)))
        member_of = {g for g in GROUPS if u["accountId"] in groups.get(g, set())}
        if member_of != want["groups"]:
            wrong.append((login, "groups %s, model %s" % (sorted(member_of),
                                                           sorted(want["groups"]))))
    check("Jira's users, attributes and memberships are the model's", not wrong,
          "%d wrong: %s" % (len(wrong), wrong[:10]))
    issues = state["jira"].get("issues", [])
    wrong = []
    for ref, want in model.issues.items():
        label = "idhub-ref-" + ref
        found = [i for i in issues if label in (i.get("fields", i).get("labels") or [])]
        if want["deleted"]:
            if found:
                wrong.append((ref, "should be deleted"))
            continue
        if len(found) != 1:
            wrong.append((ref, "%d issues" % len(found)))
            continue
        f = found[0].get("fields", found[0])
        status = f.get("status")
        status = status.get("name") if isinstance(status, dict) else status
        if (f.get("summary"), status) != (want["summary"], want["status"]):
            wrong.append((ref, "has %s/%s, model %s/%s" % (f.get("summary"), status,
                                                          want["summary"], want["status"])))
    check("Jira's issues (one per reference, summary, status) are the model's", not wrong,
          "%d wrong: %s" % (len(wrong), wrong[:10]))
    return state


def check_mutations(env, model, state):
    muts = control(env, "GET", "/counters")["mutations"]
    twice = [(k, v) for k, v in muts.get("user", {}).items() if v.get("create", 0) > 1]
    twice += [(k, v) for k, v in muts.get("issue", {}).items() if v.get("create", 0) > 1]
    check("no user and no issue was created twice", not twice, twice[:10])
    acct = {u.get("accountId"): u.get("userName") for u in state["users"]}
    gid = {g["groupId"]: g["name"] for g in state["groups"]}
    over = []
    for key, kinds in muts.get("membership", {}).items():
        g, _, a = key.partition(":")
        pair = (gid.get(g, g), acct.get(a, a))
        if pair[1] not in model.users:
            continue
        adds = sum(n for k, n in kinds.items() if k in ("add", "create"))
        removes = sum(n for k, n in kinds.items() if k in ("remove", "delete"))
        if adds > model.grants.get(pair, 0) or removes > model.revokes.get(pair, 0):
            over.append((pair, kinds, model.grants.get(pair, 0), model.revokes.get(pair, 0)))
    check("no membership was added or removed more often than the model's grants and revokes",
          not over, over[:10])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fault", default="none",
                    choices=["none", "crash", "rebalance", "redis-kept", "redis-wiped", "jira",
                             "kafka"])
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--max-faults", type=int, default=0,
                    help="stop injecting after N faults (0: until the run ends)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    run = "m%d" % (seed % 100000)
    say("fault %s, %d events, %d workers, seed %d" % (a.fault, a.events, a.workers, seed))
    tmp = tempfile.mkdtemp(prefix="jiraprov-model.")
    stack = Stack(tmp, 3 if a.fault == "kafka" else 1)
    workers = None
    tails = []
    try:
        env = stack.env
        control(env, "POST", "/seed", {"groups": [{"name": g, "scim": True} for g in GROUPS]})
        events, model = workload(run, a.events, seed)
        topic = run + ".events"
        results_tail = TopicTail(env, env["TOPIC_RESULTS"], os.path.join(tmp, "results.jsonl"))
        audit_file = os.path.join(tmp, "audit.jsonl")
        audit_tail = TopicTail(env, env["TOPIC_AUDIT"], audit_file)
        tails = [results_tail, audit_tail]
        workers = Workers(stack, run, topic)
        for _ in range(a.workers):
            workers.start()
        subprocess.run([PRODUCE, "-q", "-b", env["KAFKA_BOOTSTRAP"], "-t", topic, "-"],
                       input="".join(json.dumps(e) + "\n" for e in events), text=True,
                       check=True, timeout=300)
        ids = {e["id"] for e in events}
        answered = [0]

        def progress():
            return answered[0] / len(ids)
        stop = threading.Event()
        injector = threading.Thread(target=inject, args=(a.fault, stack, workers,
                                                         random.Random(seed), progress, stop,
                                                         a.max_faults))
        injector.start()
        deadline = time.monotonic() + a.timeout
        results = {}
        while time.monotonic() < deadline:
            results = {}
            for r in results_tail.snapshot():
                if r.get("type") == "com.jiraprov.result" and r["data"]["eventId"] in ids:
                    results.setdefault(r["data"]["eventId"], []).append(r["data"])
            answered[0] = len(results)
            if len(results) == len(ids):
                break
            time.sleep(1)
        stop.set()
        injector.join()
        codes = workers.stop_all()
        check("the results and audit topics were read to their end",
              all(t.caught_up() for t in tails))
        check("every record of the results and audit topics was read (the embedded broker "
              "dropped none before it was read)", not any(t.gaps for t in tails),
              [(t.topic, t.gaps[:5]) for t in tails if t.gaps])
        results = {}
        for r in results_tail.snapshot():
            if r.get("type") == "com.jiraprov.result" and r["data"]["eventId"] in ids:
                results.setdefault(r["data"]["eventId"], []).append(r["data"])
        check("every event has a terminal outcome on the results topic",
              len(results) == len(ids), "%d of %d" % (len(results), len(ids)))
        statuses = {i: {r["status"] for r in rs} for i, rs in results.items()}
        if a.fault == "redis-wiped":
            # Outcomes recorded before the wipe are gone: a redelivered event is applied again,
            # converges, and may be answered "skipped" after an earlier "succeeded".
            bad = {i: s for i, s in statuses.items() if "failed" in s}
            check("answered more than once only as succeeded/skipped (Redis was wiped)", not bad,
                  list(bad.items())[:10])
        else:
            bad = {i: s for i, s in statuses.items() if len(s) != 1}
            check("an event answered more than once was answered the same way", not bad,
                  list(bad.items())[:10])
        failed = {i: rs[0].get("error") for i, rs in results.items()
                  if any(r["status"] == "failed" for r in rs)}
        check("no event failed", not failed, list(failed.items())[:10])
        dlq = [r for r in consume(env, env["TOPIC_DLQ"])
               if r.get("data", {}).get("eventId") in ids]
        check("nothing was dead-lettered", not dlq, len(dlq))
        state = compare_state(env, model)
        check_mutations(env, model, state)
        check("every worker stopped cleanly (exit 0 on SIGTERM)",
              all(c == 0 for c in codes.values()), codes)
        if os.path.exists(AUDIT):
            key = os.path.join(stack.state, "secrets", "audit_hmac_key")
            cmd = [AUDIT, "verify", "-i", audit_file]
            if os.path.exists(key):
                cmd += ["--key-file", key]
            v = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            check("the audit trail verifies", v.returncode == 0, (v.stdout + v.stderr)[-1500:])
        dups = sum(len(rs) - 1 for rs in results.values())
        say("%d events, %d answered more than once (redelivered)" % (len(ids), dups))
    finally:
        for t in tails:
            t.stop()
        if workers:
            for name in workers.names():
                workers.kill(name, signal.SIGKILL)
        stack.down()
        if failures:
            say("logs kept in %s" % tmp)
        elif not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        say("%d check(s) failed" % len(failures))
        return 1
    say("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
