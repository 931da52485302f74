#!/usr/bin/python3
"""Trim Atlassian's OpenAPI documents down to the operations jiraprov uses.

Reads the published documents (default: <repo>/../shared/specs), keeps the
operations listed in OPERATIONS below together with every component they
reference (transitively), drops prose (descriptions, summaries, examples) and
writes specs/<name>.trimmed.json next to this script with sorted keys and an
indent of 1.  The trimmed copies are committed so the contract tests run
without ../shared.

--check regenerates the copies in memory and exits 1 when a committed copy
differs from what the published documents give, so they cannot drift.

Run with /usr/bin/python3 (Debian's interpreter).
"""

import argparse
import copy
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
DEFAULT_SPECS = os.path.normpath(os.path.join(REPO, "..", "shared", "specs"))
OUT_DIR = os.path.join(HERE, "specs")

SCIM = "/scim/directory/{directoryId}"
SCHEMAS = SCIM + "/Schemas/urn:ietf:params:scim:schemas:"

# name of the trimmed copy -> (published file, [(method, path), ...]).
# A document with no operations is read (so a missing file is noticed) but no
# copy is written: the organizations API is not called by jiraprov.
OPERATIONS = {
    "scim": (
        "atlassian-user-provisioning-scim.openapi.json",
        [
            ("get", SCIM + "/Users"),
            ("post", SCIM + "/Users"),
            ("get", SCIM + "/Users/{userId}"),
            ("put", SCIM + "/Users/{userId}"),
            ("patch", SCIM + "/Users/{userId}"),
            ("delete", SCIM + "/Users/{userId}"),
            ("get", SCIM + "/Groups"),
            ("post", SCIM + "/Groups"),
            ("get", SCIM + "/Groups/{id}"),
            ("put", SCIM + "/Groups/{id}"),
            ("patch", SCIM + "/Groups/{id}"),
            ("delete", SCIM + "/Groups/{id}"),
            ("get", SCIM + "/ServiceProviderConfig"),
            ("get", SCIM + "/ResourceTypes"),
            ("get", SCIM + "/ResourceTypes/User"),
            ("get", SCIM + "/ResourceTypes/Group"),
            ("get", SCIM + "/Schemas"),
            ("get", SCHEMAS + "core:2.0:User"),
            ("get", SCHEMAS + "core:2.0:Group"),
            ("get", SCHEMAS + "extension:enterprise:2.0:User"),
        ],
    ),
    "admin-user-management": (
        "atlassian-admin-user-management.openapi.json",
        [
            ("post", "/users/{account_id}/manage/lifecycle/enable"),
            ("post", "/users/{account_id}/manage/lifecycle/disable"),
        ],
    ),
    "admin-organization": ("atlassian-admin-organization.openapi.json", []),
    "jira": (
        "jira-cloud-platform.openapi.json",
        [
            ("get", "/rest/api/3/project/search"),
            ("get", "/rest/api/3/project/{projectIdOrKey}"),
            ("post", "/rest/api/3/issue"),
            ("get", "/rest/api/3/issue/{issueIdOrKey}"),
            ("put", "/rest/api/3/issue/{issueIdOrKey}"),
            ("delete", "/rest/api/3/issue/{issueIdOrKey}"),
            ("get", "/rest/api/3/issue/{issueIdOrKey}/transitions"),
            ("post", "/rest/api/3/issue/{issueIdOrKey}/transitions"),
            ("get", "/rest/api/3/issue/{issueIdOrKey}/properties/{propertyKey}"),
            ("put", "/rest/api/3/issue/{issueIdOrKey}/properties/{propertyKey}"),
            ("put", "/rest/api/3/issue/{issueIdOrKey}/assignee"),
            ("get", "/rest/api/3/search/jql"),
            ("post", "/rest/api/3/search/jql"),
            ("get", "/rest/api/3/user"),
            ("post", "/rest/api/3/user"),
            ("delete", "/rest/api/3/user"),
            ("get", "/rest/api/3/users/search"),
            ("get", "/rest/api/3/user/search"),
            ("get", "/rest/api/3/user/groups"),
            ("post", "/rest/api/3/group"),
            ("delete", "/rest/api/3/group"),
            ("get", "/rest/api/3/group/member"),
            ("post", "/rest/api/3/group/user"),
            ("delete", "/rest/api/3/group/user"),
            ("get", "/rest/api/3/group/bulk"),
            ("get", "/rest/api/3/project/{projectIdOrKey}/role"),
            ("get", "/rest/api/3/project/{projectIdOrKey}/role/{id}"),
            ("post", "/rest/api/3/project/{projectIdOrKey}/role/{id}"),
            ("put", "/rest/api/3/project/{projectIdOrKey}/role/{id}"),
            ("delete", "/rest/api/3/project/{projectIdOrKey}/role/{id}"),
        ],
    ),
}

# Prose keywords removed wherever they are keywords (not property names).
PROSE = {"description", "summary", "example", "examples", "externalDocs"}

# Keys whose value is a map from user-chosen names to objects: inside such a
# map a key called "description" is a name (a property, a path...), not prose.
NAME_MAPS = {
    "properties",
    "patternProperties",
    "paths",
    "responses",
    "content",
    "headers",
    "encoding",
    "links",
    "callbacks",
    "variables",
    "schemas",
    "parameters",
    "requestBodies",
    "securitySchemes",
    "scopes",
    "mapping",
}

# Values that are data, not schema: copied untouched.
DATA_KEYS = {"enum", "default", "const", "x-examples"}

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def strip_prose(node, names=False):
    """Return a copy of node without prose keywords.  names=True means the
    keys of this dict are names chosen by the spec author."""
    if isinstance(node, list):
        return [strip_prose(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if not names and key in PROSE:
            continue
        if not names and key in DATA_KEYS:
            out[key] = copy.deepcopy(value)
        elif not names and key in NAME_MAPS and isinstance(value, dict):
            out[key] = {k: strip_prose(v) for k, v in value.items()}
        else:
            out[key] = strip_prose(value)
    return out


def collect_refs(node, found):
    """Add every local $ref string under node to found."""
    if isinstance(node, list):
        for v in node:
            collect_refs(v, found)
    elif isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            found.add(ref)
        for k, v in node.items():
            if k in DATA_KEYS:
                continue
            collect_refs(v, found)


def ref_target(doc, ref):
    """Resolve '#/a/b/c' in doc; raise KeyError if it does not exist."""
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[part]
    return node


def trim(doc, ops, source):
    """Build the trimmed document for the (method, path) list ops."""
    paths = {}
    for method, path in ops:
        item = doc.get("paths", {}).get(path)
        if item is None or method not in item:
            raise KeyError("%s: no operation %s %s" % (source, method.upper(), path))
        dst = paths.setdefault(path, {})
        for k, v in item.items():
            if k not in HTTP_METHODS:
                dst[k] = v  # path-level parameters and servers
        dst[method] = item[method]

    out = {
        "openapi": doc.get("openapi"),
        "info": {"title": doc["info"].get("title"), "version": doc["info"].get("version")},
        "servers": [{"url": s["url"]} for s in doc.get("servers", [])],
        "paths": paths,
    }
    if "security" in doc:
        out["security"] = doc["security"]

    # Transitive closure over components: start from the kept paths, then
    # scan every component as it is added until nothing new appears.
    refs = set()
    collect_refs(paths, refs)
    if "security" in doc:
        for req in doc["security"]:
            for name in req:
                refs.add("#/components/securitySchemes/" + name)
    for op_method, op_path in ops:
        for req in doc["paths"][op_path][op_method].get("security", []):
            for name in req:
                refs.add("#/components/securitySchemes/" + name)
    done = set()
    components = {}
    while refs - done:
        ref = sorted(refs - done)[0]
        done.add(ref)
        parts = ref[2:].split("/")
        if len(parts) != 3 or parts[0] != "components":
            raise KeyError("%s: unsupported $ref %s" % (source, ref))
        target = ref_target(doc, ref)
        components.setdefault(parts[1], {})[parts[2]] = target
        collect_refs(target, refs)
    if components:
        out["components"] = components
    return strip_prose(out)


def render(obj):
    return json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def build_all(specs_dir):
    """Return {output file name: text} for every document with operations."""
    result = {}
    for name, (source, ops) in sorted(OPERATIONS.items()):
        path = os.path.join(specs_dir, source)
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        if not ops:
            continue
        result[name + ".trimmed.json"] = render(trim(doc, ops, source))
    return result


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--specs", default=DEFAULT_SPECS, help="directory of the published documents")
    ap.add_argument("--out", default=OUT_DIR, help="where the trimmed copies live")
    ap.add_argument("--check", action="store_true", help="fail if the committed copies differ")
    args = ap.parse_args(argv)

    try:
        built = build_all(args.specs)
    except (OSError, ValueError, KeyError) as e:
        print("trim_specs: %s" % e, file=sys.stderr)
        return 2

    if args.check:
        bad = 0
        for fname, text in sorted(built.items()):
            path = os.path.join(args.out, fname)
            try:
                with open(path, encoding="utf-8") as f:
                    current = f.read()
            except OSError as e:
                print("trim_specs: %s: %s" % (path, e.strerror), file=sys.stderr)
                bad += 1
                continue
            if current != text:
                print("trim_specs: %s is out of date; rerun trim_specs.py" % path, file=sys.stderr)
                bad += 1
        extra = {f for f in os.listdir(args.out) if f.endswith(".trimmed.json")} - set(built)
        for fname in sorted(extra):
            print("trim_specs: %s is not produced any more" % fname, file=sys.stderr)
            bad += 1
        if bad:
            return 1
        print("trim_specs: %d trimmed copies are up to date" % len(built))
        return 0

    os.makedirs(args.out, exist_ok=True)
    for fname, text in sorted(built.items()):
        with open(os.path.join(args.out, fname), "w", encoding="utf-8") as f:
            f.write(text)
        print("wrote %s (%d bytes)" % (os.path.join(args.out, fname), len(text)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
