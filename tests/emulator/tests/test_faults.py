"""Fault injection: latency (without blocking server threads), 5xx fractions
with a fixed seed, connection resets, responses that never come, slow bodies,
429 storms, matching by path glob and method, and rule limits."""

import http.client
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emulib  # noqa: E402

EMU = None


def setUpModule():
    global EMU
    EMU = emulib.Emulator(["--rate-limits", "off", "--seed-demo"]).__enter__()


def tearDownModule():
    assert EMU.stop() == 0


def timed(fn, *a, **kw):
    t = time.monotonic()
    r = fn(*a, **kw)
    return r, time.monotonic() - t


class FaultCase(unittest.TestCase):
    def setUp(self):
        EMU.clear_faults()
        EMU.reset_counters()

    def tearDown(self):
        EMU.clear_faults()


class Latency(FaultCase):
    def test_fixed_and_jitter(self):
        EMU.set_faults([{"path": "/scim/*/Users", "kind": "latency", "latency_ms": 250}])
        r, dt = timed(EMU.scim, "GET", "/Users")
        self.assertEqual(r.status, 200)
        self.assertGreaterEqual(dt, 0.24)
        self.assertLess(dt, 1.5)
        _, dt = timed(EMU.scim, "GET", "/Groups")
        self.assertLess(dt, 0.2)
        EMU.set_faults([{"path": "/scim/*", "kind": "latency", "latency_ms": 50, "jitter_ms": 100}], seed=3)
        EMU.reset_counters()
        times = [timed(EMU.scim, "GET", "/Users")[1] for _ in range(12)]
        self.assertGreaterEqual(min(times), 0.045)
        self.assertLess(max(times), 1.2)
        self.assertGreater(max(times) - min(times), 0.01)
        self.assertEqual(EMU.counters()["faults"]["latency"], 12)

    def test_latency_does_not_block_server(self):
        EMU.set_faults([{"path": "/scim/*/Users", "kind": "latency", "latency_ms": 800}])
        results = []

        def slow():
            results.append(timed(EMU.scim, "GET", "/Users"))

        threads = [threading.Thread(target=slow) for _ in range(8)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(0.1)
        r, dt = timed(EMU.scim, "GET", "/Groups")
        self.assertEqual(r.status, 200)
        self.assertLess(dt, 0.4, "a delayed response blocked the server")
        for t in threads:
            t.join()
        total = time.monotonic() - t0
        self.assertEqual([x[0].status for x in results], [200] * 8)
        # 8 delayed requests on 2 server threads overlap instead of queueing
        self.assertLess(total, 2.5)


class Errors(FaultCase):
    def run_fraction(self, seed, n=400):
        EMU.set_faults([{"path": "/scim/*", "method": "GET", "kind": "error", "probability": 0.3,
                         "statuses": [500, 502, 503]}], seed=seed)
        return [EMU.scim("GET", "/Users?count=1").status for _ in range(n)]

    def test_fraction_reproducible(self):
        a = self.run_fraction(42)
        errors = [s for s in a if s != 200]
        self.assertTrue(set(errors) <= {500, 502, 503})
        self.assertEqual(set(errors), {500, 502, 503})
        frac = len(errors) / len(a)
        self.assertGreater(frac, 0.23)
        self.assertLess(frac, 0.37)
        self.assertEqual(self.run_fraction(42), a)
        self.assertNotEqual(self.run_fraction(43), a)

    def test_bodies_per_family_and_retry_after(self):
        EMU.set_faults([{"path": "*", "kind": "error", "status": 503, "retry_after": 7}])
        r = EMU.scim("GET", "/Users")
        self.assertEqual(r.status, 503)
        self.assertEqual(r.headers["retry-after"], "7")
        self.assertEqual(r.body["status"], "503")
        self.assertEqual(r.body["schemas"], ["urn:ietf:params:scim:api:messages:2.0:Error"])
        r = EMU.jira("GET", "/rest/api/3/serverInfo")
        self.assertEqual(r.status, 503)
        self.assertIsInstance(r.body["errorMessages"], list)
        r = EMU.admin("POST", "/users/x/manage/lifecycle/disable")
        self.assertEqual((r.status, r.body["code"]), (503, 503))
        # the control API is never faulted
        self.assertEqual(EMU.control("GET", "/state").status, 200)
        EMU.set_faults([{"path": "*", "kind": "error", "status": 500}])
        r = EMU.scim("GET", "/Users")
        self.assertEqual(r.status, 500)
        self.assertNotIn("retry-after", r.headers)

    def test_method_glob_and_times(self):
        EMU.set_faults([{"path": "/scim/*/Groups*", "method": "POST", "kind": "error", "status": 502,
                         "times": 2}])
        self.assertEqual(EMU.scim("GET", "/Groups").status, 200)
        self.assertEqual(EMU.scim("POST", "/Users", {}).status, 400)
        codes = [EMU.scim("POST", "/Groups", {"displayName": "g%d" % i}).status for i in range(4)]
        self.assertEqual(codes, [502, 502, 201, 201])
        dump = EMU.control("GET", "/faults").body
        self.assertEqual(dump["rules"][0]["fired"], 2)
        EMU.clear_faults()
        self.assertEqual(EMU.control("GET", "/faults").body["rules"], [])


class Connections(FaultCase):
    def test_reset(self):
        EMU.set_faults([{"path": "/scim/*", "kind": "reset"}])
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            EMU.scim("GET", "/Users")
        EMU.clear_faults()
        self.assertEqual(EMU.scim("GET", "/Users").status, 200)
        self.assertEqual(EMU.counters()["faults"]["reset"], 1)

    def test_never_responds(self):
        EMU.set_faults([{"path": "/scim/*", "kind": "hang"}])
        t = time.monotonic()
        with self.assertRaises(TimeoutError):
            EMU.scim("GET", "/Users", timeout=0.5)
        self.assertGreaterEqual(time.monotonic() - t, 0.45)
        # the server keeps serving others meanwhile
        self.assertEqual(EMU.jira("GET", "/rest/api/3/x").status, 404)

    def test_bounded_hang_closes(self):
        EMU.set_faults([{"path": "/scim/*", "kind": "hang", "hang_ms": 300}])
        t = time.monotonic()
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            EMU.scim("GET", "/Users", timeout=5)
        self.assertGreaterEqual(time.monotonic() - t, 0.28)

    def test_slow_body(self):
        EMU.set_faults([{"path": "/scim/*", "kind": "slow_body", "bytes_per_tick": 256, "tick_ms": 40}])
        r, dt = timed(EMU.scim, "GET", "/Users")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body["totalResults"], 4)
        ticks = (len(r.raw) + 255) // 256
        self.assertGreater(ticks, 4)
        self.assertGreaterEqual(dt, (ticks - 1) * 0.04 * 0.9)
        self.assertLess(dt, ticks * 0.04 + 2)
        # a client with a short read timeout gives up on a crawling body
        EMU.set_faults([{"path": "/scim/*", "kind": "slow_body", "bytes_per_tick": 8, "tick_ms": 400}])
        with self.assertRaises(TimeoutError):
            EMU.scim("GET", "/Users", timeout=0.3)


class Storm(FaultCase):
    def test_429_storm(self):
        EMU.set_faults([{"path": "/scim/*", "kind": "rate_limit", "retry_after": 5,
                         "reason": "jira-quota-global-based"}])
        for _ in range(5):
            r = EMU.scim("GET", "/Users")
            self.assertEqual(r.status, 429)
            self.assertEqual(r.headers["retry-after"], "5")
            self.assertEqual(r.headers["ratelimit-reason"], "jira-quota-global-based")
            self.assertEqual(r.headers["x-ratelimit-remaining"], "0")
            self.assertIn("x-ratelimit-reset", r.headers)
        r = EMU.jira("GET", "/rest/api/3/anything")
        self.assertEqual(r.status, 404)
        EMU.set_faults([{"path": "*", "kind": "rate_limit", "probability": 0.5}], seed=9)
        codes = [EMU.scim("GET", "/Users").status for _ in range(200)]
        frac = codes.count(429) / len(codes)
        self.assertGreater(frac, 0.38)
        self.assertLess(frac, 0.62)
        self.assertEqual(set(codes), {200, 429})
        c = EMU.counters()
        self.assertEqual(c["rate_limited"]["total"], 5 + codes.count(429))

    def test_invalid_rules(self):
        for bad in ([{"kind": "explode"}], [{"kind": "error", "probability": 2}],
                    [{"kind": "error", "statuses": [200]}], {"rules": 5}, [5]):
            r = EMU.control("PUT", "/faults", bad)
            self.assertEqual(r.status, 400, bad)


if __name__ == "__main__":
    unittest.main(verbosity=2)
