"""Jira REST v3 projects: paged project search with filters, project
details with issue types, seeding projects through the control API, the
state dump, and the module-wide odds and ends (serverInfo, priorities)."""

import os
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emulib  # noqa: E402

EMU = None
API = "/rest/api/3"


def setUpModule():
    global EMU
    EMU = emulib.Emulator(["--seed-demo", "--rate-limits", "off"]).__enter__()


def tearDownModule():
    assert EMU.stop() == 0


def project_search(**params):
    r = EMU.jira("GET", API + "/project/search?" + urllib.parse.urlencode(params, doseq=True))
    return r


class ProjectCase(unittest.TestCase):
    def setUp(self):
        EMU.reset(seed_demo=True)

    def keys(self, **params):
        r = project_search(**params)
        self.assertEqual(r.status, 200, r)
        return [p["key"] for p in r.body["values"]]


class Search(ProjectCase):
    def test_all(self):
        r = project_search()
        self.assertEqual(r.status, 200, r)
        b = r.body
        self.assertEqual((b["total"], b["startAt"], b["maxResults"], b["isLast"]),
                         (2, 0, 50, True))
        self.assertNotIn("nextPage", b)
        p = b["values"][0]
        self.assertEqual((p["key"], p["id"], p["name"]), ("DEMO", "10000", "Demo project"))
        self.assertEqual(p["projectTypeKey"], "software")
        self.assertEqual(p["self"], EMU.url + API + "/project/10000")
        self.assertNotIn("issueTypes", p)

    def test_paging(self):
        r = project_search(maxResults=1)
        self.assertEqual([p["key"] for p in r.body["values"]], ["DEMO"])
        self.assertFalse(r.body["isLast"])
        self.assertIn("startAt=1", r.body["nextPage"])
        r = project_search(maxResults=1, startAt=1)
        self.assertEqual(([p["key"] for p in r.body["values"]], r.body["isLast"]), (["OPS"], True))
        self.assertEqual(project_search(maxResults=500).body["maxResults"], 100)
        self.assertEqual(project_search(startAt=-1).status, 400)

    def test_filters_and_order(self):
        self.assertEqual(self.keys(keys="OPS"), ["OPS"])
        self.assertEqual(self.keys(keys=["OPS", "DEMO"]), ["DEMO", "OPS"])
        self.assertEqual(self.keys(id="10001"), ["OPS"])
        self.assertEqual(self.keys(query="dem"), ["DEMO"])
        self.assertEqual(self.keys(query="operations"), ["OPS"])
        self.assertEqual(self.keys(query="zzz"), [])
        self.assertEqual(self.keys(orderBy="-key"), ["OPS", "DEMO"])
        self.assertEqual(self.keys(orderBy="name"), ["DEMO", "OPS"])
        self.assertEqual(project_search(orderBy="colour").status, 400)

    def test_expand(self):
        r = project_search(expand="description,issueTypes,insight", keys="DEMO")
        p = r.body["values"][0]
        self.assertEqual(len(p["issueTypes"]), 4)
        self.assertEqual(p["insight"]["totalIssueCount"], 0)
        self.assertIn("description", p)


class Get(ProjectCase):
    def test_by_key_and_id(self):
        r = EMU.jira("GET", API + "/project/DEMO")
        self.assertEqual(r.status, 200, r)
        p = r.body
        self.assertEqual((p["key"], p["id"]), ("DEMO", "10000"))
        types = {t["name"]: t for t in p["issueTypes"]}
        self.assertEqual(set(types), {"Task", "Bug", "Story", "Sub-task"})
        self.assertTrue(types["Sub-task"]["subtask"])
        self.assertEqual(types["Sub-task"]["hierarchyLevel"], -1)
        self.assertFalse(types["Task"]["subtask"])
        self.assertEqual(types["Task"]["id"], "10001")
        self.assertEqual(set(p["roles"]), {"Administrators", "Developers", "Users"})
        self.assertEqual(EMU.jira("GET", API + "/project/10001").body["key"], "OPS")
        ops_types = [t["name"] for t in EMU.jira("GET", API + "/project/OPS").body["issueTypes"]]
        self.assertIn("Incident", ops_types)

    def test_404(self):
        r = EMU.jira("GET", API + "/project/NOPE")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.body, {"errorMessages": ["No project could be found with key 'NOPE'."],
                                  "errors": {}})
        r = EMU.jira("GET", API + "/project/demo")  # keys are case sensitive
        self.assertEqual(r.status, 404)
        r = EMU.jira("GET", API + "/project/12345")
        self.assertEqual(r.body["errorMessages"], ["No project could be found with id '12345'."])

    def test_needs_auth(self):
        self.assertEqual(EMU.jira("GET", API + "/project/DEMO", auth=None).status, 401)
        bad = emulib.basic_auth(token="wrong")
        self.assertEqual(EMU.jira("GET", API + "/project/DEMO", auth=bad).status, 401)


class SeedAndDump(ProjectCase):
    def test_seed_project_with_lead_and_actors(self):
        EMU.seed({
            "roles": [{"id": 10003, "name": "Approvers", "description": "approve things"}],
            "projects": [{"key": "FIN", "name": "Finance", "lead": "5b10a2844c20165700ede21a",
                          "roles": {"Approvers": {"users": ["5b10a2844c20165700ede21b"],
                                                  "groups": ["demo-team"]}}}]})
        p = EMU.jira("GET", API + "/project/FIN").body
        self.assertEqual(p["lead"]["accountId"], "5b10a2844c20165700ede21a")
        self.assertEqual(p["assigneeType"], "PROJECT_LEAD")
        self.assertEqual(p["id"], "10002")
        self.assertIn("Approvers", p["roles"])
        # The new role exists for the older projects too, with no actors.
        r = EMU.jira("GET", API + "/project/DEMO/role/10003")
        self.assertEqual((r.status, r.body["actors"]), (200, []))
        r = EMU.jira("GET", API + "/project/FIN/role/10003")
        self.assertEqual(len(r.body["actors"]), 2)
        # Default workflow and issue types.
        r = EMU.jira("POST", API + "/issue", {"fields": {
            "project": {"key": "FIN"}, "issuetype": {"name": "Story"}, "summary": "s"}})
        self.assertEqual(r.status, 201, r)
        r = EMU.jira("PUT", API + "/issue/FIN-1/assignee", {"accountId": "-1"})
        self.assertEqual(r.status, 204, r)
        f = EMU.jira("GET", API + "/issue/FIN-1").body["fields"]
        self.assertEqual(f["assignee"]["accountId"], "5b10a2844c20165700ede21a")

    def test_seed_errors(self):
        for doc in ({"projects": [{"key": "X1"}]},
                    {"projects": [{"key": "TOOLONGKEY11", "name": "n"}]},
                    {"projects": [{"key": "HR", "name": "n", "roles": {"Nope": {}}}]},
                    {"projects": [{"key": "HR", "name": "n",
                                   "roles": {"Users": {"users": ["nobody"]}}}]},
                    {"projects": [{"key": "HR", "name": "n", "issueTypes": []}]},
                    {"issues": [{"project": "DEMO"}]},
                    {"issues": [{"project": "DEMO", "summary": "s", "status": "Nope"}]},
                    {"issues": [{"project": "DEMO", "summary": "s", "issuetype": "Sub-task"}]},
                    {"roles": [{"name": "no id"}]},
                    {"projects": {"key": "HR"}}):
            r = EMU.control("POST", "/seed", doc)
            self.assertEqual(r.status, 400, (doc, r))

    def test_dump_round_trip(self):
        EMU.seed({"issues": [
            {"project": "DEMO", "summary": "a", "labels": ["x"], "status": "Done",
             "properties": {"p": {"v": 1}}},
            {"project": "DEMO", "key": "DEMO-5", "summary": "b"},
            {"project": "DEMO", "summary": "c", "issuetype": "Sub-task", "parent": "DEMO-1"}]})
        jira = EMU.state()["jira"]
        self.assertEqual([p["key"] for p in jira["projects"]], ["DEMO", "OPS"])
        self.assertEqual([r["id"] for r in jira["roles"]], [10002, 10000, 10001])
        issues = {i["key"]: i for i in jira["issues"]}
        self.assertEqual(sorted(issues), ["DEMO-1", "DEMO-5", "DEMO-6"])
        self.assertEqual(issues["DEMO-1"]["status"], "Done")
        self.assertEqual(issues["DEMO-6"]["parent"], "DEMO-1")
        # The dump is a valid seed: load it into a fresh emulator.
        # Role actors name groups, which the other store must have.
        self.assertEqual(jira["projects"][0]["roles"]["Developers"]["groups"], ["demo-team"])
        doc = {"projects": jira["projects"], "roles": jira["roles"], "issues": jira["issues"],
               "groups": [{"name": "demo-team"}, {"name": "jira-administrators"}]}
        with emulib.Emulator(["--rate-limits", "off"]) as other:
            EMU2 = other
            r = EMU2.control("POST", "/seed", doc)
            self.assertEqual(r.status, 200, r)
            again = EMU2.state()["jira"]
            self.assertEqual([i["key"] for i in again["issues"]], [i["key"] for i in jira["issues"]])
            self.assertEqual(again["issues"][0]["properties"], {"p": {"v": 1}})
            r = EMU2.jira("POST", API + "/issue", {"fields": {
                "project": {"key": "DEMO"}, "issuetype": {"name": "Task"}, "summary": "n"}})
            self.assertEqual(r.body["key"], "DEMO-7")


class Misc(ProjectCase):
    def test_server_info_and_priorities(self):
        r = EMU.jira("GET", API + "/serverInfo")
        self.assertEqual((r.status, r.body["deploymentType"]), (200, "Cloud"))
        r = EMU.jira("GET", API + "/priority")
        self.assertEqual([(p["id"], p["name"]) for p in r.body],
                         [("1", "Highest"), ("2", "High"), ("3", "Medium"), ("4", "Low"),
                          ("5", "Lowest")])

    def test_reset_empties_jira_state(self):
        EMU.jira("POST", API + "/issue", {"fields": {
            "project": {"key": "DEMO"}, "issuetype": {"name": "Task"}, "summary": "n"}})
        EMU.reset()
        self.assertEqual(EMU.state()["jira"], {"roles": [], "projects": [], "issues": []})
        self.assertEqual(EMU.jira("GET", API + "/project/DEMO").status, 404)


if __name__ == "__main__":
    unittest.main()
