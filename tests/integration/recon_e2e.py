"""Reconciliation end to end on the local stack (embedded Kafka, redis-server, the Jira emulator,
jiraprov-worker): full, filtered (a SCIM eq filter and conditions the worker evaluates),
incremental with creations, changes and removals, entitlements (groups with members split into
parts, project roles with user and group actors), a repeated reconId, the scheduler, and a run
resumed by a second worker after the first was killed (SIGKILL) in the middle of it.

Run by test_recon.sh (ctest integration.recon) with JP_SOURCE_DIR and JP_BUILD_DIR set.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import worker_e2e as e2e  # noqa: E402  (helpers: read_env, consume, wait_for, emulator)

SRC = os.environ["JP_SOURCE_DIR"]
BUILD = os.environ["JP_BUILD_DIR"]
PRODUCE = os.path.join(BUILD, "producers", "jiraprov-produce")
SCHEDULE = os.path.join(BUILD, "producers", "jiraprov-recon-schedule")
WORKER = os.path.join(BUILD, "worker", "jiraprov-worker")
failures = []
BULK = 1000          # users in the bulk group: 11 SCIM pages with the others, 20 member parts
PER_RECORD = 50      # recon.members_per_record in this test


def say(msg):
    print(f"recon_e2e: {msg}", flush=True)


def check(name, cond, detail=""):
    if cond:
        say(f"ok: {name}")
    else:
        failures.append(name)
        say(f"FAIL: {name} {str(detail)[:600]}")


def acc(n):
    return "5b10a2844c20165700ee%04d" % n


SEED = {
    "groups": [{"name": "platform-team", "scim": True}],
    "users": [
        {"userName": "p1@plat.example", "email": "p1@plat.example", "accountId": acc(1),
         "department": "Platform", "givenName": "Pia", "familyName": "One",
         "groups": ["platform-team"]},
        {"userName": "p2@plat.example", "email": "p2@plat.example", "accountId": acc(2),
         "department": "Platform", "active": False, "groups": ["platform-team"]},
        {"userName": "p3@plat.example", "email": "p3@plat.example", "accountId": acc(3),
         "department": "Platform", "title": "Engineer"},
        {"userName": "o1@other.example", "email": "o1@other.example", "accountId": acc(4),
         "department": "Sales", "groups": ["platform-team"]},
        {"userName": "gone@demo.example", "email": "gone@demo.example", "accountId": acc(5),
         "department": "Sales"},
    ],
    "projects": [{"key": "PLAT", "name": "Platform",
                  "roles": {"Developers": {"users": [acc(1), acc(4)], "groups": ["platform-team"]},
                            "Administrators": {"users": [acc(3)]}}}],
    "bulk_users": {"count": BULK, "prefix": "bulk", "domain": "bulk.example", "group": "bulk-all"},
}


class Stack:
    def __init__(self, env, tmp):
        self.env = env
        self.tmp = tmp
        self.n = 0

    def control(self, method, path, body=None):
        req = urllib.request.Request(self.env["EMULATOR_CONTROL_URL"] + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def api(self, method, url, body=None, auth=None):
        req = urllib.request.Request(url, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": auth})
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)

    def scim(self, method, path, body=None):
        return self.api(method, self.env["SCIM_URL"] + path, body,
                        "Bearer " + self.env["SCIM_API_KEY"])

    def jira(self, method, path, body=None):
        import base64
        tok = base64.b64encode(f"{self.env['JIRA_EMAIL']}:{self.env['JIRA_API_TOKEN']}"
                               .encode()).decode()
        return self.api(method, self.env["JIRA_URL"] + "/rest/api/3" + path, body, "Basic " + tok)

    def scim_id(self, login):
        _, body = self.scim("GET", '/Users?filter=userName%20eq%20%22' + login + '%22')
        return body["Resources"][0]["id"]

    def request(self, recon_id, mode, resources, flt=None, scope=None, event_id=None):
        self.n += 1
        data = {"reconId": recon_id, "mode": mode, "resources": resources}
        if flt is not None:
            data["filter"] = flt
        if scope:
            data["scope"] = scope
        ev = {"specversion": "1.0", "id": event_id or f"recon-e2e-{self.n:04d}",
              "source": "https://idhub.example/recon-e2e", "type": "com.idhub.recon.request",
              "subject": recon_id, "time": "2026-11-22T10:00:00Z", "jirasite": "demo",
              "idhubactor": "e2e@idhub.example", "data": data}
        subprocess.run([PRODUCE, "-q", "-b", self.env["KAFKA_BOOTSTRAP"], "-t",
                        self.env["TOPIC_EVENTS"], "-"], input=json.dumps(ev) + "\n", text=True,
                       check=True, timeout=60)
        return ev["id"]

    def result(self, event_id, timeout=60):
        got = e2e.wait_for(f"the result of {event_id}",
                           lambda: e2e.results_by_id(self.env).get(event_id), timeout=timeout)
        return got[0] if got else {}

    def records(self, recon_id=None):
        recs = [r for _, r in e2e.consume(self.env, self.env["TOPIC_RECON"]) if r]
        return [r for r in recs if recon_id is None or r["data"]["reconId"] == recon_id]


def items_of(recs):
    return [r for r in recs if r["type"].endswith((".account", ".entitlement"))]


def of_type(recs, suffix):
    return [r for r in recs if r["type"].endswith(suffix)]


def check_run_shape(name, recs):
    """started and completed once each, seq 1..N with one subject per seq, counts agree."""
    started, completed = of_type(recs, ".started"), of_type(recs, ".completed")
    items = items_of(recs)
    by_seq = {}
    for r in items:
        by_seq.setdefault(r["data"]["seq"], set()).add(r["subject"])
    seqs = sorted(by_seq)
    ok = (len(started) == 1 and len(completed) == 1 and seqs == list(range(1, len(seqs) + 1))
          and all(len(s) == 1 for s in by_seq.values())
          and completed[0]["data"]["seq"] == len(seqs) + 1
          and completed[0]["data"]["counts"]["emitted"] == len(seqs))
    check(f"{name}: one started, one completed, seq 1..{len(seqs)} each naming one item",
          ok, (len(started), len(completed), seqs[:3], seqs[-3:],
               completed and completed[0]["data"]))
    return completed[0]["data"] if completed else {}


def latest(items):
    """The last record of each seq (repeats after a resume are identical in what matters)."""
    out = {}
    for r in items:
        out[r["data"]["seq"]] = r
    return [out[k] for k in sorted(out)]


def main():
    tmp = tempfile.mkdtemp(prefix="jiraprov-recon-e2e.")
    stack_dir = os.path.join(tmp, "stack")
    up = subprocess.run([os.path.join(SRC, "deploy/local/up.sh"), "--state", stack_dir,
                         "--workers", "0"], capture_output=True, text=True, timeout=120)
    if up.returncode != 0:
        say("up.sh failed:\n" + up.stdout + up.stderr)
        return 1
    workers = []
    try:
        env = e2e.read_env(os.path.join(stack_dir, "stack.env"))
        st = Stack(env, tmp)
        st.control("POST", "/seed", SEED)
        state = st.control("GET", "/state")
        scim_users = {u["accountId"]: u for u in state["users"] if u.get("scim")}
        groups = {g["name"]: g for g in state["groups"]}
        check("the emulator holds the seeded directory",
              len(scim_users) == BULK + 9 and len(groups["bulk-all"]["members"]) == BULK,
              (len(scim_users), {k: len(g["members"]) for k, g in groups.items()}))

        base = open(env["WORKER_CONFIG"]).read()
        cfg = re.sub(r'(?m)^(\s*group:).*$', r'\1 "recon-e2e"', base)
        cfg = re.sub(r'(?m)^(\s*listen:).*$', r'\1 "127.0.0.1:0"', cfg)
        # A killed member leaves the group when its session expires: keep that short.
        cfg = re.sub(r'(?m)^(\s*bootstrap\.servers:.*)$', r'\1\n  session.timeout.ms: 6000', cfg)
        # Redis writes are paused for a few seconds in the resume test: outlast that.
        cfg = re.sub(r'(?m)^(redis:\n\s*url:.*)$', r'\1\n  timeout_ms: 15000', cfg)
        cfg += ("retry:\n  base_delay_ms: 100\n  max_delay_ms: 1000\n"
                f"recon:\n  page_concurrency: 2\n  members_per_record: {PER_RECORD}\n"
                "  lease_s: 3\n")
        wcfg = os.path.join(tmp, "worker.yaml")
        with open(wcfg, "w") as f:
            f.write(cfg)
        os.chmod(wcfg, 0o600)

        def start_worker(name):
            log = os.path.join(tmp, name + ".log")
            p = subprocess.Popen([WORKER, "--config", wcfg], stderr=open(log, "w"))
            workers.append((p, log))
            return p, log

        w1, w1_log = start_worker("worker-1")

        # ---- full: every account and entitlement ------------------------------------------
        ev = st.request("full-1", "full", ["accounts", "entitlements"])
        res = st.result(ev, timeout=90)
        check("full run succeeded", res.get("status") == "succeeded", res)
        recs = st.records("full-1")
        done = check_run_shape("full", recs)
        accounts = of_type(recs, ".account")
        ents = of_type(recs, ".entitlement")
        check("full: one account per SCIM user, keyed by email",
              sorted(r["data"]["accountId"] for r in accounts) == sorted(scim_users)
              and all(r["data"]["key"] == {"attribute": "email",
                                           "value": scim_users[r["data"]["accountId"]]["email"]}
                      for r in accounts), len(accounts))
        p2 = next((r["data"] for r in accounts if r["data"]["accountId"] == acc(2)), {})
        check("full: mapped attributes and active as Jira holds them",
              p2.get("active") is False and p2.get("attributes", {}).get("department") ==
              "Platform" and p2.get("attributes", {}).get("login") == "p2@plat.example", p2)
        bulk = [r["data"] for r in ents if r["data"].get("groupId") == groups["bulk-all"]["groupId"]]
        check(f"full: the {BULK}-member group in {BULK // PER_RECORD} parts with every member",
              sorted(d["part"] for d in bulk) == list(range(1, BULK // PER_RECORD + 1))
              and all(d["parts"] == BULK // PER_RECORD and len(d["members"]) == PER_RECORD
                      for d in bulk)
              and sorted(m["accountId"] for d in bulk for m in d["members"]) ==
              sorted(groups["bulk-all"]["members"]), [(d["part"], len(d["members"])) for d in bulk])
        team = next((r["data"] for r in ents if r["data"].get("displayName") == "platform-team"),
                    {})
        check("full: a group with its members (email as Jira shows it)",
              sorted(m["accountId"] for m in team.get("members", [])) == [acc(1), acc(2), acc(4)]
              and team.get("membership") == "complete"
              and any(m.get("email") == "p1@plat.example" for m in team.get("members", [])), team)
        roles = {(r["data"]["project"], r["data"]["displayName"]): r["data"] for r in ents
                 if r["data"]["type"] == "projectRole"}
        dev = roles.get(("PLAT", "Developers"), {})
        check("full: project roles with user and group actors",
              len(roles) == 9 and sorted((m["type"], m.get("accountId", m.get("group")))
                                         for m in dev.get("members", [])) ==
              [("group", "platform-team"), ("user", acc(1)), ("user", acc(4))]
              and dev.get("entitlement") == {"type": "projectRole", "project": "PLAT",
                                             "role": "Developers"}, (sorted(roles), dev))
        check("full: counts", done.get("counts", {}).get("read") == len(items_of(recs))
              and done["counts"]["removed"] == 0 and done["counts"]["errors"] == 0, done)
        dump = os.path.join(tmp, "full.jsonl")
        with open(dump, "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in recs))
        schema = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "tests/schemas/check_records.py"),
                                 SRC, dump], capture_output=True, text=True, timeout=60)
        check("full: every record valid against recon.schema.json", schema.returncode == 0,
              schema.stdout[-500:])
        check("full: records keyed by their subject (compactable)",
              all(r["subject"].startswith("demo/") for r in recs))
        port = re.search(r"http on port (\d+)", open(w1_log).read())
        metrics = port and urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}/metrics",
                                                  timeout=10).read().decode()
        m = metrics and re.search(r"^jiraprov_recon_records_total (\d+)$", metrics, re.M)
        check("full: the worker's metrics count the run and its records",
              m and int(m.group(1)) >= len(recs) - 2 and
              re.search(r"^jiraprov_recon_runs_completed_total 1$", metrics, re.M) and
              re.search(r"^jiraprov_recon_runs 0$", metrics, re.M), metrics and metrics[-700:])

        # ---- filtered: a SCIM eq filter -------------------------------------------------------
        st.control("POST", "/counters/reset")
        ev = st.request("filtered-eq", "filtered", ["accounts"], {"userName": "alice@demo.example"})
        res = st.result(ev)
        recs = st.records("filtered-eq")
        check_run_shape("filtered (SCIM eq)", recs)
        users_get = sum(r["count"] for r in st.control("GET", "/counters")["requests"]
                        if r["method"] == "GET" and r["route"].endswith("/Users"))
        check("filtered (SCIM eq): alice only, read with one filtered SCIM request",
              [r["data"]["key"]["value"] for r in of_type(recs, ".account")] ==
              ["alice@demo.example"] and users_get == 1, (res, users_get))

        # ---- filtered: conditions evaluated by the worker, memberships of the selection -----
        ev = st.request("filtered-plat", "filtered", ["accounts", "entitlements"],
                        {"department": "Platform", "active": True})
        res = st.result(ev)
        recs = st.records("filtered-plat")
        check_run_shape("filtered (conditions)", recs)
        check("filtered: accounts of department Platform that are active",
              sorted(r["data"]["accountId"] for r in of_type(recs, ".account")) ==
              [acc(1), acc(3)], res)
        fents = {(r["data"].get("project"), r["data"]["displayName"], r["data"]["part"]):
                 r["data"] for r in of_type(recs, ".entitlement")}
        fteam = fents.get((None, "platform-team", 1), {})
        fdev = fents.get(("PLAT", "Developers", 1), {})
        check("filtered: memberships list only the selected accounts (group actors kept)",
              fteam.get("membership") == "filtered"
              and [m["accountId"] for m in fteam.get("members", [])] == [acc(1)]
              and sorted((m["type"], m.get("accountId", m.get("group")))
                         for m in fdev.get("members", [])) ==
              [("group", "platform-team"), ("user", acc(1))]
              and all(not d["members"] for k, d in fents.items() if k[1] == "bulk-all"),
              (fteam, fdev))
        ev = st.request("filtered-group", "filtered", ["accounts"], {"group": "platform-team"})
        st.result(ev)
        recs = st.records("filtered-group")
        check("filtered: group membership condition",
              sorted(r["data"]["accountId"] for r in of_type(recs, ".account")) ==
              [acc(1), acc(2), acc(4)], len(recs))

        # ---- incremental: nothing changed, then creations, changes and removals ------------
        ev = st.request("inc-1", "incremental", ["accounts", "entitlements"])
        st.result(ev)
        recs = st.records("inc-1")
        done = check_run_shape("incremental (no change)", recs)
        check("incremental right after full: nothing published, everything unchanged",
              not items_of(recs) and done.get("counts", {}).get("unchanged") ==
              len(items_of(st.records("full-1"))), done)

        st.control("POST", "/seed", {"users": [{"userName": "n1@new.example",
                                                "email": "n1@new.example",
                                                "accountId": acc(6)}]})
        st.scim("PATCH", "/Users/" + st.scim_id("p3@plat.example"),
                {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                 "Operations": [{"op": "replace", "path": "title", "value": "Lead"}]})
        gone_id = st.scim_id("gone@demo.example")
        st.scim("DELETE", "/Users/" + gone_id)
        st.jira("POST", "/group/user?groupId=" + groups["platform-team"]["groupId"],
                {"accountId": acc(3)})
        st.jira("DELETE", "/project/PLAT/role/10002?user=" + acc(3))

        ev = st.request("inc-2", "incremental", ["accounts", "entitlements"])
        res = st.result(ev)
        recs = st.records("inc-2")
        done = check_run_shape("incremental (changes)", recs)
        got = sorted((r["data"]["operation"], r["data"].get("change"),
                      r["data"]["key"]["value"] if r["type"].endswith(".account")
                      else r["data"]["displayName"]) for r in items_of(recs))
        want = sorted([("upsert", "created", "n1@new.example"),
                       ("upsert", "changed", "p3@plat.example"),
                       ("delete", "removed", "gone@demo.example"),
                       ("upsert", "changed", "platform-team"),
                       ("upsert", "changed", "Administrators")])
        check("incremental: exactly the created, changed and removed items", got == want, got)
        deleted = next((r for r in items_of(recs) if r["data"]["operation"] == "delete"), {})
        check("incremental: the removal names the account (key and scimId) under its own key",
              deleted.get("subject") == "demo/account/" + gone_id
              and deleted.get("data", {}).get("scimId") == gone_id, deleted)
        check("incremental: counts", done.get("counts", {}).get("removed") == 1
              and done["counts"]["emitted"] == 5, done)
        ev = st.request("inc-3", "incremental", ["accounts", "entitlements"])
        st.result(ev)
        check("incremental after incremental: nothing", not items_of(st.records("inc-3")))

        # ---- the same reconId again: not run twice ----------------------------------------
        ev = st.request("full-1", "full", ["accounts", "entitlements"])
        res = st.result(ev)
        check("a second request for a reconId that completed is skipped",
              res.get("status") == "skipped" and "already completed" in res.get("detail", ""), res)
        recs = st.records("full-1")
        check("... and publishes nothing", len(of_type(recs, ".started")) == 1
              and len(of_type(recs, ".completed")) == 1)

        # ---- the scheduler: one request per tick, replicas emit the same one --------------
        def schedule():
            return subprocess.run([SCHEDULE, "--once", "--every", "1h", "--site", "demo",
                                   "--prefix", "e2e-sched", "-q", "-b", env["KAFKA_BOOTSTRAP"],
                                   "-t", env["TOPIC_EVENTS"]], timeout=60).returncode
        check("the scheduler sends a request", schedule() == 0)
        tick = time.strftime("%Y%m%dT%H0000Z", time.gmtime())
        sched_id = f"e2e-sched-{tick}"
        res = st.result(sched_id + ".request")
        check("the scheduled incremental run completed",
              res.get("status") == "succeeded" and "incremental" in res.get("detail", ""), res)
        check("a second scheduler for the same tick sends the same request", schedule() == 0)
        e2e.wait_for("the repeat answered", lambda: len(
            e2e.results_by_id(env).get(sched_id + ".request", [])) >= 2, timeout=30)
        check("... which runs once", len(of_type(st.records(sched_id), ".started")) == 1)

        # ---- pages that fail are retried on their own; the run completes whole -----------
        directory = len([u for u in st.control("GET", "/state")["users"] if u.get("scim")])
        st.control("POST", "/counters/reset")
        st.control("PUT", "/faults", [
            {"path": "/rest/api/3/group/member", "kind": "error", "status": 503, "times": 3},
            {"path": "/scim/directory/*/Users", "method": "GET", "kind": "rate_limit",
             "retry_after": 1, "times": 1}])
        ev = st.request("faulty-1", "full", ["accounts", "entitlements"], scope="faulty")
        res = st.result(ev, timeout=60)
        st.control("PUT", "/faults", [])
        fired = st.control("GET", "/counters")["faults"]
        recs = st.records("faulty-1")
        check_run_shape("under 503s and a 429", recs)
        check("under 503s and a 429: retried page by page, nothing lost",
              res.get("status") == "succeeded" and res.get("attempts") == 1
              and fired.get("error") == 3 and fired.get("rate_limit") == 1
              and len(of_type(recs, ".account")) == directory
              and len(of_type(recs, ".entitlement")) ==
              len(of_type(st.records("full-1"), ".entitlement")), (res, fired))

        # ---- two runs of one scope at once: both complete, the baseline stays right -------
        st.control("PUT", "/faults", [{"path": "/scim/directory/*/Users", "method": "GET",
                                       "kind": "latency", "latency_ms": 150}])
        first = st.request("busy-1", "full", ["accounts"], scope="busy")
        second = st.request("busy-2", "incremental", ["accounts"], scope="busy")
        r1, r2 = st.result(first), st.result(second)
        st.control("PUT", "/faults", [])
        b1, b2 = of_type(st.records("busy-1"), ".completed"), of_type(st.records("busy-2"),
                                                                     ".completed")
        ev = st.request("busy-3", "incremental", ["accounts"], scope="busy")
        st.result(ev)
        check("one scope, two runs at once: both complete, and the next finds nothing new",
              r1.get("status") == r2.get("status") == "succeeded" and len(b1) == len(b2) == 1
              and b1[0]["data"]["startedAt"] < b2[0]["data"]["completedAt"]
              and b2[0]["data"]["startedAt"] < b1[0]["data"]["completedAt"]
              and not items_of(st.records("busy-3")), (r1, r2, b1, b2))
        check("... the first to complete set the baseline, the other left it (it had diffed "
              "against the older one)",
              sum("keeps the baseline" in r.get("detail", "") for r in (r1, r2)) == 1, (r1, r2))

        def checkpoint_at(recon_id, page):
            def get():
                out = subprocess.run(["redis-cli", "-u", env["REDIS_URL"], "GET",
                                      "jiraprov:recon:{demo}:run:" + recon_id],
                                     capture_output=True, text=True, timeout=10).stdout.strip()
                try:
                    c = json.loads(out)
                except ValueError:
                    return None
                return c if c["phase"] == "accounts" and c["page"] >= page else None
            return get

        def lease_keys():
            return subprocess.run(["redis-cli", "-u", env["REDIS_URL"], "--scan", "--pattern",
                                   "jiraprov:recon:{demo}:lease:*"], capture_output=True,
                                  text=True, timeout=10).stdout.split()

        # ---- SIGTERM suspends a run; the next worker resumes it ---------------------------
        st.control("PUT", "/faults", [{"path": "/scim/directory/*/Users", "method": "GET",
                                       "kind": "latency", "latency_ms": 300}])
        susp_ev = st.request("suspend-1", "full", ["accounts"], scope="suspend-test")
        check("the run to suspend checkpointed",
              e2e.wait_for("a checkpoint two pages in", checkpoint_at("suspend-1", 2), timeout=60))
        t0 = time.monotonic()
        w1.terminate()
        check("SIGTERM: the worker suspends the run and exits 0 at once",
              w1.wait(timeout=30) == 0 and time.monotonic() - t0 < 10
              and "the worker is stopping; the run resumes" in open(w1_log).read(),
              time.monotonic() - t0)
        check("SIGTERM: the run's lease is given back", not lease_keys(), lease_keys())
        check("SIGTERM: no result for the suspended request yet",
              susp_ev not in e2e.results_by_id(env))
        st.control("PUT", "/faults", [{"path": "/scim/directory/*/Users", "method": "GET",
                                       "kind": "latency", "latency_ms": 300}])
        w1, w1_log = start_worker("worker-1b")
        res = st.result(susp_ev, timeout=60)
        check("the suspended run resumes on the next worker and completes",
              res.get("status") == "succeeded" and "resumed" in res.get("detail", ""), res)
        check_run_shape("suspended and resumed", st.records("suspend-1"))

        # ---- a worker killed mid-run; another resumes from the checkpoint -----------------
        # A crash between a page's delivery and its checkpoint write leaves records past the
        # checkpoint. That moment lasts milliseconds, and holding Redis writes back no longer
        # widens it (every page takes a token of the shared budget from Redis first), so the
        # test makes the state itself: it keeps a checkpoint two pages in, lets the run go on,
        # kills the worker and puts that checkpoint back, as if the later writes were lost.
        def redis(*args):
            return subprocess.run(["redis-cli", "-u", env["REDIS_URL"]] + list(args),
                                  capture_output=True, text=True, timeout=10).stdout.strip()
        active = {u["accountId"] for u in st.control("GET", "/state")["users"]
                  if u.get("scim") and u.get("active")}
        st.control("PUT", "/faults", [{"path": "/scim/directory/*/Users", "method": "GET",
                                       "kind": "latency", "latency_ms": 2500}])
        kill_ev = st.request("resume-1", "filtered", ["accounts"], {"active": True})
        ck_key = "jiraprov:recon:{demo}:run:resume-1"
        old = e2e.wait_for("a checkpoint two pages in", checkpoint_at("resume-1", 2), timeout=60)
        old_raw = redis("GET", ck_key)
        old_seq = json.loads(old_raw)["seq"] if old_raw else 0
        check("records published past the last checkpoint", e2e.wait_for(
            "100 records past the kept checkpoint",
            lambda: len(items_of(st.records("resume-1"))) >= old_seq + 100, timeout=60), old)
        w1.send_signal(signal.SIGKILL)
        w1.wait(timeout=30)
        if old_raw:
            redis("SET", ck_key, old_raw)
        ck = json.loads(redis("GET", "jiraprov:recon:{demo}:run:resume-1"))
        before = items_of(st.records("resume-1"))
        check("the kill left records past the checkpoint", len(before) >= ck["seq"], ck["seq"])
        st.control("PUT", "/faults", [])
        w2, w2_log = start_worker("worker-2")
        res = st.result(kill_ev, timeout=90)
        check("the resumed run completed", res.get("status") == "succeeded"
              and "resumed" in res.get("detail", ""), res)
        recs = st.records("resume-1")
        done = check_run_shape("resumed", recs)
        items = items_of(recs)
        repeats = len(items) - len({r["data"]["seq"] for r in items})
        say(f"resumed at {ck and ck['seq']}: {len(before)} item records before the kill, "
            f"{repeats} published again (same seq), {len(latest(items))} in all")
        check("resumed: every active account once by seq, repeats with the same seq",
              sorted(r["data"]["accountId"] for r in latest(items)) == sorted(active),
              (len(latest(items)), len(before), repeats))
        check("resumed: from the checkpoint, repeating only what followed it (same seq)",
              0 < ck["seq"] - 1 < len(before) and repeats == len(before) - (ck["seq"] - 1),
              (len(before), ck["seq"], repeats, len(latest(items))))
        check("resumed: the second worker says it resumed",
              re.search(r"resume-1 .* resumed at accounts", open(w2_log).read()))
        check("resumed: completed counts match the records", done.get("counts", {}).get(
            "emitted") == len(latest(items)), done)
        w2.terminate()
        check("the second worker drains and exits 0", w2.wait(timeout=60) == 0)
    finally:
        for p, _ in workers:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
        subprocess.run([os.path.join(SRC, "deploy/local/down.sh"), "--state", stack_dir],
                       capture_output=True, timeout=60)
    if failures:
        say(f"{len(failures)} check(s) failed; logs in {tmp}")
        for _, log in workers:
            say(f"--- tail of {log}")
            print("".join(open(log).readlines()[-25:]))
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    say("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
