"""jiraprov benchmarks against the limits of the machine (issue 9). Run by tests/bench/run.sh.

Every speed figure is a ratio against a limit measured in the same run on the same stack,
because absolute times on a shared 2-core machine are noise. The scenarios, their targets and
the method are described in tests/bench/README.md; this file is the harness:

  1 overhead       one worker vs jiraprov-bench-limit, 200k account.update, no latency
  2 latency        100 ms per Jira call, in-flight cap 512: calls/s vs cap / latency
  3 ratelimit      4 workers share a POST limit of 100/s (ratelimit_bench.py), shared vs not
  4 isolation      10 sites, one in a 429/503 storm: the other nine's throughput vs calm
  5 memory         peak RSS with 10k events in flight or parked; RSS growth in a 100k recon
  6 added-latency  at half of scenario 1's throughput: p99 of the time the worker adds
  7 cost           instructions per event (callgrind) of the worker and of the limit

Usage: run.sh [--quick] [--runs N] [--out DIR] [--keep] [SCENARIO...]
Needs JP_SOURCE_DIR and JP_BUILD_DIR (run.sh sets them). Exit status 0 when every target
that was measured is met, 1 when one is missed, 2 on a harness error.
"""
import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from jpstack import free_port  # noqa: E402

SRC = os.environ["JP_SOURCE_DIR"]
BUILD = os.environ["JP_BUILD_DIR"]
WORKER = os.path.join(BUILD, "worker", "jiraprov-worker")
PRODUCE = os.path.join(BUILD, "producers", "jiraprov-produce")
LIMIT = os.path.join(BUILD, "tests", "bench", "jiraprov-bench-limit")
WATCH = os.path.join(BUILD, "tests", "bench", "jiraprov-bench-watch")
EMULATOR = os.path.join(BUILD, "tests", "emulator", "jiraprov-jira-emulator")
UP = os.path.join(SRC, "deploy", "local", "up.sh")
DOWN = os.path.join(SRC, "deploy", "local", "down.sh")
HZ = os.sysconf("SC_CLK_TCK")

# Scenario 6's stream (see paced_run); the environment overrides them for experiments.
S6_PACE_MS = float(os.environ.get("S6_PACE_MS", "1"))
S6_LINGER_MS = float(os.environ.get("S6_LINGER_MS", "1"))
S6_FETCH_WAIT_MS = int(os.environ.get("S6_FETCH_WAIT_MS", "1"))
# A fixed full rate (events/s) instead of scenario 1's, to compare builds at the same load.
S6_FULL_RATE = float(os.environ.get("S6_FULL_RATE", "0"))

SCENARIOS = ["overhead", "latency", "ratelimit", "isolation", "memory", "added-latency", "cost"]
# jp_pipeline_overhead_bounds_us (include/jiraprov/pipeline.h), then +Inf.
OVERHEAD_BOUNDS_US = [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1250, 1500, 1750, 2000,
                      2500, 3000, 3500, 4000, 4500, 5000, 6000, 7000, 8000, 9000, 10000, 15000,
                      20000, 30000, 50000, 100000, 250000, 500000, 1000000]
HIGH_RATES = {"get_per_s": 100000, "post_per_s": 100000, "put_per_s": 100000,
              "delete_per_s": 100000}


def say(msg):
    print(msg, flush=True)


class HarnessError(Exception):
    pass


def check_alive(proc, log_path, what):
    """A program that exited on its own (a bad config, a start-up failure) ends the scenario
    with its log rather than with zeros in the report."""
    if proc.poll() is not None:
        try:
            with open(log_path) as f:
                tail = f.read()[-2000:]
        except OSError:
            tail = ""
        raise HarnessError("%s exited with status %s:\n%s" % (what, proc.returncode, tail))


# ---- processes ---------------------------------------------------------------------------

def cpu_seconds(pid):
    """User + system CPU time of a live process so far."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / HZ
    except (OSError, IndexError, ValueError):
        return None


def status_kb(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def stop(proc, timeout=60):
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def http_json(url, method="GET", body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(url, method=method, data=data,
                               headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(r, timeout=timeout) as resp:
        text = resp.read()
        return json.loads(text) if text else None


def http_text(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


def metric_value(text, name):
    m = re.search(r"(?m)^" + re.escape(name) + r" (\S+)$", text)
    return float(m.group(1)) if m else None


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---- the stack ---------------------------------------------------------------------------

class Stack:
    """up.sh --workers 0: embedded Kafka (32 partitions for the events topic, so 200k events
    fit the mock's 5 MiB per partition), redis-server and the emulator."""

    def __init__(self, tmp):
        self.state = os.path.join(tmp, "stack")
        up = subprocess.run([UP, "--state", self.state, "--workers", "0",
                             "--event-partitions", "32"], capture_output=True, text=True,
                            timeout=120)
        if up.returncode != 0:
            raise HarnessError("up.sh failed:\n" + up.stdout + up.stderr)
        self.env = {}
        with open(os.path.join(self.state, "stack.env")) as f:
            for line in f:
                if line.startswith("export "):
                    k, _, v = line[7:].strip().partition("=")
                    self.env[k] = v.strip("'")
        self.pids = {}
        for name in ("kafka", "redis", "emulator"):
            with open(os.path.join(self.state, name + ".pid")) as f:
                self.pids[name] = int(f.read().split()[0])
        self.ctl = self.env["EMULATOR_CONTROL_URL"]
        self.secrets = os.path.join(self.state, "secrets")

    def down(self):
        subprocess.run([DOWN, "--state", self.state], capture_output=True, timeout=120)

    def cpu(self):
        return {n: cpu_seconds(p) for n, p in self.pids.items()}

    def flush_redis(self):
        subprocess.run(["redis-cli", "-u", self.env["REDIS_URL"], "FLUSHALL"], check=True,
                       capture_output=True, timeout=60)

    def produce(self, topic, lines):
        subprocess.run([PRODUCE, "-q", "-b", self.env["KAFKA_BOOTSTRAP"], "-t", topic, "-"],
                       input="".join(lines), text=True, check=True, timeout=600)

    def site(self, name="demo", base=None):
        base = base or self.env["JIRA_URL"]
        return {"name": name, "jira_url": base, "scim_url": base + "/scim/directory/demo-directory",
                "admin_url": base}

    def config(self, path, group, events, results, sites=None, rate_limits=None, worker=None,
               retry=None, port=None, instance=None, log_level="warn", kafka=None):
        """A worker config for this stack (also what the limit program reads)."""
        sites = sites or [self.site()]
        q = json.dumps  # a JSON string is a valid YAML double-quoted scalar
        lines = ["kafka:", "  bootstrap.servers: " + q(self.env["KAFKA_BOOTSTRAP"])]
        lines += ["  %s: %s" % (k, q(str(v))) for k, v in (kafka or {}).items()]
        lines += ["topics:", "  events: " + q(events), "  results: " + q(results),
                  "  audit: " + q(results + ".audit"), "  dead_letter: " + q(results + ".dlq"),
                  "  recon: " + q(results + ".recon"),
                  "audit:", "  hmac_key_file: " + q(os.path.join(self.secrets, "audit_hmac_key")),
                  "consumer:", "  group: " + q(group),
                  "redis:", "  url: " + q(self.env["REDIS_URL"]), "sites:"]
        for s in sites:
            lines += ["  - name: " + q(s["name"]), "    jira_url: " + q(s["jira_url"]),
                      "    email: " + q(self.env["JIRA_EMAIL"]),
                      "    api_token_file: " + q(os.path.join(self.secrets, "jira_api_token")),
                      "    scim_url: " + q(s["scim_url"]),
                      "    scim_api_key_file: " + q(os.path.join(self.secrets, "scim_api_key")),
                      "    admin_url: " + q(s["admin_url"]),
                      "    org_api_key_file: " + q(os.path.join(self.secrets, "org_api_key"))]
        lines += ["http:", "  listen: " + q("127.0.0.1:%d" % (port or free_port())),
                  "log:", "  level: " + log_level]
        for block, values in (("rate_limits", rate_limits), ("worker", worker), ("retry", retry)):
            values = dict(values or {})
            if block == "worker" and instance:
                values["instance_id"] = instance
            if values:
                lines.append(block + ":")
                lines += ["  %s: %s" % (k, json.dumps(v)) for k, v in values.items()]
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(path, 0o600)
        return path


def emulator_reset(ctl, users=0, prefix="u", domain="bench.example"):
    http_json(ctl + "/reset", "POST", {})
    if users:
        http_json(ctl + "/seed", "POST", {"bulk_users": {"count": users, "prefix": prefix,
                                                         "domain": domain}})
    http_json(ctl + "/rate-limits", "PUT", {"enabled": False})
    http_json(ctl + "/counters/reset", "POST", {})


def scim_counts(ctl):
    """SCIM calls answered, and PATCHes of a user answered 200, from the emulator."""
    c = http_json(ctl + "/counters")
    calls = patched = 0
    for r in c["requests"]:
        if not r["route"].startswith("/scim/"):
            continue
        calls += r["count"]
        if r["method"] == "PATCH" and r["status"] == 200:
            patched += r["count"]
    return calls, patched


def update_lines(n, prefix, domain, site, tag, first=1):
    """n compact account.update events for the bulk users <prefix><k>@<domain>, k = first..;
    each sets a jobTitle the seeded user does not have, so every event is one SCIM lookup and
    one PATCH (no event is skipped as already applied)."""
    fmt = ('{"specversion":"1.0","id":"%s-%%d","source":"/bench","type":'
           '"com.idhub.account.update","subject":"%s%%d@%s","time":"2026-11-22T10:00:00Z",'
           '"jirasite":"%s","idhubactor":"bench","data":{"login":"%s%%d@%s",'
           '"jobTitle":"Title %%d"}}\n') % (tag, prefix, domain, site, prefix, domain)
    return [fmt % (k, k, k, k % 97) for k in range(first, first + n)]


# ---- measuring from the outside ------------------------------------------------------------

class Watch:
    """jiraprov-bench-watch on the results topic: (monotonic s, records) every 100 ms."""

    def __init__(self, stack, topic, until, timeout):
        self.proc = subprocess.Popen([WATCH, "-b", stack.env["KAFKA_BOOTSTRAP"], "-t", topic,
                                      "--until", str(until), "--interval-ms", "100",
                                      "--timeout-s", str(int(timeout))],
                                     stdout=subprocess.PIPE, text=True)
        self.samples = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            t, n = line.split()
            self.samples.append((float(t), int(n)))

    def count(self):
        return self.samples[-1][1] if self.samples else 0

    def wait(self, timeout):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.thread.join(timeout=5)
        return rc == 0


def crossing(samples, level):
    """Interpolated time at which the count reached `level`."""
    prev = None
    for t, n in samples:
        if n >= level:
            if prev is None or n == prev[1]:
                return t
            t0, n0 = prev
            return t0 + (t - t0) * (level - n0) / (n - n0)
        prev = (t, n)
    return None


def window_rate(samples, total, lo=0.1, hi=0.9):
    """Records per second between lo and hi of the total: start-up (group join) and the tail
    are left out."""
    a, b = crossing(samples, lo * total), crossing(samples, hi * total)
    if a is None or b is None or b <= a:
        return 0.0
    return (hi - lo) * total / (b - a)


def summary_stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


# ---- the harness -----------------------------------------------------------------------------

class Bench:
    def __init__(self, args, out, tmp):
        self.a = args
        self.out = out
        self.tmp = tmp
        self.stack = None
        self.results = {}   # scenario -> dict for the report
        self.summary = []   # summary.json entries
        self.runs_file = open(os.path.join(out, "runs.jsonl"), "w")
        self.s1_worker_rate = None

    def runs(self, full):
        return self.a.runs or (1 if self.a.quick and full > 1 else full)

    def log_run(self, rec):
        self.runs_file.write(json.dumps(rec) + "\n")
        self.runs_file.flush()

    def entry(self, scenario, metric, value, target, met, **details):
        e = {"scenario": scenario, "metric": metric, "value": value, "target": target,
             "met": met}
        if details:
            e["details"] = details
        self.summary.append(e)

    def path(self, name):
        return os.path.join(self.tmp, name)

    # -- one program on the events topic, measured by the watcher --

    def run_program(self, kind, cfg, n, results_topic, timeout, perf_file=None, calls=None):
        """Runs the worker or the limit program until n results are on results_topic.
        calls: an emulator control URL whose SCIM call count is sampled meanwhile."""
        st = self.stack
        watch = Watch(st, results_topic, n, timeout)
        cpu0 = st.cpu()
        log = open(cfg + ".log", "w")
        cmd = [WORKER if kind == "worker" else LIMIT, "--config", cfg]
        proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        perf = None
        if perf_file:
            perf = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-q", "-o", perf_file,
                                     "-p", str(proc.pid)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        call_samples = []
        deadline = time.monotonic() + timeout
        while watch.proc.poll() is None and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if calls:
                call_samples.append((time.monotonic(), scim_counts(calls)[0]))
            time.sleep(0.2)
        ok = watch.wait(max(1, deadline - time.monotonic()))
        if calls:
            call_samples.append((time.monotonic(), scim_counts(calls)[0]))
        cpu = cpu_seconds(proc.pid)
        hwm = status_kb(proc.pid, "VmHWM")
        cpu1 = st.cpu()
        if perf:
            perf.send_signal(2)
            perf.wait(timeout=60)
        stop(proc)
        log.close()
        samples = watch.samples
        first = crossing(samples, 1)
        last = crossing(samples, n)
        rec = {"kind": kind, "events": n, "completed": watch.count(), "ok": ok,
               "rate": window_rate(samples, n) if ok else 0.0,
               "wall_rate": n / (last - first) if ok and last and first and last > first else 0,
               "cpu_s": cpu, "cpu_us_per_event": cpu * 1e6 / n if cpu and ok else None,
               "vm_hwm_kb": hwm,
               "stack_cpu_us_per_event": {k: (cpu1[k] - cpu0[k]) * 1e6 / n
                                          for k in cpu0 if cpu0[k] is not None and
                                          cpu1[k] is not None},
               "samples": samples, "call_samples": call_samples}
        if not ok:
            say("    %s did not finish: %d of %d results (log %s)" % (kind, watch.count(), n,
                                                                    cfg + ".log"))
        return rec

    # -- scenario 1 ------------------------------------------------------------------------

    def overhead(self):
        st = self.stack
        n = 40000 if self.a.quick else 200000
        runs = self.runs(3)
        say("1 overhead: %d account.update events, %d run(s) each of the limit and the worker"
            % (n, runs))
        st.produce(st.env["TOPIC_EVENTS"], update_lines(n, "u", "b1.example", "demo", "s1"))
        recs = {"limit": [], "worker": []}
        for r in range(runs):
            order = ("limit", "worker") if r % 2 == 0 else ("worker", "limit")
            for kind in order:
                emulator_reset(st.ctl, n, "u", "b1.example")
                st.flush_redis()
                tag = "s1-%s-%d" % (kind, r)
                cfg = st.config(self.path(tag + ".yaml"), tag, st.env["TOPIC_EVENTS"],
                                tag + ".results", rate_limits=HIGH_RATES, instance=tag)
                perf = (os.path.join(self.out, "s1-worker.perf.data")
                        if kind == "worker" and r == runs - 1 else None)
                rec = self.run_program(kind, cfg, n, tag + ".results", 600, perf_file=perf)
                calls, patched = scim_counts(st.ctl)
                rec.update({"scenario": "overhead", "run": r, "scim_calls": calls,
                            "patched": patched})
                self.log_run({k: v for k, v in rec.items()
                              if k not in ("samples", "call_samples")})
                recs[kind].append(rec)
                say("  run %d %-6s %8.0f events/s (wall %6.0f)  CPU %5.1f us/event  "
                    "SCIM calls %d" % (r, kind, rec["rate"], rec["wall_rate"],
                                       rec["cpu_us_per_event"] or 0, calls))
        lim = summary_stats([x["rate"] for x in recs["limit"]])
        wrk = summary_stats([x["rate"] for x in recs["worker"]])
        pairs = [w["rate"] / l["rate"] for w, l in zip(recs["worker"], recs["limit"])
                 if l["rate"]]
        ratio = wrk["median"] / lim["median"] if lim["median"] else 0.0
        cpu_l = summary_stats([x["cpu_us_per_event"] for x in recs["limit"]])
        cpu_w = summary_stats([x["cpu_us_per_event"] for x in recs["worker"]])
        met = ratio >= 0.6
        self.s1_worker_rate = wrk["median"]
        self.results["overhead"] = {"n": n, "recs": recs, "limit": lim, "worker": wrk,
                                    "ratio": ratio, "pair_ratios": pairs, "cpu_limit": cpu_l,
                                    "cpu_worker": cpu_w, "met": met}
        self.entry("overhead", "throughput_ratio_to_limit", round(ratio, 3), 0.6, met,
                   worker_events_per_s=round(wrk["median"], 1),
                   limit_events_per_s=round(lim["median"], 1),
                   worker_cpu_us_per_event=cpu_w["median"] and round(cpu_w["median"], 1),
                   limit_cpu_us_per_event=cpu_l["median"] and round(cpu_l["median"], 1))
        say("  ratio %.3f (target >= 0.6): %s" % (ratio, "met" if met else "MISSED"))
        self.perf_report("s1-worker.perf.data", "s1-worker.perf.txt")

    def perf_report(self, data, txt):
        path = os.path.join(self.out, data)
        if not os.path.exists(path):
            return
        with open(os.path.join(self.out, txt), "w") as f:
            for sort in ("dso", "dso,sym"):
                r = subprocess.run(["perf", "report", "-i", path, "--no-children", "--stdio", "-g", "none",
                                    "--sort", sort, "--percent-limit", "0.7"],
                                   capture_output=True, text=True, timeout=300)
                f.write(r.stdout)
        os.remove(path)

    # -- scenario 2 ------------------------------------------------------------------------

    def latency(self):
        st = self.stack
        n = 15000 if self.a.quick else 40000
        runs = self.runs(3)
        cap, lat_ms = 512, 100
        bound = cap / (lat_ms / 1000.0)
        say("2 latency: %d events, %d ms per Jira call, in-flight cap %d (bound %.0f calls/s), "
            "%d run(s)" % (n, lat_ms, cap, bound, runs))
        topic = "s2.events"
        st.produce(topic, update_lines(n, "u", "b2.example", "demo", "s2"))
        recs = []
        for r in range(runs):
            emulator_reset(st.ctl, n, "u", "b2.example")
            http_json(st.ctl + "/faults", "PUT",
                      [{"path": "/scim/*", "kind": "latency", "latency_ms": lat_ms}])
            st.flush_redis()
            tag = "s2-%d" % r
            cfg = st.config(self.path(tag + ".yaml"), tag, topic, tag + ".results",
                            rate_limits=HIGH_RATES, worker={"max_in_flight": cap}, instance=tag)
            rec = self.run_program("worker", cfg, n, tag + ".results", 300, calls=st.ctl)
            calls, patched = scim_counts(st.ctl)
            http_json(st.ctl + "/faults", "DELETE")
            # Calls per second from the emulator's own count, between 10 % and 90 % of the
            # run's calls: results come in waves (every event's lookup queues before the
            # first PATCH), calls do not.
            rec.update({"scenario": "latency", "run": r, "scim_calls": calls,
                        "calls_per_event": calls / n if n else 0,
                        "calls_per_s": window_rate(rec["call_samples"], calls)})
            self.log_run({k: v for k, v in rec.items() if k not in ("samples", "call_samples")})
            recs.append(rec)
            say("  run %d %8.0f events/s  %8.0f calls/s  (%.2f of the bound)" % (
                r, rec["rate"], rec["calls_per_s"], rec["calls_per_s"] / bound))
        cps = summary_stats([x["calls_per_s"] for x in recs])
        ratio = cps["median"] / bound
        met = ratio >= 0.9
        self.results["latency"] = {"n": n, "recs": recs, "calls": cps, "bound": bound,
                                   "ratio": ratio, "met": met, "cap": cap, "latency_ms": lat_ms}
        self.entry("latency", "calls_per_s_ratio_to_cap_over_latency", round(ratio, 3), 0.9, met,
                   calls_per_s=round(cps["median"], 1), bound_calls_per_s=bound,
                   events_per_s=round(statistics.median(x["rate"] for x in recs), 1))
        say("  %.0f calls/s = %.3f of cap/latency (target >= 0.9): %s"
            % (cps["median"], ratio, "met" if met else "MISSED"))

    # -- scenario 3 ------------------------------------------------------------------------

    def ratelimit(self):
        runs = self.runs(3)
        events = 1000 if self.a.quick else 1500
        say("3 ratelimit: 4 workers, SCIM POST limit 100/s, %d creates per mode, %d run(s)"
            % (events, runs))
        recs = []
        for r in range(runs):
            out = self.path("s3-%d.json" % r)
            p = subprocess.run([os.path.join(SRC, "tests", "bench", "ratelimit_bench.sh"),
                                "--events", str(events), "--out", out],
                               capture_output=True, text=True, timeout=900,
                               env=dict(os.environ, JP_BUILD_DIR=BUILD))
            if not os.path.exists(out):
                raise HarnessError("ratelimit_bench failed:\n" + p.stdout + p.stderr)
            with open(out) as f:
                res = json.load(f)
            by = {x["mode"]: x for x in res["results"]}
            recs.append(by)
            self.log_run({"scenario": "ratelimit", "run": r, **by})
            for m in ("shared", "unshared"):
                x = by[m]
                say("  run %d %-8s %6.1f POST/s  ratio %.3f  calls %5d  429s %4d (%.2f %%)" % (
                    r, m, x["achieved"], x["ratio"], x["calls"], x["limited"],
                    100 * x["share_429"]))
        agg = {m: {"ratio": summary_stats([x[m]["ratio"] for x in recs]),
                   "achieved": summary_stats([x[m]["achieved"] for x in recs]),
                   "share": summary_stats([x[m]["share_429"] for x in recs]),
                   "calls": summary_stats([x[m]["calls"] for x in recs]),
                   "limited": summary_stats([x[m]["limited"] for x in recs])}
               for m in ("shared", "unshared")}
        s = agg["shared"]
        met = s["ratio"]["median"] >= 0.95 and s["share"]["median"] <= 0.01
        self.results["ratelimit"] = {"events": events, "recs": recs, "agg": agg, "met": met}
        self.entry("ratelimit", "shared_achieved_ratio_to_limit", round(s["ratio"]["median"], 3),
                   0.95, met, share_429=round(s["share"]["median"], 4), target_share_429=0.01,
                   unshared_ratio=round(agg["unshared"]["ratio"]["median"], 3),
                   unshared_share_429=round(agg["unshared"]["share"]["median"], 4))
        say("  shared: ratio %.3f, 429 share %.2f %% (targets >= 0.95, <= 1 %%): %s" % (
            s["ratio"]["median"], 100 * s["share"]["median"], "met" if met else "MISSED"))

    # -- scenario 4 ------------------------------------------------------------------------

    def start_emulators(self, count):
        emus = []
        for i in range(count):
            log = self.path("emulator-%d.log" % i)
            with open(log, "w") as f:
                p = subprocess.Popen([EMULATOR, "--listen", "127.0.0.1:0", "--rate-limits", "off"],
                                     stdout=f, stderr=subprocess.STDOUT)
            emus.append({"proc": p, "log": log})
        for e in emus:
            deadline = time.monotonic() + 20
            while True:
                m = re.search(r"listening on (http://\S+)", open(e["log"]).read())
                if m:
                    e["url"] = m.group(1)
                    e["ctl"] = e["url"] + "/__emulator"
                    break
                if e["proc"].poll() is not None or time.monotonic() > deadline:
                    raise HarnessError("an emulator did not start: " + open(e["log"]).read())
                time.sleep(0.05)
        return emus

    def isolation(self):
        st = self.stack
        nsites, per_site = 10, (1200 if self.a.quick else 3000)
        runs = self.runs(3)
        storm_site = nsites - 1
        # As in production: every Jira call takes time (100 ms, the in-flight cap of scenario
        # 2) and every site has its own budget (get 300/s, PATCH 150/s: each site is bound by
        # its budget, the ten together stay under the cap). Not the CPU-bound setting of
        # scenario 1: two CPU-bound runs on a shared 2-core machine differ by the
        # neighbours' load more than by the storm.
        lat_ms, cap = 100, 512
        budget = {"get_per_s": 300, "post_per_s": 150, "put_per_s": 150, "delete_per_s": 150}
        say("4 isolation: %d sites (one emulator each), %d events per site, %d ms per call, "
            "in-flight cap %d, budget per site %s; site s%d in a 429/503 storm; %d run(s) of "
            "each mode" % (nsites, per_site, lat_ms, cap, budget, storm_site, runs))
        emus = self.start_emulators(nsites)
        self.cleanup.append(lambda: [stop(e["proc"], 10) for e in emus])
        sites = [st.site("s%d" % i, e["url"]) for i, e in enumerate(emus)]
        lines = []
        for k in range(1, per_site + 1):  # interleaved: every site all the time
            for i in range(nsites):
                lines += update_lines(1, "s%du" % i, "b4.example", "s%d" % i, "s4-%d" % i,
                                      first=k)
        topic = "s4.events"
        st.produce(topic, lines)
        slow = {"path": "/scim/*", "kind": "latency", "latency_ms": lat_ms}
        storm = [slow,
                 {"path": "/scim/*", "kind": "rate_limit", "probability": 0.5, "retry_after": 1},
                 {"path": "/scim/*", "kind": "error", "statuses": [503], "probability": 0.6}]
        recs = {"calm": [], "storm": []}
        healthy = [e for i, e in enumerate(emus) if i != storm_site]
        total = per_site * len(healthy)
        plan = [(r, m) for r in range(runs)
                for m in (("calm", "storm") if r % 2 == 0 else ("storm", "calm"))]
        # A storm that outlasts the buffer: the storm site's events stay held (waiting for
        # their cool-downs or parked) and take a place each; with a buffer smaller than the
        # storm site's share of the traffic they fill it. Reported, not part of the target.
        small_buffer = per_site // 2
        if not self.a.quick:
            plan.append((0, "long-storm"))
        recs["long-storm"] = []
        for r, mode in plan:
            for i, e in enumerate(emus):
                emulator_reset(e["ctl"], per_site, "s%du" % i, "b4.example")
                http_json(e["ctl"] + "/faults", "PUT", [slow])
            if mode != "calm":
                http_json(emus[storm_site]["ctl"] + "/faults", "PUT",
                          {"seed": 7, "rules": storm})
            wcfg = {"max_in_flight": cap}
            if mode == "long-storm":
                wcfg["max_buffered_events"] = small_buffer
            st.flush_redis()
            tag = "s4-%s-%d" % (mode, r)
            port = free_port()
            cfg = st.config(self.path(tag + ".yaml"), tag, topic, tag + ".results",
                            sites=sites, rate_limits=budget, port=port, instance=tag,
                            worker=wcfg)
            log = open(cfg + ".log", "w")
            proc = subprocess.Popen([WORKER, "--config", cfg], stderr=log)
            perf = None
            if r == runs - 1 and mode != "long-storm":  # calm and storm side by side
                perf = subprocess.Popen(
                    ["perf", "record", "-F", "499", "-g", "-q", "-o",
                     os.path.join(self.out, "s4-%s.perf.data" % mode), "-p", str(proc.pid)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            samples, gauges, t_end = [], [], time.monotonic() + 300
            while time.monotonic() < t_end and proc.poll() is None:
                counts = [scim_counts(e["ctl"])[1] for e in healthy]
                now = time.monotonic()
                samples.append((now, sum(counts), counts))
                try:
                    m = http_text("http://127.0.0.1:%d/metrics" % port)
                    gauges.append((now, metric_value(m, "jiraprov_events_held"),
                                   metric_value(m, "jiraprov_events_parked"),
                                   metric_value(m, "jiraprov_consumption_paused"),
                                   metric_value(m, "jiraprov_ratelimit_waiting")))
                except OSError:
                    pass
                if sum(counts) >= total:
                    break
                # Stalled: nothing done by the nine for 10 s.
                if len(samples) > 40 and samples[-41][1] == sum(counts) and sum(counts):
                    break
                time.sleep(0.25)
            metrics = http_text("http://127.0.0.1:%d/metrics" % port)
            storm_calls, storm_done = scim_counts(emus[storm_site]["ctl"])
            if perf:
                perf.send_signal(2)
                perf.wait(timeout=60)
            stop(proc, 90)
            log.close()
            for e in emus:
                http_json(e["ctl"] + "/faults", "DELETE")
            pts = [(t, n) for t, n, _ in samples]
            rate = window_rate(pts, total)
            per = []
            for j in range(len(healthy)):
                sp = [(t, c[j]) for t, _, c in samples]
                per.append(window_rate(sp, per_site))
            rec = {"scenario": "isolation", "mode": mode, "run": r, "rate": rate,
                   "buffer": wcfg.get("max_buffered_events", 10000), "total": total,
                   "per_site": per, "completed": pts[-1][1] if pts else 0,
                   "storm_site_patched": storm_done, "storm_site_calls": storm_calls,
                   "held_at_end": metric_value(metrics, "jiraprov_events_held"),
                   "parked_at_end": metric_value(metrics, "jiraprov_events_parked"),
                   "paused_at_end": metric_value(metrics, "jiraprov_consumption_paused"),
                   "retries": metric_value(metrics, "jiraprov_retries_total"),
                   "deferred": metric_value(metrics, "jiraprov_events_deferred_total")}
            rec["paused_share"] = (sum(1 for g in gauges if g[3]) / len(gauges)
                                   if gauges else None)
            self.log_run(rec)
            rec["samples"] = pts
            rec["gauges"] = gauges
            recs[mode].append(rec)
            say("  run %d %-5s nine healthy sites %7.0f events/s (each %s); storm site "
                "%d calls, %d done; held %s, parked %s; paused %.0f %% of the time" % (
                    r, mode, rate, "/".join("%.0f" % x for x in per), storm_calls,
                    storm_done, rec["held_at_end"], rec["parked_at_end"],
                    100 * (rec["paused_share"] or 0)))
        calm = summary_stats([x["rate"] for x in recs["calm"]])
        storm_st = summary_stats([x["rate"] for x in recs["storm"]])
        pairs = [s["rate"] / c["rate"] for s, c in zip(recs["storm"], recs["calm"]) if c["rate"]]
        ratio = storm_st["median"] / calm["median"] if calm["median"] else 0.0
        met = ratio >= 0.95
        self.results["isolation"] = {"per_site": per_site, "recs": recs, "calm": calm,
                                     "storm": storm_st, "ratio": ratio, "pairs": pairs,
                                     "met": met, "rules": storm, "latency_ms": lat_ms,
                                     "cap": cap, "budget": budget}
        self.entry("isolation", "healthy_sites_throughput_ratio_storm_to_calm", round(ratio, 3),
                   0.95, met, calm_events_per_s=round(calm["median"], 1),
                   storm_events_per_s=round(storm_st["median"], 1))
        say("  nine healthy sites keep %.3f of their throughput (target >= 0.95): %s"
            % (ratio, "met" if met else "MISSED"))
        for mode in ("calm", "storm"):
            self.perf_report("s4-%s.perf.data" % mode, "s4-%s.perf.txt" % mode)

    # -- scenario 5 ------------------------------------------------------------------------

    def memory_case(self, case, n, faults, switch_to, until):
        """One worker on n events with the emulator's `faults`; when every event is held,
        `switch_to` (if any) replaces the faults. Samples RSS until `until(held, parked)` has
        held for a second. Returns VmHWM and the series."""
        st = self.stack
        topic = "s5-%s.events" % case
        st.produce(topic, update_lines(n, "u", "b5.example", "demo", "s5" + case))
        emulator_reset(st.ctl, n, "u", "b5.example")
        http_json(st.ctl + "/faults", "PUT", faults)
        st.flush_redis()
        port = free_port()
        cfg = st.config(self.path("s5-%s.yaml" % case), "s5-" + case, topic,
                        "s5-%s.results" % case, rate_limits=HIGH_RATES, port=port,
                        instance="s5-" + case)
        log = open(cfg + ".log", "w")
        proc = subprocess.Popen([WORKER, "--config", cfg], stderr=log)
        murl = "http://127.0.0.1:%d/metrics" % port
        series, t0, idle_kb, held_max, parked_max = [], time.monotonic(), None, 0, 0
        switched, reached = switch_to is None, None
        deadline = t0 + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                m = http_text(murl)
            except OSError:
                m = ""
            held = metric_value(m, "jiraprov_events_held") or 0
            parked = metric_value(m, "jiraprov_events_parked") or 0
            rss = status_kb(proc.pid, "VmRSS") or 0
            if idle_kb is None and m:
                idle_kb = rss
            held_max, parked_max = max(held_max, held), max(parked_max, parked)
            series.append((time.monotonic() - t0, rss, held, parked))
            if not switched and held >= n:
                time.sleep(1.0)
                http_json(st.ctl + "/faults", "PUT", switch_to)
                switched = True
            if switched and until(held, parked):
                reached = reached or time.monotonic()
                if time.monotonic() - reached >= 1.0:
                    break
            time.sleep(0.2)
        log.flush()
        check_alive(proc, cfg + ".log", "scenario 5 (%s): the worker" % case)
        hwm = status_kb(proc.pid, "VmHWM") or 0
        stop(proc, 90)
        log.close()
        http_json(st.ctl + "/faults", "DELETE")
        return {"case": case, "hwm_mib": hwm / 1024.0, "idle_mib": (idle_kb or 0) / 1024.0,
                "held_max": held_max, "parked_max": parked_max, "ok": reached is not None,
                "series": series}

    def memory(self):
        n = 10000
        say("5 memory: a worker holding %d events in flight; parked; all failing at once" % n)
        slow = [{"path": "/scim/*", "kind": "latency", "latency_ms": 15000}]
        busy = [{"path": "/scim/*", "kind": "error", "statuses": [503], "retry_after": 60}]
        cases = [
            # Every event held while its Jira call is outstanding (512 with curl, the rest
            # queued in the HTTP client).
            self.memory_case("in-flight", n, slow, None, lambda h, p: h >= n),
            # Every event parked: Jira answers 503 with Retry-After 60 from the start.
            self.memory_case("parked", n, busy, None, lambda h, p: p >= n),
            # The harshest mix: 10k held in flight, then every call fails within a second
            # (the peak of both plus the burst of attempt records written to Redis).
            self.memory_case("in-flight-then-parked", n, slow, busy, lambda h, p: p >= n),
        ]
        for c in cases:
            c["met"] = c["ok"] and c["hwm_mib"] <= 64
            say("  %-22s peak RSS %5.1f MiB (idle %.1f; held %d, parked %d): %s" % (
                c["case"], c["hwm_mib"], c["idle_mib"], c["held_max"], c["parked_max"],
                "met" if c["met"] else "MISSED"))
        worst = max(cases, key=lambda c: c["hwm_mib"])
        met = all(c["met"] for c in cases)
        recon = self.recon_memory()
        held_met = met
        met = met and bool(recon.get("met"))
        self.results["memory"] = {"n": n, "cases": cases, "worst": worst, "met": met,
                                  "held_met": held_met, "recon": recon}
        self.log_run({"scenario": "memory", "recon": {k: v for k, v in recon.items()
                                                       if k != "series"},
                      "cases": [{k: v for k, v in c.items() if k != "series"} for c in cases]})
        self.entry("memory", "peak_rss_mib_10k_held", round(worst["hwm_mib"], 1), 64, met,
                   **{c["case"].replace("-", "_") + "_mib": round(c["hwm_mib"], 1)
                      for c in cases},
                   held_target_met=held_met, recon_rss_growth_mib=recon.get("growth_mib"),
                   recon_target_mib=16, recon_met=bool(recon.get("met")),
                   recon_status=recon["status"])
        say("  recon: %s%s" % (recon["status"], "; RSS %.1f -> peak %.1f MiB, growth %.1f MiB "
                               "(target <= 16): %s" % (recon["base_mib"], recon["peak_mib"],
                                                      recon["growth_mib"],
                                                      "met" if recon["met"] else "MISSED")
                               if "growth_mib" in recon else ""))

    def recon_memory(self):
        """RSS growth of a worker during a 100k-user reconciliation (issue 6): the worker
        first answers a one-user (filtered) run, so that its connections, buffers and the
        consumer group are in place; the growth is its VmHWM at the end of the full run minus
        its VmRSS before it."""
        st = self.stack
        users = 100000
        emulator_reset(st.ctl, users, "r", "b5r.example")
        st.flush_redis()
        topic, results = "s5r.events", "s5r.results"

        def request(rid, data):
            ev = {"specversion": "1.0", "id": rid, "source": "/bench",
                  "type": "com.idhub.recon.request", "subject": rid,
                  "time": "2026-11-22T10:00:00Z", "jirasite": "demo", "idhubactor": "bench",
                  "data": dict(data, reconId=rid)}
            st.produce(topic, [json.dumps(ev) + "\n"])

        def wait_result(rid, seconds):
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and proc.poll() is None:
                rec = self.read_result(results, rid)
                if rec is not None:
                    return rec
                time.sleep(0.5)
            return None
        request("s5-recon-warm", {"mode": "filtered", "resources": ["accounts"],
                                  "filter": {"userName": "r1@b5r.example"}})
        port = free_port()
        cfg = st.config(self.path("s5r.yaml"), "s5r", topic, results, rate_limits=HIGH_RATES,
                        port=port, instance="s5r")
        log = open(cfg + ".log", "w")
        proc = subprocess.Popen([WORKER, "--config", cfg], stderr=log)
        try:
            warm = wait_result("s5-recon-warm", 120)
            check_alive(proc, cfg + ".log", "scenario 5 (reconciliation): the worker")
            if warm is None:
                return {"status": "not measurable: the warm-up request got no result"}
            base_kb = status_kb(proc.pid, "VmRSS") or 0
            t0 = time.monotonic()
            request("s5-recon-full", {"mode": "full", "resources": ["accounts"]})
            series, answered = [], None
            deadline = t0 + (300 if self.a.quick else 600)
            while answered is None and time.monotonic() < deadline and proc.poll() is None:
                series.append((round(time.monotonic() - t0, 2),
                               status_kb(proc.pid, "VmRSS") or 0))
                answered = self.read_result(results, "s5-recon-full")
                time.sleep(0.5)
            hwm_kb = status_kb(proc.pid, "VmHWM") or 0
            seconds = time.monotonic() - t0
        finally:
            stop(proc, 90)
            log.close()
        if answered is None:
            return {"status": "not measurable: no result for the full run", "series": series}
        data = answered.get("data", {})
        emitted = None
        for rec in self.read_all(results + ".recon"):
            d = rec.get("data", {})
            if rec.get("id", "").endswith("s5-recon-full:completed"):
                emitted = (d.get("counts") or {}).get("emitted")
        growth = (hwm_kb - base_kb) / 1024.0
        ok = data.get("status") == "succeeded" and emitted == users
        return {"status": "measured: %s, %s of %d accounts emitted in %.1f s" % (
                    data.get("status"), emitted, users, seconds),
                "growth_mib": round(growth, 1), "base_mib": round(base_kb / 1024.0, 1),
                "peak_mib": round(hwm_kb / 1024.0, 1), "users": users, "emitted": emitted,
                "seconds": round(seconds, 1), "met": ok and growth <= 16, "series": series}

    def read_all(self, topic):
        p = subprocess.run(["kcat", "-b", self.stack.env["KAFKA_BOOTSTRAP"], "-C", "-t", topic,
                            "-e", "-q", "-f", "%s\n"], capture_output=True, text=True,
                           timeout=120)
        out = []
        for line in p.stdout.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def read_result(self, topic, event_id):
        p = subprocess.run(["kcat", "-b", self.stack.env["KAFKA_BOOTSTRAP"], "-C", "-t", topic,
                            "-e", "-q", "-f", "%s\n"], capture_output=True, text=True,
                           timeout=60)
        for line in p.stdout.splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("data", {}).get("eventId") == event_id:
                return rec
        return None

    # -- scenario 6 ------------------------------------------------------------------------

    def overhead_hist(self, port):
        """The worker's jiraprov_event_overhead_seconds as per-bucket counts."""
        text = http_text("http://127.0.0.1:%d/metrics" % port)
        cum = [int(v) for v in re.findall(
            r'(?m)^jiraprov_event_overhead_seconds_bucket\{le="[^"]+"\} (\d+)$', text)]
        return [c - (cum[i - 1] if i else 0) for i, c in enumerate(cum)]

    def paced_run(self, kind, rate, n, tag):
        """kind (worker or limit) on n events produced at `rate` per second after a warm-up of
        200; returns the per-bucket counts of the time it added to the paced events."""
        st = self.stack
        warm = 200
        emulator_reset(st.ctl, n + warm, "u", "b6.example")
        st.flush_redis()
        topic = tag + ".events"
        port = free_port()
        # The mock broker answers a fetch only when fetch.wait.max.ms (500 ms) is over, even
        # when records arrived meanwhile (a real broker answers at once), which would turn a
        # steady stream into bursts of half a second's events; 5 ms restores the steady flow.
        cfg = st.config(self.path(tag + ".yaml"), tag, topic, tag + ".results",
                        rate_limits=HIGH_RATES, port=port, instance=tag,
                        kafka={"fetch.wait.max.ms": S6_FETCH_WAIT_MS})
        out = open(cfg + ".out", "w")
        log = open(cfg + ".log", "w")
        proc = subprocess.Popen([WORKER if kind == "worker" else LIMIT, "--config", cfg],
                                stdout=out, stderr=log)
        # Warm-up: events of their own create the topic, bring the program into the group and
        # open its connections; the counts start after their results.
        st.produce(topic, update_lines(warm, "u", "b6.example", "demo", tag + "w", first=n + 1))
        watch = Watch(st, tag + ".results", warm, 120)
        if not watch.wait(120):
            stop(proc)
            raise HarnessError("scenario 6: the warm-up events got no results (%s)" % kind)
        if kind == "worker":
            before = self.overhead_hist(port)
        else:
            proc.send_signal(10)  # SIGUSR1: the limit zeroes its counts
            time.sleep(0.2)
        watch = Watch(st, tag + ".results", warm + n, 300)
        lines = update_lines(n, "u", "b6.example", "demo", tag)
        # --skip-invalid makes the producer send each line as it is read (without it, it
        # reads everything first so that nothing is sent if one event is invalid).
        # A steady stream: a write every S6_PACE_MS and the producer's linger as short, so
        # that the harness does not itself deliver the events in bursts.
        prod = subprocess.Popen([PRODUCE, "-q", "--skip-invalid", "-b", st.env["KAFKA_BOOTSTRAP"],
                                 "-X", "linger.ms=%g" % S6_LINGER_MS, "-t", topic, "-"],
                                stdin=subprocess.PIPE, text=True)
        t0, sent = time.monotonic(), 0
        while sent < n:
            due = min(n, int((time.monotonic() - t0) * rate) + 1)
            if due > sent:
                prod.stdin.write("".join(lines[sent:due]))
                prod.stdin.flush()
                sent = due
            time.sleep(S6_PACE_MS / 1000.0)
        paced = n / (time.monotonic() - t0)
        prod.stdin.close()
        prod.wait(timeout=120)
        watch.wait(120)
        if kind == "worker":
            after = self.overhead_hist(port)
            hist = [x - y for x, y in zip(after, before)]
            stop(proc, 90)
        else:
            stop(proc, 90)
            out.flush()
            with open(cfg + ".out") as f:
                hist = json.loads(f.read().strip().splitlines()[-1])["overhead_buckets"]
        out.close()
        log.close()
        return hist, paced

    @staticmethod
    def hist_stats(counts):
        """Quantiles (ms, interpolated inside a bucket) and the share within 5 ms."""
        bounds = [b / 1000.0 for b in OVERHEAD_BOUNDS_US] + [float("inf")]
        total = sum(counts)

        def quantile(q):
            target, lo, seen = q * total, 0.0, 0
            for hi, c in zip(bounds, counts):
                if c and seen + c >= target:
                    if hi == float("inf"):
                        return float("inf")
                    return lo + (hi - lo) * (target - seen) / c
                seen += c
                lo = hi
            return None
        within = sum(c for hi, c in zip(bounds, counts) if hi <= 5.0)
        return {"count": total, "q": {p: quantile(p / 100.0) if total else None
                                      for p in (50, 90, 99, 99.9)},
                "within_5ms": within / total if total else 0.0,
                "cdf": [(hi, sum(counts[:i + 1]) / total if total else 0)
                        for i, hi in enumerate(bounds)]}

    def added_latency(self):
        st = self.stack
        full_rate = S6_FULL_RATE or self.s1_worker_rate
        if not full_rate:
            say("6 added-latency: calibrating (scenario 1 was not run): a short overhead run")
            n = 20000
            st.produce("s6cal.events", update_lines(n, "u", "b6.example", "demo", "s6cal"))
            emulator_reset(st.ctl, n, "u", "b6.example")
            st.flush_redis()
            cfg = st.config(self.path("s6cal.yaml"), "s6cal", "s6cal.events", "s6cal.results",
                            rate_limits=HIGH_RATES)
            full_rate = self.run_program("worker", cfg, n, "s6cal.results", 300)["rate"]
        rate = full_rate / 2
        seconds = 8 if self.a.quick else 15
        n = int(rate * seconds)
        runs = self.runs(2)
        say("6 added-latency: %.0f events/s (half of %.0f) for %d s = %d events, worker and "
            "limit, %d run(s) each" % (rate, full_rate, seconds, n, runs))
        res = {"worker": [], "limit": []}
        for r in range(runs):
            for kind in (("worker", "limit") if r % 2 == 0 else ("limit", "worker")):
                hist, paced = self.paced_run(kind, rate, n, "s6-%s-%d" % (kind, r))
                stats = self.hist_stats(hist)
                stats.update({"paced": paced, "hist": hist, "run": r})
                res[kind].append(stats)
                self.log_run({"scenario": "added-latency", "kind": kind, "run": r,
                              "paced": paced, "count": stats["count"],
                              "quantiles_ms": stats["q"], "within_5ms": stats["within_5ms"]})
                q = stats["q"]
                say("  run %d %-6s %d events at %.0f/s: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms; "
                    "%.2f %% within 5 ms" % (r, kind, stats["count"], paced, q[50] or 0,
                                             q[90] or 0, q[99] or 0, 100 * stats["within_5ms"]))
        # The verdict: the worker's events of every run together.
        total = [sum(x) for x in zip(*[s["hist"] for s in res["worker"]])]
        wst = self.hist_stats(total)
        lst = self.hist_stats([sum(x) for x in zip(*[s["hist"] for s in res["limit"]])])
        met = wst["count"] > 0 and wst["within_5ms"] >= 0.99
        self.results["added-latency"] = {"rate": rate, "n": n, "full_rate": full_rate,
                                         "runs": res, "worker": wst, "limit": lst, "met": met}
        q = wst["q"]
        self.entry("added-latency", "p99_worker_added_ms", q[99] and round(q[99], 2), 5.0, met,
                   share_within_5ms=round(wst["within_5ms"], 4), events_measured=wst["count"],
                   p50_ms=q[50] and round(q[50], 2),
                   limit_p99_ms=lst["q"][99] and round(lst["q"][99], 2),
                   limit_share_within_5ms=round(lst["within_5ms"], 4),
                   rate_events_per_s=round(rate, 1))
        say("  worker p99 %.2f ms (%.2f %% within 5 ms), limit p99 %.2f ms (target: worker p99 "
            "<= 5 ms): %s" % (q[99] or 0, 100 * wst["within_5ms"], lst["q"][99] or 0,
                              "met" if met else "MISSED"))

    # -- scenario 7 ------------------------------------------------------------------------

    def callgrind_run(self, kind, cfg, results, warm, n):
        """Ir per event between `warm` and `warm + n` results, from a callgrind dump zeroed
        at the first mark and taken at the second."""
        out = os.path.join(self.tmp, "callgrind.%s.out" % kind)
        exe = WORKER if kind == "worker" else LIMIT
        log = open(cfg + ".log", "w")
        proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                                 exe, "--config", cfg], stdout=log, stderr=log)
        watch = Watch(self.stack, results, warm + n, 900)
        try:
            t_end = time.monotonic() + 900
            while watch.count() < warm and time.monotonic() < t_end and proc.poll() is None:
                time.sleep(0.1)
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], capture_output=True,
                           timeout=120)
            start = watch.count()
            while watch.count() < warm + n and time.monotonic() < t_end and proc.poll() is None:
                time.sleep(0.1)
            done = watch.count() - start
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], capture_output=True,
                           timeout=120)
        finally:
            watch.wait(5)
            stop(proc, 120)
            log.close()
        dumps = sorted(f for f in os.listdir(self.tmp)
                       if f.startswith("callgrind.%s.out." % kind))
        if not dumps or done <= 0:
            return None
        dump = os.path.join(self.tmp, dumps[0])
        total = None
        with open(dump) as f:
            for line in f:
                if line.startswith("summary:") or line.startswith("totals:"):
                    total = int(line.split()[1])
        ann = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", dump],
                             capture_output=True, text=True, timeout=300).stdout
        keep = os.path.join(self.out, "s7-%s.callgrind.txt" % kind)
        with open(keep, "w") as f:
            f.write(ann)
        incl = subprocess.run(["callgrind_annotate", "--auto=no", "--inclusive=yes",
                               "--threshold=99", dump],
                              capture_output=True, text=True, timeout=300).stdout
        return {"ir": total, "events": done, "ir_per_event": total / done if total else None,
                "annotate": keep, "self": self.top_functions(ann, total, None),
                "inclusive": self.top_functions(incl, total, "/worker/")}

    @staticmethod
    def top_functions(text, total, only):
        """(function, Ir, share) from callgrind_annotate lines, the largest first. Frames that
        were active when the counters were zeroed show (nearly) the whole total: skipped."""
        rows = []
        for line in text.splitlines():
            m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S+)(?: \[([^\]]+)\])?", line)
            if not m or not total:
                continue
            ir = int(m.group(1).replace(",", ""))
            where, obj = m.group(2), os.path.basename(m.group(3) or "")
            if ir > 0.5 * total or where == "PROGRAM":
                continue
            if only and only not in where:
                continue
            fn = where.split(":", 1)[-1]
            rows.append(("%s (%s)" % (fn, obj) if obj else fn, ir, ir / total))
        return rows[:15]

    def cost(self):
        st = self.stack
        warm, n = (300, 1000) if self.a.quick else (500, 3000)
        say("7 cost: callgrind, Ir per event over %d events after %d of warm-up" % (n, warm))
        total = warm + n + 200
        topic = "s7.events"
        st.produce(topic, update_lines(total, "u", "b7.example", "demo", "s7"))
        res = {}
        for kind in ("worker", "limit"):
            emulator_reset(st.ctl, total, "u", "b7.example")
            st.flush_redis()
            tag = "s7-" + kind
            cfg = st.config(self.path(tag + ".yaml"), tag, topic, tag + ".results",
                            rate_limits=HIGH_RATES, instance=tag)
            res[kind] = self.callgrind_run(kind, cfg, tag + ".results", warm, n)
            r = res[kind]
            say("  %-6s %s Ir/event over %s events" % (
                kind, "%.0f" % r["ir_per_event"] if r and r["ir_per_event"] else "n/a",
                r["events"] if r else 0))
        w, l = res.get("worker"), res.get("limit")
        ratio = (w["ir_per_event"] / l["ir_per_event"]
                 if w and l and w["ir_per_event"] and l["ir_per_event"] else None)
        self.results["cost"] = {"res": res, "ratio": ratio, "warm": warm, "n": n}
        self.log_run({"scenario": "cost", "worker": w and {k: v for k, v in w.items()},
                      "limit": l and {k: v for k, v in l.items()}})
        self.entry("cost", "worker_instructions_per_event",
                   w and w["ir_per_event"] and round(w["ir_per_event"]), None, None,
                   limit_instructions_per_event=l and l["ir_per_event"] and
                   round(l["ir_per_event"]), ratio_to_limit=ratio and round(ratio, 2))

    # -- driving ---------------------------------------------------------------------------

    def run(self, names):
        self.cleanup = []
        self.meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpus": os.cpu_count(),
                     "loadavg_before": loadavg(), "quick": self.a.quick,
                     "kernel": platform.release(), "commit": git_commit()}
        say("stack: up.sh --workers 0 --event-partitions 32 (load %s)" % loadavg())
        self.stack = Stack(self.tmp)
        try:
            for name in names:
                t0 = time.monotonic()
                getattr(self, name.replace("-", "_"))()
                self.results.setdefault(name, {})["seconds"] = time.monotonic() - t0
        finally:
            for fn in self.cleanup:
                fn()
            self.stack.down()
            self.runs_file.close()
        self.meta["loadavg_after"] = loadavg()
        self.meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        with open(os.path.join(self.out, "summary.json"), "w") as f:
            json.dump(self.summary, f, indent=1)
            f.write("\n")
        with open(os.path.join(self.out, "meta.json"), "w") as f:
            json.dump(self.meta, f, indent=1)
            f.write("\n")
        import report  # noqa: E402  (tests/bench/report.py: Markdown and plots)
        report.write(self.out, self.meta, self.results, self.summary)
        missed = [e["scenario"] for e in self.summary if e["met"] is False]
        say("\nreport: %s" % os.path.join(self.out, "report.md"))
        say("summary: %s" % ", ".join("%s %s" % (e["scenario"], {True: "met", False: "MISSED",
                                                                  None: "reported"}[e["met"]])
                                      for e in self.summary))
        return 1 if missed else 0


def git_commit():
    p = subprocess.run(["git", "-C", SRC, "rev-parse", "--short", "HEAD"], capture_output=True,
                       text=True)
    dirty = subprocess.run(["git", "-C", SRC, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return p.stdout.strip() + ("+dirty" if dirty else "")


def main():
    ap = argparse.ArgumentParser(description="jiraprov benchmarks (see tests/bench/README.md)")
    ap.add_argument("scenarios", nargs="*", help="numbers or names; default: all")
    ap.add_argument("--quick", action="store_true", help="fewer events and runs")
    ap.add_argument("--runs", type=int, help="runs per scenario (default 3, --quick 1)")
    ap.add_argument("--out", help="results folder (default tests/bench/results/<timestamp>)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    a = ap.parse_args()
    names = []
    for s in a.scenarios or SCENARIOS:
        if s.isdigit() and 1 <= int(s) <= len(SCENARIOS):
            s = SCENARIOS[int(s) - 1]
        if s not in SCENARIOS:
            ap.error("unknown scenario %r (1-7 or %s)" % (s, ", ".join(SCENARIOS)))
        if s not in names:
            names.append(s)
    names.sort(key=SCENARIOS.index)
    for exe in (WORKER, PRODUCE, LIMIT, WATCH, EMULATOR):
        if not os.access(exe, os.X_OK):
            say("missing %s: build first (cmake --build %s)" % (exe, BUILD))
            return 2
    for tool in ("kcat", "redis-cli", "gnuplot", "perf", "valgrind"):
        if not shutil.which(tool):
            say("missing %s: deploy/local/install-deps.sh --bench" % tool)
            return 2
    out = a.out or os.path.join(SRC, "tests", "bench", "results",
                                time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="jiraprov-bench.")
    say("results: %s (logs in %s)" % (out, tmp))
    try:
        return Bench(a, out, tmp).run(names)
    except HarnessError as e:
        say("harness error: %s" % e)
        return 2
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
