#!/usr/bin/python3
"""Contract test: the JSON Schemas in config/schemas agree with the samples
and with the event corpus that test_event.c runs through the C decoder.

  - every schema is a valid draft 2020-12 schema, one per event type;
  - every sample (config/samples/<type>.json, demo.jsonl) is valid;
  - every line of config/samples/invalid.jsonl is rejected;
  - every valid corpus event is valid;
  - every invalid corpus event is rejected when its manifest line says
    "reject", and accepted when it says "n/a" (a rule only the decoder
    checks), so the manifest stays accurate as the schemas change.

A file that is not JSON (bad syntax, invalid UTF-8, duplicate keys) counts
as rejected, as the decoder rejects it before any schema applies.

Usage: check_schemas.py <repo root>
"""
import json
import os
import sys

import jsonschema

PREFIX = "com.idhub."


class NotJson(Exception):
    pass


def no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise NotJson("duplicate key %r" % key)
        seen[key] = value
    return seen


def parse(raw):
    """Parses one event as the decoder would, or raises NotJson."""
    try:
        text = raw.decode("utf-8")
        return json.loads(text, object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotJson(str(exc)) from exc


class Schemas:
    def __init__(self, root):
        self.dir = os.path.join(root, "config", "schemas")
        self.store = {}
        self.by_type = {}
        for name in sorted(os.listdir(self.dir)):
            if not name.endswith(".schema.json"):
                continue
            with open(os.path.join(self.dir, name), encoding="utf-8") as f:
                schema = json.load(f)
            jsonschema.Draft202012Validator.check_schema(schema)
            self.store[schema["$id"]] = schema
            self.by_type[name[: -len(".schema.json")]] = schema
        self.envelope = self.by_type.pop("cloudevent")
        types = [t[len(PREFIX):] for t in self.envelope["properties"]["type"]["enum"]]
        if sorted(types) != sorted(self.by_type):
            raise SystemExit("schema files %s do not match the envelope's types %s"
                             % (sorted(self.by_type), sorted(types)))
        self.types = types

    def errors(self, event):
        """Schema errors for one parsed event (empty list = valid)."""
        schema = self.envelope
        if isinstance(event, dict) and isinstance(event.get("type"), str):
            schema = self.by_type.get(event["type"][len(PREFIX):], self.envelope) \
                if event["type"].startswith(PREFIX) else self.envelope
        resolver = jsonschema.RefResolver(schema["$id"], schema, store=self.store)
        validator = jsonschema.Draft202012Validator(schema, resolver=resolver)
        return [e.message for e in validator.iter_errors(event)]


class Report:
    def __init__(self):
        self.failures = []
        self.checked = 0

    def expect(self, what, ok, detail=""):
        self.checked += 1
        if not ok:
            self.failures.append("%s: %s" % (what, detail))


def verdict(schemas, raw):
    """(rejected, detail) for one raw event."""
    try:
        event = parse(raw)
    except NotJson as exc:
        return True, "not JSON: %s" % exc
    errs = schemas.errors(event)
    return bool(errs), "; ".join(errs[:3])


def check_samples(root, schemas, rep):
    sdir = os.path.join(root, "config", "samples")
    for t in schemas.types:
        path = os.path.join(sdir, t + ".json")
        if not os.path.exists(path):
            rep.expect(path, False, "missing sample for " + t)
            continue
        with open(path, "rb") as f:
            raw = f.read()
        rejected, detail = verdict(schemas, raw)
        rep.expect(path, not rejected, detail)
        if not rejected:
            rep.expect(path, parse(raw)["type"] == PREFIX + t, "type does not match the file name")
    for name, want_valid in (("demo.jsonl", True), ("invalid.jsonl", False)):
        with open(os.path.join(sdir, name), "rb") as f:
            lines = [l for l in f.read().split(b"\n") if l.strip()]
        rep.expect(name, len(lines) > 0, "no events")
        for i, line in enumerate(lines, 1):
            rejected, detail = verdict(schemas, line)
            rep.expect("%s:%d" % (name, i), rejected != want_valid,
                       detail if want_valid else "accepted by the schema")


def check_corpus(root, schemas, rep):
    cdir = os.path.join(root, "tests", "unit", "data", "events")
    valid = sorted(os.listdir(os.path.join(cdir, "valid")))
    for name in valid:
        with open(os.path.join(cdir, "valid", name), "rb") as f:
            rejected, detail = verdict(schemas, f.read())
        rep.expect("valid/" + name, not rejected, detail)
    listed = set()
    with open(os.path.join(cdir, "manifest.tsv"), encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.startswith("#") or not line.strip():
                continue
            name, _max_bytes, schema, _expected = line.rstrip("\n").split("\t", 3)
            listed.add(name)
            with open(os.path.join(cdir, "invalid", name), "rb") as g:
                rejected, detail = verdict(schemas, g.read())
            if schema == "reject":
                rep.expect("invalid/" + name, rejected, "accepted by the schema")
            elif schema == "n/a":
                rep.expect("invalid/" + name, not rejected,
                           "marked n/a but the schema rejects it (%s): mark it reject" % detail)
            else:
                rep.expect("manifest.tsv:%d" % lineno, False, "schema column must be reject or n/a")
    on_disk = set(os.listdir(os.path.join(cdir, "invalid")))
    rep.expect("manifest.tsv", listed == on_disk,
               "files without a manifest line: %s; lines without a file: %s"
               % (sorted(on_disk - listed), sorted(listed - on_disk)))
    return len(valid), len(listed)


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    root = sys.argv[1]
    schemas = Schemas(root)
    rep = Report()
    check_samples(root, schemas, rep)
    n_valid, n_invalid = check_corpus(root, schemas, rep)
    for failure in rep.failures:
        print("FAIL", failure)
    print("%d checks (%d schemas, %d valid and %d invalid corpus events), %d failed"
          % (rep.checked, len(schemas.by_type) + 1, n_valid, n_invalid, len(rep.failures)))
    return 1 if rep.failures else 0


if __name__ == "__main__":
    sys.exit(main())
