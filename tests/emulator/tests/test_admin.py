"""Admin lifecycle API (disable/enable/delete/cancel-delete), the SCIM <->
Jira identity link, and auth failures of every API family."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emulib  # noqa: E402

EMU = None
ATL = "urn:scim:schemas:extension:atlassian-external:1.0"
LC = "/users/%s/manage/lifecycle/%s"


def setUpModule():
    global EMU
    EMU = emulib.Emulator(["--rate-limits", "off"]).__enter__()


def tearDownModule():
    assert EMU.stop() == 0


def jira_has_user_api():
    r = EMU.jira("GET", "/rest/api/3/user?accountId=probe")
    return not (r.status == 404 and "null for uri" in str(r.body))


class Lifecycle(unittest.TestCase):
    def setUp(self):
        EMU.reset()
        self.user = EMU.scim_create_user("life@x.example", displayName="Life")
        self.acc = self.user[ATL]["atlassianAccountId"]

    def test_disable_enable_shows_on_both_sides(self):
        r = EMU.admin("POST", LC % (self.acc, "disable"), {"message": "On 6-month suspension"})
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.raw, b"")
        self.assertFalse(EMU.scim("GET", "/Users/" + self.user["id"]).body["active"])
        acct = [u for u in EMU.state()["users"] if u["accountId"] == self.acc][0]
        self.assertFalse(acct["active"])
        if jira_has_user_api():
            j = EMU.jira("GET", "/rest/api/3/user?accountId=" + self.acc)
            self.assertEqual(j.status, 200, j)
            self.assertFalse(j.body["active"])
        # idempotent, and no body is fine too
        self.assertEqual(EMU.admin("POST", LC % (self.acc, "disable")).status, 204)
        r = EMU.admin("POST", LC % (self.acc, "enable"))
        self.assertEqual(r.status, 204)
        self.assertTrue(EMU.scim("GET", "/Users/" + self.user["id"]).body["active"])
        if jira_has_user_api():
            self.assertTrue(EMU.jira("GET", "/rest/api/3/user?accountId=" + self.acc).body["active"])
        c = EMU.counters()
        self.assertEqual(emulib.mutation_count(c, "user", self.acc, "deactivate"), 1)
        self.assertEqual(emulib.mutation_count(c, "user", self.acc, "activate"), 1)

    def test_scim_deactivation_shows_in_jira(self):
        EMU.scim("PATCH", "/Users/" + self.user["id"],
                 {"Operations": [{"op": "replace", "path": "active", "value": False}]})
        if not jira_has_user_api():
            self.skipTest("Jira REST module not linked")
        self.assertFalse(EMU.jira("GET", "/rest/api/3/user?accountId=" + self.acc).body["active"])

    def test_unknown_account(self):
        for op in ("disable", "enable", "delete", "cancel-delete"):
            r = EMU.admin("POST", LC % ("5b10ac8d82e05b22cc7d0000", op))
            self.assertEqual(r.status, 404, op)
            self.assertEqual(r.body, {"key": "accountNotFound"})

    def test_bad_body(self):
        r = EMU.admin("POST", LC % (self.acc, "disable"), "{broken")
        self.assertEqual(r.status, 400)
        self.assertEqual(r.body, {"key": "bodyParseFailure"})
        self.assertTrue(EMU.scim("GET", "/Users/" + self.user["id"]).body["active"])

    def test_delete_and_cancel(self):
        r = EMU.admin("POST", LC % (self.acc, "delete"))
        self.assertEqual(r.status, 200)
        self.assertIsInstance(r.body["message"], str)
        self.assertFalse(EMU.scim("GET", "/Users/" + self.user["id"]).body["active"])
        r = EMU.admin("POST", LC % (self.acc, "delete"))
        self.assertEqual(r.status, 409)
        self.assertEqual(r.body["key"], "conflict.lifecycleErrors")
        self.assertEqual(r.body["context"]["accountId"], self.acc)
        self.assertGreaterEqual(len(r.body["context"]["errorCodes"]), 1)
        r = EMU.admin("POST", LC % (self.acc, "cancel-delete"))
        self.assertEqual(r.status, 200)
        self.assertTrue(EMU.scim("GET", "/Users/" + self.user["id"]).body["active"])

    def test_admin_auth(self):
        path = LC % (self.acc, "disable")
        r = EMU.admin("POST", path, auth=None)
        self.assertEqual((r.status, r.body), (401, {"key": "unauthorized"}))
        r = EMU.admin("POST", path, auth=emulib.bearer("not-a-key"))
        self.assertEqual((r.status, r.body), (401, {"key": "unauthorized"}))
        r = EMU.admin("POST", path, auth=emulib.basic_auth())
        self.assertEqual((r.status, r.body), (401, {"key": "unauthorized"}))
        # the directory key authenticates but is not an org admin key
        r = EMU.admin("POST", path, auth=emulib.scim_auth())
        self.assertEqual((r.status, r.body), (403, {"key": "forbidden"}))
        self.assertTrue(EMU.scim("GET", "/Users/" + self.user["id"]).body["active"])


class JiraAuth(unittest.TestCase):
    def test_jira_auth_failures(self):
        if not jira_has_user_api():
            self.skipTest("Jira REST module not linked")
        path = "/rest/api/3/user?accountId=x"
        for auth in (None, emulib.basic_auth(token="wrong"), emulib.basic_auth(email="x@y"),
                     emulib.scim_auth(), {"Authorization": "Basic !!!"}):
            r = EMU.jira("GET", path, auth=auth)
            self.assertEqual(r.status, 401, auth)
            self.assertEqual(r.body, {"errorMessages": ["Client must be authenticated to access this resource."],
                                      "errors": {}})


class CustomCredentials(unittest.TestCase):
    def test_custom_keys(self):
        with emulib.Emulator(["--scim-key", "k1", "--org-key", "k2", "--directory-id", "d1",
                              "--jira-email", "a@b.c", "--jira-token", "t"]) as e:
            self.assertEqual(e.scim("GET", "/Users", auth=emulib.bearer("k1")).status, 200)
            self.assertEqual(e.scim("GET", "/Users").status, 403)
            u = e.scim("POST", "/Users", {"userName": "c@d.e", "emails": [{"value": "c@d.e", "primary": True}]},
                       auth=emulib.bearer("k1")).body
            acc = u[ATL]["atlassianAccountId"]
            self.assertTrue(u["meta"]["location"].startswith(e.url + "/scim/directory/d1/Users/"))
            self.assertEqual(e.admin("POST", LC % (acc, "disable"), auth=emulib.bearer("k2")).status, 204)
            self.assertEqual(e.admin("POST", LC % (acc, "disable")).status, 401)
            self.assertEqual(e.admin("POST", LC % (acc, "disable"), auth=emulib.bearer("k1")).status, 403)


if __name__ == "__main__":
    unittest.main(verbosity=2)
