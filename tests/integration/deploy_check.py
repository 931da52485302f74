"""Checks that the deployment files in deploy/ agree with each other and with the binaries,
where no Docker engine or cluster is at hand:

  static (no build needed; tests/run.sh's static checks run this with --static)
    - every YAML and JSON file under deploy/ parses;
    - the Dockerfile: multi-stage, runtime stages without -dev packages, a numeric non-root
      USER, HEALTHCHECK on /healthz, EXPOSE of the metrics port, apt lists removed;
    - one metrics port and one set of HTTP paths everywhere: http.listen of every embedded
      config, EXPOSE/HEALTHCHECK, compose ports, containerPort, probes (/healthz, /readyz),
      Service, ServiceMonitor (/metrics);
    - the --config path each deployment passes is where it mounts the config; every
      *_file secret the configs name is mounted (compose secrets, the Kubernetes Secret's
      keys, systemd LoadCredential=); every ${VAR} is set; stop grace > drain timeout;
    - Kubernetes: probes, resources, non-root read-only security context, PDB, Service and
      ServiceMonitor selectors, KEDA on the config's group/topic/brokers with
      maxReplicaCount = the events topic's partitions;
    - systemd: hardening, reload = SIGHUP, systemd-analyze verify (when installed);
    - alert rules and dashboard: structure; every metric and label they use exists in the
      worker's catalogue (worker/metrics.c); promtool checks every expression (when
      installed).
  with --worker PATH (ctest integration.deploy, after the build)
    - --list-metrics equals the catalogue read from worker/metrics.c;
    - --check-config accepts every embedded config, secrets given as dummy files exactly
      where each deployment mounts them;
    - a live worker answers /healthz, /readyz and /metrics (all of the catalogue, valid
      text), and the Dockerfile's HEALTHCHECK command passes against it;
    - every shared library the worker links comes from a package the runtime image installs.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import promtext  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
PATHS = {"health": "/healthz", "ready": "/readyz", "metrics": "/metrics"}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"instance", "job", "pod", "namespace", "service", "container", "endpoint"}
failures = []
quiet = False


def say(msg):
    print(f"deploy_check: {msg}", flush=True)


def check(name, cond, detail=""):
    if cond:
        if not quiet:
            say(f"ok: {name}")
    else:
        failures.append(name)
        say(f"FAIL: {name} {detail}")
    return cond


def rel(path):
    return os.path.relpath(path, ROOT)


def load_yaml(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# ---- sources of truth ---------------------------------------------------------------------

def catalogue_from_source():
    """{name: (type, [labels])} from the catalogue table in worker/metrics.c."""
    src = open(os.path.join(ROOT, "worker", "metrics.c")).read()
    table = src[src.index("static const catalogue_entry_t catalogue[]"):]
    table = table[:table.index("};")]
    out = {}
    for chunk in table.split("{W(")[1:]:
        name = re.search(r'"(jiraprov_[a-z0-9_]+)"', chunk).group(1)
        kind = re.search(r"JP_METRICS_(COUNTER|GAUGE|HISTOGRAM)", chunk).group(1).lower()
        m = re.search(r"LABELS\(([^)]*)\)", chunk)
        labels = re.findall(r'"([a-z_]+)"', m.group(1)) if m else []
        out[name] = (kind, labels)
    return out


def config_docs():
    """(where, YAML text, parsed) of every worker config embedded in deploy/."""
    out = []
    cm = [d for d in load_yaml(os.path.join(DEPLOY, "kubernetes", "configmap.yaml"))
          if d.get("kind") == "ConfigMap"][0]
    for key, text in cm["data"].items():
        out.append((f"kubernetes ConfigMap {cm['metadata']['name']}/{key}", text,
                    yaml.safe_load(text)))
    for sub in ("compose", "systemd"):
        path = os.path.join(DEPLOY, sub, "jiraprov.yaml")
        text = open(path).read()
        out.append((rel(path), text, yaml.safe_load(text)))
    return out


def listen_port(cfg):
    return int(str(cfg.get("http", {}).get("listen", "127.0.0.1:9464")).rsplit(":", 1)[1])


def secret_files(cfg):
    """Every path a *_file key names, anywhere in the config."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if str(k).endswith("_file") and isinstance(v, str):
                    found.append(v)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(cfg)
    return found


def env_vars(text):
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}", text))


# ---- Dockerfile ------------------------------------------------------------------------------

def dockerfile_stages():
    """[{name, base, lines: [(instruction, args)]}] with continuation lines joined."""
    text = open(os.path.join(DEPLOY, "docker", "Dockerfile")).read()
    text = re.sub(r"\\\n", " ", text)
    stages = []
    for line in text.split("\n"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, args = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
            stages.append({"base": m.group(1), "name": m.group(2), "lines": []})
        elif stages:
            stages[-1]["lines"].append((instr, args))
    return stages


def stage_packages(stage):
    pkgs = []
    for instr, args in stage["lines"]:
        if instr == "RUN" and "apt-get install" in args:
            part = args.split("apt-get install", 1)[1].split("&&")[0]
            pkgs += [w for w in part.split() if not w.startswith("-")]
    return pkgs


def check_dockerfile(port):
    stages = dockerfile_stages()
    names = [s["name"] for s in stages]
    check("Dockerfile: multi-stage (a build stage and the images that run)",
          len(stages) >= 3 and "build" in names, names)
    final = stages[-1]
    check("Dockerfile: the default (last) stage is the worker", final["name"] == "worker")
    runtime = [s for s in stages if s["name"] != "build"]
    for s in runtime:
        users = [a for i, a in s["lines"] if i == "USER"]
        if s["base"] in names and not users:
            continue  # inherits nothing: USER is per stage, so every runnable stage sets one
        if any(i in ("ENTRYPOINT", "CMD") for i, _ in s["lines"]):
            check(f"Dockerfile: stage {s['name']} runs as a numeric non-root user",
                  users and re.fullmatch(r"[1-9][0-9]*(:[1-9][0-9]*)?", users[-1]), users)
    rt = next((s for s in stages if s["name"] == "runtime"), None)
    pkgs = stage_packages(rt) if rt else []
    check("Dockerfile: the runtime stage installs no -dev package and no compiler",
          pkgs and not [p for p in pkgs if p.endswith("-dev") or p in ("gcc", "cmake", "make")],
          pkgs)
    for s in stages:
        for instr, args in s["lines"]:
            if instr == "RUN" and "apt-get install" in args:
                check(f"Dockerfile: stage {s['name']} installs without recommends and drops "
                      "the apt lists", "--no-install-recommends" in args and
                      "rm -rf /var/lib/apt/lists" in args)
            if instr == "ADD":
                check("Dockerfile: no ADD (COPY only)", False, args)
    check("Dockerfile: base images are pinned to a release, not latest",
          all(not s["base"].endswith(":latest") for s in stages))
    hc = " ".join(a for i, a in final["lines"] if i == "HEALTHCHECK")
    check("Dockerfile: the worker image has a HEALTHCHECK on /healthz at the metrics port",
          PATHS["health"] in hc and f"/{port}" in hc, hc)
    expose = [a for i, a in final["lines"] if i == "EXPOSE"]
    check("Dockerfile: the worker image exposes the metrics port", expose == [str(port)], expose)
    entry = " ".join(a for i, a in final["lines"] if i in ("ENTRYPOINT", "CMD"))
    check("Dockerfile: the entry point is jiraprov-worker --config",
          "jiraprov-worker" in entry and "--config" in entry, entry)
    copies = [a for i, a in final["lines"] if i == "COPY" and "--from=build" in a]
    check("Dockerfile: the worker image takes its binaries from the build stage",
          copies and "jiraprov-worker" in copies[0])
    di = os.path.join(ROOT, ".dockerignore")
    ignored = open(di).read().split() if os.path.exists(di) else []
    check(".dockerignore keeps build trees and .git out of the context",
          ".git" in ignored and any(x.startswith("build") for x in ignored), ignored)
    return stages, hc


# ---- compose ---------------------------------------------------------------------------------

def check_compose(port, cfg, drain_s):
    path = os.path.join(DEPLOY, "compose", "docker-compose.yml")
    doc = load_yaml(path)[0]
    svcs = doc["services"]
    kafka = svcs.get("kafka", {})
    roles = str(kafka.get("environment", {}).get("KAFKA_PROCESS_ROLES", ""))
    check("compose: a real Kafka broker in KRaft mode (no ZooKeeper)",
          kafka.get("image", "").startswith("apache/kafka:") and "controller" in roles and
          not any("zookeeper" in str(s.get("image", "")) for s in svcs.values()))
    check("compose: Redis and the emulator", "redis" in svcs and "emulator" in svcs)
    workers = {n: s for n, s in svcs.items()
               if "--config" in (s.get("command") or []) and "profiles" not in s}
    check("compose: two workers", len(workers) == 2, sorted(workers))
    boot = cfg["kafka"]["bootstrap.servers"]
    host, kport = boot.split(":")
    check("compose: the config's Kafka bootstrap is the broker service and its listener",
          host in svcs and f"PLAINTEXT://kafka:{kport}" in
          kafka.get("environment", {}).get("KAFKA_ADVERTISED_LISTENERS", ""), boot)
    check("compose: the config's Redis is the redis service",
          re.match(r"redis://redis:\d+/", cfg["redis"]["url"]), cfg["redis"]["url"])
    emu_cmd = " ".join(svcs["emulator"].get("command", []))
    emu_port = re.search(r"--listen \S+:(\d+)", emu_cmd).group(1)
    check("compose: the site URLs point at the emulator service and port",
          all(re.match(rf"http://emulator:{emu_port}(/|$)", cfg["sites"][0][k])
              for k in ("jira_url", "scim_url", "admin_url")))
    topics_cmd = " ".join(svcs.get("topics", {}).get("command", []))
    m = re.search(r"idhub\.events:(\d+)", topics_cmd)
    partitions = int(m.group(1)) if m else 0
    check("compose: the events topic is created with its partitions", partitions > 0)
    for name, s in workers.items():
        cmd = s["command"]
        cfg_path = cmd[cmd.index("--config") + 1]
        mounts = [v.split(":") for v in s.get("volumes", [])]
        check(f"compose: {name} mounts its config at the --config path",
              any(m[1] == cfg_path and os.path.exists(os.path.join(DEPLOY, "compose", m[0]))
                  for m in mounts), mounts)
        published = [p.split(":")[-1] for p in s.get("ports", [])]
        check(f"compose: {name} publishes the metrics port", published == [str(port)],
              published)
        grace = s.get("stop_grace_period", "10s")
        check(f"compose: {name} may take longer to stop than the drain bound",
              int(grace.rstrip("s")) > drain_s, grace)
        check(f"compose: {name} runs read-only without capabilities",
              s.get("read_only") is True and s.get("cap_drop") == ["ALL"])
        names = set(s.get("secrets", []))
        wanted = {p[len("/run/secrets/"):] for p in secret_files(cfg)
                  if p.startswith("/run/secrets/")}
        check(f"compose: every secret file the config names is a secret of {name}",
              wanted and wanted <= names and
              len(wanted) == len(secret_files(cfg)), (wanted, names))
    for name, spec in doc.get("secrets", {}).items():
        check(f"compose: secret {name} has its file",
              os.path.exists(os.path.join(DEPLOY, "compose", spec["file"])))
    return partitions, set(next(iter(workers.values()), {}).get("secrets", []))


# ---- Kubernetes ------------------------------------------------------------------------------

def k8s_objects():
    objs = {}
    for f in sorted(os.listdir(os.path.join(DEPLOY, "kubernetes"))):
        if f.endswith(".yaml"):
            for d in load_yaml(os.path.join(DEPLOY, "kubernetes", f)):
                objs[(d["kind"], d.get("metadata", {}).get("name"))] = (f, d)
    return objs


def matches(selector, labels):
    return selector and all(labels.get(k) == v for k, v in selector.items())


def check_kubernetes(port, cfg_text, cfg, drain_s, partitions):
    objs = k8s_objects()
    by_kind = {}
    for (kind, _), (f, d) in objs.items():
        by_kind.setdefault(kind, []).append(d)
    kust = by_kind["Kustomization"][0]
    files = {f for f, _ in objs.values()} - {"kustomization.yaml"}
    check("kubernetes: kustomization lists every manifest but the example Secret",
          set(kust["resources"]) == files - {"secret.example.yaml"}, kust["resources"])
    check("kubernetes: namespace-agnostic (no namespace anywhere)",
          not any("namespace" in d.get("metadata", {}) for _, d in objs.values()) and
          "namespace" not in kust)
    dep = by_kind["Deployment"][0]
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    c = spec["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    check("kubernetes: the container port is the metrics port", ports.get("metrics") == port,
          ports)
    probes = {k: c.get(k, {}).get("httpGet", {}) for k in
              ("livenessProbe", "readinessProbe", "startupProbe")}
    check("kubernetes: liveness /healthz, readiness /readyz, on the metrics port",
          probes["livenessProbe"].get("path") == PATHS["health"] and
          probes["readinessProbe"].get("path") == PATHS["ready"] and
          all(p.get("port") in ("metrics", port) for p in probes.values() if p), probes)
    res = c.get("resources", {})
    check("kubernetes: resource requests and a memory limit",
          res.get("requests", {}).get("cpu") and res.get("requests", {}).get("memory") and
          res.get("limits", {}).get("memory"))
    psc, csc = spec.get("securityContext", {}), c.get("securityContext", {})
    check("kubernetes: non-root, read-only root file system, no privilege escalation, no "
          "capabilities",
          psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) > 0 and
          csc.get("readOnlyRootFilesystem") is True and
          csc.get("allowPrivilegeEscalation") is False and
          csc.get("capabilities", {}).get("drop") == ["ALL"])
    check("kubernetes: the grace period covers the drain bound",
          spec.get("terminationGracePeriodSeconds", 30) > drain_s)
    args = c.get("args", [])
    cfg_path = args[args.index("--config") + 1]
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    cm_mount = [m for n, m in mounts.items() if "configMap" in vols.get(n, {})]
    cm_name = vols[cm_mount[0]["name"]]["configMap"]["name"] if cm_mount else None
    check("kubernetes: the --config path is the ConfigMap's key where it is mounted",
          cm_mount and ("ConfigMap", cm_name) in objs and
          os.path.dirname(cfg_path) == cm_mount[0]["mountPath"] and
          os.path.basename(cfg_path) in objs[("ConfigMap", cm_name)][1]["data"], cfg_path)
    sec_mount = [m for n, m in mounts.items() if "secret" in vols.get(n, {})]
    sec_name = vols[sec_mount[0]["name"]]["secret"]["secretName"] if sec_mount else None
    example = objs.get(("Secret", sec_name), (None, {}))[1]
    keys = set(example.get("stringData", {})) | set(example.get("data", {}))
    named = secret_files(cfg)
    check("kubernetes: every secret file the config names is a key of the mounted Secret",
          sec_mount and named and all(os.path.dirname(p) == sec_mount[0]["mountPath"] and
                                      os.path.basename(p) in keys for p in named),
          (named, sorted(keys)))
    env = {e["name"] for e in c.get("env", [])}
    check("kubernetes: every ${VAR} of the config is set in the container",
          env_vars(cfg_text) <= env, env_vars(cfg_text) - env)
    labels = pod["metadata"]["labels"]
    check("kubernetes: the Deployment selects its pods",
          matches(dep["spec"]["selector"]["matchLabels"], labels))
    pdb = by_kind["PodDisruptionBudget"][0]
    check("kubernetes: the PodDisruptionBudget covers the workers",
          matches(pdb["spec"]["selector"]["matchLabels"], labels))
    svc = by_kind["Service"][0]
    sport = svc["spec"]["ports"][0]
    check("kubernetes: the Service selects the workers and targets the metrics port",
          matches(svc["spec"]["selector"], labels) and
          sport.get("targetPort") in ("metrics", port) and sport["port"] == port)
    sm = by_kind["ServiceMonitor"][0]
    ep = sm["spec"]["endpoints"][0]
    check("kubernetes: the ServiceMonitor scrapes the Service's metrics port at /metrics",
          matches(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"]) and
          ep.get("port") == sport["name"] and ep.get("path") == PATHS["metrics"])
    so = by_kind["ScaledObject"][0]
    trig = so["spec"]["triggers"][0]
    md = trig["metadata"]
    check("kubernetes: KEDA scales the Deployment on the config's consumer group and topic",
          so["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"] and
          trig["type"] == "kafka" and md["consumerGroup"] == cfg["consumer"]["group"] and
          md["topic"] == cfg["topics"]["events"] and
          md["bootstrapServers"] == cfg["kafka"]["bootstrap.servers"], md)
    check("kubernetes: up to the partition count of the events topic, never idle consumers",
          so["spec"]["maxReplicaCount"] == partitions and
          md.get("allowIdleConsumers") == "false", (so["spec"]["maxReplicaCount"], partitions))
    return cfg_path, sec_mount[0]["mountPath"] if sec_mount else None, keys, env


# ---- systemd ---------------------------------------------------------------------------------

def unit_entries():
    out = []
    for line in open(os.path.join(DEPLOY, "systemd", "jiraprov-worker.service")):
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            k, _, v = line.partition("=")
            out.append((k, v))
    return out


def check_systemd(port, cfg, drain_s, worker):
    u = unit_entries()
    get = {}
    for k, v in u:
        get.setdefault(k, []).append(v)
    start = get.get("ExecStart", [""])[0].split()
    check("systemd: ExecStart runs jiraprov-worker --config /etc/jiraprov/jiraprov.yaml",
          start[:1] == ["/usr/local/bin/jiraprov-worker"] and
          start[start.index("--config") + 1] == "/etc/jiraprov/jiraprov.yaml", start)
    check("systemd: reload sends SIGHUP", "-HUP" in " ".join(get.get("ExecReload", [])))
    check("systemd: the stop timeout covers the drain bound",
          int(get.get("TimeoutStopSec", ["90"])[0]) > drain_s)
    hardening = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                 "PrivateTmp": "yes", "DynamicUser": "yes", "CapabilityBoundingSet": ""}
    check("systemd: hardened (no new privileges, read-only system, own user, no capabilities)",
          all(get.get(k, [None])[-1] == v for k, v in hardening.items()))
    creds = {v.split(":")[0] for v in get.get("LoadCredential", [])}
    named = secret_files(cfg)
    check("systemd: every secret the config names is a loaded credential",
          named and all(p.startswith("${CREDENTIALS_DIRECTORY}/") and
                        p.split("/", 1)[1] in creds for p in named), (named, creds))
    tool = shutil.which("systemd-analyze")
    if tool:
        with tempfile.TemporaryDirectory() as d:
            unit = open(os.path.join(DEPLOY, "systemd", "jiraprov-worker.service")).read()
            unit = unit.replace("/usr/local/bin/jiraprov-worker", worker or "/bin/true")
            path = os.path.join(d, "jiraprov-worker.service")
            open(path, "w").write(unit)
            r = subprocess.run([tool, "verify", path], capture_output=True, text=True)
            check("systemd: systemd-analyze verify finds nothing", r.returncode == 0 and
                  not (r.stdout + r.stderr).strip(), r.stdout + r.stderr)
    else:
        say("note: systemd-analyze not installed; unit not verified")
    return creds


# ---- alerts and dashboard --------------------------------------------------------------------

def dashboard_exprs():
    d = json.load(open(os.path.join(DEPLOY, "grafana", "jiraprov-dashboard.json")))
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                out.append((p.get("title"), t.get("expr", "")))
            walk(p.get("panels", []))
    walk(d.get("panels", []))
    return d, out


def strip_strings(expr):
    return re.sub(r'"(\\.|[^"\\])*"', '""', expr)


def check_expr_metrics(where, expr, catalogue):
    """Every jiraprov_ name is exported; selector and grouping labels exist."""
    bad = []
    used = []
    for m in re.finditer(r"\b(jiraprov_[a-zA-Z0-9_]+)\b(\{[^}]*\})?", expr):
        name, sel = m.group(1), m.group(2) or ""
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name in catalogue and catalogue[name][0] != "histogram":
            fam = name
        elif base in catalogue and catalogue[base][0] == "histogram" and base != name:
            fam = base
        else:
            bad.append(f"{name}: not exported")
            continue
        labels = set(catalogue[fam][1]) | TARGET_LABELS | ({"le"} if name.endswith("_bucket")
                                                           else set())
        used.append(labels)
        for lab in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", sel):
            if lab not in labels:
                bad.append(f"{name}: no label {lab}")
    stripped = strip_strings(expr)
    for grp in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", stripped):
        for lab in [x.strip() for x in grp.split(",") if x.strip()]:
            if not any(lab in labels for labels in used):
                bad.append(f"grouping label {lab} is on no metric of the expression")
    check(f"{where}: metrics and labels exist in the worker", not bad and used, bad)
    return used


def promql_ready(expr):
    """A dashboard expression with Grafana's variables filled in, for promtool."""
    return (expr.replace("$__rate_interval", "5m").replace('"$site"', '".*"')
            .replace("${datasource}", ""))


def check_alerts_and_dashboard(catalogue):
    rules_path = os.path.join(DEPLOY, "prometheus", "alerts.yml")
    doc = load_yaml(rules_path)[0]
    rules = [r for g in doc["groups"] for r in g["rules"]]
    names = {r.get("alert") for r in rules}
    check("alerts: lag growing, quarantine, dead-letter rate, 429 rate, worker not ready",
          {"JiraprovConsumerLagGrowing", "JiraprovSiteQuarantined", "JiraprovDeadLetterRate",
           "JiraprovJira429Rate", "JiraprovWorkerNotReady"} <= names, names)
    for r in rules:
        check(f"alert {r.get('alert')}: for, severity and summary",
              r.get("for") and r.get("labels", {}).get("severity") and
              r.get("annotations", {}).get("summary"))
        check_expr_metrics(f"alert {r.get('alert')}", r["expr"], catalogue)
    dash, exprs = dashboard_exprs()
    check("dashboard: a uid, a title and panels with queries",
          dash.get("uid") and dash.get("title") and len(exprs) >= 10)
    for title, expr in exprs:
        check_expr_metrics(f"dashboard panel {title!r}", expr, catalogue)
    promtool = shutil.which("promtool")
    if not promtool:
        say("note: promtool not installed (Debian package prometheus); PromQL not parsed")
        return
    r = subprocess.run([promtool, "check", "rules", rules_path], capture_output=True, text=True)
    check("promtool check rules accepts the alert rules", r.returncode == 0, r.stdout + r.stderr)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "dashboard_rules.yml")
        recs = [{"record": f"jiraprov_dashboard:query_{i}", "expr": promql_ready(e)}
                for i, (_, e) in enumerate(exprs)]
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recs}]}, open(path, "w"))
        r = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
        check("promtool parses every dashboard query", r.returncode == 0, r.stdout + r.stderr)


# ---- with the binaries -------------------------------------------------------------------------

def check_config_runs(worker, where, text, mount_dir, names, env):
    """--check-config on `text` with dummy secret files for `names` in place of mount_dir."""
    with tempfile.TemporaryDirectory() as d:
        for n in names:
            with open(os.path.join(d, n), "w") as f:
                f.write(f"dummy-secret-{n}\n")
        body = text.replace(mount_dir, d) if mount_dir else text
        path = os.path.join(d, "jiraprov.yaml")
        with open(path, "w") as f:
            f.write(body)
        run_env = dict(os.environ, **{k: v.replace("@DIR@", d) for k, v in env.items()})
        r = subprocess.run([worker, "--check-config", "--config", path], env=run_env,
                           capture_output=True, text=True)
        check(f"--check-config accepts {where}", r.returncode == 0, r.stderr[-500:])


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def live_worker(worker, compose_text, catalogue, healthcheck):
    """A worker on the compose config, with nothing to connect to: its HTTP surface."""
    with tempfile.TemporaryDirectory() as d:
        for n in ("jira_api_token", "scim_api_key", "org_api_key", "audit_hmac_key"):
            open(os.path.join(d, n), "w").write("dummy-secret-of-16-bytes\n")
        text = (compose_text.replace("/run/secrets", d)
                .replace("kafka:9092", "127.0.0.1:1").replace("redis://redis:", "redis://127.0.0.1:")
                .replace("0.0.0.0:9464", "127.0.0.1:0"))
        text = re.sub(r"redis://127\.0\.0\.1:\d+", "redis://127.0.0.1:1", text)
        path = os.path.join(d, "jiraprov.yaml")
        open(path, "w").write(text)
        log = open(os.path.join(d, "worker.log"), "w+")
        p = subprocess.Popen([worker, "--config", path], stdout=subprocess.DEVNULL, stderr=log)
        try:
            port, deadline = None, time.monotonic() + 20
            while not port and time.monotonic() < deadline and p.poll() is None:
                time.sleep(0.1)
                m = re.search(r"http on port (\d+)", open(log.name).read())
                port = m and m.group(1)
            if not check("the worker starts on the compose config and logs its port", port,
                         open(log.name).read()[-1000:]):
                return
            base = f"http://127.0.0.1:{port}"
            check(f"{PATHS['health']} answers 200", http_get(base + PATHS["health"])[0] == 200)
            st, why = http_get(base + PATHS["ready"])
            check(f"{PATHS['ready']} answers 503 with a reason when nothing is reachable",
                  st == 503 and why.strip(), (st, why))
            st, body = http_get(base + PATHS["metrics"])
            try:
                fams = promtext.parse(body)
            except ValueError as e:
                fams = {}
                say(f"invalid exposition text: {e}")
            check(f"{PATHS['metrics']} is valid text with every family of the catalogue",
                  st == 200 and set(fams) == set(catalogue) and
                  all(fams[n]["type"] == catalogue[n][0] for n in fams),
                  set(catalogue) ^ set(fams))
            cmd = re.search(r'\[.*\]', healthcheck).group(0)
            argv = [a.replace("\\r", "\r") for a in json.loads(cmd)]
            argv = [a.replace("/9464", f"/{port}") for a in argv]
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            check("the Dockerfile's HEALTHCHECK command passes against a live worker",
                  r.returncode == 0, r.stderr)
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                check("the worker stops cleanly on SIGTERM", p.wait(timeout=30) == 0)
            except subprocess.TimeoutExpired:
                p.kill()
                check("the worker stops cleanly on SIGTERM", False)


def check_runtime_libraries(worker, stages):
    if not shutil.which("dpkg"):
        say("note: no dpkg; runtime libraries not checked")
        return
    rt = next(s for s in stages if s["name"] == "runtime")
    pkgs = {p.split(":")[0] for p in stage_packages(rt)}
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                        subprocess.run(["readelf", "-d", worker], capture_output=True,
                                       text=True).stdout)
    paths = dict(re.findall(r"^\s*(\S+) => (\S+)", subprocess.run(
        ["ldd", worker], capture_output=True, text=True).stdout, re.M))
    missing = []
    for lib in needed:
        if re.match(r"lib(a|ub|t|l)san", lib):
            continue  # a sanitizer build
        path = paths.get(lib)
        owner = subprocess.run(["dpkg", "-S", os.path.realpath(path) if path else lib],
                               capture_output=True, text=True).stdout.split(":")[0]
        if not owner:
            owner = subprocess.run(["dpkg", "-S", path or lib], capture_output=True,
                                   text=True).stdout.split(":")[0]
        if owner not in pkgs | {"libc6", "libgcc-s1"}:
            missing.append(f"{lib} ({owner or 'no package'})")
    check("every library the worker links is installed in the runtime image",
          needed and not missing, missing)


# ---- main ------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--static", action="store_true", help="only what needs no build")
    ap.add_argument("--worker", help="the built jiraprov-worker")
    ap.add_argument("--quiet", action="store_true", help="print failures and the summary only")
    args = ap.parse_args()
    global quiet
    quiet = args.quiet
    if args.worker:
        args.worker = os.path.abspath(args.worker)

    for base, _, files in os.walk(DEPLOY):
        if "/local/state" in base:
            continue
        for f in files:
            path = os.path.join(base, f)
            try:
                if f.endswith((".yml", ".yaml")):
                    load_yaml(path)
                elif f.endswith(".json"):
                    json.load(open(path))
            except (yaml.YAMLError, ValueError) as e:
                check(f"{rel(path)} parses", False, e)
    catalogue = catalogue_from_source()
    check("the metrics catalogue is read from worker/metrics.c", len(catalogue) >= 20)

    configs = config_docs()
    ports = {where: listen_port(cfg) for where, _, cfg in configs}
    port = next(iter(ports.values()))
    check("one metrics port in every embedded config", len(set(ports.values())) == 1, ports)
    drains = {where: cfg.get("worker", {}).get("drain_timeout_ms", 30000) / 1000
              for where, _, cfg in configs}
    drain_s = max(drains.values())
    by_where = {w.split()[0] if w.startswith("kubernetes") else w.split("/")[1]: (t, c)
                for w, t, c in configs}

    stages, healthcheck = check_dockerfile(port)
    partitions, compose_secrets = check_compose(port, by_where["compose"][1], drain_s)
    k8s_cfg_path, k8s_secret_dir, k8s_keys, k8s_env = check_kubernetes(
        port, by_where["kubernetes"][0], by_where["kubernetes"][1], drain_s, partitions)
    creds = check_systemd(port, by_where["systemd"][1], drain_s, args.worker)
    check_alerts_and_dashboard(catalogue)

    if args.worker and not args.static:
        out = subprocess.run([args.worker, "--list-metrics"], capture_output=True,
                             text=True).stdout
        listed = {}
        for line in out.strip().split("\n"):
            name, kind, labels, _ = line.split("\t", 3)
            listed[name] = (kind, labels.split(",") if labels else [])
        flat = {(n, k, tuple(la)) for n, (k, la) in listed.items()} ^ \
            {(n, k, tuple(la)) for n, (k, la) in catalogue.items()}
        check("--list-metrics equals the catalogue in worker/metrics.c", not flat, flat)
        compose_text = by_where["compose"][0]
        check_config_runs(args.worker, "the compose config", compose_text, "/run/secrets",
                          compose_secrets, {})
        check_config_runs(args.worker, "the Kubernetes ConfigMap", by_where["kubernetes"][0],
                          k8s_secret_dir, k8s_keys, {v: "pod-0" for v in k8s_env})
        check_config_runs(args.worker, "the systemd config", by_where["systemd"][0], None,
                          creds, {"CREDENTIALS_DIRECTORY": "@DIR@"})
        live_worker(args.worker, compose_text, catalogue, healthcheck)
        check_runtime_libraries(args.worker, stages)

    if failures:
        say(f"{len(failures)} check(s) failed")
        return 1
    say("all checks passed" + (" (static)" if args.static or not args.worker else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
