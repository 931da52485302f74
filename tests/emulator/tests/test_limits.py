"""Rate limiting like Jira Cloud (notes §4.1): burst token buckets per route
and method, per-issue write windows, the hourly points quota, the headers on
429s and on ordinary responses, and run-time configuration."""

import datetime
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emulib  # noqa: E402

EMU = None
RESET_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\dZ$")
USERS = "/scim/directory/{directoryId}/Users"


def setUpModule():
    global EMU
    EMU = emulib.Emulator([]).__enter__()


def tearDownModule():
    assert EMU.stop() == 0


def jira_route_exists(path, method="PUT"):
    r = EMU.jira(method, path, {})
    return not (r.status == 404 and "null for uri" in str(r.body))


class LimitCase(unittest.TestCase):
    def setUp(self):
        EMU.reset()

    def assert429(self, r, reason=None):
        self.assertEqual(r.status, 429, r)
        ra = r.headers.get("retry-after")
        self.assertIsNotNone(ra)
        self.assertRegex(ra, r"^[1-9]\d*$")
        self.assertIn("x-ratelimit-limit", r.headers)
        self.assertEqual(r.headers.get("x-ratelimit-remaining"), "0")
        self.assertRegex(r.headers.get("x-ratelimit-reset", ""), RESET_RE)
        if reason:
            self.assertEqual(r.headers.get("ratelimit-reason"), reason)
        return int(ra)


class Burst(LimitCase):
    def test_default_headers(self):
        r = EMU.scim("GET", "/Users")
        self.assertEqual(r.headers["x-ratelimit-limit"], "100")
        self.assertEqual(r.headers["x-ratelimit-remaining"], "99")
        self.assertNotIn("x-ratelimit-nearlimit", r.headers)
        self.assertNotIn("retry-after", r.headers)
        self.assertNotIn("ratelimit-reason", r.headers)
        u = EMU.scim_create_user("h@x.example")
        r = EMU.scim("PUT", "/Users/" + u["id"], {"userName": "h@x.example",
                                                  "emails": [{"value": "h@x.example", "primary": True}]})
        self.assertEqual(r.headers["x-ratelimit-limit"], "50")
        # control API is never limited
        self.assertNotIn("x-ratelimit-limit", EMU.control("GET", "/counters").headers)

    def test_bucket_empties_near_limit_and_refills(self):
        # capacity 10 with a slow refill, so a loaded machine cannot refill
        # the bucket while the test drains it
        EMU.set_rate_limits({"burst": {"routes": {"GET " + USERS: {"rate": 0.5, "capacity": 10}}}})
        remaining = []
        near = []
        for _ in range(10):
            r = EMU.scim("GET", "/Users")
            self.assertEqual(r.status, 200)
            remaining.append(int(r.headers["x-ratelimit-remaining"]))
            near.append(r.headers.get("x-ratelimit-nearlimit"))
        self.assertEqual(remaining[0], 9)
        self.assertEqual(remaining[-1], 0)
        self.assertEqual(remaining, sorted(remaining, reverse=True))
        # < 20% of 10 left means remaining 0 or 1
        for rem, n in zip(remaining, near):
            self.assertEqual(n, "true" if rem < 2 else None, (rem, n))
        r = EMU.scim("GET", "/Users")
        ra = self.assert429(r)
        self.assertIn(ra, (1, 2))
        self.assertEqual(r.headers["x-ratelimit-limit"], "10")
        self.assertEqual(r.body["code"], 429)
        self.assertIsInstance(r.body["message"], str)
        reset = datetime.datetime.strptime(r.headers["x-ratelimit-reset"], "%Y-%m-%dT%H:%MZ")
        now = datetime.datetime.utcnow()
        self.assertLessEqual(abs((reset - now).total_seconds()), 120)
        # another endpoint, and another method on the same endpoint, have their own buckets
        self.assertEqual(EMU.scim("GET", "/Groups").status, 200)
        self.assertNotEqual(EMU.scim("POST", "/Users", {}).status, 429)
        # the bucket refills continuously: wait for one token
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            r = EMU.scim("GET", "/Users")
            if r.status == 200:
                break
            time.sleep(0.05)
        self.assertEqual(r.status, 200)
        c = EMU.counters()
        self.assertGreaterEqual(c["rate_limited"]["total"], 1)
        self.assertGreaterEqual(c["rate_limited"]["jira-burst-based"], 1)
        self.assertGreaterEqual(emulib.request_count(c, "GET", USERS, 429), 1)

    def test_route_override_and_capacity(self):
        EMU.set_rate_limits({"burst": {"routes": {"GET " + USERS: {"rate": 0.2, "capacity": 3}}}})
        codes = [EMU.scim("GET", "/Users").status for _ in range(4)]
        self.assertEqual(codes, [200, 200, 200, 429])
        self.assertEqual(EMU.scim("GET", "/Groups").headers["x-ratelimit-limit"], "100")
        cfg = EMU.control("GET", "/rate-limits").body
        self.assertIn("GET " + USERS, cfg["burst"]["routes"])

    def test_admin_family_429_body(self):
        EMU.set_rate_limits({"burst": {"POST": 1}})
        u = EMU.scim_create_user("adm@x.example")
        acc = u["urn:scim:schemas:extension:atlassian-external:1.0"]["atlassianAccountId"]
        path = "/users/%s/manage/lifecycle/disable" % acc
        self.assertEqual(EMU.admin("POST", path).status, 204)
        r = EMU.admin("POST", path)
        self.assert429(r)
        self.assertEqual(r.body["code"], 429)

    def test_jira_burst(self):
        if not jira_route_exists("/rest/api/3/issue/ZZZ-1", "GET"):
            self.skipTest("Jira REST module not linked")
        EMU.set_rate_limits({"burst": {"GET": 2}, "apply_to": ["jira"]})
        EMU.jira("GET", "/rest/api/3/search/jql?jql=project%3DX")
        EMU.jira("GET", "/rest/api/3/search/jql?jql=project%3DX")
        r = EMU.jira("GET", "/rest/api/3/search/jql?jql=project%3DX")
        self.assert429(r, "jira-burst-based")
        self.assertEqual(r.body["errors"], {})
        self.assertEqual(len(r.body["errorMessages"]), 1)
        # SCIM is not limited when apply_to names only jira
        for _ in range(5):
            self.assertEqual(EMU.scim("GET", "/Users").status, 200)


class PerIssue(LimitCase):
    PATH = "/rest/api/3/issue/%s"

    def setUp(self):
        super().setUp()
        if not jira_route_exists(self.PATH % "ZZZ-1"):
            self.skipTest("Jira REST module not linked")
        EMU.reset()

    def test_default_20_per_2s(self):
        EMU.set_rate_limits({"burst": {"enabled": False}})
        codes = [EMU.jira("PUT", self.PATH % "LIM-1", {"fields": {}}).status for _ in range(20)]
        self.assertNotIn(429, codes)
        r = EMU.jira("PUT", self.PATH % "LIM-1", {"fields": {}})
        ra = self.assert429(r, "jira-per-issue-on-write")
        self.assertLessEqual(ra, 2)
        self.assertEqual(r.headers["x-ratelimit-limit"], "20")
        # another issue has its own window; reads are not counted
        self.assertNotEqual(EMU.jira("PUT", self.PATH % "LIM-2", {"fields": {}}).status, 429)
        self.assertNotEqual(EMU.jira("GET", self.PATH % "LIM-1").status, 429)

    def test_custom_windows_recover(self):
        EMU.set_rate_limits({"burst": {"enabled": False},
                             "per_issue": {"windows": [{"limit": 3, "seconds": 1}, {"limit": 5, "seconds": 30}]}})
        codes = [EMU.jira("PUT", self.PATH % "WIN-1", {"fields": {}}).status for _ in range(4)]
        self.assertEqual(codes[3], 429)
        self.assertNotIn(429, codes[:3])
        deadline = time.monotonic() + 3
        ok = False
        while time.monotonic() < deadline:
            if EMU.jira("PUT", self.PATH % "WIN-1", {"fields": {}}).status != 429:
                ok = True
                break
            time.sleep(0.05)
        self.assertTrue(ok)
        EMU.jira("PUT", self.PATH % "WIN-1", {"fields": {}})
        # the 30 s window (5 writes) is now full
        r = EMU.jira("PUT", self.PATH % "WIN-1", {"fields": {}})
        ra = self.assert429(r, "jira-per-issue-on-write")
        self.assertGreater(ra, 20)
        self.assertEqual(r.headers["x-ratelimit-limit"], "5")


class Quota(LimitCase):
    def test_hourly_points_quota(self):
        EMU.set_rate_limits({"burst": {"enabled": False},
                             "quota": {"enabled": True, "points_per_hour": 5, "scope": "tenant"}})
        rem = []
        for _ in range(5):
            r = EMU.scim("GET", "/Users")
            self.assertEqual(r.status, 200)
            rem.append(int(r.headers["x-ratelimit-remaining"]))
        self.assertEqual(rem, [4, 3, 2, 1, 0])
        r = EMU.scim("GET", "/Groups")
        ra = self.assert429(r)
        now = datetime.datetime.utcnow()
        to_hour = 3600 - (now.minute * 60 + now.second)
        self.assertLessEqual(abs(ra - to_hour), 3)
        self.assertTrue(r.headers["x-ratelimit-reset"].endswith(":00Z"))
        self.assertEqual(r.headers["x-ratelimit-limit"], "5")
        self.assertEqual(EMU.counters()["rate_limited"]["jira-quota-tenant-based"], 1)
        EMU.set_rate_limits({"quota": {"enabled": True, "points_per_hour": 1, "scope": "global"}})
        EMU.scim("GET", "/Users")
        self.assertEqual(EMU.counters()["rate_limited"].get("jira-quota-global-based", 0), 0)
        EMU.scim("GET", "/Users")
        self.assertEqual(EMU.counters()["rate_limited"]["jira-quota-global-based"], 1)


class Config(LimitCase):
    def test_off_and_invalid(self):
        EMU.set_rate_limits({"burst": {"GET": 7}, "per_issue": {"windows": [{"limit": 4, "seconds": 1.5}]}})
        before = EMU.control("GET", "/rate-limits").body
        self.assertEqual(before["per_issue"]["windows"], [{"limit": 4, "seconds": 1.5}])
        r = EMU.control("PUT", "/rate-limits", {"burst": {"GET": 0}})
        self.assertEqual(r.status, 400)
        # a rejected configuration leaves the previous one in force
        self.assertEqual(EMU.control("GET", "/rate-limits").body, before)
        self.assertEqual(EMU.scim("GET", "/Users").headers["x-ratelimit-limit"], "7")
        EMU.set_rate_limits({"enabled": False})
        r = EMU.scim("GET", "/Users")
        self.assertNotIn("x-ratelimit-limit", r.headers)
        for bad in ({"burst": {"GET": -1}}, {"burst": []}, {"per_issue": {"windows": [{"limit": 0}]}},
                    {"quota": {"points_per_hour": "x"}}, {"apply_to": ["nope"]}, [1]):
            r = EMU.control("PUT", "/rate-limits", bad)
            self.assertEqual(r.status, 400, bad)
            self.assertIn("error", r.body)
        # reset restores the start-up configuration (defaults here)
        EMU.set_rate_limits({"burst": {"GET": 1}})
        EMU.reset()
        self.assertEqual(EMU.scim("GET", "/Users").headers["x-ratelimit-limit"], "100")

    def test_cli_off(self):
        with emulib.Emulator(["--rate-limits", "off"]) as e:
            for _ in range(150):
                r = e.scim("GET", "/Users")
                self.assertEqual(r.status, 200)
            self.assertNotIn("x-ratelimit-limit", r.headers)
            e.set_rate_limits({"burst": {"GET": 1}})
            e.scim("GET", "/Users")
            self.assertEqual(e.scim("GET", "/Users").status, 429)


if __name__ == "__main__":
    unittest.main(verbosity=2)
