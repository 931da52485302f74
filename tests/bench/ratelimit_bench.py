"""Rate-limited benchmark (issue 5): 4 workers against the Jira emulator whose SCIM POST burst
limit is 100/s, once with the shared Redis budget and once with sharing off (each worker limits
itself to the same 100/s), printed side by side.

Measured per run, from the emulator's own counters (sampled every 0.2 s):
  achieved  SCIM POST /Users answered 201 per second between 10 % and 90 % of the creates
  ratio     achieved / the emulator's limit (the limit of this same run)
  429 share 429 answers / every SCIM call of the run
Targets (shared run): ratio >= 0.95 and 429 share <= 1 %.

Usage: ratelimit_bench.py [--events N] [--workers N] [--limit R] [--out FILE.json]
Needs JP_SOURCE_DIR and JP_BUILD_DIR (ratelimit_bench.sh sets them).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from jpstack import read_env, control, free_port  # noqa: E402

SRC = os.environ["JP_SOURCE_DIR"]
BUILD = os.environ["JP_BUILD_DIR"]
WORKER = os.path.join(BUILD, "worker", "jiraprov-worker")
PRODUCE = os.path.join(BUILD, "producers", "jiraprov-produce")


def scim_counts(env):
    c = control(env, "GET", "/counters")
    created = calls = limited = 0
    for r in c["requests"]:
        if not r["route"].startswith("/scim/"):
            continue
        calls += r["count"]
        if r["status"] == 429:
            limited += r["count"]
        if r["method"] == "POST" and r["route"].endswith("/Users") and r["status"] == 201:
            created += r["count"]
    return created, calls, limited


def assigned(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
            m = re.search(r"(?m)^jiraprov_partitions_assigned (\d+)", r.read().decode())
            return int(m.group(1)) if m else 0
    except OSError:
        return 0


def wait_assigned(ports, partitions, timeout=60):
    """Until the group holds every partition (each worker one at least, when there are
    enough), unchanged for a second."""
    deadline, since = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        counts = [assigned(p) for p in ports]
        if sum(counts) == partitions and (len(ports) > partitions or min(counts) > 0):
            since = since or time.monotonic()
            if time.monotonic() - since >= 1.0:
                return
        else:
            since = None
        time.sleep(0.2)


def run(env, tmp, base, mode, n_events, n_workers, limit):
    control(env, "POST", "/reset")
    control(env, "PUT", "/rate-limits", {
        "enabled": True, "apply_to": ["scim"],
        "burst": {"enabled": True, "GET": 100000, "POST": limit, "PUT": 100000,
                  "DELETE": 100000, "PATCH": 100000, "capacity_seconds": 1},
        "per_issue": {"enabled": False}, "quota": {"enabled": False}})
    control(env, "POST", "/counters/reset")
    shared = mode == "shared"
    topic = "bench-%s.events" % mode
    cfg = re.sub(r'(?m)^(\s*group:).*$', r'\1 "bench-%s"' % mode, base)
    cfg = re.sub(r'(?m)^(\s*events:).*$', r'\1 "%s"' % topic, cfg)
    cfg = re.sub(r'(?m)^(\s*level:).*$', r'\1 warn', cfg)
    cfg += ("rate_limits:\n  shared: %s\n  get_per_s: 100000\n  post_per_s: %d\n"
            "retry:\n  max_attempts: 100\n  base_delay_ms: 500\n  max_delay_ms: 5000\n"
            % ("true" if shared else "false", limit))
    # The topic exists before the workers start (a metadata request creates it, with 4
    # partitions), so that all of them join the group at once: a member that joins late moves
    # partitions in the middle of the measurement, and that pause is not the limiter's.
    subprocess.run(["kcat", "-b", env["KAFKA_BOOTSTRAP"], "-L", "-t", topic], check=True,
                   capture_output=True, timeout=30)
    procs, ports = [], []
    for i in range(n_workers):
        ports.append(free_port())
        c = re.sub(r'(?m)^(\s*listen:).*$', r'\1 "127.0.0.1:%d"' % ports[-1], cfg)
        c = re.sub(r'(?m)^(\s*instance_id:).*$', r'\1 "bench-%s-%d"' % (mode, i), c)
        path = os.path.join(tmp, "%s-%d.yaml" % (mode, i))
        with open(path, "w") as f:
            f.write(c)
        os.chmod(path, 0o600)
        procs.append(subprocess.Popen([WORKER, "--config", path],
                                      stderr=open(path + ".log", "w")))
    wait_assigned(ports, 4)
    lines = []
    for i in range(n_events):
        login = "bench-%s-%06d@bench.example" % (mode, i)
        lines.append(json.dumps({
            "specversion": "1.0", "id": "bench-%s-%06d" % (mode, i),
            "source": "https://idhub.example/bench", "type": "com.idhub.account.create",
            "subject": login, "time": "2026-11-22T10:00:00Z", "jirasite": "demo",
            "idhubactor": "bench@idhub.example", "data": {"login": login, "email": login}}))
    subprocess.run([PRODUCE, "-q", "-b", env["KAFKA_BOOTSTRAP"], "-t", topic, "-"],
                   input="\n".join(lines) + "\n", text=True, check=True, timeout=120)
    samples = []
    deadline = time.monotonic() + max(120, 4 * n_events / limit)
    while time.monotonic() < deadline:
        created, calls, limited = scim_counts(env)
        samples.append((time.monotonic(), created, calls, limited))
        if created >= n_events:
            break
        time.sleep(0.2)
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=60)

    def when(count):
        return next((t for t, c, _, _ in samples if c >= count), None)
    lo, hi = int(n_events * 0.1), int(n_events * 0.9)
    t_lo, t_hi = when(lo), when(hi)
    achieved = (hi - lo) / (t_hi - t_lo) if t_lo and t_hi and t_hi > t_lo else 0.0
    _, created, calls, limited = samples[-1]
    return {"mode": mode, "created": created, "calls": calls, "limited": limited,
            "achieved": achieved, "ratio": achieved / limit,
            "share_429": limited / calls if calls else 0.0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--out")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="jiraprov-ratelimit-bench.")
    stack = os.path.join(tmp, "stack")
    up = subprocess.run([os.path.join(SRC, "deploy/local/up.sh"), "--state", stack, "--workers",
                         "0", "--event-partitions", "8"], capture_output=True, text=True,
                        timeout=120)
    if up.returncode != 0:
        print(up.stdout + up.stderr, file=sys.stderr)
        return 1
    try:
        env = read_env(os.path.join(stack, "stack.env"))
        base = open(env["WORKER_CONFIG"]).read()
        results = [run(env, tmp, base, m, a.events, a.workers, a.limit)
                   for m in ("shared", "unshared")]
    finally:
        subprocess.run([os.path.join(SRC, "deploy/local/down.sh"), "--state", stack],
                       capture_output=True, timeout=60)
    print("%d workers, %d account.create events, emulator SCIM POST limit %d/s"
          % (a.workers, a.events, a.limit))
    print("%-9s %10s %8s %9s %8s %9s" % ("budget", "POST/s", "ratio", "calls", "429s", "429 %"))
    for r in results:
        print("%-9s %10.1f %8.3f %9d %8d %8.2f%%" % (r["mode"], r["achieved"], r["ratio"],
                                                   r["calls"], r["limited"], 100 * r["share_429"]))
    s = results[0]
    met = s["ratio"] >= 0.95 and s["share_429"] <= 0.01 and s["created"] >= a.events
    print("target (shared): ratio >= 0.95 and 429 share <= 1 %%: %s" % ("met" if met else "MISSED"))
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"results": results, "limit": a.limit, "met": met}, f, indent=2)
    return 0 if met else 2


if __name__ == "__main__":
    sys.exit(main())
