"""The worker's operations surface on the local stack (embedded Kafka, redis-server, the Jira
emulator) with one worker this test starts itself:

  probes      /healthz, /readyz (and why it is not ready), 404 elsewhere;
  /metrics    every line valid Prometheus text; after the demo story the counters equal what
              was produced and applied, Jira calls and latencies are counted, the consumer lag
              of every assigned partition is reported and drains to 0;
  logs        every stderr line is one JSON object with ts/level/component/msg, context fields
              typed, no secret; librdkafka's own lines come through as component "rdkafka";
  SIGHUP      one line naming every changed key, split into applied and needing a restart;
              the new mapping is used by the next event (seen in the emulator), a key that
              needs a restart is not applied (results still go to the old topic), a file that
              does not load changes nothing, the counters say so;
  SIGTERM     a clean drain: exit 0 well within the bound.

Run by test_worker_ops.sh (ctest integration.worker_ops) with JP_SOURCE_DIR and JP_BUILD_DIR.
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
import promtext  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from jpstack import free_port  # noqa: E402
import worker_e2e as e2e  # noqa: E402  (stack helpers: read_env, consume, wait_for, ...)

SRC, BUILD, WORKER = e2e.SRC, e2e.BUILD, e2e.WORKER
failures = []


def say(msg):
    print(f"worker_ops: {msg}", flush=True)


def check(name, cond, detail=""):
    if cond:
        say(f"ok: {name}")
    else:
        failures.append(name)
        say(f"FAIL: {name} {detail}")


def get(url):
    """(status, body) of a GET; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


DEFAULT_MAPPING = """mapping:
  - {idhub: login, scim: userName}
  - {idhub: email, scim: "emails[primary].value"}
  - {idhub: firstName, scim: name.givenName}
  - {idhub: lastName, scim: name.familyName}
  - {idhub: department, scim: department}
"""
# The reloaded table: department is no longer mapped.
RELOADED_MAPPING = """mapping:
  - {idhub: login, scim: userName}
  - {idhub: email, scim: "emails[primary].value"}
  - {idhub: firstName, scim: name.givenName}
  - {idhub: lastName, scim: name.familyName}
"""


def worker_config(env, stack, *, bootstrap=None, group="jiraprov", level="info",
                  results=None, mapping=DEFAULT_MAPPING, extra_kafka="", extra=""):
    secrets = os.path.join(stack, "secrets")
    return f"""kafka:
  bootstrap.servers: "{bootstrap or env['KAFKA_BOOTSTRAP']}"
{extra_kafka}topics:
  events: "{env['TOPIC_EVENTS']}"
  results: "{results or env['TOPIC_RESULTS']}"
  audit: "{env['TOPIC_AUDIT']}"
  dead_letter: "{env['TOPIC_DLQ']}"
consumer:
  group: "{group}"
redis:
  url: "{env['REDIS_URL']}"
sites:
  - name: demo
    jira_url: "{env['JIRA_URL']}"
    email: "{env['JIRA_EMAIL']}"
    api_token_file: "{secrets}/jira_api_token"
    scim_url: "{env['SCIM_URL']}"
    scim_api_key_file: "{secrets}/scim_api_key"
    admin_url: "{env['ADMIN_URL']}"
    org_api_key_file: "{secrets}/org_api_key"
{mapping}worker:
  drain_timeout_ms: 10000
audit:
  hmac_key_file: "{secrets}/audit_hmac_key"
http:
  listen: "127.0.0.1:0"
log:
  level: {level}
{extra}"""


def write(path, text):
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


class Worker:
    """A jiraprov-worker process with its stderr in a file."""

    def __init__(self, config_path, log_path):
        self.log_path = log_path
        self.logf = open(log_path, "w")
        self.proc = subprocess.Popen([WORKER, "--config", config_path],
                                     stdout=subprocess.DEVNULL, stderr=self.logf)
        m = e2e.wait_for("the worker's HTTP port",
                         lambda: re.search(r"http on port (\d+)", self.log()), timeout=30)
        self.base = f"http://127.0.0.1:{m.group(1)}" if m else None

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def lines(self):
        return [line for line in self.log().split("\n") if line]

    def metrics(self):
        status, body = get(self.base + "/metrics")
        return promtext.parse(body) if status == 200 else {}

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.logf.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.logf.close()


def event(n, etype, subject, data):
    return {"specversion": "1.0", "id": f"ops-{n:04d}", "source": "https://idhub.example/ops",
            "type": "com.idhub." + etype, "subject": subject, "time": "2026-11-22T11:00:00Z",
            "jirasite": "demo", "idhubactor": "ops@idhub.example", "data": data}


def produce(env, tmp, events):
    path = os.path.join(tmp, f"events-{events[0]['id']}.jsonl")
    with open(path, "w") as f:
        for ev in events:
            f.write(json.dumps(ev) + "\n")
    e2e.produce_file(env, path)


def scim_user(env, login):
    return e2e.user(e2e.emulator(env, "/state"), login) or {}


def check_logs(w, secrets):
    bad, ctx_ok = [], True
    for line in w.lines():
        try:
            rec = json.loads(line)
        except ValueError:
            bad.append(line)
            continue
        if not all(isinstance(rec.get(k), str) for k in ("ts", "level", "component", "msg")):
            bad.append(line)
        if rec.get("level") not in ("debug", "info", "warn", "error"):
            bad.append(line)
        for k, kind in (("partition", int), ("offset", int), ("event_id", str)):
            if k in rec and not isinstance(rec[k], kind):
                ctx_ok = False
    check("every log line is one JSON object with ts, level, component, msg", not bad, bad[:3])
    check("context fields are typed (partition and offset numbers, event_id a string)", ctx_ok)
    # A reconciliation run's lines name its request's event id only: the run is the request's
    # work, not one delivery's (it may resume on another worker, from another delivery).
    with_ctx = [r for r in (json.loads(x) for x in w.lines() if '"event_id"' in x)
                if r.get("component") != "recon"]
    check("event log lines carry event id, partition and offset",
          with_ctx and all("partition" in r and "offset" in r for r in with_ctx), with_ctx[:2])
    leaked = [s for s in secrets if s in w.log()]
    check("no secret appears in the log", not leaked)


def main():
    if not os.access(WORKER, os.X_OK):
        say(f"{WORKER} is not built")
        return 1
    tmp = tempfile.mkdtemp(prefix="jiraprov-worker-ops.")
    stack = os.path.join(tmp, "stack")
    up = subprocess.run([os.path.join(SRC, "deploy/local/up.sh"), "--state", stack,
                         "--workers", "0"], capture_output=True, text=True, timeout=120)
    if up.returncode != 0:
        say("up.sh failed:\n" + up.stdout + up.stderr)
        return 1
    workers = []
    try:
        env = e2e.read_env(os.path.join(stack, "stack.env"))
        secrets = [open(os.path.join(stack, "secrets", n)).read().strip()
                   for n in ("jira_api_token", "scim_api_key", "org_api_key")]
        cfg_path = os.path.join(tmp, "worker.yaml")
        write(cfg_path, worker_config(env, stack))
        w = Worker(cfg_path, os.path.join(tmp, "worker.log"))
        workers.append(w)
        check("the worker logs its bound HTTP port", w.base, w.log()[-2000:])
        if not w.base:
            return 1

        # ---- probes ---------------------------------------------------------------------
        check("/healthz answers 200 ok", get(w.base + "/healthz") == (200, "ok\n"))
        check("/readyz turns 200 once partitions are assigned",
              e2e.wait_for("readiness", lambda: get(w.base + "/readyz") == (200, "ready\n"),
                           timeout=60))
        check("an unknown path is 404", get(w.base + "/nope")[0] == 404)

        # ---- the demo story and its metrics ---------------------------------------------
        demo = os.path.join(SRC, "config/samples/demo.jsonl")
        demo_events = [json.loads(x) for x in open(demo) if x.strip()]
        by_type = {}
        for ev in demo_events:
            t = ev["type"][len("com.idhub."):]
            by_type[t] = by_type.get(t, 0) + 1
        e2e.produce_file(env, demo)
        m = e2e.wait_for(
            "every demo event completed",
            lambda: (f := w.metrics()) and
            promtext.total(f, "jiraprov_events_completed_total") == len(demo_events) and f,
            timeout=90) or {}
        check("/metrics is valid Prometheus text with every family of the catalogue",
              all(name in m for name in (
                  "jiraprov_events_consumed_total", "jiraprov_events_completed_total",
                  "jiraprov_jira_requests_total", "jiraprov_jira_request_duration_seconds",
                  "jiraprov_event_end_to_end_seconds", "jiraprov_kafka_consumer_lag",
                  "jiraprov_site_quarantined", "jiraprov_ratelimit_tokens", "jiraprov_ready")),
              sorted(m))
        check("events consumed are counted by type",
              all(promtext.total(m, "jiraprov_events_consumed_total", type=t) == n
                  for t, n in by_type.items()), by_type)
        # Subjects run in parallel, so the issue events may or may not find their assignee:
        # the metrics are compared with the results topic rather than with a fixed story.
        published = {}
        for recs in e2e.results_by_id(env).values():
            key = (recs[0]["eventType"], recs[0]["status"])
            published[key] = published.get(key, 0) + 1
            if recs[0]["status"] != "succeeded":
                say(f"note: {key[0]} {key[1]}: {recs[0].get('error')}")
        check("completed events by type and status equal the published results",
              all(promtext.total(m, "jiraprov_events_completed_total", type=t, status=st) == n
                  for (t, st), n in published.items()) and
              sum(published.values()) == len(demo_events), published)
        check("the demo's reconciliation is counted as a completed run, nothing dead-lettered",
              promtext.total(m, "jiraprov_recon_runs_completed_total") == 1 and
              promtext.total(m, "jiraprov_events_deadlettered_total") == 0)
        calls = promtext.total(m, "jiraprov_jira_requests_total", site="demo")
        check("Jira calls are counted by site, and as many are timed",
              calls > 0 and
              promtext.total(m, "jiraprov_jira_request_duration_seconds_count") == calls, calls)
        check("Jira calls carry API, endpoint class, method and status labels",
              promtext.total(m, "jiraprov_jira_requests_total", api="scim",
                             endpoint_class="scim.users", method="POST", status="201") >= 3)
        check("processing and end-to-end latency are observed for every event",
              promtext.total(m, "jiraprov_event_processing_seconds_count") == len(demo_events)
              and promtext.total(m, "jiraprov_event_end_to_end_seconds_count") ==
              len(demo_events))
        lag = e2e.wait_for(
            "the consumer lag of all 8 partitions, drained to 0",
            lambda: (f := w.metrics()) and
            len(promtext.values(f, "jiraprov_kafka_consumer_lag", topic="idhub.events")) == 8
            and promtext.total(f, "jiraprov_kafka_consumer_lag") == 0 and f, timeout=30)
        check("the consumer lag of every assigned partition is reported and drains to 0", lag)
        check("partitions assigned, brokers up (statistics), Redis up, ready",
              lag and promtext.total(lag, "jiraprov_partitions_assigned") == 8 and
              promtext.total(lag, "jiraprov_kafka_brokers_up") >= 1 and
              promtext.total(lag, "jiraprov_redis_up") == 1 and
              promtext.total(lag, "jiraprov_ready") == 1)

        # ---- SIGHUP: mapping, rate limits, retry, log level; keys that need a restart -----
        login = "ops1@demo.example"
        base_data = {"login": login, "email": login, "firstName": "O", "lastName": "Ps"}
        produce(env, tmp, [event(1, "account.create", login, {**base_data, "department": "Sales"}),
                           event(2, "account.update", login, {"login": login,
                                                              "department": "Support"})])
        check("before the reload, department is mapped (written to Jira)",
              e2e.wait_for("department Support",
                           lambda: scim_user(env, login).get("department") == "Support",
                           timeout=30), scim_user(env, login))
        write(cfg_path, worker_config(
            env, stack, level="debug", results="jiraprov.results.renamed",
            mapping=RELOADED_MAPPING, extra_kafka="  client.rack: rack-1\n",
            extra="rate_limits:\n  get_per_s: 42\nretry:\n  max_attempts: 3\n"))
        w.proc.send_signal(signal.SIGHUP)
        line = e2e.wait_for("the reload line", lambda: next(
            (json.loads(x) for x in w.lines() if "SIGHUP: configuration reloaded" in x), None),
            timeout=10) or {}
        msg = line.get("msg", "")
        applied, _, restart = msg.partition("; need a restart (not applied): ")
        check("the reload line names the applied keys",
              all(k in applied for k in ("mapping", "log.level", "rate_limits.get_per_s",
                                         "sites[demo].rate_limits.get_per_s",
                                         "retry.max_attempts")), msg)
        check("and those that need a restart, as a warning",
              line.get("level") == "warn" and "topics.results" in restart and
              "kafka.client.rack" in restart and "mapping" not in restart, line)
        check("the log level changed at once (debug lines follow)",
              "log level info -> debug" in msg)
        produce(env, tmp, [event(3, "account.update", login, {"login": login,
                                                              "department": "Finance",
                                                              "firstName": "Olga"})])
        res = e2e.wait_for("the result of the update after the reload",
                           lambda: e2e.results_by_id(env).get("ops-0003"), timeout=30) or [{}]
        check("results still go to the configured topic (topics.results needs a restart)",
              res[0].get("status") == "succeeded", res)
        check("the new mapping is used: department is no longer written",
              res[0].get("changed") == ["firstName"] and
              scim_user(env, login).get("department") == "Support", res[0])
        check("debug lines are logged after the reload", '"level":"debug"' in w.log())
        check_logs(w, secrets)
        m = w.metrics()
        check("reloads and the pending restart are counted",
              promtext.total(m, "jiraprov_config_reloads_total", result="applied") == 1 and
              promtext.total(m, "jiraprov_config_restart_pending") == 1)

        with open(cfg_path, "a") as f:
            f.write("retry: [broken\n")
        w.proc.send_signal(signal.SIGHUP)
        check("a file that does not load changes nothing and says why",
              e2e.wait_for("the failed reload", lambda: "configuration not reloaded, nothing "
                           "changed" in w.log(), timeout=10))
        write(cfg_path, worker_config(
            env, stack, level="debug", results="jiraprov.results.renamed",
            mapping=RELOADED_MAPPING, extra_kafka="  client.rack: rack-1\n",
            extra="rate_limits:\n  get_per_s: 42\nretry:\n  max_attempts: 3\n"))
        w.proc.send_signal(signal.SIGHUP)
        m = e2e.wait_for("an unchanged reload", lambda: (f := w.metrics()) and promtext.total(
            f, "jiraprov_config_reloads_total", result="unchanged") == 1 and f, timeout=10)
        check("failed and unchanged reloads are counted, the worker still ready",
              m and promtext.total(m, "jiraprov_config_reloads_total", result="failed") == 1 and
              get(w.base + "/readyz")[0] == 200)

        # ---- librdkafka's logs, and readiness without a broker ---------------------------
        dead_path = os.path.join(tmp, "dead.yaml")
        write(dead_path, worker_config(env, stack, bootstrap=f"127.0.0.1:{free_port()}",
                                       group="ops-dead"))
        d = Worker(dead_path, os.path.join(tmp, "dead.log"))
        workers.append(d)
        rd = e2e.wait_for("a librdkafka log line", lambda: next(
            (json.loads(x) for x in d.lines() if '"component":"rdkafka"' in x), None),
            timeout=30) or {}
        check("librdkafka's own logs come through the JSON logger as component rdkafka",
              rd.get("level") in ("warn", "error", "info") and "rd" in rd.get("msg", ""), rd)
        check("/readyz says why a worker without a broker is not ready",
              e2e.wait_for("not ready", lambda: get(d.base + "/readyz") ==
                           (503, "no Kafka broker connected\n"), timeout=30),
              get(d.base + "/readyz"))
        check("a worker that never reached Kafka still stops cleanly", d.stop() == 0)

        # ---- SIGTERM ---------------------------------------------------------------------
        t0 = time.monotonic()
        rc = w.stop()
        took = time.monotonic() - t0
        check("SIGTERM drains and exits 0 within the bound", rc == 0 and took < 10, (rc, took))
        check("the drain is logged to the end", '"msg":"exit 0"' in w.log())
    finally:
        for x in workers:
            x.kill()
        subprocess.run([os.path.join(SRC, "deploy/local/down.sh"), "--state", stack],
                       capture_output=True, timeout=60)
    if failures:
        say(f"{len(failures)} check(s) failed; logs in {tmp}")
        for x in workers:
            say(f"--- tail of {x.log_path}")
            print("\n".join(x.lines()[-30:]))
        return 1
    say("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
