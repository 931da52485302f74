"""Jira REST v3 groups on the shared store (notes §3.4): create, delete,
members (paged), add/remove member, bulk get; SCIM groups are Jira groups and
membership changes are visible from both APIs."""

import os
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emulib  # noqa: E402

EMU = None
API = "/rest/api/3"
ALICE = "5b10a2844c20165700ede21a"
BOB = "5b10a2844c20165700ede21b"
CAROL = "5b10a2844c20165700ede21c"
DAVE = "5b10a2844c20165700ede21d"  # inactive
ATL = "urn:scim:schemas:extension:atlassian-external:1.0"
GROUP_NOT_FOUND = "Specified group does not exist."
USER_NOT_FOUND = "Specified user does not exist or you do not have required permissions"


def setUpModule():
    global EMU
    EMU = emulib.Emulator(["--rate-limits", "off"]).__enter__()


def tearDownModule():
    assert EMU.stop() == 0


def q(**params):
    return urllib.parse.urlencode(params, doseq=True)


class GroupCase(unittest.TestCase):
    def setUp(self):
        EMU.reset(seed_demo=True)

    def create_group(self, name):
        r = EMU.jira("POST", API + "/group", {"name": name})
        self.assertEqual(r.status, 201, r)
        return r.body

    def members(self, **params):
        r = EMU.jira("GET", API + "/group/member?" + q(**params))
        self.assertEqual(r.status, 200, r)
        return r.body

    def add(self, acc, **params):
        return EMU.jira("POST", API + "/group/user?" + q(**params), {"accountId": acc})

    def assertMessage(self, r, status, text=None):
        self.assertEqual(r.status, status, r)
        self.assertEqual(len(r.body["errorMessages"]), 1, r)
        self.assertEqual(r.body["errors"], {})
        if text is not None:
            self.assertEqual(r.body["errorMessages"][0], text)


class CreateDelete(GroupCase):
    def test_create_shape_and_counter(self):
        EMU.reset_counters()
        g = self.create_group("power-users")
        self.assertEqual(g["name"], "power-users")
        self.assertRegex(g["groupId"], r"^[0-9a-f-]{36}$")
        self.assertEqual(g["self"], EMU.url + API + "/group?groupId=" + g["groupId"])
        self.assertEqual(g["users"]["size"], 0)
        self.assertEqual(g["users"]["max-results"], 50)
        self.assertEqual(g["expand"], "users")
        self.assertEqual(emulib.mutation_count(EMU.counters(), "group", g["groupId"], "create"),
                         1)

    def test_create_errors(self):
        self.create_group("dup")
        self.assertMessage(EMU.jira("POST", API + "/group", {"name": "dup"}), 400)
        self.assertMessage(EMU.jira("POST", API + "/group", {"name": "DUP"}), 400)
        self.assertMessage(EMU.jira("POST", API + "/group", {"name": "demo-team"}), 400)
        self.assertMessage(EMU.jira("POST", API + "/group", {}), 400)
        self.assertMessage(EMU.jira("POST", API + "/group", {"name": ""}), 400)

    def test_delete(self):
        g = self.create_group("temp")
        self.assertEqual(self.add(ALICE, groupId=g["groupId"]).status, 201)
        EMU.reset_counters()
        r = EMU.jira("DELETE", API + "/group?groupId=" + g["groupId"])
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.body)
        self.assertEqual(emulib.mutation_count(EMU.counters(), "group", g["groupId"], "delete"), 1)
        self.assertMessage(EMU.jira("GET", API + "/group/member?groupId=" + g["groupId"]), 404,
                           GROUP_NOT_FOUND)
        groups = EMU.jira("GET", API + "/user/groups?accountId=" + ALICE).body
        self.assertNotIn("temp", [x["name"] for x in groups])
        self.create_group("temp2")
        self.assertEqual(EMU.jira("DELETE", API + "/group?groupname=temp2").status, 200)

    def test_delete_errors(self):
        g = self.create_group("x1")
        self.assertMessage(EMU.jira("DELETE", API + "/group?" + q(groupId=g["groupId"],
                                                                   groupname="x1")), 400)
        self.assertMessage(EMU.jira("DELETE", API + "/group"), 400)
        self.assertMessage(EMU.jira("DELETE", API + "/group?groupname=nope"), 404, GROUP_NOT_FOUND)
        self.assertMessage(EMU.jira("DELETE", API + "/group?" + q(groupname="x1",
                                                                   swapGroup="nope")), 404)
        self.assertMessage(EMU.jira("DELETE", API + "/group?" + q(groupname="x1",
                                                                   swapGroup="x1")), 400)
        self.assertMessage(EMU.jira("DELETE", API + "/group?" + q(
            groupname="x1", swapGroup="demo-team", swapGroupId=g["groupId"])), 400)
        r = EMU.jira("DELETE", API + "/group?" + q(groupname="x1", swapGroup="demo-team"))
        self.assertEqual(r.status, 200, r)


class Membership(GroupCase):
    def test_add_remove_and_counters(self):
        g = self.create_group("squad")
        EMU.reset_counters()
        r = self.add(ALICE, groupId=g["groupId"])
        self.assertEqual(r.status, 201, r)
        self.assertEqual((r.body["name"], r.body["users"]["size"]), ("squad", 1))
        self.assertEqual([u["accountId"] for u in self.members(groupname="squad")["values"]],
                         [ALICE])
        key = "%s:%s" % (g["groupId"], ALICE)
        self.assertEqual(emulib.mutation_count(EMU.counters(), "membership", key, "add"), 1)
        r = EMU.jira("DELETE", API + "/group/user?" + q(groupId=g["groupId"], accountId=ALICE))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.members(groupname="squad")["values"], [])
        self.assertEqual(emulib.mutation_count(EMU.counters(), "membership", key, "remove"), 1)

    def test_add_existing_member(self):
        r = self.add(ALICE, groupname="demo-team")
        self.assertMessage(r, 400, "Cannot add user. User is already a member of 'demo-team'")

    def test_add_errors(self):
        self.assertMessage(self.add("nobody", groupname="demo-team"), 404, USER_NOT_FOUND)
        self.assertMessage(self.add(ALICE, groupname="nope"), 404, GROUP_NOT_FOUND)
        self.assertMessage(self.add(ALICE), 400)
        g = EMU.jira("GET", API + "/group/bulk?groupName=demo-team").body["values"][0]
        self.assertMessage(self.add(CAROL, groupname="demo-team", groupId=g["groupId"]), 400)
        r = EMU.jira("POST", API + "/group/user?groupname=demo-team", {})
        self.assertMessage(r, 400)

    def test_remove_errors(self):
        base = API + "/group/user?"
        self.assertMessage(EMU.jira("DELETE", base + q(groupname="demo-team")), 400)
        self.assertMessage(EMU.jira("DELETE", base + q(accountId=ALICE)), 400)
        self.assertMessage(EMU.jira("DELETE", base + q(groupname="nope", accountId=ALICE)), 404)
        self.assertMessage(EMU.jira("DELETE", base + q(groupname="demo-team",
                                                       accountId="nobody")), 404)
        r = EMU.jira("DELETE", base + q(groupname="demo-team", accountId=CAROL))
        self.assertMessage(r, 400, "Cannot remove user. User is not a member of 'demo-team'")

    def test_members_paging_and_inactive(self):
        g = self.create_group("many")
        for acc in (CAROL, ALICE, DAVE, BOB):
            self.assertEqual(self.add(acc, groupId=g["groupId"]).status, 201)
        page = self.members(groupId=g["groupId"], maxResults=2)
        # Ordered by user name; the inactive Dave is left out by default.
        self.assertEqual([u["accountId"] for u in page["values"]], [ALICE, BOB])
        self.assertEqual((page["total"], page["isLast"], page["startAt"], page["maxResults"]),
                         (3, False, 0, 2))
        self.assertIn("startAt=2", page["nextPage"])
        page = self.members(groupId=g["groupId"], maxResults=2, startAt=2)
        self.assertEqual([u["accountId"] for u in page["values"]], [CAROL])
        self.assertTrue(page["isLast"])
        self.assertNotIn("nextPage", page)
        page = self.members(groupId=g["groupId"], includeInactiveUsers="true")
        self.assertEqual(page["total"], 4)
        self.assertIn(DAVE, [u["accountId"] for u in page["values"]])
        page = self.members(groupId=g["groupId"], maxResults=500)
        self.assertEqual(page["maxResults"], 50)

    def test_members_errors(self):
        self.assertMessage(EMU.jira("GET", API + "/group/member"), 400)
        self.assertMessage(EMU.jira("GET", API + "/group/member?groupname=nope"), 404)
        r = EMU.jira("GET", API + "/group/member?groupname=demo-team&startAt=-3")
        self.assertMessage(r, 400)


class SharedWithScim(GroupCase):
    def test_scim_group_is_jira_group_both_ways(self):
        su = EMU.scim_create_user("sam@demo.example")
        acc = su[ATL]["atlassianAccountId"]
        sg = EMU.scim_create_group("idp-engineers", [su["id"]])
        # SCIM membership is visible in Jira.
        vals = self.members(groupname="idp-engineers")["values"]
        self.assertEqual([u["accountId"] for u in vals], [acc])
        # Jira membership change is visible in SCIM.
        self.assertEqual(self.add(ALICE, groupname="idp-engineers").status, 201)
        r = EMU.scim("GET", "/Groups/" + sg["id"])
        self.assertEqual(len(r.body["members"]), 2)
        r = EMU.jira("DELETE", API + "/group/user?" + q(groupname="idp-engineers",
                                                        accountId=acc))
        self.assertEqual(r.status, 200, r)
        r = EMU.scim("GET", "/Groups/" + sg["id"])
        self.assertEqual([m["display"] for m in r.body["members"]], ["Alice Adams"])
        # A SCIM PATCH add shows up in Jira.
        r = EMU.scim("PATCH", "/Groups/" + sg["id"], {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": su["id"]}]}]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.members(groupname="idp-engineers")["total"], 2)

    def test_jira_group_name_taken_in_scim(self):
        self.create_group("from-jira")
        r = EMU.scim("POST", "/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                         "displayName": "from-jira"})
        self.assertEqual(r.status, 409, r)


class Bulk(GroupCase):
    def test_bulk_all_and_filters(self):
        r = EMU.jira("GET", API + "/group/bulk")
        self.assertEqual(r.status, 200, r)
        names = [v["name"] for v in r.body["values"]]
        self.assertEqual(names, ["demo-team", "jira-administrators", "jira-software-users"])
        self.assertEqual((r.body["total"], r.body["isLast"], r.body["startAt"]), (3, True, 0))
        ids = {v["name"]: v["groupId"] for v in r.body["values"]}
        r = EMU.jira("GET", API + "/group/bulk?" + q(groupId=[ids["demo-team"]],
                                                     groupName=["jira-administrators", "nope"]))
        self.assertEqual([v["name"] for v in r.body["values"]],
                         ["demo-team", "jira-administrators"])
        r = EMU.jira("GET", API + "/group/bulk?maxResults=2&startAt=1")
        self.assertEqual([v["name"] for v in r.body["values"]],
                         ["jira-administrators", "jira-software-users"])
        r = EMU.jira("GET", API + "/group/bulk?maxResults=1")
        self.assertFalse(r.body["isLast"])

    def test_bulk_errors(self):
        self.assertEqual(EMU.jira("GET", API + "/group/bulk?accessType=root").status, 400)
        self.assertEqual(EMU.jira("GET", API + "/group/bulk?applicationKey=x").status, 400)
        self.assertEqual(EMU.jira("GET", API + "/group/bulk?accessType=admin").status, 200)


if __name__ == "__main__":
    unittest.main()
