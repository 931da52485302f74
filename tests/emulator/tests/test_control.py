"""Control API, command line, seeding (incl. 100k bulk users), state dump,
counters and the --record exchange log."""

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emulib  # noqa: E402

EMU = None
USERS = "/scim/directory/{directoryId}/Users"


def setUpModule():
    global EMU
    EMU = emulib.Emulator(["--rate-limits", "off"]).__enter__()


def tearDownModule():
    assert EMU.stop() == 0


class Seeding(unittest.TestCase):
    def setUp(self):
        EMU.reset()

    def test_seed_users_groups_and_state(self):
        out = EMU.seed({
            "groups": [{"name": "g-one", "members": ["s1@x.example"]}, {"name": "site-only", "scim": False}],
            "users": [{"userName": "s1@x.example", "displayName": "S One", "externalId": "x1"},
                      {"userName": "s2@x.example", "accountId": "5b10ac8d82e05b22cc7d4e00",
                       "active": False, "groups": ["site-only", "new-group"], "jira": False}]})
        self.assertEqual((out["users"], out["groups"]), (2, 3))
        st = EMU.state()
        self.assertEqual(set(st), {"users", "groups", "memberships", "jira"})
        by_name = {u["userName"]: u for u in st["users"]}
        self.assertTrue(by_name["s1@x.example"]["active"])
        self.assertRegex(by_name["s1@x.example"]["accountId"], r"^[0-9a-f]{24}$")
        s2 = by_name["s2@x.example"]
        self.assertEqual((s2["accountId"], s2["active"], s2["jira"]), ("5b10ac8d82e05b22cc7d4e00", False, False))
        self.assertEqual(s2["groups"], ["site-only", "new-group"])
        groups = {g["name"]: g for g in st["groups"]}
        self.assertFalse(groups["site-only"]["scim"])
        self.assertNotIn("id", groups["site-only"])
        self.assertEqual(len(st["memberships"]), 3)
        # SCIM lists only directory groups
        names = [g["displayName"] for g in EMU.scim("GET", "/Groups").body["Resources"]]
        self.assertEqual(names, ["g-one", "new-group"])
        r = EMU.scim("GET", '/Users?filter=externalId%20eq%20%22x1%22')
        self.assertEqual(r.body["Resources"][0]["displayName"], "S One")

    def test_seed_errors(self):
        for bad in ('{"users":[{"displayName":"no name"}]}', '[1]', '{broken',
                    '{"groups":[{"name":"g","members":["ghost"]}]}',
                    '{"bulk_users":{"count":-5}}'):
            r = EMU.control("POST", "/seed", bad)
            self.assertEqual(r.status, 400, bad)
            self.assertIsInstance(r.body["error"], str)
        EMU.seed({"users": [{"userName": "dup@x"}]})
        r = EMU.control("POST", "/seed", {"users": [{"userName": "dup@x"}]})
        self.assertEqual(r.status, 400)

    def test_bulk_100k(self):
        t = time.monotonic()
        out = EMU.seed({"bulk_users": {"count": 100000, "prefix": "user", "domain": "bulk.example",
                                       "group": "bulk-users"}})
        dt = time.monotonic() - t
        print("\nseeded 100k users in %.3f s" % dt, file=sys.stderr)
        self.assertEqual(out["users"], 100000)
        limit = 10.0 if os.environ.get("JP_SANITIZE") else 2.0
        self.assertLess(dt, limit)
        r = EMU.scim("GET", "/Users?startIndex=99901&count=100")
        self.assertEqual((r.body["totalResults"], r.body["itemsPerPage"]), (100000, 100))
        self.assertEqual(r.body["Resources"][-1]["userName"], "user100000@bulk.example")
        t = time.monotonic()
        r = EMU.scim("GET", '/Users?filter=userName%20eq%20%22user54321@bulk.example%22')
        self.assertLess(time.monotonic() - t, 0.5)
        self.assertEqual(r.body["totalResults"], 1)
        self.assertEqual(r.body["Resources"][0]["displayName"], "user 54321")
        self.assertEqual(r.body["Resources"][0]["groups"][0]["display"], "bulk-users")
        t = time.monotonic()
        r = EMU.scim("GET", "/Users?startIndex=50001&count=100")
        self.assertLess(time.monotonic() - t, 0.5)
        self.assertEqual(r.body["Resources"][0]["userName"], "user50001@bulk.example")
        r = EMU.scim("GET", '/Groups?filter=displayName%20eq%20%22bulk-users%22&excludedAttributes=members')
        self.assertEqual(r.body["totalResults"], 1)
        t = time.monotonic()
        EMU.reset()
        self.assertLess(time.monotonic() - t, 5)
        self.assertEqual(EMU.scim("GET", "/Users").body["totalResults"], 0)

    def test_reset_with_demo(self):
        EMU.reset(seed_demo=True)
        names = [g["displayName"] for g in EMU.scim("GET", "/Groups").body["Resources"]]
        for g in ("jira-software-users", "jira-administrators", "demo-team"):
            self.assertIn(g, names)
        self.assertGreaterEqual(EMU.scim("GET", "/Users").body["totalResults"], 3)
        EMU.reset()
        self.assertEqual(EMU.scim("GET", "/Users").body["totalResults"], 0)
        self.assertEqual(EMU.state()["users"], [])


class Counters(unittest.TestCase):
    def setUp(self):
        EMU.reset()

    def test_requests_and_mutations(self):
        u = EMU.scim_create_user("c1@x.example")
        acc = u["urn:scim:schemas:extension:atlassian-external:1.0"]["atlassianAccountId"]
        EMU.scim("GET", "/Users/" + u["id"])
        EMU.scim("GET", "/Users/nope")
        EMU.scim("GET", "/Users", auth=None)
        EMU.request("GET", "/not/a/route")
        EMU.request("DELETE", "/__emulator/state")
        g = EMU.scim_create_group("cg", [u["id"]])
        gid = [x for x in EMU.state()["groups"] if x["name"] == "cg"][0]["groupId"]
        c = EMU.counters()
        self.assertEqual(emulib.request_count(c, "POST", USERS, 201), 1)
        self.assertEqual(emulib.request_count(c, "GET", USERS + "/{userId}", 200), 1)
        self.assertEqual(emulib.request_count(c, "GET", USERS + "/{userId}", 404), 1)
        self.assertEqual(emulib.request_count(c, "GET", USERS, 401), 1)
        self.assertEqual(emulib.request_count(c, "GET", "<unmatched>", 404), 1)
        self.assertEqual(emulib.request_count(c, "DELETE", "<unmatched>", 405), 1)
        self.assertEqual(emulib.mutation_count(c, "user", acc, "create"), 1)
        self.assertEqual(emulib.mutation_count(c, "group", gid, "create"), 1)
        self.assertEqual(emulib.mutation_count(c, "membership", gid + ":" + acc, "add"), 1)
        self.assertEqual(c["mutation_totals"]["user"]["create"], 1)
        self.assertGreaterEqual(c["total_requests"], 8)
        EMU.scim("DELETE", "/Groups/" + g["id"])
        c = EMU.counters()
        self.assertEqual(emulib.mutation_count(c, "group", gid, "delete"), 1)
        self.assertEqual(emulib.mutation_count(c, "membership", gid + ":" + acc, "remove"), 1)
        EMU.reset_counters()
        c = EMU.counters()
        self.assertEqual(c["mutations"], {})
        self.assertEqual(emulib.request_count(c, "POST", USERS), 0)
        self.assertEqual(c["rate_limited"], {"total": 0})


class CommandLine(unittest.TestCase):
    def test_help_version_and_bad_args(self):
        binary = emulib.find_binary()
        r = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0)
        self.assertIn("--listen", r.stdout)
        r = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0)
        self.assertIn("jiraprov-jira-emulator", r.stdout)
        for args in (["--listen", "nonsense"], ["--bogus"], ["--seed-rng", "x"], ["--listen"]):
            r = subprocess.run([binary] + args, capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 2, args)
        r = subprocess.run([binary, "--seed", "/nonexistent.json"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("seed", r.stderr)
        r = subprocess.run([binary, "--rate-limits", "/nonexistent.json"], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(r.returncode, 1)

    def test_seed_file_record_and_rng(self):
        with tempfile.TemporaryDirectory() as d:
            seed = os.path.join(d, "seed.json")
            rec = os.path.join(d, "rec.jsonl")
            with open(seed, "w") as f:
                json.dump({"users": [{"userName": "file@x.example"}], "groups": [{"name": "fg"}]}, f)
            ids = []
            for _ in range(2):
                with emulib.Emulator(["--seed", seed, "--record", rec, "--seed-rng", "99"]) as e:
                    r = e.scim("GET", "/Users")
                    self.assertEqual(r.body["totalResults"], 1)
                    ids.append(r.body["Resources"][0]["id"])
                    e.scim("POST", "/Groups", {"displayName": "rec-g"})
                    e.scim("GET", "/Users", auth=None)
                    e.scim("DELETE", "/Groups/" + e.scim("GET", "/Groups?filter=displayName%20eq%20%22rec-g%22")
                           .body["Resources"][0]["id"])
            self.assertEqual(ids[0], ids[1], "--seed-rng makes ids reproducible")
            with open(rec) as f:
                lines = [json.loads(x) for x in f]
            self.assertEqual(len(lines), 10)
            first = lines[0]
            self.assertEqual(set(first), {"method", "route", "path", "status", "request_body", "response_body",
                                          "content_type"})
            self.assertEqual((first["method"], first["route"], first["status"]), ("GET", USERS, 200))
            self.assertEqual(first["path"], "/scim/directory/demo-directory/Users")
            self.assertEqual(first["content_type"], "application/scim+json")
            self.assertEqual(first["response_body"]["totalResults"], 1)
            post = lines[1]
            self.assertEqual(post["request_body"], {"displayName": "rec-g"})
            self.assertEqual(post["status"], 201)
            self.assertEqual(lines[2]["status"], 401)
            self.assertEqual(set(lines[2]["response_body"]), {"error", "traceId"})
            delete = lines[4]
            self.assertEqual((delete["status"], delete["response_body"]), (204, None))
            self.assertIsNone(delete["content_type"])

    def test_listen_explicit_port_and_sigint(self):
        import signal
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        proc, url = emulib.start(args=["--listen", "127.0.0.1:%d" % port])
        try:
            self.assertEqual(url, "http://127.0.0.1:%d" % port)
            self.assertEqual(emulib.request(url, "GET", "/__emulator/health").status, 200)
        finally:
            os.kill(proc.pid, signal.SIGINT)
            self.assertEqual(proc.wait(timeout=10), 0)
            proc.stdout.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
