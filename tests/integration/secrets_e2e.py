"""No configured secret leaves jiraprov: the local stack is started with a distinctive value for
every secret the configuration can hold (Jira API token, SCIM key, org key, Redis password,
audit HMAC key, a Kafka SASL password, and the wrong credentials of a second site), a worker at
debug log level runs the flows that print the most (the demo story with the admin lifecycle
API, malformed events and retries exhausted into the dead-letter topic, a site answering 401
until it is quarantined, Redis dropping the worker's connection), the CLIs run on the same
config, and then every output is scanned for every secret, raw and in the encodings that could
carry it (base64, the Basic authorization of email:token, URL encoding): every log line of every
process, every message of every topic (keys, values, headers), every Redis key and value the
worker wrote, /metrics, /healthz, /readyz, and the CLIs' outputs.

The flows are checked to have happened (so the scan is not vacuous), and the scanner is checked
to find a secret where one is known to be (the secret files).

Run by test_secrets.sh (ctest integration.secrets) with JP_SOURCE_DIR and JP_BUILD_DIR set.
"""
import base64
import json
import os
import re
import secrets as rnd
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from jpstack import read_env, control  # noqa: E402

SRC = os.environ["JP_SOURCE_DIR"]
BUILD = os.environ["JP_BUILD_DIR"]
WORKER = os.path.join(BUILD, "worker", "jiraprov-worker")
PRODUCE = os.path.join(BUILD, "producers", "jiraprov-produce")
AUDIT = os.path.join(BUILD, "producers", "jiraprov-audit")
failures = []


def say(msg):
    print(f"secrets_e2e: {msg}", flush=True)


def check(name, cond, detail=""):
    if cond:
        say(f"ok: {name}")
    else:
        failures.append(name)
        say(f"FAIL: {name} {detail}")


def wait_for(what, fn, timeout=40):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            if not value:
                say(f"timed out waiting for {what}")
            return value
        time.sleep(0.2)


def kcat(env, *args, timeout=30):
    return subprocess.run(["kcat", "-b", env["KAFKA_BOOTSTRAP"], *args], capture_output=True,
                          timeout=timeout).stdout


def topic_records(env, topic):
    """Every message of a topic, raw: key, value and headers."""
    return kcat(env, "-C", "-q", "-t", topic, "-o", "beginning", "-e",
                "-f", "key=%k headers=%h value=%s\n")


def count_records(env, topic):
    return len([x for x in topic_records(env, topic).split(b"\n") if x])


def redis_cli(env, *args):
    e = dict(os.environ, REDISCLI_AUTH=env["REDISCLI_AUTH"])
    return subprocess.run(["redis-cli", "--no-auth-warning", "-u", env["REDIS_URL"], *args],
                          capture_output=True, timeout=20, env=e).stdout


def event(n, etype, subject, data, site="demo"):
    return {"specversion": "1.0", "id": f"sec-{n:04d}", "source": "https://idhub.example/sec",
            "type": "com.idhub." + etype, "subject": subject, "time": "2026-11-22T10:00:00Z",
            "jirasite": site, "idhubactor": "auditor@idhub.example", "data": data}


def produce(env, events):
    lines = "".join(json.dumps(e) + "\n" for e in events)
    subprocess.run([PRODUCE, "-q", "-b", env["KAFKA_BOOTSTRAP"], "-t", env["TOPIC_EVENTS"], "-"],
                   input=lines, text=True, check=True, timeout=60)


def forms(value, email):
    """The ways a secret could be written out."""
    out = {value.encode(): "raw"}
    out[base64.b64encode(value.encode())] = "base64"
    out[base64.b64encode(f"{email}:{value}".encode())] = "Basic email:secret"
    out[urllib.parse.quote(value, safe="").encode()] = "URL-encoded"
    return out


def main():
    tmp = tempfile.mkdtemp(prefix="jiraprov-secrets.")
    sec = os.path.join(tmp, "secrets")
    os.makedirs(sec)
    tag = rnd.token_hex(6)
    secret = {name: f"JPSECRET-{name.replace('_', '-')}-{tag}" for name in (
        "jira_api_token", "scim_api_key", "org_api_key", "redis_password", "audit_hmac_key",
        "sasl_password", "locked_api_token", "locked_scim_api_key", "locked_org_api_key")}
    for name, value in secret.items():
        path = os.path.join(sec, name)
        with open(path, "w") as f:
            f.write(value + "\n")
        os.chmod(path, 0o600)
    stack = os.path.join(tmp, "stack")
    up = subprocess.run([os.path.join(SRC, "deploy/local/up.sh"), "--state", stack,
                         "--workers", "0", "--secrets", sec],
                        capture_output=True, text=True, timeout=120)
    if up.returncode != 0:
        say("up.sh failed:\n" + up.stdout + up.stderr)
        return 1
    outputs = {"up.sh output": (up.stdout + up.stderr).encode()}
    worker = None
    try:
        env = read_env(os.path.join(stack, "stack.env"))
        email = env["JIRA_EMAIL"]

        # ---- the worker's config: the stack's, plus a SASL password, a site with wrong
        # credentials, the admin lifecycle API (org key), quick retries, debug logs.
        cfg = open(env["WORKER_CONFIG"]).read()
        site = cfg[cfg.index("  - name: demo"):cfg.index("\nhttp:")]
        demo = site.replace("    tls_verify: true", "    tls_verify: true\n"
                            "    account_lifecycle: admin")
        locked = (site.replace("name: demo", "name: locked")
                  .replace(os.path.join(stack, "secrets", "jira_api_token"),
                           os.path.join(sec, "locked_api_token"))
                  .replace(os.path.join(stack, "secrets", "scim_api_key"),
                           os.path.join(sec, "locked_scim_api_key"))
                  .replace(os.path.join(stack, "secrets", "org_api_key"),
                           os.path.join(sec, "locked_org_api_key")))
        cfg = cfg.replace(site, demo + "\n" + locked)
        cfg = re.sub(r'(?m)^(\s*bootstrap\.servers:.*)$',
                     r'\1\n  sasl.username: "jiraprov"\n  sasl.password_file: "%s"'
                     % os.path.join(sec, "sasl_password"), cfg)
        cfg = re.sub(r'(?m)^(\s*listen:).*$', r'\1 "127.0.0.1:0"', cfg)
        cfg = re.sub(r'(?m)^(\s*instance_id:).*$', r'\1 "secrets-worker"', cfg)
        cfg = re.sub(r'(?m)^(\s*level:) info$', r'\1 debug', cfg)
        cfg += ("retry:\n  max_attempts: 2\n  base_delay_ms: 50\n  max_delay_ms: 100\n"
                "rate_limits:\n  quarantine_probe_s: 1\n")
        cfg_path = os.path.join(tmp, "worker.yaml")
        with open(cfg_path, "w") as f:
            f.write(cfg)
        os.chmod(cfg_path, 0o600)
        check("the config holds no secret inline",
              not any(v in cfg for v in secret.values()))

        log_path = os.path.join(tmp, "worker.log")
        worker = subprocess.Popen([WORKER, "--config", cfg_path], stderr=open(log_path, "w"))
        port = wait_for("the worker's HTTP port",
                        lambda: re.search(r"http on port (\d+)", open(log_path).read()))
        base = f"http://127.0.0.1:{port.group(1)}" if port else None

        # ---- 1. the demo story (admin lifecycle: the org key is used) and malformed events
        demo_path = os.path.join(SRC, "config/samples/demo.jsonl")
        ids = [json.loads(x)["id"] for x in open(demo_path) if x.strip()]
        subprocess.run([PRODUCE, "-q", "-b", env["KAFKA_BOOTSTRAP"], "-t", env["TOPIC_EVENTS"],
                        demo_path], check=True, timeout=60)
        for raw in (b"{not json", json.dumps(event(0, "account.rename", "mal", {})).encode()):
            subprocess.run(["kcat", "-P", "-q", "-b", env["KAFKA_BOOTSTRAP"], "-t",
                            env["TOPIC_EVENTS"], "-k", "mal"], input=raw, timeout=30, check=True)
        check("every demo event has a result",
              wait_for("demo results", lambda: count_records(env, env["TOPIC_RESULTS"])
                       >= len(ids)))

        # ---- 2. Redis drops the worker's connection: it reconnects (AUTH with the password)
        redis_cli(env, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        check("the worker saw Redis go and come back",
              wait_for("a reconnect", lambda: open(log_path).read().count("redis connected")
                       >= 2))

        # ---- 3. retries exhausted: dead letter with its history
        control(env, "PUT", "/faults", [{"path": "/scim/directory/*/Users", "method": "POST",
                                         "kind": "error", "status": 503}])
        produce(env, [event(1, "account.create", "retry@demo.example",
                            {"login": "retry@demo.example", "email": "retry@demo.example"})])
        check("the retried event is dead-lettered",
              wait_for("its dead letter", lambda: b"sec-0001" in topic_records(
                  env, env["TOPIC_DLQ"])))
        control(env, "PUT", "/faults", [])

        # ---- 4. a site with wrong credentials (SCIM: 403, REST: 401), quarantined, probed again
        produce(env, [event(2, "account.create", "locked-0@demo.example",
                            {"login": "locked-0@demo.example", "email": "locked-0@demo.example"},
                            site="locked"),
                      event(3, "issue.create", "idhub:req:locked",
                            {"externalRef": "idhub:req:locked", "project": "DEMO",
                             "issueType": "Task", "summary": "locked"}, site="locked")])

        def quarantined():
            log = open(log_path).read()
            return all(re.search(r'attempt [2-9]: quarantine \([^)]*HTTP %d' % code, log)
                       for code in (401, 403))
        check("the locked site's events meet 401 and 403, are quarantined and probed again",
              wait_for("401 and 403 attempts", quarantined))

        # ---- 5. what the worker serves, and the CLIs on the same config
        for path in ("/metrics", "/healthz", "/readyz"):
            try:
                with urllib.request.urlopen(base + path, timeout=10) as r:
                    outputs[path] = r.read()
            except urllib.error.HTTPError as e:  # /readyz may say 503
                outputs[path] = e.read()
        check("/metrics counts dead letters and retries",
              re.search(rb"(?m)^jiraprov_events_deadlettered_total(\{[^}]*\})? [1-9]",
                        outputs["/metrics"])
              and re.search(rb"(?m)^jiraprov_retries_total(\{[^}]*\})? [1-9]",
                            outputs["/metrics"]),
              outputs["/metrics"][:200])
        cli_env = dict(os.environ, AUDIT_KEY_FILE="")
        for name, argv in (
                ("check-config", [WORKER, "--check-config", "-c", cfg_path]),
                ("check-config -v", [WORKER, "--check-config", "-v", "-c", cfg_path]),
                ("produce --dry-run", [PRODUCE, "-c", cfg_path, "--dry-run", demo_path]),
                ("audit verify", [AUDIT, "verify", "-c", cfg_path]),
                ("audit verify json", [AUDIT, "verify", "-c", cfg_path, "--format", "json"]),
                ("audit report", [AUDIT, "report", "-c", cfg_path, "--format", "json"]),
                ("audit export csv", [AUDIT, "export", "-c", cfg_path, "--format", "csv"]),
                ("audit export jsonl", [AUDIT, "export", "-c", cfg_path, "--format", "jsonl"]),
                ("audit verify, wrong key", [AUDIT, "verify", "-c", cfg_path, "--key-file",
                                             os.path.join(sec, "jira_api_token")])):
            r = subprocess.run(argv, capture_output=True, timeout=60, env=cli_env)
            outputs[name] = r.stdout + r.stderr
            if name == "audit verify":
                check("the audit trail of the whole run verifies", r.returncode == 0,
                      r.stdout[-400:])

        # ---- 6. a clean stop, then everything is collected
        worker.terminate()
        check("the worker drains and exits 0", worker.wait(timeout=60) == 0)
        worker = None
        log = open(log_path, "rb").read()
        outputs["worker log"] = log
        check("the worker logged at debug level", b'"level":"debug"' in log)
        for name in sorted(os.listdir(stack)):
            if name.endswith(".log"):
                outputs["stack " + name] = open(os.path.join(stack, name), "rb").read()
        topics = re.findall(rb'topic "([^"]+)"', kcat(env, "-L"))
        check("the broker has the worker's topics",
              {b"jiraprov.results", b"jiraprov.audit", b"jiraprov.dlq"} <= set(topics), topics)
        for t in topics:
            outputs["topic " + t.decode()] = topic_records(env, t.decode())
        check("dead letters: malformed events and the exhausted retry",
              outputs["topic jiraprov.dlq"].count(b"\n") >= 3)
        check("audit records: calls, decisions and stream records",
              all(x in outputs["topic jiraprov.audit"] for x in (
                  b"admin.user.disable", b"decision.deadlettered", b"stream.started",
                  b"stream.stopped")))
        dump = []
        for key in redis_cli(env, "--scan").split():
            kind = redis_cli(env, "TYPE", key).strip()
            cmd = {b"string": "GET", b"hash": "HGETALL", b"list": "LRANGE", b"set": "SMEMBERS",
                   b"zset": "ZRANGE"}.get(kind)
            args = [cmd, key.decode()] + (["0", "-1"] if cmd in ("LRANGE", "ZRANGE") else [])
            dump.append(key + b" " + (redis_cli(env, *args) if cmd else b""))
        outputs["redis"] = b"\n".join(dump)
        check("Redis holds the worker's state (outcomes, the audit stream's end)",
              b"jiraprov:outcome:" in outputs["redis"]
              and b"jiraprov:audit:last:secrets-worker" in outputs["redis"])

        # ---- 7. the scan
        patterns = {}
        for name, value in secret.items():
            for form, how in forms(value, email).items():
                patterns[form] = f"{name} ({how})"
        found = [(where, what) for where, text in outputs.items()
                 for form, what in patterns.items() if form in text]
        check(f"no secret in any of {len(outputs)} outputs ({sum(map(len, outputs.values()))} "
              f"bytes, {len(patterns)} forms of {len(secret)} secrets)", not found, found[:10])
        planted = {"a secret file": open(os.path.join(sec, "redis_password"), "rb").read()}
        check("the scan finds a secret where one is",
              any(f in planted["a secret file"] for f in patterns))
    finally:
        if worker:
            worker.kill()
        subprocess.run([os.path.join(SRC, "deploy/local/down.sh"), "--state", stack],
                       capture_output=True, timeout=60)
    if failures:
        say(f"{len(failures)} check(s) failed; files in {tmp}")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    say("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
