"""Jira REST v3 users on the shared identity store (notes §3.3): get, create,
delete, list, search, groups of a user, and the SCIM <-> Jira identity
(a SCIM-created user is a Jira user with the same accountId)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emulib  # noqa: E402

EMU = None
API = "/rest/api/3"
ALICE = "5b10a2844c20165700ede21a"
DAVE = "5b10a2844c20165700ede21d"  # inactive
BOT = "5b10ac8d82e05b22cc7d4ef5"
ATL = "urn:scim:schemas:extension:atlassian-external:1.0"
USER_NOT_FOUND = "Specified user does not exist or you do not have required permissions"


def setUpModule():
    global EMU
    EMU = emulib.Emulator(["--rate-limits", "off"]).__enter__()


def tearDownModule():
    assert EMU.stop() == 0


class UserCase(unittest.TestCase):
    def setUp(self):
        EMU.reset(seed_demo=True)

    def get_user(self, acc, query=""):
        return EMU.jira("GET", API + "/user?accountId=" + acc + query)

    def assertMessage(self, r, status, text=None):
        self.assertEqual(r.status, status, r)
        self.assertEqual(len(r.body["errorMessages"]), 1, r)
        if text is not None:
            self.assertEqual(r.body["errorMessages"][0], text)


class GetUser(UserCase):
    def test_get_seeded_user(self):
        r = self.get_user(ALICE)
        self.assertEqual(r.status, 200, r)
        u = r.body
        self.assertEqual(u["accountId"], ALICE)
        self.assertEqual(u["accountType"], "atlassian")
        self.assertEqual(u["emailAddress"], "alice@demo.example")
        self.assertEqual(u["displayName"], "Alice Adams")
        self.assertIs(u["active"], True)
        self.assertEqual(u["self"], EMU.url + API + "/user?accountId=" + ALICE)
        self.assertEqual(set(u["avatarUrls"]), {"16x16", "24x24", "32x32", "48x48"})
        self.assertEqual(u["groups"]["size"], 2)
        self.assertEqual(u["groups"]["items"], [])

    def test_expand_groups(self):
        u = self.get_user(ALICE, "&expand=groups,applicationRoles").body
        self.assertEqual(sorted(g["name"] for g in u["groups"]["items"]),
                         ["demo-team", "jira-software-users"])
        self.assertEqual(u["applicationRoles"]["size"], 1)

    def test_inactive_user(self):
        self.assertIs(self.get_user(DAVE).body["active"], False)

    def test_errors(self):
        self.assertMessage(self.get_user("nobody"), 404, USER_NOT_FOUND)
        self.assertMessage(EMU.jira("GET", API + "/user"), 400)

    def test_myself(self):
        r = EMU.jira("GET", API + "/myself")
        self.assertEqual((r.status, r.body["accountId"]), (200, BOT))


class ScimIdentity(UserCase):
    def test_scim_user_is_jira_user(self):
        su = EMU.scim_create_user("zed@demo.example", displayName="Zed Zulu")
        acc = su[ATL]["atlassianAccountId"]
        r = self.get_user(acc)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.body["displayName"], r.body["emailAddress"], r.body["active"]),
                         ("Zed Zulu", "zed@demo.example", True))
        # Deactivated through SCIM: still readable, active false.
        r = EMU.scim("PATCH", "/Users/" + su["id"], {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": False}]})
        self.assertEqual(r.status, 200, r)
        self.assertIs(self.get_user(acc).body["active"], False)
        r = EMU.jira("GET", API + "/user/search?query=zed")
        self.assertEqual(r.body, [])
        # SCIM DELETE drops the directory record; the account stays, inactive.
        self.assertEqual(EMU.scim("DELETE", "/Users/" + su["id"]).status, 204)
        r = self.get_user(acc)
        self.assertEqual((r.status, r.body["active"]), (200, False))

    def test_scim_groups_show_up_for_user(self):
        su = EMU.scim_create_user("yan@demo.example")
        EMU.scim_create_group("scim-people", [su["id"]])
        acc = su[ATL]["atlassianAccountId"]
        r = EMU.jira("GET", API + "/user/groups?accountId=" + acc)
        self.assertEqual([g["name"] for g in r.body], ["scim-people"])

    def test_jira_delete_then_scim_relink(self):
        su = EMU.scim_create_user("rex@demo.example")
        acc = su[ATL]["atlassianAccountId"]
        self.assertEqual(EMU.jira("DELETE", API + "/user?accountId=" + acc).status, 204)
        self.assertEqual(self.get_user(acc).status, 404)
        # The directory record is untouched by the Jira removal.
        self.assertEqual(EMU.scim("GET", "/Users/" + su["id"]).status, 200)
        # Unlinking and provisioning again gives product access back.
        self.assertEqual(EMU.scim("DELETE", "/Users/" + su["id"]).status, 204)
        again = EMU.scim_create_user("rex@demo.example")
        self.assertEqual(again[ATL]["atlassianAccountId"], acc)
        r = self.get_user(acc)
        self.assertEqual((r.status, r.body["active"]), (200, True))

    def test_admin_disable_is_seen(self):
        r = EMU.admin("POST", "/users/%s/manage/lifecycle/disable" % ALICE, {"message": "bye"})
        self.assertIn(r.status, (204, 200), r)
        self.assertIs(self.get_user(ALICE).body["active"], False)


class CreateDelete(UserCase):
    def test_create_user(self):
        EMU.reset_counters()
        r = EMU.jira("POST", API + "/user", {"emailAddress": "mia@demo.example",
                                             "products": ["jira-software"]})
        self.assertEqual(r.status, 201, r)
        acc = r.body["accountId"]
        self.assertEqual(r.body["emailAddress"], "mia@demo.example")
        self.assertEqual(r.body["displayName"], "mia")
        self.assertEqual(self.get_user(acc).status, 200)
        self.assertEqual(emulib.mutation_count(EMU.counters(), "user", acc, "create"), 1)
        # Exists with access: 201 again, same account, nothing counted.
        r = EMU.jira("POST", API + "/user", {"emailAddress": "MIA@demo.example",
                                             "products": ["jira-core"]})
        self.assertEqual((r.status, r.body["accountId"]), (201, acc))
        self.assertEqual(emulib.mutation_count(EMU.counters(), "user", acc, "create"), 1)
        # The store sees the same account.
        emails = [u.get("email") for u in EMU.state()["users"]]
        self.assertEqual(emails.count("mia@demo.example"), 1)

    def test_existing_seeded_user(self):
        r = EMU.jira("POST", API + "/user", {"emailAddress": "alice@demo.example",
                                             "products": ["jira-software"]})
        self.assertEqual((r.status, r.body["accountId"]), (201, ALICE))

    def test_no_product_access(self):
        r = EMU.jira("POST", API + "/user", {"emailAddress": "np@demo.example", "products": []})
        self.assertEqual(r.status, 201, r)
        r = EMU.jira("POST", API + "/user", {"emailAddress": "np@demo.example",
                                             "products": ["jira-software"]})
        self.assertMessage(r, 400)

    def test_create_validation(self):
        cases = [({"products": ["jira-software"]}, "emailAddress"),
                 ({"emailAddress": "no-at-sign", "products": []}, "emailAddress"),
                 ({"emailAddress": "x@demo.example"}, "products"),
                 ({"emailAddress": "x@demo.example", "products": "jira-software"}, "products"),
                 ({"emailAddress": "x@demo.example", "products": ["confluence"]}, "products")]
        for body, field in cases:
            r = EMU.jira("POST", API + "/user", body)
            self.assertEqual(r.status, 400, (body, r))
            self.assertIn(field, r.body["errors"])
        self.assertEqual(EMU.jira("POST", API + "/user", "[1]").status, 400)

    def test_delete_user(self):
        r = EMU.jira("POST", API + "/user", {"emailAddress": "tmp@demo.example",
                                             "products": ["jira-software"]})
        acc = r.body["accountId"]
        EMU.jira("POST", API + "/group/user?groupname=demo-team", {"accountId": acc})
        EMU.reset_counters()
        r = EMU.jira("DELETE", API + "/user?accountId=" + acc)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(emulib.mutation_count(EMU.counters(), "user", acc, "delete"), 1)
        self.assertMessage(self.get_user(acc), 404, USER_NOT_FOUND)
        self.assertMessage(EMU.jira("DELETE", API + "/user?accountId=" + acc), 404)
        # Memberships went with it; the account is still listed as inactive.
        r = EMU.jira("GET", API + "/group/member?groupname=demo-team")
        self.assertNotIn(acc, [u["accountId"] for u in r.body["values"]])
        listed = {u["accountId"]: u for u in
                  EMU.jira("GET", API + "/users/search?maxResults=1000").body}
        self.assertIs(listed[acc]["active"], False)
        # Adding the user again brings the account back.
        r = EMU.jira("POST", API + "/user", {"emailAddress": "tmp@demo.example",
                                             "products": ["jira-software"]})
        self.assertEqual((r.status, r.body["accountId"]), (201, acc))
        self.assertEqual(self.get_user(acc).status, 200)

    def test_delete_errors(self):
        self.assertMessage(EMU.jira("DELETE", API + "/user"), 400)
        self.assertMessage(EMU.jira("DELETE", API + "/user?accountId=nobody"), 404)
        self.assertMessage(EMU.jira("DELETE", API + "/user?accountId=" + BOT), 400)


class ListAndSearch(UserCase):
    def test_users_search_paging(self):
        r = EMU.jira("GET", API + "/users/search")
        self.assertEqual(r.status, 200, r)
        self.assertIsInstance(r.body, list)
        self.assertEqual(len(r.body), 5)  # every demo account, inactive Dave included
        self.assertIn(DAVE, [u["accountId"] for u in r.body])
        r = EMU.jira("GET", API + "/users/search?startAt=1&maxResults=2")
        self.assertEqual([u["accountId"] for u in r.body], [ALICE, "5b10a2844c20165700ede21b"])
        self.assertEqual(EMU.jira("GET", API + "/users/search?startAt=-1").status, 400)

    def test_users_search_cap(self):
        EMU.seed({"bulk_users": {"count": 1100, "prefix": "bulk", "domain": "demo.example"}})
        r = EMU.jira("GET", API + "/users/search?maxResults=5000")
        self.assertEqual(len(r.body), 1000)
        r = EMU.jira("GET", API + "/users/search?startAt=1000&maxResults=1000")
        self.assertEqual(len(r.body), 105)

    def test_user_search(self):
        def accs(q):
            r = EMU.jira("GET", API + "/user/search?" + q)
            self.assertEqual(r.status, 200, r)
            return [u["accountId"] for u in r.body]
        self.assertEqual(accs("query=ali"), [ALICE])
        self.assertEqual(accs("query=adams"), [ALICE])       # a word of the display name
        self.assertEqual(accs("query=ALICE%40demo"), [ALICE])  # email prefix
        self.assertEqual(accs("accountId=" + ALICE), [ALICE])
        self.assertEqual(accs("query=dave"), [])              # inactive users are not found
        self.assertEqual(len(accs("query=demo")), 0)
        self.assertEqual(len(accs("query=a&maxResults=1")), 1)

    def test_user_search_errors(self):
        self.assertEqual(EMU.jira("GET", API + "/user/search").status, 400)
        r = EMU.jira("GET", API + "/user/search?query=a&accountId=" + ALICE)
        self.assertEqual(r.status, 400, r)
        self.assertEqual(EMU.jira("GET", API + "/user/search?property=oops").status, 400)

    def test_user_groups(self):
        r = EMU.jira("GET", API + "/user/groups?accountId=" + ALICE)
        self.assertEqual(r.status, 200, r)
        for g in r.body:
            self.assertEqual(set(g), {"name", "groupId", "self"})
            self.assertEqual(g["self"], EMU.url + API + "/group?groupId=" + g["groupId"])
        self.assertEqual(EMU.jira("GET", API + "/user/groups?accountId=nobody").status, 404)
        self.assertEqual(EMU.jira("GET", API + "/user/groups").status, 400)


if __name__ == "__main__":
    unittest.main()
