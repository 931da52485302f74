#!/usr/bin/python3
"""Contract test: records the worker publishes (results, dead letters, audit,
reconciliation) against their JSON Schemas in config/schemas/records/.

Usage:
  check_records.py <repo root>                 validate config/samples/records/*.jsonl
                                               (written by the C encoders, compared by
                                               tests/unit/test_record.c and
                                               tests/unit/test_recon.c) and check that
                                               the schemas reject broken variants
  check_records.py <repo root> [--key-file K] FILE.jsonl ...
                                               validate JSON Lines of records ('-' = stdin),
                                               e.g. a dump of the results/audit/dlq topics

Each line is one CloudEvents record; its `type` picks the schema. Blank lines
are skipped. Every failure is reported as FILE:LINE: message; the exit status
is 1 when any line failed.

Audit records are also checked the way an auditor's own program would: the
MAC of every record sealed with a known key (the samples' key, or --key-file)
is recomputed here, independently of the C code, from the canonical form that
include/jiraprov/audit.h defines, and each stream's seq and prev must follow
on in file order. A sample record that is changed must then fail that check.
"""
import copy
import glob
import hashlib
import hmac
import json
import os
import sys

import jsonschema

TYPES = {
    "com.jiraprov.result": "result",
    "com.jiraprov.deadletter": "deadletter",
    "com.jiraprov.audit": "audit",
    "com.jiraprov.site.state": "sitestate",
    "com.jiraprov.recon.started": "recon",
    "com.jiraprov.recon.account": "recon",
    "com.jiraprov.recon.entitlement": "recon",
    "com.jiraprov.recon.completed": "recon",
}


# The key tests/unit/test_record.c seals the audit samples with (not a secret).
SAMPLE_KEY = b"jiraprov-sample-audit-key-not-a-secret"
ZERO_MAC = "0" * 64


def key_id(key):
    return hmac.new(key, b"jiraprov-audit-key-id", hashlib.sha256).hexdigest()[:16]


def has_real(value):
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(has_real(v) for v in value.values())
    if isinstance(value, list):
        return any(has_real(v) for v in value)
    return False


def canonical(record):
    """The bytes the MAC covers: the record without data.chain.mac, keys sorted, no
    whitespace, UTF-8 (json.dumps escapes exactly as audit.h specifies)."""
    rec = copy.deepcopy(record)
    del rec["data"]["chain"]["mac"]
    return json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Chains:
    """Recomputes MACs and follows each stream in file order."""

    def __init__(self, keys):
        self.keys = {key_id(k): k for k in keys}
        self.last = {}  # stream -> (seq, mac)
        self.verified = 0

    def errors(self, record):
        chain = record.get("data", {}).get("chain")
        if record.get("type") != "com.jiraprov.audit" or not isinstance(chain, dict):
            return []
        if has_real(record):
            return ["a real number: no canonical form"]
        if chain.get("alg") == "sha256":
            want = hashlib.sha256(canonical(record)).hexdigest()
        elif chain.get("keyId") in self.keys:
            want = hmac.new(self.keys[chain["keyId"]], canonical(record),
                            hashlib.sha256).hexdigest()
        else:
            return []  # a key we do not have: only the C verifier's report can say more
        out = []
        if not hmac.compare_digest(want, chain.get("mac", "")):
            out.append("data.chain.mac does not verify (recomputed %s...)" % want[:16])
        stream, seq = chain.get("stream"), chain.get("seq")
        seq_before, mac_before = self.last.get(stream, (-1, ZERO_MAC))
        if seq != seq_before + 1 or chain.get("prev") != mac_before:
            out.append("data.chain: seq %r / prev do not follow seq %d of stream %s" %
                       (seq, seq_before, stream))
        self.last[stream] = (seq, chain.get("mac"))
        if not out:
            self.verified += 1
        return out


def no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError("duplicate key %r" % key)
        seen[key] = value
    return seen


class Schemas:
    def __init__(self, root):
        self.by_name = {}
        sdir = os.path.join(root, "config", "schemas", "records")
        for name in sorted(set(TYPES.values())):
            with open(os.path.join(sdir, name + ".schema.json"), encoding="utf-8") as f:
                schema = json.load(f)
            jsonschema.Draft202012Validator.check_schema(schema)
            self.by_name[name] = jsonschema.Draft202012Validator(schema)

    def errors(self, record):
        if not isinstance(record, dict):
            return ["a record must be a JSON object"]
        name = TYPES.get(record.get("type"))
        if name is None:
            return ["type: expected one of %s, got %r" % (sorted(TYPES), record.get("type"))]
        out = []
        for e in sorted(self.by_name[name].iter_errors(record), key=lambda e: list(e.path)):
            where = "/".join(str(p) for p in e.path) or "(record)"
            out.append("%s: %s" % (where, e.message))
        return out


def check_lines(schemas, label, lines, failures, chains=None):
    """Validates JSON Lines; returns the records by type name."""
    seen = {}
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw, object_pairs_hook=no_duplicates)
        except ValueError as exc:
            failures.append("%s:%d: not JSON: %s" % (label, number, exc))
            continue
        errs = schemas.errors(record)
        if chains is not None and isinstance(record, dict):
            errs += chains.errors(record)
        for err in errs:
            failures.append("%s:%d: %s" % (label, number, err))
        if not errs:
            seen.setdefault(TYPES[record["type"]], []).append(record)
    return seen


def read_lines(path):
    if path == "-":
        return sys.stdin.read().splitlines()
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


# Broken variants of valid samples that the schemas must reject, so that a
# schema loosened by mistake (or a typo making a rule vacuous) shows here.
def mutations():
    def drop(path):
        def f(r):
            obj = r
            for p in path[:-1]:
                obj = obj[p]
            del obj[path[-1]]
        return f

    def setv(path, value):
        def f(r):
            obj = r
            for p in path[:-1]:
                obj = obj[p]
            obj[path[-1]] = value
        return f

    return [
        ("result", "no data.status", lambda r: True, drop(["data", "status"])),
        ("result", "status retry", lambda r: True, setv(["data", "status"], "retry")),
        ("result", "error on success",
         lambda r: r["data"]["status"] == "succeeded",
         setv(["data", "error"], {"class": "permanent", "reason": "x"})),
        ("result", "failed without error",
         lambda r: r["data"]["status"] == "failed", drop(["data", "error"])),
        ("result", "time without ms", lambda r: True, setv(["time"], "2026-11-22T09:00:00Z")),
        ("result", "unknown data field", lambda r: True, setv(["data", "secret"], "x")),
        ("result", "jira value not a string", lambda r: True, setv(["data", "jira", "scimId"], 1)),
        ("deadletter", "value and valueBase64",
         lambda r: "value" in r["data"], setv(["data", "valueBase64"], "AA==")),
        ("deadletter", "no value", lambda r: "value" in r["data"], drop(["data", "value"])),
        ("deadletter", "key and keyBase64",
         lambda r: "key" in r["data"], setv(["data", "keyBase64"], "AA==")),
        ("deadletter", "bad base64",
         lambda r: "valueBase64" in r["data"], setv(["data", "valueBase64"], "not base64!")),
        ("deadletter", "eventId without eventType",
         lambda r: "eventType" in r["data"], drop(["data", "eventType"])),
        ("deadletter", "negative offset", lambda r: True, setv(["data", "offset"], -1)),
        ("audit", "decision with a method",
         lambda r: r["data"]["operation"].startswith("decision."),
         setv(["data", "method"], "POST")),
        ("audit", "call without status", is_call, drop(["data", "status"])),
        ("audit", "call with a decision outcome", is_call, setv(["data", "outcome"], "skipped")),
        ("audit", "request body", lambda r: True, setv(["data", "body"], {"password": "x"})),
        ("audit", "role target without role",
         lambda r: is_event(r) and r["data"]["target"]["kind"] == "role",
         drop(["data", "target", "role"])),
        ("audit", "no actor", is_event, drop(["data", "actor"])),
        ("audit", "event record without jirasite", is_event, drop(["jirasite"])),
        ("audit", "unsealed", lambda r: True, drop(["data", "chain"])),
        ("audit", "negative seq", lambda r: True, setv(["data", "chain", "seq"], -1)),
        ("audit", "mac not hex", lambda r: True, setv(["data", "chain", "mac"], "z" * 64)),
        ("audit", "keyed without key id", lambda r: True, drop(["data", "chain", "keyId"])),
        ("audit", "unknown chain member", lambda r: True,
         setv(["data", "chain", "note"], "x")),
        ("audit", "stream record with an actor", is_stream, setv(["data", "actor"], "eve")),
        ("audit", "stream record with a jirasite", is_stream, setv(["jirasite"], "demo")),
        ("audit", "stream.started without previous or previousUnknown",
         lambda r: r["data"]["operation"] == "stream.started", drop(["data", "previous"])),
        ("audit", "stream.stopped with previous",
         lambda r: r["data"]["operation"] == "stream.stopped",
         setv(["data", "previousUnknown"], "x")),
        ("audit", "call with previous", is_call,
         setv(["data", "previousUnknown"], "x")),
        ("audit", "site record without api", is_site, drop(["data", "api"])),
        ("audit", "site record with an actor", is_site, setv(["idhubactor"], "eve")),
        ("audit", "site record with a target", is_site,
         setv(["data", "target"], {"kind": "account"})),
        ("sitestate", "quarantined without since",
         lambda r: r["data"]["state"] == "quarantined", drop(["data", "since"])),
        ("sitestate", "no api", lambda r: True, drop(["data", "api"])),
        ("recon", "started with seq 1",
         lambda r: r["type"].endswith(".started"), setv(["data", "seq"], 1)),
        ("recon", "completed without removed",
         lambda r: r["type"].endswith(".completed"), drop(["data", "counts", "removed"])),
        ("recon", "completed id on an item",
         lambda r: r["type"].endswith(".account"), setv(["id"], "demo:r1:completed")),
        ("recon", "account upsert without attributes",
         lambda r: r["type"].endswith(".account") and r["data"]["operation"] == "upsert",
         drop(["data", "attributes"])),
        ("recon", "account delete as created",
         lambda r: r["type"].endswith(".account") and r["data"]["operation"] == "delete",
         setv(["data", "change"], "created")),
        ("recon", "account delete with attributes",
         lambda r: r["type"].endswith(".account") and r["data"]["operation"] == "delete",
         setv(["data", "attributes"], {"email": "x@example.com"})),
        ("recon", "unknown operation", lambda r: "operation" in r["data"],
         setv(["data", "operation"], "merge")),
        ("recon", "seq 0 on an item", lambda r: "operation" in r["data"],
         setv(["data", "seq"], 0)),
        ("recon", "entitlement upsert without members",
         lambda r: r["type"].endswith(".entitlement") and r["data"]["operation"] == "upsert",
         drop(["data", "members"])),
        ("recon", "group without groupId",
         lambda r: r["type"].endswith(".entitlement") and r["data"]["type"] == "group",
         drop(["data", "groupId"])),
        ("recon", "role entitlement named as a group",
         lambda r: r["type"].endswith(".entitlement") and r["data"]["type"] == "projectRole",
         setv(["data", "entitlement"], {"type": "group", "group": "x"})),
        ("recon", "member without accountId",
         lambda r: r["type"].endswith(".entitlement") and any(
             m["type"] == "user" for m in r["data"].get("members", [])),
         lambda r: next(m for m in r["data"]["members"] if m["type"] == "user").pop("accountId")),
        ("recon", "unmapped attribute",
         lambda r: r["type"].endswith(".account") and r["data"]["operation"] == "upsert",
         setv(["data", "attributes", "shoeSize"], "42")),
    ]


def is_stream(r):
    return r["data"]["operation"].startswith("stream.")


def is_site(r):
    return r["data"]["operation"].startswith("site.")


def is_event(r):
    return not is_stream(r) and not is_site(r)


def is_call(r):
    return is_event(r) and not r["data"]["operation"].startswith("decision.")


def check_samples(root, schemas, failures):
    files = sorted(glob.glob(os.path.join(root, "config", "samples", "records", "*.jsonl")))
    if not files:
        failures.append("config/samples/records: no *.jsonl samples")
    seen = {}
    count = 0
    chains = Chains([SAMPLE_KEY])
    for path in files:
        label = os.path.relpath(path, root)
        lines = read_lines(path)
        count += sum(1 for line in lines if line.strip())
        for name, recs in check_lines(schemas, label, lines, failures, chains).items():
            seen.setdefault(name, []).extend(recs)
    audit = seen.get("audit", [])
    if chains.verified != len(audit) or not audit:
        failures.append("audit samples: %d of %d MACs recomputed and verified" %
                        (chains.verified, len(audit)))
    # The recomputation must notice a change (else it would verify anything).
    for r in audit:
        changed = copy.deepcopy(r)
        changed["data"]["worker"] = changed["data"]["worker"] + "x"
        if not Chains([SAMPLE_KEY]).errors(changed):
            failures.append("a changed audit sample %s still verifies" % r["id"])
    for name in sorted(set(TYPES.values())):
        if not seen.get(name):
            failures.append("config/samples/records: no valid %s record" % name)
    rejected = 0
    for name, what, applies, mutate in mutations():
        targets = [r for r in seen.get(name, []) if applies(r)]
        if not targets:
            failures.append("mutation %r: no %s sample it applies to" % (what, name))
            continue
        for r in targets:
            broken = copy.deepcopy(r)
            mutate(broken)
            if not schemas.errors(broken):
                failures.append("mutation %r of %s was accepted" % (what, r["id"]))
            else:
                rejected += 1
    return count, rejected


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    root = argv[1]
    schemas = Schemas(root)
    failures = []
    args = argv[2:]
    keys = []
    while len(args) >= 2 and args[0] == "--key-file":
        with open(args[1], "rb") as f:
            key = f.read()
        keys.append(key[:-1] if key.endswith(b"\n") else key)
        args = args[2:]
    if args:
        total = 0
        chains = Chains(keys) if keys else None
        for path in args:
            lines = read_lines(path)
            total += sum(1 for line in lines if line.strip())
            check_lines(schemas, path, lines, failures, chains)
        summary = "%d records checked" % total
        if chains:
            summary += ", %d audit MACs recomputed" % chains.verified
    else:
        count, rejected = check_samples(root, schemas, failures)
        summary = "%d sample records checked, %d broken variants rejected" % (count, rejected)
    for f in failures:
        print(f)
    print("%s, %d failed" % (summary, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
