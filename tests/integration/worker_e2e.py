"""End-to-end test of jiraprov-worker on the local stack (embedded Kafka, redis-server,
the Jira emulator, two workers): every event type, exactly-once on redelivery, malformed
events to the dead-letter topic, per-subject ordering under load.

Run by test_worker.sh (ctest integration.worker) with JP_SOURCE_DIR and JP_BUILD_DIR set.
"""
import base64
import json
import re
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from jpstack import read_env  # noqa: E402

SRC = os.environ["JP_SOURCE_DIR"]
BUILD = os.environ["JP_BUILD_DIR"]
PRODUCE = os.path.join(BUILD, "producers", "jiraprov-produce")
LOADGEN = os.path.join(BUILD, "producers", "jiraprov-loadgen")
WORKER = os.path.join(BUILD, "worker", "jiraprov-worker")
failures = []


def say(msg):
    print(f"worker_e2e: {msg}", flush=True)


def check(name, cond, detail=""):
    if cond:
        say(f"ok: {name}")
    else:
        failures.append(name)
        say(f"FAIL: {name} {detail}")


def consume(env, topic):
    """Every record of a topic, as (key, parsed value) pairs."""
    for _ in range(3):  # a busy broker may fail kcat's metadata request: ask again
        out = subprocess.run(["kcat", "-C", "-q", "-b", env["KAFKA_BOOTSTRAP"], "-t", topic,
                              "-o", "beginning", "-e", "-f", "%k\t%s\n"],
                             capture_output=True, text=True, timeout=60)
        if out.returncode == 0:
            break
        say(f"kcat on {topic} exited {out.returncode}: {out.stderr.strip()[:300]}")
    records = []
    # split("\n"), not splitlines(): values may hold U+0085 or U+2028 (JSON keeps them raw).
    for line in out.stdout.split("\n"):
        if not line:
            continue
        key, _, value = line.partition("\t")
        try:
            records.append((key, json.loads(value)))
        except ValueError:
            records.append((key, None))
    return records


def wait_for(what, fn, timeout=60):
    """Polls fn() until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            if not value:
                say(f"timed out waiting for {what}")
            return value
        time.sleep(0.3)


def results_by_id(env):
    by_id = {}
    for _, rec in consume(env, env["TOPIC_RESULTS"]):
        if rec and rec.get("type") == "com.jiraprov.result":
            by_id.setdefault(rec["data"]["eventId"], []).append(rec["data"])
    return by_id


def emulator(env, path):
    with urllib.request.urlopen(env["EMULATOR_CONTROL_URL"] + path, timeout=10) as r:
        return json.load(r)


def produce_file(env, path):
    subprocess.run([PRODUCE, "-q", "-b", env["KAFKA_BOOTSTRAP"], "-t", env["TOPIC_EVENTS"], path],
                   check=True, timeout=60)


def produce_raw(env, key, value):
    subprocess.run(["kcat", "-P", "-q", "-b", env["KAFKA_BOOTSTRAP"], "-t", env["TOPIC_EVENTS"],
                    "-K", "\t"], input=f"{key}\t{value}\n", text=True, check=True, timeout=30)


def event(n, etype, subject, data):
    return {"specversion": "1.0", "id": f"e2e-{n:06d}", "source": "https://idhub.example/e2e",
            "type": "com.idhub." + etype, "subject": subject, "time": "2026-11-22T10:00:00Z",
            "jirasite": "demo", "idhubactor": "e2e@idhub.example", "data": data}


def user(state, login):
    return next((u for u in state["users"] if u.get("userName") == login), None)


def main():
    tmp = tempfile.mkdtemp(prefix="jiraprov-worker-e2e.")
    stack = os.path.join(tmp, "stack")
    up = subprocess.run([os.path.join(SRC, "deploy/local/up.sh"), "--state", stack,
                         "--workers", "2"], capture_output=True, text=True, timeout=120)
    if up.returncode != 0:
        say("up.sh failed:\n" + up.stdout + up.stderr)
        return 1
    replay = None
    try:
        env = read_env(os.path.join(stack, "stack.env"))

        # ---- 1. the demo story: every event type, end to end -----------------------
        demo = os.path.join(SRC, "config/samples/demo.jsonl")
        ids = [json.loads(line)["id"] for line in open(demo) if line.strip()]
        produce_file(env, demo)
        res = wait_for("a result for every demo event",
                       lambda: (r := results_by_id(env)) and all(i in r for i in ids) and r,
                       timeout=90) or {}
        statuses = {i: res.get(i, [{}])[0].get("status") for i in ids}
        check("every demo event succeeded (the reconciliation request too)",
              all(s == "succeeded" for s in statuses.values()), statuses)
        state = emulator(env, "/state")
        jdoe, asmith, bkim = (user(state, f"{n}@demo.example") for n in ("jdoe", "asmith", "bkim"))
        check("jdoe created and updated", jdoe and jdoe.get("title") == "Senior Engineer", jdoe)
        # SCIM DELETE removes the directory record and deactivates the linked account
        # (notes §1.6): the Jira side keeps an inactive user.
        check("asmith deleted from the directory",
              asmith is None or (not asmith.get("scim") and asmith.get("active") is False), asmith)
        check("bkim disabled", bkim and bkim.get("active") is False, bkim)
        check("jdoe granted jira-software-users",
              "jira-software-users" in (jdoe or {}).get("groups", []), jdoe)
        issues = state.get("jira", {}).get("issues", [])
        onboard = [i for i in issues if "idhub-ref-idhub:req:1001" in i.get("labels", [])]
        check("one issue created for idhub:req:1001", len(onboard) == 1, onboard)
        check("issue transitioned to In Progress",
              onboard and onboard[0].get("status") == "In Progress", onboard)
        recon = [r for _, r in consume(env, env["TOPIC_RECON"]) if r]
        kinds = [r["type"].rsplit(".", 1)[1] for r in recon]
        done = [r["data"] for r in recon if r["type"].endswith(".completed")]
        check("the demo's reconciliation published started, its items and completed once",
              kinds.count("started") == 1 and len(done) == 1 and done[0]["counts"]["emitted"] ==
              kinds.count("account") + kinds.count("entitlement") > 0, kinds)
        audit = consume(env, env["TOPIC_AUDIT"])
        check("audit records for the mutations", len(audit) >= 10, len(audit))
        before = emulator(env, "/counters")["mutation_totals"]

        # ---- 2. redelivery: a fresh consumer group replays the topic from offset 0 --
        cfg = re.sub(r'(?m)^(\s*group:).*$', r'\1 "replay"', open(env["WORKER_CONFIG"]).read())
        cfg = re.sub(r'(?m)^(\s*listen:).*$', r'\1 "127.0.0.1:0"', cfg)
        replay_cfg = os.path.join(tmp, "replay.yaml")
        with open(replay_cfg, "w") as f:
            f.write(cfg)
        os.chmod(replay_cfg, 0o600)
        replay = subprocess.Popen([WORKER, "--config", replay_cfg],
                                  stderr=open(os.path.join(tmp, "replay.log"), "w"))
        res = wait_for("every demo event answered twice",
                       lambda: (r := results_by_id(env)) and all(len(r.get(i, [])) >= 2
                                                                 for i in ids) and r,
                       timeout=90) or {}
        seen = {i: {(x["status"], x.get("attempts"), json.dumps(x.get("jira"), sort_keys=True))
                    for x in res.get(i, [])} for i in ids}
        check("replayed outcomes are the recorded ones (status, attempts, Jira ids)",
              all(len(v) == 1 for v in seen.values()), seen)
        after = emulator(env, "/counters")["mutation_totals"]
        check("replay changed nothing in Jira", before == after, (before, after))
        replay.terminate()
        check("replay worker drains and exits 0 on SIGTERM", replay.wait(timeout=60) == 0)
        replay = None

        # ---- 2b. Redis wiped, then the history replayed again: Jira converges to the same
        # state and no user or issue exists twice (creates look Jira up first).
        def snapshot():
            st = emulator(env, "/state")
            users = sorted((u.get("userName"), u.get("active"), bool(u.get("scim")))
                           for u in st["users"])
            issues = sorted((i["key"], i["status"], tuple(sorted(i.get("labels", []))))
                            for i in st["jira"]["issues"])
            return users, issues
        state_before = snapshot()
        subprocess.run(["redis-cli", "-u", env["REDIS_URL"], "FLUSHALL"], check=True,
                       capture_output=True, timeout=10)
        wiped_cfg = re.sub(r'(?m)^(\s*group:).*$', r'\1 "after-wipe"', cfg)
        with open(replay_cfg, "w") as f:
            f.write(wiped_cfg)
        replay = subprocess.Popen([WORKER, "--config", replay_cfg],
                                  stderr=open(os.path.join(tmp, "wiped.log"), "w"))
        wait_for("every demo event answered a third time",
                 lambda: (r := results_by_id(env)) and all(len(r.get(i, [])) >= 3 for i in ids),
                 timeout=90)
        users, issues = snapshot()
        names = [u[0] for u in users]
        refs = [lb for i in issues for lb in i[2] if lb.startswith("idhub-ref-")]
        check("after a Redis wipe and a replay no user exists twice",
              len(names) == len(set(names)), names)
        check("after a Redis wipe and a replay no issue exists twice",
              len(refs) == len(set(refs)), refs)
        check("after a Redis wipe and a replay Jira holds the same state",
              (users, issues) == state_before, ((users, issues), state_before))
        replay.terminate()
        check("the after-wipe worker exits 0", replay.wait(timeout=60) == 0)
        replay = None

        # ---- 3. malformed events go to the dead-letter topic; the partition moves on --
        produce_raw(env, "mal-1", "this is not json")
        produce_raw(env, "mal-1", json.dumps(event(1, "account.rename", "mal-1", {"login": "m"})))
        follow = event(2, "account.create", "mal-1",
                       {"login": "mal-1", "email": "mal-1@demo.example"})
        produce_raw(env, "mal-1", json.dumps(follow))
        res = wait_for("the event after two malformed ones",
                       lambda: results_by_id(env).get(follow["id"]), timeout=60)
        check("event after malformed ones applied", res and res[0]["status"] == "succeeded", res)
        reasons = [r["data"].get("reason", "") for _, r in consume(env, env["TOPIC_DLQ"]) if r]
        check("not-JSON event dead-lettered with the decoder's reason",
              any("not valid JSON" in x for x in reasons), reasons)
        check("unknown type dead-lettered with the decoder's reason",
              any('unknown event type "com.idhub.account.rename"' in x for x in reasons), reasons)

        # ---- 3b. the decoder's corpus of invalid events: each is dead-lettered with its
        # exact reason (the manifest's expected error), none blocks anything.
        corpus = os.path.join(SRC, "tests/unit/data/events")
        cases = {}
        for line in open(os.path.join(corpus, "manifest.tsv")):
            if line.startswith("#") or not line.strip():
                continue
            name, max_bytes, _, expected = line.rstrip("\n").split("\t", 3)
            # The worker runs with the default 1 MiB limit; kcat cannot send an empty file
            # (the decoder's unit test covers that case).
            path = os.path.join(corpus, "invalid", name)
            if max_bytes in ("", "0") and os.path.getsize(path) > 0:
                cases[name] = expected
        files = [os.path.join(corpus, "invalid", n) for n in cases]
        subprocess.run(["kcat", "-P", "-q", "-b", env["KAFKA_BOOTSTRAP"], "-t",
                        env["TOPIC_EVENTS"], "-k", "corpus"] + files, check=True, timeout=60)
        by_value = {}
        for name in cases:
            raw = open(os.path.join(corpus, "invalid", name), "rb").read()
            by_value[raw] = name

        found = {}

        def corpus_dead_letters():
            for key, rec in consume(env, env["TOPIC_DLQ"]):
                if key != "corpus" or not rec:
                    continue
                d = rec["data"]
                raw = (d["value"].encode() if "value" in d and d["value"] is not None
                       else base64.b64decode(d.get("valueBase64", "")))
                if raw in by_value:
                    found[by_value[raw]] = d["reason"]
            return len(found) == len(cases)

        wait_for("a dead letter for every corpus case", corpus_dead_letters)
        wrong = {n: (found.get(n), cases[n]) for n in cases if found.get(n) != cases[n]}
        check(f"all {len(cases)} invalid corpus events dead-lettered with their exact reason",
              not wrong, list(wrong.items())[:5])

        # ---- 4. ordering: grant then revoke for one subject amid thousands of events ----
        def load(seed):
            return subprocess.run([LOADGEN, "-q", "-b", env["KAFKA_BOOTSTRAP"], "-t",
                                   env["TOPIC_EVENTS"], "-n", "1500", "--mix",
                                   "account.create=100", "--subjects", "1500", "--site", "demo",
                                   "--prefix", f"load{seed}-", "--seed", str(seed)],
                                  timeout=60).returncode
        grant = event(10, "entitlement.grant", "jdoe@demo.example",
                      {"login": "jdoe@demo.example",
                       "entitlement": {"type": "group", "group": "demo-team"}})
        revoke = dict(event(11, "entitlement.revoke", "jdoe@demo.example", grant["data"]))
        # 1500 events, the grant, 1500 more, the revoke, 1500 more: the pair sits amid them.
        check("load before the grant delivered", load(7) == 0)
        produce_raw(env, grant["subject"], json.dumps(grant))
        check("load between grant and revoke delivered", load(8) == 0)
        produce_raw(env, revoke["subject"], json.dumps(revoke))
        check("load after the revoke delivered", load(9) == 0)
        res = wait_for("grant and revoke results",
                       lambda: (r := results_by_id(env)) and grant["id"] in r and
                       revoke["id"] in r and r, timeout=90) or {}
        check("grant and revoke both applied",
              [res.get(grant["id"], [{}])[0].get("status"),
               res.get(revoke["id"], [{}])[0].get("status")] == ["succeeded", "succeeded"],
              res.get(grant["id"]))
        jdoe = user(emulator(env, "/state"), "jdoe@demo.example") or {}
        check("jdoe is not in demo-team at the end (revoke came after grant)",
              "demo-team" not in jdoe.get("groups", []), jdoe.get("groups"))
        grants = emulator(env, "/counters")["mutations"].get("membership", {})
        team_changes = [k for key, k in grants.items() if key.endswith(":" + jdoe.get(
            "accountId", "?")) and k]
        check("the membership was added and removed once each",
              any(k.get("add", k.get("create")) == 1 and k.get("remove", k.get("delete")) == 1
                  for k in team_changes), grants)

        # ---- 5. one site's trouble does not hold up another's events ------------------
        metrics = urllib.request.urlopen(env["WORKER_METRICS_URL"], timeout=10).read().decode()
        check("the first worker's metrics count completed events",
              re.search(r'jiraprov_events_completed_total\{type="[^"]+",status="succeeded"\} [1-9]', metrics),
              metrics[:300])
        # The overhead histogram: cumulative buckets ending at +Inf = _count > 0.
        buckets = [int(v) for v in re.findall(
            r'^jiraprov_event_overhead_seconds_bucket\{le="[^"]+"\} (\d+)$', metrics, re.M)]
        count = re.search(r"^jiraprov_event_overhead_seconds_count (\d+)$", metrics, re.M)
        check("the metrics have the worker-overhead histogram, filled",
              buckets and count and int(count.group(1)) > 0 and buckets[-1] == int(count.group(1))
              and buckets == sorted(buckets), (buckets, count and count.group(1)))
        # The load of phase 4 may still be retrying against the emulator's burst limits
        # (shared budgets are issue 5's); this phase is about a site that is down, so the
        # healthy site's calls should not be throttled meanwhile.
        req = urllib.request.Request(env["EMULATOR_CONTROL_URL"] + "/rate-limits", method="PUT",
                                     data=b'{"enabled":false}',
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()
        base = open(env["WORKER_CONFIG"]).read()
        site = base[base.index("  - name: demo"):base.index("\nhttp:")]
        down = re.sub(r'"http://127\.0\.0\.1:\d+', '"http://127.0.0.1:1', site)
        cfg = base.replace(site, site + "\n" + down.replace("name: demo", "name: down"))
        cfg = re.sub(r'(?m)^(\s*group:).*$', r'\1 "tenants"', cfg)
        cfg = re.sub(r'(?m)^(\s*events:).*$', r'\1 "tenants.events"', cfg)
        cfg = re.sub(r'(?m)^(\s*listen:).*$', r'\1 "127.0.0.1:0"', cfg)
        tenants_cfg = os.path.join(tmp, "tenants.yaml")
        with open(tenants_cfg, "w") as f:
            f.write(cfg)
        os.chmod(tenants_cfg, 0o600)
        replay = subprocess.Popen([WORKER, "--config", tenants_cfg],
                                  stderr=open(os.path.join(tmp, "tenants.log"), "w"))
        evs = []
        for n in range(20):
            for site_name in ("down", "demo"):
                login = f"{site_name}-{n}@demo.example"
                e = event(100 + 2 * n + (site_name == "demo"), "account.create", login,
                          {"login": login, "email": login})
                e["jirasite"] = site_name
                evs.append(e)
        lines = "".join(json.dumps(e) + "\n" for e in evs)
        subprocess.run([PRODUCE, "-q", "-b", env["KAFKA_BOOTSTRAP"], "-t", "tenants.events", "-"],
                       input=lines, text=True, check=True, timeout=60)
        healthy = [e["id"] for e in evs if e["jirasite"] == "demo"]
        broken = [e["id"] for e in evs if e["jirasite"] == "down"]
        res = wait_for("the healthy site's 20 events",
                       lambda: (r := results_by_id(env)) and all(i in r for i in healthy) and r,
                       timeout=60) or {}
        check("the healthy site's events all succeeded while the other site is down",
              all(res.get(i, [{}])[0].get("status") == "succeeded" for i in healthy))
        check("the down site's events wait (parked for retry, no outcome yet)",
              not any(i in res for i in broken))
        log = os.path.join(tmp, "tenants.log")
        port = re.search(r"http on port (\d+)", open(log).read())
        parked = port and urllib.request.urlopen(
            f"http://127.0.0.1:{port.group(1)}/metrics", timeout=10).read().decode()
        m = parked and re.search(r"^jiraprov_events_parked (\d+)$", parked, re.M)
        check("the worker's metrics show the down site's events parked",
              m and int(m.group(1)) >= 1, m and m.group(0))
        replay.terminate()
        check("a worker with parked events drains and exits 0", replay.wait(timeout=60) == 0)
        replay = None

        # ---- 6. a retry schedule survives a crash: the next run continues it -----------
        def put(path, body):
            r = urllib.request.Request(env["EMULATOR_CONTROL_URL"] + path, method="PUT",
                                       data=json.dumps(body).encode(),
                                       headers={"Content-Type": "application/json"})
            urllib.request.urlopen(r, timeout=10).read()
        put("/faults", [{"path": "/scim/directory/*/Users", "method": "POST", "kind": "error",
                         "status": 503}])
        cfg = re.sub(r'(?m)^(\s*group:).*$', r'\1 "attempts"', base)
        cfg = re.sub(r'(?m)^(\s*events:).*$', r'\1 "attempts.events"', cfg)
        cfg = re.sub(r'(?m)^(\s*listen:).*$', r'\1 "127.0.0.1:0"', cfg)
        cfg += "retry:\n  max_attempts: 50\n  base_delay_ms: 100\n  max_delay_ms: 200\n"
        # A killed member leaves the group only when its session expires: keep that short.
        cfg = re.sub(r'(?m)^(\s*bootstrap\.servers:.*)$', r'\1\n  session.timeout.ms: 6000', cfg)
        attempts_cfg = os.path.join(tmp, "attempts.yaml")
        with open(attempts_cfg, "w") as f:
            f.write(cfg)
        os.chmod(attempts_cfg, 0o600)
        ev = event(900, "account.create", "retry-me@demo.example",
                   {"login": "retry-me@demo.example", "email": "retry-me@demo.example"})
        subprocess.run([PRODUCE, "-q", "-b", env["KAFKA_BOOTSTRAP"], "-t", "attempts.events", "-"],
                       input=json.dumps(ev) + "\n", text=True, check=True, timeout=60)

        def attempts():
            out = subprocess.run(["redis-cli", "-u", env["REDIS_URL"], "HGET",
                                  "jiraprov:attempts:" + ev["id"], "attempts"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
            return int(out) if out.isdigit() else 0
        replay = subprocess.Popen([WORKER, "--config", attempts_cfg],
                                  stderr=open(os.path.join(tmp, "attempts-1.log"), "w"))
        check("failed attempts are recorded in Redis", wait_for("3 attempts", lambda: attempts() >= 3))
        replay.kill()  # a crash: no drain, nothing handed over
        replay.wait(timeout=30)
        before_restart = attempts()
        replay = subprocess.Popen([WORKER, "--config", attempts_cfg],
                                  stderr=open(os.path.join(tmp, "attempts-2.log"), "w"))
        check("the restarted worker continues the count",
              wait_for("one more attempt", lambda: attempts() > before_restart, timeout=60),
              (before_restart, attempts()))
        put("/faults", [])
        res = wait_for("the retried event's result",
                       lambda: results_by_id(env).get(ev["id"]), timeout=60) or [{}]
        check("the event succeeds once Jira answers, its attempts counted across both runs",
              res[0].get("status") == "succeeded" and res[0].get("attempts", 0) > before_restart,
              res[0])
        check("the attempt state is cleared after the outcome",
              wait_for("attempt state cleared", lambda: attempts() == 0, timeout=10))
        replay.terminate()
        check("the second worker exits 0", replay.wait(timeout=60) == 0)
        replay = None
    finally:
        if replay:
            replay.kill()
        subprocess.run([os.path.join(SRC, "deploy/local/down.sh"), "--state", stack],
                       capture_output=True, timeout=60)
    if failures:
        say(f"{len(failures)} check(s) failed; worker logs in {stack}")
        for name in ("worker-1.log", "worker-2.log"):
            p = os.path.join(stack, name)
            if os.path.exists(p):
                say(f"--- tail of {name}")
                print("".join(open(p).readlines()[-30:]))
        return 1
    say("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
