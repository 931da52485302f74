"""Helpers the Python test drivers share (integration, faults, bench): the local stack's
environment file, the Jira emulator's control API, a free loopback port.

Import after putting this folder on sys.path:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
"""
import json
import shlex
import socket
import urllib.request


def read_env(path):
    """The `export NAME='value'` lines of deploy/local/up.sh's stack.env, as a dict."""
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("export "):
                name, _, value = line[7:].partition("=")
                env[name] = shlex.split(value)[0] if value else ""
    return env


def control(env, method, path, body=None, timeout=30):
    """A call to the emulator's control API; its JSON answer, or None when it has none."""
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(env["EMULATOR_CONTROL_URL"] + path, method=method, data=data,
                               headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(r, timeout=timeout) as resp:
        text = resp.read()
        return json.loads(text) if text else None


def free_port():
    """A loopback port free at the time of the call."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
