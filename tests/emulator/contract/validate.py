#!/usr/bin/python3
"""Validate recorded emulator exchanges against Atlassian's OpenAPI documents.

Input: a JSON-lines record written by `jiraprov-jira-emulator --record FILE`,
one exchange per line:
  {"method","route","path","status","request_body","response_body","content_type"}

For each exchange the operation is found by method and path (the emulator's
route pattern first, the concrete path as a fallback), then the response for
the status (or "default"), the media type, and the schema; the body is
validated with jsonschema after translating the OpenAPI 3.0 schema dialect
(nullable, readOnly/writeOnly, $ref into components, formats).

Statuses the document does not list for the operation are violations unless
STATUS_EXCEPTIONS names them.  Exit status: 0 clean, 1 violations (or, with
--require-coverage, operations never answered with a 2xx), 2 usage errors.

Run with /usr/bin/python3 (Debian's python3-jsonschema).
"""

import argparse
import datetime
import json
import os
import re
import sys
import urllib.parse

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SPECS = os.path.join(HERE, "specs")

# Route prefixes under which the emulator serves a document besides the one
# given by the document's own servers[].url.  Jira is also reachable through
# the api.atlassian.com gateway for OAuth and service accounts (notes §6).
EXTRA_PREFIXES = {"jira": ["/ex/jira/{cloudId}"]}

# Paths that are the emulator's own control surface, not an Atlassian API.
CONTROL_PREFIX = "/__emulator/"

# Statuses accepted although the operation does not list them.  Each entry is
# (document or "*", METHOD or "*", spec path or "*", status, reason).  Keep it
# short and keep every reason pointing at the notes.
STATUS_EXCEPTIONS = [
    ("*", "*", "*", 429,
     "every Atlassian API answers 429 when a rate limiter trips (notes §4.1, §2); "
     "the SCIM document lists no 429 although the gateway sends it (notes §1.1 [U])"),
    ("jira", "*", "*", 503,
     "Jira answers 503 with Retry-After on resource limits, on any endpoint (notes §4.1)"),
    ("jira", "*", "*", 401,
     "authentication is checked before routing; some operations (assignee, users/search, "
     "role actor delete) omit 401 in the document, and the 401 form is [U] (notes §3, §6)"),
]

# Media types accepted although the response lists another one.
# (document, status, media type, reason)
CONTENT_EXCEPTIONS = [
    ("jira", 401, "text/plain",
     "Jira's 401 is seen both as plain text and as an ErrorCollection (notes §3 [U])"),
]

# Changes to the document's schemas where the notes overrule the document.
# (document, component schema, JSON pointer inside it, extra enum values, reason)
SCHEMA_EXCEPTIONS = [
    ("scim", "ScimMetadata", "/properties/resourceType", ["User", "Group"],
     "the document enumerates USER|GROUP|DIRECTORY but Atlassian returns User/Group; "
     "the emulator emits User/Group (notes §1.3)"),
]

# Where the document is plainly wrong, a replacement schema.  The SCIM
# discovery endpoints declare their 200 body as {"type":"string"}, yet they
# answer the JSON objects of RFC 7643 §5-§7 (as a ListResponse of RFC 7644
# §3.4.2 for the collections).  (document, METHOD, spec path, status,
# component name of the replacement, reason)
_SCIM = "/scim/directory/{directoryId}"
_DISCOVERY = "the document types the body as a string; SCIM discovery answers RFC 7643 JSON"
DOCUMENT_DEFECTS = [
    ("scim", "GET", _SCIM + "/ServiceProviderConfig", 200, "Rfc7643ServiceProviderConfig", _DISCOVERY),
    ("scim", "GET", _SCIM + "/ResourceTypes", 200, "Rfc7643ResourceTypeList", _DISCOVERY),
    ("scim", "GET", _SCIM + "/ResourceTypes/User", 200, "Rfc7643ResourceType", _DISCOVERY),
    ("scim", "GET", _SCIM + "/ResourceTypes/Group", 200, "Rfc7643ResourceType", _DISCOVERY),
    ("scim", "GET", _SCIM + "/Schemas", 200, "Rfc7643SchemaList", _DISCOVERY),
    ("scim", "GET", _SCIM + "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", 200,
     "Rfc7643Schema", _DISCOVERY),
    ("scim", "GET", _SCIM + "/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group", 200,
     "Rfc7643Schema", _DISCOVERY),
    ("scim", "GET", _SCIM + "/Schemas/urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
     200, "Rfc7643Schema", _DISCOVERY),
]


def _ref(name):
    return {"$ref": "#/components/schemas/" + name}


def _supported(*extra):
    props = {"supported": {"type": "boolean"}}
    for name in extra:
        props[name] = {"type": "integer", "minimum": 0}
    return {"type": "object", "required": ["supported"] + list(extra), "properties": props}


def _list_of(item):
    return {
        "type": "object",
        "required": ["schemas", "totalResults", "Resources"],
        "properties": {
            "schemas": {"type": "array", "items": {"enum": [
                "urn:ietf:params:scim:api:messages:2.0:ListResponse"]}, "minItems": 1},
            "totalResults": {"type": "integer", "minimum": 0},
            "startIndex": {"type": "integer", "minimum": 1},
            "itemsPerPage": {"type": "integer", "minimum": 0},
            "Resources": {"type": "array", "items": _ref(item)},
        },
    }


# Draft-4 schemas written from the attribute tables of RFC 7643 §5 (service
# provider configuration), §6 (resource types) and §7 (schema definitions).
RFC7643 = {
    "Rfc7643ServiceProviderConfig": {
        "type": "object",
        "required": ["schemas", "patch", "bulk", "filter", "changePassword", "sort", "etag",
                     "authenticationSchemes"],
        "properties": {
            "schemas": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "documentationUri": {"type": "string", "format": "uri"},
            "patch": _supported(),
            "bulk": _supported("maxOperations", "maxPayloadSize"),
            "filter": _supported("maxResults"),
            "changePassword": _supported(),
            "sort": _supported(),
            "etag": _supported(),
            "authenticationSchemes": {"type": "array", "items": {
                "type": "object",
                "required": ["type", "name", "description"],
                "properties": {
                    "type": {"type": "string"},
                    "name": {"type": "string"},
                    "description": {"type": "string"},
                    "specUri": {"type": "string", "format": "uri"},
                    "documentationUri": {"type": "string", "format": "uri"},
                    "primary": {"type": "boolean"},
                }}},
            "meta": _ref("ScimMetadataAny"),
        },
    },
    "Rfc7643ResourceType": {
        "type": "object",
        "required": ["schemas", "name", "endpoint", "schema"],
        "properties": {
            "schemas": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "id": {"type": "string"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "endpoint": {"type": "string"},
            "schema": {"type": "string"},
            "schemaExtensions": {"type": "array", "items": {
                "type": "object", "required": ["schema", "required"],
                "properties": {"schema": {"type": "string"}, "required": {"type": "boolean"}}}},
            "meta": _ref("ScimMetadataAny"),
        },
    },
    "Rfc7643Attribute": {
        "type": "object",
        "required": ["name", "type", "multiValued", "required", "mutability", "returned"],
        "properties": {
            "name": {"type": "string"},
            "type": {"enum": ["string", "boolean", "decimal", "integer", "dateTime", "reference",
                              "complex", "binary"]},
            "subAttributes": {"type": "array", "items": _ref("Rfc7643Attribute")},
            "multiValued": {"type": "boolean"},
            "description": {"type": "string"},
            "required": {"type": "boolean"},
            "canonicalValues": {"type": "array"},
            "caseExact": {"type": "boolean"},
            "mutability": {"enum": ["readOnly", "readWrite", "immutable", "writeOnly"]},
            "returned": {"enum": ["always", "never", "default", "request"]},
            "uniqueness": {"enum": ["none", "server", "global"]},
            "referenceTypes": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Rfc7643Schema": {
        "type": "object",
        "required": ["id", "attributes"],
        "properties": {
            "schemas": {"type": "array", "items": {"type": "string"}},
            "id": {"type": "string", "pattern": "^urn:"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "attributes": {"type": "array", "items": _ref("Rfc7643Attribute")},
            "meta": _ref("ScimMetadataAny"),
        },
    },
    # meta on discovery resources: RFC 7643 §3.1, resourceType is free text.
    "ScimMetadataAny": {
        "type": "object",
        "properties": {
            "resourceType": {"type": "string"},
            "location": {"type": "string"},
            "created": {"type": "string", "format": "date-time"},
            "lastModified": {"type": "string", "format": "date-time"},
            "version": {"type": "string"},
        },
    },
    "Rfc7643ResourceTypeList": _list_of("Rfc7643ResourceType"),
    "Rfc7643SchemaList": _list_of("Rfc7643Schema"),
}

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

# ---------------------------------------------------------------------------
# OpenAPI 3.0 schema object -> JSON Schema draft 4


def translate(schema, direction):
    """Translate one OpenAPI 3.0 schema object into draft-4 JSON Schema.

    direction is "response" or "request": writeOnly properties must not
    appear in responses, readOnly ones are not required in requests."""
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        # OpenAPI 3.0 ignores siblings of $ref, as draft 4 does.
        return {"$ref": schema["$ref"]}
    out = {}
    for key, value in schema.items():
        if key.startswith("x-") or key in ("nullable", "discriminator", "xml", "readOnly",
                                           "writeOnly", "deprecated", "title", "externalDocs"):
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {k: translate(v, direction) for k, v in value.items()}
        elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = translate(value, direction)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [translate(v, direction) for v in value]
        else:
            out[key] = value

    props = schema.get("properties") or {}
    hidden = [k for k, v in props.items()
              if isinstance(v, dict) and v.get("writeOnly" if direction == "response" else "readOnly")]
    if hidden:
        if "required" in out:
            out["required"] = [r for r in out["required"] if r not in hidden]
            if not out["required"]:
                del out["required"]
        if direction == "response":
            for name in hidden:
                out["properties"][name] = {"not": {}, "x-jp-writeonly": True}

    if schema.get("nullable") is True:
        if "type" in out:
            out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else out["type"] + ["null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = out["enum"] + [None]
        else:
            out = {"anyOf": [{"type": "null"}, out]}
    return out


def json_pointer_get(node, pointer):
    for part in pointer.strip("/").split("/"):
        if part:
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


# ---------------------------------------------------------------------------
# Formats: only those that can be checked exactly; others pass.

RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})$")
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def make_format_checker():
    fc = jsonschema.FormatChecker(formats=())

    @fc.checks("date-time", raises=ValueError)
    def _date_time(value):
        # Jira itself writes offsets as +0000 (no colon); both forms pass.
        if not isinstance(value, str):
            return True
        if not RFC3339.match(value):
            return False
        datetime.date.fromisoformat(value[:10])
        return True

    @fc.checks("date", raises=ValueError)
    def _date(value):
        if not isinstance(value, str):
            return True
        if not re.match(r"^\d{4}-\d{2}-\d{2}$", value):
            return False
        datetime.date.fromisoformat(value)
        return True

    @fc.checks("uuid")
    def _uuid(value):
        return not isinstance(value, str) or bool(UUID.match(value))

    @fc.checks("uri")
    def _uri(value):
        if not isinstance(value, str):
            return True
        u = urllib.parse.urlsplit(value)
        return bool(u.scheme) and bool(u.netloc or u.path) and " " not in value

    @fc.checks("int32")
    def _int32(value):
        return not isinstance(value, int) or -(2 ** 31) <= value < 2 ** 31

    @fc.checks("int64")
    def _int64(value):
        return not isinstance(value, int) or -(2 ** 63) <= value < 2 ** 63

    return fc


# ---------------------------------------------------------------------------
# Specs and operations


class Operation:
    def __init__(self, doc_name, doc, method, spec_path, prefix, op):
        self.doc_name = doc_name
        self.doc = doc
        self.method = method
        self.spec_path = spec_path
        self.full = prefix + spec_path
        self.op = op
        self.params = self.full.count("{")
        parts = re.split(r"(\{[^}]*\})", self.full)
        self.regex = re.compile(
            "^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts if p) + "$")
        self.shape = normalise(self.full)

    @property
    def key(self):
        return "%s %s" % (self.method.upper(), self.spec_path)


def normalise(template):
    """Template with parameter names erased: {userId} and {id} compare equal."""
    return re.sub(r"\{[^}]*\}", "{}", template)


class Spec:
    def __init__(self, name, doc):
        self.name = name
        self.doc = doc
        fc = make_format_checker()
        self.format_checker = fc
        schemas = {}
        for direction in ("response", "request"):
            comps = {k: translate(v, direction)
                     for k, v in doc.get("components", {}).get("schemas", {}).items()}
            for d, comp, pointer, extra, _reason in SCHEMA_EXCEPTIONS:
                if d == name and comp in comps:
                    node = json_pointer_get(comps[comp], pointer)
                    node["enum"] = node.get("enum", []) + [e for e in extra if e not in node.get("enum", [])]
            if name == "scim":
                comps.update(RFC7643)
            schemas[direction] = {"components": {"schemas": comps}}
        self.translated = schemas

    def validator(self, schema, direction):
        resolver = jsonschema.RefResolver(
            base_uri="urn:jp:%s:%s" % (self.name, direction), referrer=self.translated[direction])
        return jsonschema.Draft4Validator(translate(schema, direction), resolver=resolver,
                                          format_checker=self.format_checker)

    def resolve(self, obj):
        """Follow a $ref to components/responses or requestBodies."""
        seen = 0
        while isinstance(obj, dict) and "$ref" in obj and seen < 10:
            obj = json_pointer_get(self.doc, obj["$ref"][1:])
            seen += 1
        return obj


def load_specs(specs_dir):
    specs, ops = {}, []
    for fname in sorted(os.listdir(specs_dir)):
        if not fname.endswith(".trimmed.json"):
            continue
        name = fname[: -len(".trimmed.json")]
        with open(os.path.join(specs_dir, fname), encoding="utf-8") as f:
            doc = json.load(f)
        spec = Spec(name, doc)
        specs[name] = spec
        servers = doc.get("servers") or [{"url": ""}]
        base = urllib.parse.urlsplit(servers[0]["url"]).path.rstrip("/")
        for prefix in [base] + EXTRA_PREFIXES.get(name, []):
            for path, item in doc.get("paths", {}).items():
                for method in HTTP_METHODS:
                    if method in item:
                        ops.append(Operation(name, spec, method, path, prefix, item[method]))
    return specs, ops


def find_operation(ops, method, route, path):
    """Return (operation, None) or (None, reason)."""
    method = method.lower()
    if route:
        shape = normalise(route)
        hits = [o for o in ops if o.shape == shape and o.method == method]
        if hits:
            return hits[0], None
    cands = [o for o in ops if o.regex.match(path)]
    with_method = [o for o in cands if o.method == method]
    if with_method:
        # Prefer the most literal template (ResourceTypes/User over {id}).
        return min(with_method, key=lambda o: o.params), None
    if cands:
        return None, "the documents list no %s for %s" % (method.upper(), cands[0].spec_path)
    return None, "path is not in the trimmed documents"


# ---------------------------------------------------------------------------
# Validation of one exchange


def status_exception(op, status):
    for d, m, p, s, reason in STATUS_EXCEPTIONS:
        if s == status and d in ("*", op.doc_name) and m in ("*", op.method.upper()) \
                and p in ("*", op.spec_path):
            return reason
    return None


def document_defect(op, status):
    for d, m, p, s, comp, _reason in DOCUMENT_DEFECTS:
        if d == op.doc_name and m == op.method.upper() and p == op.spec_path and s == status:
            return {"$ref": "#/components/schemas/" + comp}
    return None


def content_exception(op, status, ctype):
    for d, s, ct, reason in CONTENT_EXCEPTIONS:
        if d == op.doc_name and s == status and ct == ctype:
            return reason
    return None


def json_path(parts):
    out = "$"
    for p in parts:
        if isinstance(p, int):
            out += "[%d]" % p
        elif re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", p):
            out += "." + p
        else:
            out += "[%s]" % json.dumps(p)
    return out


def describe(err):
    """One-line message for a jsonschema error, with the best sub-error for
    oneOf/anyOf so the report says what is actually wrong."""
    if err.validator == "not" and isinstance(err.schema, dict) and err.schema.get("x-jp-writeonly"):
        return "writeOnly property appears in a response"
    if err.validator in ("oneOf", "anyOf") and err.context:
        best = jsonschema.exceptions.best_match(err.context)
        return "%s (closest branch: %s at %s)" % (
            err.message[:200], best.message[:200], json_path(best.absolute_path))
    return err.message[:300]


def body_of(raw):
    """Return (present, value, error) for a recorded body."""
    if raw is None or raw == "":
        return False, None, None
    if isinstance(raw, str):
        try:
            return True, json.loads(raw), None
        except ValueError as e:
            return True, None, "body is not JSON: %s" % e
    return True, raw, None


def trivial(schema):
    return schema is None or schema == {}


def check_exchange(specs, ops, ex, applied=None):
    """Return (op or None, [violations], [warnings]).  applied, a dict, counts
    the allowlist entries that excused something."""
    if applied is None:
        applied = {}
    method = str(ex.get("method", "")).upper()
    path = urllib.parse.urlsplit(str(ex.get("path", ""))).path
    route = ex.get("route")
    try:
        status = int(ex.get("status"))
    except (TypeError, ValueError):
        return None, ["status %r is not an integer" % ex.get("status")], []
    op, why = find_operation(ops, method, route, path)
    if op is None:
        return None, [], ["%s %s: not checked: %s" % (method, route or path, why)]

    spec = op.doc
    violations, warnings = [], []
    responses = op.op.get("responses", {})
    resp = responses.get(str(status))
    if resp is None:
        resp = responses.get("%dXX" % (status // 100))
    if resp is None:
        resp = responses.get("default")
    if resp is None:
        reason = status_exception(op, status)
        if reason is not None:
            k = "status %d on %s: %s" % (status, op.doc_name, reason)
            applied[k] = applied.get(k, 0) + 1
        else:
            listed = ", ".join(sorted(responses))
            violations.append("status %d is not listed for %s (document lists %s)"
                              % (status, op.key, listed))
        return op, violations, warnings
    resp = spec.resolve(resp)

    ctype = (ex.get("content_type") or "").split(";")[0].strip().lower()
    present, body, err = body_of(ex.get("response_body"))
    content = resp.get("content") or {}

    if status == 204 or (100 <= status < 200) or status == 304:
        if present:
            violations.append("status %d must not carry a body" % status)
        return op, violations, warnings
    if not content:
        return op, violations, warnings  # the document says nothing about the body

    media = content.get(ctype)
    if media is None:
        for k, v in content.items():
            if k.endswith("/*") and ctype.startswith(k[:-1]) or k == "*/*":
                media = v
                break
    schema = (media or {}).get("schema") if media is not None else None
    if not present:
        any_schema = [m.get("schema") for m in content.values()]
        if not all(trivial(s) for s in any_schema):
            violations.append("empty body; the document defines %s" % ", ".join(sorted(content)))
        return op, violations, warnings
    if media is None:
        reason = content_exception(op, status, ctype)
        if reason is not None:
            k = "%s for %d on %s: %s" % (ctype, status, op.doc_name, reason)
            applied[k] = applied.get(k, 0) + 1
        else:
            violations.append("content type %r is not one of %s" % (ctype or "(none)", ", ".join(sorted(content))))
        return op, violations, warnings
    if err:
        violations.append(err)
        return op, violations, warnings
    fixed = document_defect(op, status)
    if fixed is not None:
        schema = fixed
        k = "replacement schema %s: %s" % (fixed["$ref"].rsplit("/", 1)[1], _DISCOVERY)
        applied[k] = applied.get(k, 0) + 1
    if trivial(schema):
        return op, violations, warnings

    v = spec.validator(schema, "response")
    for e in sorted(v.iter_errors(body), key=lambda e: list(e.absolute_path)):
        violations.append("%s: %s" % (json_path(e.absolute_path), describe(e)))
    return op, violations, warnings


def check_request(ex, op):
    """Warnings about a request body the document would reject.  The tour
    sends bad bodies on purpose, so only successful exchanges are looked at."""
    try:
        status = int(ex.get("status"))
    except (TypeError, ValueError):
        return []
    if not 200 <= status < 300:
        return []
    rb = op.doc.resolve(op.op.get("requestBody")) or {}
    present, body, err = body_of(ex.get("request_body"))
    if not present or not rb.get("content"):
        return []
    if err:
        return ["request " + err]
    media = rb["content"].get("application/json") or rb["content"].get("application/scim+json") \
        or next(iter(rb["content"].values()))
    schema = media.get("schema")
    if trivial(schema):
        return []
    v = op.doc.validator(schema, "request")
    return ["request %s: %s" % (json_path(e.absolute_path), describe(e))
            for e in v.iter_errors(body)]


# ---------------------------------------------------------------------------


def read_records(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise ValueError("%s:%d: not JSON: %s" % (path, n, e))
            if not isinstance(rec, dict):
                raise ValueError("%s:%d: not a JSON object" % (path, n))
            rec["_line"] = n
            out.append(rec)
    return out


def run(records, specs, ops, require_coverage=False, check_requests=False, out=sys.stdout):
    """Validate records; print the report; return the number of failures."""
    failures = 0
    seen = {}  # operation key -> {status: count}
    unchecked = 0
    applied = {}
    for rec in records:
        path = urllib.parse.urlsplit(str(rec.get("path", ""))).path
        if path.startswith(CONTROL_PREFIX) or str(rec.get("route") or "").startswith(CONTROL_PREFIX):
            continue
        op, violations, warnings = check_exchange(specs, ops, rec, applied)
        if op is not None:
            st = seen.setdefault((op.doc_name, op.key), {})
            st[rec.get("status")] = st.get(rec.get("status"), 0) + 1
            if check_requests:
                warnings += check_request(rec, op)
        else:
            unchecked += 1
        where = "line %d: %s %s -> %s" % (rec["_line"], str(rec.get("method", "")).upper(),
                                           rec.get("route") or path, rec.get("status"))
        for v in violations:
            print("VIOLATION %s: %s" % (where, v), file=out)
            failures += 1
        for w in warnings:
            print("warning   %s: %s" % (where, w), file=out)

    if applied:
        print("\nallowlist entries used:", file=out)
        for k, n in sorted(applied.items()):
            print("  %4d× %s" % (n, k), file=out)

    # Coverage over the listed operations (main prefix only).
    print("\ncoverage (operation: statuses seen):", file=out)
    listed = []
    for name in sorted(specs):
        for path, item in sorted(specs[name].doc.get("paths", {}).items()):
            for method in HTTP_METHODS:
                if method in item:
                    listed.append((name, "%s %s" % (method.upper(), path)))
    missing = 0
    for name, key in listed:
        st = seen.get((name, key), {})
        statuses = ", ".join("%s×%d" % (s, c) for s, c in sorted(st.items(), key=lambda x: int(x[0])))
        ok = any(200 <= int(s) < 300 for s in st)
        mark = "ok " if ok else "-- "
        if not ok:
            missing += 1
        print("  %s%-14s %-70s %s" % (mark, name, key, statuses or "not exercised"), file=out)
    print("\n%d exchanges, %d violations, %d not checked, %d/%d operations answered with a 2xx"
          % (len(records), failures, unchecked, len(listed) - missing, len(listed)), file=out)
    if require_coverage and missing:
        print("FAIL: %d listed operations were never answered with a 2xx" % missing, file=out)
        failures += missing
    return failures


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("record", help="JSON-lines record from the emulator's --record")
    ap.add_argument("--specs", default=DEFAULT_SPECS, help="directory of *.trimmed.json")
    ap.add_argument("--require-coverage", action="store_true",
                    help="fail unless every listed operation got a 2xx")
    ap.add_argument("--check-requests", action="store_true",
                    help="also warn about request bodies of 2xx exchanges the document would reject")
    args = ap.parse_args(argv)
    try:
        specs, ops = load_specs(args.specs)
        records = read_records(args.record)
    except (OSError, ValueError) as e:
        print("validate: %s" % e, file=sys.stderr)
        return 2
    if not specs:
        print("validate: no *.trimmed.json in %s" % args.specs, file=sys.stderr)
        return 2
    failures = run(records, specs, ops, args.require_coverage, args.check_requests)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
