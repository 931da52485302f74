"""Shared helpers for black-box tests of jiraprov-jira-emulator.

Starts the emulator on a free loopback port (it binds port 0 and prints
`listening on http://127.0.0.1:PORT`), stops it by PID, and wraps HTTP calls
with the auth header of each API family. Standard library only; run the
tests with /usr/bin/python3.

    from emulib import Emulator
    with Emulator(["--seed-demo"]) as emu:
        st, hdrs, body = emu.jira("GET", "/rest/api/3/myself")
        st, hdrs, body = emu.scim("GET", "/Users?count=5")   # directory prefix added
        emu.control("POST", "/reset")
"""

import base64
import glob
import http.client
import json
import os
import select
import signal
import subprocess
import time
import urllib.parse

DEFAULT_JIRA_EMAIL = "jiraprov-bot@demo.example"
DEFAULT_JIRA_TOKEN = "demo-jira-api-token"
DEFAULT_SCIM_KEY = "demo-scim-key"
DEFAULT_ORG_KEY = "demo-org-key"
DEFAULT_DIRECTORY = "demo-directory"
DEFAULT_ORG = "demo-org"


def find_binary():
    """The emulator binary: $JP_EMULATOR_BIN, else the newest build-*/ copy."""
    env = os.environ.get("JP_EMULATOR_BIN")
    if env:
        return env
    root = os.environ.get("JP_SOURCE_DIR") or os.path.abspath(
        os.path.join(os.path.dirname(__file__), "..", "..", ".."))
    cands = glob.glob(os.path.join(root, "build*", "tests", "emulator", "jiraprov-jira-emulator"))
    if not cands:
        raise RuntimeError("jiraprov-jira-emulator not found; set JP_EMULATOR_BIN")
    return max(cands, key=os.path.getmtime)


def start(binary=None, args=(), timeout=15.0):
    """Starts the emulator; returns (proc, base_url) once it listens."""
    binary = binary or find_binary()
    cmd = [binary]
    if not any(a == "--listen" for a in args):
        cmd += ["--listen", "127.0.0.1:0"]
    cmd += list(args)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, text=True, bufsize=1)
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc.stdout], [], [], 0.1)
        if r:
            line = proc.stdout.readline()
            if line.startswith("listening on "):
                return proc, line.split("listening on ", 1)[1].strip()
            if line == "":
                break
        if proc.poll() is not None:
            break
    stop(proc)
    raise RuntimeError("emulator did not start (last output: %r, exit %r)" % (line, proc.returncode))


def stop(proc, timeout=10.0):
    """SIGTERM by PID, then SIGKILL if it does not exit; returns the exit code."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.stdout:
        proc.stdout.close()
    return proc.returncode


def basic_auth(email=DEFAULT_JIRA_EMAIL, token=DEFAULT_JIRA_TOKEN):
    raw = ("%s:%s" % (email, token)).encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def bearer(key):
    return {"Authorization": "Bearer " + key}


def scim_auth(key=DEFAULT_SCIM_KEY):
    return bearer(key)


def org_auth(key=DEFAULT_ORG_KEY):
    return bearer(key)


class Response:
    """status, headers (dict, lower-case names), body (parsed JSON or text or None)."""

    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        self.body = None
        if raw:
            try:
                self.body = json.loads(raw)
            except ValueError:
                self.body = raw.decode("utf-8", "replace")

    def __iter__(self):
        return iter((self.status, self.headers, self.body))

    def __repr__(self):
        return "Response(%d, %r)" % (self.status, self.body)


def request(base_url, method, path, body=None, headers=None, timeout=30.0, conn=None):
    """One HTTP exchange. body: dict/list (sent as JSON), str/bytes, or None."""
    u = urllib.parse.urlsplit(base_url)
    own = conn is None
    if own:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    hdrs = {"Accept": "application/json"}
    data = None
    if body is not None:
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        else:
            data = body.encode() if isinstance(body, str) else body
            hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    try:
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        raw = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, raw)
    finally:
        if own:
            conn.close()


class Emulator:
    """Context manager around one emulator process."""

    def __init__(self, args=(), binary=None):
        self.args = list(args)
        self.binary = binary
        self.proc = None
        self.url = None
        self.directory = DEFAULT_DIRECTORY
        for i, a in enumerate(self.args):
            if a == "--directory-id" and i + 1 < len(self.args):
                self.directory = self.args[i + 1]

    def __enter__(self):
        self.proc, self.url = start(self.binary, self.args)
        return self

    def __exit__(self, exc_type, exc, tb):
        code = self.stop()
        # A non-zero exit (e.g. a sanitizer report at shutdown) fails the test.
        if exc_type is None and code not in (0, None):
            raise AssertionError("emulator exited with status %r" % code)

    def stop(self):
        if self.proc:
            code = stop(self.proc)
            self.proc = None
            return code
        return None

    @property
    def port(self):
        return urllib.parse.urlsplit(self.url).port

    # Raw and per-family requests ------------------------------------------
    def request(self, method, path, body=None, headers=None, timeout=30.0):
        return request(self.url, method, path, body, headers, timeout)

    def jira(self, method, path, body=None, headers=None, auth=True, **kw):
        h = dict(basic_auth() if auth is True else (auth or {}))
        h.update(headers or {})
        return self.request(method, path, body, h, **kw)

    def scim(self, method, path, body=None, headers=None, auth=True, **kw):
        """path relative to /scim/directory/<dir> (e.g. "/Users")."""
        h = dict(scim_auth() if auth is True else (auth or {}))
        h.update(headers or {})
        return self.request(method, "/scim/directory/%s%s" % (self.directory, path), body, h, **kw)

    def admin(self, method, path, body=None, headers=None, auth=True, **kw):
        h = dict(org_auth() if auth is True else (auth or {}))
        h.update(headers or {})
        return self.request(method, path, body, h, **kw)

    def control(self, method, path, body=None, **kw):
        r = self.request(method, "/__emulator" + path, body, **kw)
        return r

    # Control API shortcuts --------------------------------------------------
    def reset(self, seed_demo=False):
        r = self.control("POST", "/reset", {"seed_demo": True} if seed_demo else None)
        assert r.status == 200, r
        return r.body

    def seed(self, doc):
        r = self.control("POST", "/seed", doc)
        assert r.status == 200, r
        return r.body

    def state(self):
        return self.control("GET", "/state").body

    def counters(self):
        return self.control("GET", "/counters").body

    def reset_counters(self):
        return self.control("POST", "/counters/reset").body

    def set_rate_limits(self, cfg):
        r = self.control("PUT", "/rate-limits", cfg)
        assert r.status == 200, r
        return r.body

    def set_faults(self, rules, seed=None):
        doc = {"rules": rules}
        if seed is not None:
            doc["seed"] = seed
        r = self.control("PUT", "/faults", doc)
        assert r.status == 200, r
        return r.body

    def clear_faults(self):
        return self.control("DELETE", "/faults").body

    # SCIM conveniences -------------------------------------------------------
    def scim_create_user(self, user_name, **attrs):
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": user_name,
                "emails": [{"value": user_name, "type": "work", "primary": True}]}
        body.update(attrs)
        r = self.scim("POST", "/Users", body)
        assert r.status == 201, r
        return r.body

    def scim_create_group(self, name, members=()):
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name,
                "members": [{"value": m} for m in members]}
        r = self.scim("POST", "/Groups", body)
        assert r.status == 201, r
        return r.body


def request_count(counters, method, route, status=None):
    """Sum of requests in a /__emulator/counters dump for method+route(+status)."""
    n = 0
    for e in counters["requests"]:
        if e["method"] == method and e["route"] == route and (status is None or e["status"] == status):
            n += e["count"]
    return n


def mutation_count(counters, entity, key, kind):
    return counters["mutations"].get(entity, {}).get(key, {}).get(kind, 0)
