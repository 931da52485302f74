"""Jira REST v3 project roles (notes §3.5): role map, role details, adding,
replacing and removing user and group actors, per project."""

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
DAVE = "5b10a2844c20165700ede21d"  # inactive
DEV, USERS, ADMINS = 10000, 10001, 10002


def setUpModule():
    global EMU
    EMU = emulib.Emulator(["--rate-limits", "off"]).__enter__()


def tearDownModule():
    assert EMU.stop() == 0


def role_url(project, rid, query=""):
    return "%s/project/%s/role/%s%s" % (API, project, rid, query)


class RoleCase(unittest.TestCase):
    def setUp(self):
        EMU.reset(seed_demo=True)

    def role(self, project="DEMO", rid=DEV, query=""):
        r = EMU.jira("GET", role_url(project, rid, query))
        self.assertEqual(r.status, 200, r)
        return r.body

    def actors(self, project="DEMO", rid=DEV, query=""):
        out = []
        for a in self.role(project, rid, query)["actors"]:
            if a["type"] == "atlassian-user-role-actor":
                out.append(("user", a["actorUser"]["accountId"]))
            else:
                out.append(("group", a["actorGroup"]["name"]))
        return sorted(out)

    def group_id(self, name):
        r = EMU.jira("GET", API + "/group/bulk?groupName=" + urllib.parse.quote(name))
        return r.body["values"][0]["groupId"]

    def assertMessage(self, r, status, text=None):
        self.assertEqual(r.status, status, r)
        self.assertEqual(len(r.body["errorMessages"]), 1, r)
        if text is not None:
            self.assertEqual(r.body["errorMessages"][0], text)


class Read(RoleCase):
    def test_role_map(self):
        r = EMU.jira("GET", API + "/project/DEMO/role")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, {
            "Administrators": EMU.url + role_url("DEMO", ADMINS),
            "Developers": EMU.url + role_url("DEMO", DEV),
            "Users": EMU.url + role_url("DEMO", USERS)})
        r = EMU.jira("GET", API + "/project/10001/role")
        self.assertEqual(set(r.body), {"Administrators", "Developers", "Users"})

    def test_role_details(self):
        body = self.role()
        self.assertEqual((body["id"], body["name"]), (DEV, "Developers"))
        self.assertEqual(body["self"], EMU.url + role_url("DEMO", DEV))
        self.assertEqual(body["scope"], {"type": "PROJECT", "project": {
            "id": "10000", "key": "DEMO", "name": "Demo project"}})
        (actor,) = body["actors"]
        self.assertEqual(actor["type"], "atlassian-group-role-actor")
        self.assertEqual(actor["displayName"], "demo-team")
        self.assertEqual(actor["actorGroup"]["groupId"], self.group_id("demo-team"))
        self.assertIsInstance(actor["id"], int)
        self.assertEqual(self.actors("OPS", DEV), [])
        self.assertEqual(self.actors("OPS", ADMINS), [("group", "jira-administrators")])

    def test_all_roles(self):
        r = EMU.jira("GET", API + "/role")
        self.assertEqual(sorted((x["id"], x["name"]) for x in r.body),
                         [(DEV, "Developers"), (USERS, "Users"), (ADMINS, "Administrators")])

    def test_read_errors(self):
        self.assertMessage(EMU.jira("GET", API + "/project/NOPE/role"), 404,
                           "No project could be found with key 'NOPE'.")
        self.assertMessage(EMU.jira("GET", role_url("NOPE", DEV)), 404)
        self.assertMessage(EMU.jira("GET", role_url("DEMO", 424242)), 404)
        self.assertMessage(EMU.jira("GET", role_url("DEMO", "dev")), 400)


class AddActors(RoleCase):
    def test_add_user_and_groups(self):
        EMU.reset_counters()
        r = EMU.jira("POST", role_url("DEMO", USERS), {"user": [ALICE, BOB]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.body["actors"]), 2)
        names = [a["displayName"] for a in r.body["actors"]]
        self.assertEqual(names, sorted(names))  # sorted by display name
        c = EMU.counters()
        self.assertEqual(emulib.mutation_count(c, "role", "DEMO:%d:%s" % (USERS, ALICE), "add"),
                         1)
        r = EMU.jira("POST", role_url("DEMO", USERS), {"group": ["jira-software-users"]})
        self.assertEqual(r.status, 200, r)
        gid = self.group_id("demo-team")
        r = EMU.jira("POST", role_url("DEMO", USERS), {"groupId": [gid]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.actors(rid=USERS), [
            ("group", "demo-team"), ("group", "jira-software-users"), ("user", ALICE),
            ("user", BOB)])
        # Other projects are untouched.
        self.assertEqual(self.actors("OPS", USERS), [])

    def test_add_existing_actor(self):
        self.assertEqual(EMU.jira("POST", role_url("DEMO", USERS), {"user": [ALICE]}).status, 200)
        r = EMU.jira("POST", role_url("DEMO", USERS), {"user": [BOB, ALICE]})
        self.assertMessage(r, 400, "'%s' is already a member of the project role." % ALICE)
        self.assertEqual(self.actors(rid=USERS), [("user", ALICE)])  # Bob not added either
        r = EMU.jira("POST", role_url("DEMO", DEV), {"group": ["demo-team"]})
        self.assertMessage(r, 400, "'demo-team' is already a member of the project role.")

    def test_add_errors(self):
        url = role_url("DEMO", USERS)
        self.assertMessage(EMU.jira("POST", url, {"user": ["nobody"]}), 404)
        self.assertMessage(EMU.jira("POST", url, {"user": [DAVE]}), 404)
        self.assertMessage(EMU.jira("POST", url, {"group": ["nope"]}), 404)
        self.assertMessage(EMU.jira("POST", url, {"groupId": ["nope"]}), 404)
        self.assertMessage(EMU.jira("POST", url, {"group": ["demo-team"],
                                                  "groupId": [self.group_id("demo-team")]}), 400)
        self.assertMessage(EMU.jira("POST", url, {}), 400)
        self.assertMessage(EMU.jira("POST", url, {"users": [ALICE]}), 400)
        self.assertMessage(EMU.jira("POST", url, {"user": ALICE}), 400)
        self.assertMessage(EMU.jira("POST", role_url("DEMO", 1), {"user": [ALICE]}), 404)
        self.assertMessage(EMU.jira("POST", role_url("NOPE", USERS), {"user": [ALICE]}), 404)
        self.assertEqual(self.actors(rid=USERS), [])


class RemoveActors(RoleCase):
    def test_remove_user_group_groupid(self):
        EMU.jira("POST", role_url("DEMO", USERS), {"user": [ALICE],
                                                   "group": ["jira-software-users"]})
        EMU.reset_counters()
        r = EMU.jira("DELETE", role_url("DEMO", USERS, "?user=" + ALICE))
        self.assertEqual(r.status, 204, r)
        self.assertEqual(emulib.mutation_count(EMU.counters(), "role",
                                               "DEMO:%d:%s" % (USERS, ALICE), "remove"), 1)
        self.assertMessage(EMU.jira("DELETE", role_url("DEMO", USERS, "?user=" + ALICE)), 404)
        r = EMU.jira("DELETE", role_url("DEMO", USERS, "?group=jira-software-users"))
        self.assertEqual(r.status, 204, r)
        gid = self.group_id("demo-team")
        r = EMU.jira("DELETE", role_url("DEMO", DEV, "?groupId=" + gid))
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.actors(rid=USERS), [])
        self.assertEqual(self.actors(rid=DEV), [])

    def test_remove_errors(self):
        self.assertMessage(EMU.jira("DELETE", role_url("DEMO", DEV)), 400)
        self.assertMessage(EMU.jira("DELETE", role_url("DEMO", DEV, "?user=%s&group=demo-team"
                                                        % ALICE)), 400)
        self.assertMessage(EMU.jira("DELETE", role_url("DEMO", DEV, "?group=nope")), 404)
        self.assertMessage(EMU.jira("DELETE", role_url("DEMO", DEV, "?user=" + BOB)), 404)
        self.assertMessage(EMU.jira("DELETE", role_url("DEMO", 99, "?user=" + BOB)), 404)


class SetActors(RoleCase):
    def test_replace_all(self):
        EMU.jira("POST", role_url("DEMO", DEV), {"user": [BOB]})
        gid = self.group_id("jira-software-users")
        r = EMU.jira("PUT", role_url("DEMO", DEV), {"categorisedActors": {
            "atlassian-user-role-actor": [ALICE],
            "atlassian-group-role-actor-id": [gid]}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.actors(), [("group", "jira-software-users"), ("user", ALICE)])
        r = EMU.jira("PUT", role_url("DEMO", DEV), {"categorisedActors": {
            "atlassian-group-role-actor": ["demo-team"]}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.actors(), [("group", "demo-team")])
        r = EMU.jira("PUT", role_url("DEMO", DEV), {"categorisedActors": {}})
        self.assertEqual(self.actors(), [])

    def test_set_errors(self):
        url = role_url("DEMO", DEV)
        self.assertMessage(EMU.jira("PUT", url, {"categorisedActors": {"robots": ["x"]}}), 400)
        self.assertMessage(EMU.jira("PUT", url, {"categorisedActors": {
            "atlassian-user-role-actor": ["nobody"]}}), 404)
        self.assertMessage(EMU.jira("PUT", url, {"user": [ALICE]}), 400)
        self.assertEqual(self.actors(), [("group", "demo-team")])


class IdentityChanges(RoleCase):
    def test_inactive_and_removed_users_and_deleted_groups(self):
        EMU.jira("POST", role_url("DEMO", USERS), {"user": [ALICE, BOB]})
        r = EMU.admin("POST", "/users/%s/manage/lifecycle/disable" % BOB, {})
        self.assertIn(r.status, (200, 204), r)
        self.assertEqual(self.actors(rid=USERS, query="?excludeInactiveUsers=true"),
                         [("user", ALICE)])
        self.assertEqual(len(self.actors(rid=USERS)), 2)
        self.assertEqual(EMU.jira("DELETE", API + "/user?accountId=" + ALICE).status, 204)
        self.assertEqual(self.actors(rid=USERS), [("user", BOB)])
        self.assertEqual(EMU.jira("DELETE", API + "/group?groupname=demo-team").status, 200)
        self.assertEqual(self.actors(rid=DEV), [])


if __name__ == "__main__":
    unittest.main()
