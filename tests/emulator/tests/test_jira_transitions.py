"""Jira REST v3 workflow transitions: availability from the current status,
per-project transition ids, global transitions and the error forms
(notes §3.1)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emulib  # noqa: E402

EMU = None
API = "/rest/api/3"
NOT_FOUND = "Issue does not exist or you do not have permission to see it."


def setUpModule():
    global EMU
    EMU = emulib.Emulator(["--seed-demo", "--rate-limits", "off"]).__enter__()


def tearDownModule():
    assert EMU.stop() == 0


class TransitionCase(unittest.TestCase):
    def setUp(self):
        EMU.reset(seed_demo=True)

    def create(self, project="DEMO"):
        r = EMU.jira("POST", API + "/issue", {"fields": {
            "project": {"key": project}, "issuetype": {"name": "Task"}, "summary": "t"}})
        self.assertEqual(r.status, 201, r)
        return r.body["key"]

    def available(self, key, query=""):
        r = EMU.jira("GET", API + "/issue/%s/transitions%s" % (key, query))
        self.assertEqual(r.status, 200, r)
        return r.body["transitions"]

    def ids(self, key, query=""):
        return [t["id"] for t in self.available(key, query)]

    def do(self, key, tid, **extra):
        body = {"transition": {"id": tid}}
        body.update(extra)
        return EMU.jira("POST", API + "/issue/%s/transitions" % key, body)

    def status(self, key):
        r = EMU.jira("GET", API + "/issue/%s?fields=status" % key)
        return r.body["fields"]["status"]

    def assertMessage(self, r, status, text=None):
        self.assertEqual(r.status, status, r)
        self.assertEqual(len(r.body["errorMessages"]), 1, r)
        if text is not None:
            self.assertEqual(r.body["errorMessages"][0], text)


class DemoWorkflow(TransitionCase):
    def test_list_from_initial_status(self):
        key = self.create()
        ts = self.available(key)
        self.assertEqual(len(ts), 1)
        t = ts[0]
        self.assertEqual((t["id"], t["name"]), ("11", "Start Progress"))
        self.assertEqual(t["to"]["name"], "In Progress")
        self.assertEqual(t["to"]["statusCategory"]["key"], "indeterminate")
        self.assertEqual(t["to"]["statusCategory"]["id"], 4)
        for flag in ("hasScreen", "isGlobal", "isInitial", "isConditional"):
            self.assertIs(t[flag], False)
        self.assertIs(t["isAvailable"], True)

    def test_walk_through_workflow(self):
        key = self.create()
        EMU.reset_counters()
        r = self.do(key, "11")
        self.assertEqual(r.status, 204, r)
        self.assertIsNone(r.body)
        self.assertEqual(self.status(key)["name"], "In Progress")
        self.assertEqual(sorted(self.ids(key)), ["21", "31"])
        self.assertEqual(self.do(key, "21").status, 204)
        st = self.status(key)
        self.assertEqual((st["name"], st["statusCategory"]["key"]), ("Done", "done"))
        f = EMU.jira("GET", API + "/issue/" + key).body["fields"]
        self.assertIsNotNone(f["resolutiondate"])
        self.assertEqual(self.ids(key), ["41"])
        self.assertEqual(self.do(key, "41").status, 204)
        self.assertEqual(self.status(key)["name"], "To Do")
        self.assertEqual(emulib.mutation_count(EMU.counters(), "issue", key, "transition"), 3)

    def test_unavailable_and_unknown_ids(self):
        key = self.create()
        for tid in ("21", "41", "999", "101"):
            r = self.do(key, tid)
            self.assertMessage(r, 400, "Transition id '%s' is not valid for this issue." % tid)
        self.assertEqual(self.status(key)["name"], "To Do")

    def test_numeric_transition_id_accepted(self):
        key = self.create()
        self.assertEqual(self.do(key, 11).status, 204)

    def test_missing_transition(self):
        key = self.create()
        r = EMU.jira("POST", API + "/issue/%s/transitions" % key, {"fields": {}})
        self.assertMessage(r, 400, "Missing 'transition' identifier")
        r = EMU.jira("POST", API + "/issue/%s/transitions" % key)
        self.assertMessage(r, 400)

    def test_include_unavailable_and_filter(self):
        key = self.create()
        ts = self.available(key, "?includeUnavailableTransitions=true")
        self.assertEqual(sorted(t["id"] for t in ts), ["11", "21", "31", "41"])
        avail = {t["id"]: t["isAvailable"] for t in ts}
        self.assertEqual(avail, {"11": True, "21": False, "31": False, "41": False})
        self.assertEqual(self.ids(key, "?transitionId=11"), ["11"])
        self.assertEqual(self.ids(key, "?transitionId=21"), [])
        ts = self.available(key, "?expand=transitions.fields")
        self.assertEqual(ts[0]["fields"], {})

    def test_fields_not_on_screen(self):
        key = self.create()
        r = self.do(key, "11", fields={"resolution": {"name": "Done"}})
        self.assertEqual(r.status, 400, r)
        self.assertIn("resolution", r.body["errors"])
        self.assertEqual(self.status(key)["name"], "To Do")

    def test_comment_and_properties_ride_along(self):
        key = self.create()
        comment = {"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "moving"}]}]}
        r = self.do(key, "11", update={"comment": [{"add": {"body": comment}}]},
                    properties=[{"key": "jiraprov", "value": {"eventId": "e9"}}])
        self.assertEqual(r.status, 204, r)
        r = EMU.jira("GET", API + "/issue/%s/properties/jiraprov" % key)
        self.assertEqual(r.body["value"], {"eventId": "e9"})
        r = self.do(key, "21", update={"comment": [{"add": {"body": "plain"}}]})
        self.assertEqual(r.status, 400, r)

    def test_transition_on_create(self):
        body = {"fields": {"project": {"key": "DEMO"}, "issuetype": {"name": "Task"},
                           "summary": "t"}, "transition": {"id": "11"}}
        r = EMU.jira("POST", API + "/issue", body)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.body["transition"], {"status": 200, "errorCollection": {
            "errorMessages": [], "errors": {}}})
        self.assertEqual(self.status(r.body["key"])["name"], "In Progress")
        body["transition"] = {"id": "21"}
        r = EMU.jira("POST", API + "/issue", body)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.body["transition"]["status"], 400)
        self.assertEqual(self.status(r.body["key"])["name"], "To Do")

    def test_unknown_issue(self):
        self.assertMessage(EMU.jira("GET", API + "/issue/DEMO-42/transitions"), 404, NOT_FOUND)
        self.assertMessage(self.do("DEMO-42", "11"), 404, NOT_FOUND)


class OpsWorkflow(TransitionCase):
    def test_ids_differ_per_project(self):
        key = self.create("OPS")
        st = self.status(key)
        self.assertEqual((st["name"], st["statusCategory"]["key"]), ("Open", "new"))
        ts = {t["id"]: t for t in self.available(key)}
        self.assertEqual(sorted(ts), ["101", "401"])
        self.assertTrue(ts["401"]["isGlobal"])
        self.assertFalse(ts["101"]["isGlobal"])
        self.assertEqual(self.do(key, "11").status, 400)  # a DEMO transition id

    def test_global_close_and_reopen(self):
        key = self.create("OPS")
        self.assertEqual(self.do(key, "101").status, 204)
        self.assertEqual(self.status(key)["name"], "Triage")
        self.assertEqual(sorted(self.ids(key)), ["201", "401"])
        self.assertEqual(self.do(key, "401").status, 204)
        st = self.status(key)
        self.assertEqual((st["name"], st["statusCategory"]["key"]), ("Closed", "done"))
        # A global transition is not offered to the status it leads to.
        self.assertEqual(self.ids(key), ["301"])
        self.assertEqual(self.do(key, "401").status, 400)
        self.assertEqual(self.do(key, "301").status, 204)
        self.assertEqual(self.status(key)["name"], "Open")

    def test_project_statuses_endpoint(self):
        r = EMU.jira("GET", API + "/project/OPS/statuses")
        self.assertEqual(r.status, 200, r)
        names = {t["name"]: [s["name"] for s in t["statuses"]] for t in r.body}
        self.assertEqual(names["Incident"], ["Open", "Triage", "Resolved", "Closed"])


class SeededWorkflow(TransitionCase):
    def test_custom_workflow_from_seed(self):
        EMU.seed({"projects": [{
            "key": "HR", "name": "People", "issueTypes": [{"id": "20001", "name": "Request"}],
            "workflow": {"statuses": [
                {"id": "30001", "name": "New", "category": "new"},
                {"id": "30002", "name": "Approved", "category": "done"}],
                "transitions": [{"id": "7", "name": "Approve", "from": ["New"],
                                 "to": "Approved"}]}}],
            "issues": [{"project": "HR", "summary": "seeded", "issuetype": "Request"}]})
        self.assertEqual(self.ids("HR-1"), ["7"])
        self.assertEqual(self.do("HR-1", "7").status, 204)
        self.assertEqual(self.ids("HR-1"), [])

    def test_bad_workflow_seed_rejected(self):
        for proj in ({"key": "BAD", "name": "b", "workflow": {"statuses": []}},
                     {"key": "BAD", "name": "b", "workflow": {
                         "statuses": [{"name": "A", "category": "new"}],
                         "transitions": [{"name": "x", "to": "Nowhere"}]}},
                     {"key": "bad", "name": "lower-case key"},
                     {"key": "DEMO", "name": "duplicate"}):
            r = EMU.control("POST", "/seed", {"projects": [proj]})
            self.assertEqual(r.status, 400, (proj, r))


if __name__ == "__main__":
    unittest.main()
