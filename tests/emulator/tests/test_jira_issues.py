"""Jira REST v3 issues: create (single and bulk), get, edit, delete, issue
properties and assignee, with the error bodies Jira returns (notes §3.1)."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emulib  # noqa: E402

EMU = None
API = "/rest/api/3"
ALICE = "5b10a2844c20165700ede21a"
BOB = "5b10a2844c20165700ede21b"
DAVE = "5b10a2844c20165700ede21d"  # inactive in the demo seed
NOT_FOUND = "Issue does not exist or you do not have permission to see it."


def setUpModule():
    global EMU
    EMU = emulib.Emulator(["--seed-demo", "--rate-limits", "off", "--seed-rng", "3"]).__enter__()


def tearDownModule():
    assert EMU.stop() == 0


def adf(text):
    return {"type": "doc", "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}]}


def issue_body(summary="Provision jdoe", project="DEMO", itype="Task", **fields):
    f = {"project": {"key": project}, "issuetype": {"name": itype}}
    if summary is not None:
        f["summary"] = summary
    f.update(fields)
    return {"fields": f}


class IssueCase(unittest.TestCase):
    def setUp(self):
        EMU.reset(seed_demo=True)

    def create(self, *a, **kw):
        r = EMU.jira("POST", API + "/issue", issue_body(*a, **kw))
        self.assertEqual(r.status, 201, r)
        return r.body

    def get(self, key, query=""):
        r = EMU.jira("GET", API + "/issue/" + key + query)
        self.assertEqual(r.status, 200, r)
        return r.body

    def assertFieldError(self, r, field, text=None):
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.body["errorMessages"], [])
        self.assertIn(field, r.body["errors"])
        if text is not None:
            self.assertEqual(r.body["errors"][field], text)

    def assertMessage(self, r, status, text=None):
        self.assertEqual(r.status, status, r)
        self.assertEqual(len(r.body["errorMessages"]), 1, r)
        self.assertEqual(r.body["errors"], {})
        if text is not None:
            self.assertEqual(r.body["errorMessages"][0], text)


class Create(IssueCase):
    def test_create_returns_id_key_self_and_counts(self):
        EMU.reset_counters()
        b = self.create(labels=["iam", "jiraprov"], description=adf("hello"),
                        priority={"name": "High"}, assignee={"accountId": ALICE})
        self.assertEqual(b["key"], "DEMO-1")
        self.assertTrue(b["id"].isdigit())
        self.assertEqual(b["self"], EMU.url + API + "/issue/" + b["id"])
        self.assertEqual(emulib.mutation_count(EMU.counters(), "issue", "DEMO-1", "create"), 1)
        f = self.get("DEMO-1")["fields"]
        self.assertEqual(f["summary"], "Provision jdoe")
        self.assertEqual(f["labels"], ["iam", "jiraprov"])
        self.assertEqual(f["description"], adf("hello"))
        self.assertEqual(f["priority"]["name"], "High")
        self.assertEqual(f["priority"]["id"], "2")
        self.assertEqual(f["assignee"]["accountId"], ALICE)
        self.assertEqual(f["status"]["name"], "To Do")
        self.assertEqual(f["status"]["statusCategory"]["key"], "new")
        self.assertEqual(f["issuetype"]["name"], "Task")
        self.assertFalse(f["issuetype"]["subtask"])
        self.assertEqual(f["project"]["key"], "DEMO")
        self.assertRegex(f["created"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")
        self.assertEqual(f["created"], f["updated"])
        # The caller (Basic auth email) is the reporter.
        self.assertEqual(f["reporter"]["emailAddress"], emulib.DEFAULT_JIRA_EMAIL)

    def test_keys_increment_per_project(self):
        self.assertEqual(self.create()["key"], "DEMO-1")
        self.assertEqual(self.create()["key"], "DEMO-2")
        self.assertEqual(self.create(project="OPS")["key"], "OPS-1")

    def test_project_and_issuetype_by_id_and_defaults(self):
        r = EMU.jira("POST", API + "/issue", {"fields": {
            "project": {"id": "10000"}, "issuetype": {"id": "10002"}, "summary": "by id"}})
        self.assertEqual(r.status, 201, r)
        f = self.get(r.body["key"])["fields"]
        self.assertEqual(f["issuetype"]["name"], "Bug")
        self.assertEqual(f["priority"]["name"], "Medium")
        self.assertIsNone(f["assignee"])
        self.assertIsNone(f["description"])
        self.assertEqual(f["labels"], [])

    def test_priority_by_id(self):
        self.create(priority={"id": "5"})
        self.assertEqual(self.get("DEMO-1")["fields"]["priority"]["name"], "Lowest")

    def test_missing_summary_is_jira_error_body(self):
        r = EMU.jira("POST", API + "/issue", issue_body(summary=None))
        self.assertEqual(r.status, 400)
        self.assertEqual(r.body, {"errorMessages": [],
                                  "errors": {"summary": "You must specify a summary of the issue."}})

    def test_empty_and_multiline_summary(self):
        self.assertFieldError(EMU.jira("POST", API + "/issue", issue_body(summary="")), "summary")
        self.assertFieldError(EMU.jira("POST", API + "/issue", issue_body(summary="a\nb")),
                              "summary",
                              "The summary is invalid because it contains newline characters.")
        self.assertFieldError(EMU.jira("POST", API + "/issue", issue_body(summary="x" * 256)),
                              "summary", "Summary must be less than 255 characters.")

    def test_plain_string_description_rejected(self):
        r = EMU.jira("POST", API + "/issue", issue_body(description="plain text"))
        self.assertFieldError(r, "description",
                              "Operation value must be an Atlassian Document "
                              "(see the Atlassian Document Format)")

    def test_malformed_adf_rejected(self):
        for bad in ({"type": "doc", "version": 2, "content": []},
                    {"type": "paragraph", "version": 1, "content": []},
                    {"type": "doc", "version": 1},
                    {"type": "doc", "version": 1, "content": [{"type": "blink"}]},
                    {"type": "doc", "version": 1, "content": [
                        {"type": "paragraph", "content": [{"type": "text"}]}]},
                    {"type": "doc", "version": 1, "content": [
                        {"type": "paragraph", "content": [
                            {"type": "text", "text": "x", "marks": [{"type": "sparkle"}]}]}]}):
            r = EMU.jira("POST", API + "/issue", issue_body(description=bad))
            self.assertFieldError(r, "description")
        self.create(description={"type": "doc", "version": 1, "content": []})
        self.create(description=None)

    def test_labels_with_spaces_rejected(self):
        r = EMU.jira("POST", API + "/issue", issue_body(labels=["ok", "not ok"]))
        self.assertFieldError(r, "labels", "The label 'not ok' contains spaces which is invalid.")
        self.assertFieldError(EMU.jira("POST", API + "/issue", issue_body(labels=[5])), "labels")

    def test_labels_are_sorted_and_unique(self):
        self.create(labels=["b", "a", "b"])
        self.assertEqual(self.get("DEMO-1")["fields"]["labels"], ["a", "b"])

    def test_invalid_priority(self):
        self.assertFieldError(EMU.jira("POST", API + "/issue", issue_body(priority={"name": "Urgent"})),
                              "priority")
        self.assertFieldError(EMU.jira("POST", API + "/issue", issue_body(priority={"id": "9"})),
                              "priority")

    def test_unknown_and_inactive_assignee(self):
        r = EMU.jira("POST", API + "/issue", issue_body(assignee={"accountId": "nobody"}))
        self.assertFieldError(r, "assignee")
        r = EMU.jira("POST", API + "/issue", issue_body(assignee={"accountId": DAVE}))
        self.assertFieldError(r, "assignee", "User '%s' cannot be assigned issues." % DAVE)

    def test_unknown_project_and_issuetype(self):
        r = EMU.jira("POST", API + "/issue", issue_body(project="NOPE"))
        self.assertFieldError(r, "project", "Specify a valid project ID or key")
        r = EMU.jira("POST", API + "/issue", issue_body(itype="Epic"))
        self.assertFieldError(r, "issuetype", "The issue type selected is invalid.")
        r = EMU.jira("POST", API + "/issue", {"fields": {"project": {"key": "DEMO"},
                                                          "summary": "x"}})
        self.assertFieldError(r, "issuetype", "Specify an issue type")
        # Incident exists in OPS only.
        self.assertFieldError(EMU.jira("POST", API + "/issue", issue_body(itype="Incident")),
                              "issuetype")
        self.create(project="OPS", itype="Incident")

    def test_all_field_errors_reported_together(self):
        r = EMU.jira("POST", API + "/issue", issue_body(summary=None, description="x",
                                                        labels=["a b"]))
        self.assertEqual(r.status, 400)
        self.assertEqual(set(r.body["errors"]), {"summary", "description", "labels"})

    def test_unknown_field_not_on_screen(self):
        r = EMU.jira("POST", API + "/issue", issue_body(customfield_10099="x"))
        self.assertFieldError(r, "customfield_10099",
                              "Field 'customfield_10099' cannot be set. It is not on the "
                              "appropriate screen, or unknown.")

    def test_bad_json_and_missing_fields(self):
        r = EMU.jira("POST", API + "/issue", "{not json")
        self.assertMessage(r, 400)
        r = EMU.jira("POST", API + "/issue", {"update": {}})
        self.assertMessage(r, 400)
        self.assertEqual(EMU.state()["jira"]["issues"], [])

    def test_update_verbs_on_create(self):
        r = EMU.jira("POST", API + "/issue", {
            "fields": {"project": {"key": "DEMO"}, "issuetype": {"name": "Task"}},
            "update": {"summary": [{"set": "via update"}], "labels": [{"add": "x"}]}})
        self.assertEqual(r.status, 201, r)
        f = self.get(r.body["key"])["fields"]
        self.assertEqual((f["summary"], f["labels"]), ("via update", ["x"]))

    def test_properties_on_create(self):
        b = issue_body()
        b["properties"] = [{"key": "jiraprov", "value": {"eventId": "e-1"}}]
        r = EMU.jira("POST", API + "/issue", b)
        self.assertEqual(r.status, 201, r)
        r = EMU.jira("GET", API + "/issue/DEMO-1/properties/jiraprov")
        self.assertEqual(r.body, {"key": "jiraprov", "value": {"eventId": "e-1"}})

    def test_no_auth_is_401(self):
        r = EMU.jira("POST", API + "/issue", issue_body(), auth=None)
        self.assertEqual(r.status, 401)
        self.assertEqual(EMU.state()["jira"]["issues"], [])


class Subtasks(IssueCase):
    def test_subtask_needs_parent(self):
        r = EMU.jira("POST", API + "/issue", issue_body(itype="Sub-task"))
        self.assertFieldError(r, "parent", "Issue type is a sub-task but parent issue key or id "
                                           "not specified.")

    def test_subtask_with_parent_and_listing(self):
        parent = self.create()
        sub = self.create(itype="Sub-task", parent={"key": parent["key"]})
        sub2 = self.create(itype="Sub-task", parent={"id": parent["id"]})
        f = self.get(sub["key"])["fields"]
        self.assertEqual(f["parent"]["key"], parent["key"])
        self.assertTrue(f["issuetype"]["subtask"])
        pf = self.get(parent["key"])["fields"]
        self.assertEqual([s["key"] for s in pf["subtasks"]], [sub["key"], sub2["key"]])

    def test_bad_parents(self):
        parent = self.create()
        other = self.create(project="OPS")
        sub = self.create(itype="Sub-task", parent={"key": parent["key"]})
        for p, itype in ((other["key"], "Sub-task"), (sub["key"], "Sub-task"),
                         (parent["key"], "Task"), ("DEMO-99", "Sub-task")):
            r = EMU.jira("POST", API + "/issue", issue_body(itype=itype, parent={"key": p}))
            self.assertFieldError(r, "parent")


class Get(IssueCase):
    def test_404_body(self):
        r = EMU.jira("GET", API + "/issue/DEMO-99")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.body, {"errorMessages": [NOT_FOUND], "errors": {}})
        self.assertEqual(EMU.jira("GET", API + "/issue/99999").status, 404)

    def test_by_id_and_case_insensitive_key(self):
        b = self.create()
        self.assertEqual(self.get(b["id"])["key"], "DEMO-1")
        self.assertEqual(self.get("demo-1")["key"], "DEMO-1")

    def test_fields_param(self):
        self.create(labels=["x"])
        body = self.get("DEMO-1", "?fields=summary,labels")
        self.assertEqual(set(body["fields"]), {"summary", "labels"})
        body = self.get("DEMO-1", "?fields=*all,-description,-labels")
        self.assertNotIn("description", body["fields"])
        self.assertNotIn("labels", body["fields"])
        self.assertIn("status", body["fields"])
        body = self.get("DEMO-1", "?fields=summary&fields=status")
        self.assertEqual(set(body["fields"]), {"summary", "status"})

    def test_properties_param(self):
        self.create()
        for k in ("a", "b"):
            EMU.jira("PUT", API + "/issue/DEMO-1/properties/" + k, {"v": k})
        body = self.get("DEMO-1", "?properties=a")
        self.assertEqual(body["properties"], {"a": {"v": "a"}})
        body = self.get("DEMO-1", "?properties=*all,-a")
        self.assertEqual(body["properties"], {"b": {"v": "b"}})
        self.assertNotIn("properties", self.get("DEMO-1"))


class Edit(IssueCase):
    def test_fields_edit_204_and_counts(self):
        self.create(labels=["a"])
        EMU.reset_counters()
        time.sleep(0.005)  # let the clock move so that updated differs from created
        r = EMU.jira("PUT", API + "/issue/DEMO-1", {"fields": {
            "summary": "renamed", "description": adf("d"), "priority": {"name": "Low"},
            "assignee": {"accountId": BOB}, "labels": ["z"]}})
        self.assertEqual(r.status, 204, r)
        self.assertIsNone(r.body)
        f = self.get("DEMO-1")["fields"]
        self.assertEqual((f["summary"], f["priority"]["name"], f["assignee"]["accountId"],
                          f["labels"]), ("renamed", "Low", BOB, ["z"]))
        self.assertEqual(f["description"], adf("d"))
        self.assertGreater(f["updated"], f["created"])
        self.assertEqual(emulib.mutation_count(EMU.counters(), "issue", "DEMO-1", "update"), 1)

    def test_update_verbs(self):
        self.create(labels=["a", "b"])
        r = EMU.jira("PUT", API + "/issue/DEMO-1", {"update": {
            "labels": [{"add": "c"}, {"remove": "a"}], "summary": [{"set": "s2"}]}})
        self.assertEqual(r.status, 204, r)
        f = self.get("DEMO-1")["fields"]
        self.assertEqual((f["labels"], f["summary"]), (["b", "c"], "s2"))
        r = EMU.jira("PUT", API + "/issue/DEMO-1", {"update": {"labels": [{"set": ["q"]}],
                                                              "assignee": [{"set": None}]}})
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.get("DEMO-1")["fields"]["labels"], ["q"])

    def test_same_field_in_fields_and_update(self):
        self.create()
        r = EMU.jira("PUT", API + "/issue/DEMO-1", {"fields": {"summary": "a"},
                                                   "update": {"summary": [{"set": "b"}]}})
        self.assertFieldError(r, "summary")
        self.assertEqual(self.get("DEMO-1")["fields"]["summary"], "Provision jdoe")

    def test_bad_edits_change_nothing(self):
        self.create(labels=["keep"])
        for body in ({"fields": {"summary": "ok", "labels": ["bad label"]}},
                     {"fields": {"summary": ""}},
                     {"fields": {"description": "text"}},
                     {"update": {"summary": [{"add": "x"}]}},
                     {"update": {"labels": [{"add": "x"}], "customfield_1": [{"set": 1}]}},
                     {"fields": {"project": {"key": "OPS"}}}):
            r = EMU.jira("PUT", API + "/issue/DEMO-1", body)
            self.assertEqual(r.status, 400, (body, r))
        f = self.get("DEMO-1")["fields"]
        self.assertEqual((f["summary"], f["labels"]), ("Provision jdoe", ["keep"]))

    def test_return_issue(self):
        self.create()
        r = EMU.jira("PUT", API + "/issue/DEMO-1?returnIssue=true", {"fields": {"summary": "r"}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body["fields"]["summary"], "r")

    def test_missing_body_and_404(self):
        self.create()
        self.assertMessage(EMU.jira("PUT", API + "/issue/DEMO-1"), 400)
        r = EMU.jira("PUT", API + "/issue/DEMO-9", {"fields": {"summary": "x"}})
        self.assertMessage(r, 404, NOT_FOUND)


class Delete(IssueCase):
    def test_delete_plain(self):
        self.create()
        EMU.reset_counters()
        r = EMU.jira("DELETE", API + "/issue/DEMO-1")
        self.assertEqual(r.status, 204, r)
        self.assertEqual(EMU.jira("GET", API + "/issue/DEMO-1").status, 404)
        self.assertEqual(emulib.mutation_count(EMU.counters(), "issue", "DEMO-1", "delete"), 1)
        self.assertMessage(EMU.jira("DELETE", API + "/issue/DEMO-1"), 404, NOT_FOUND)
        # Keys are not reused.
        self.assertEqual(self.create()["key"], "DEMO-2")

    def test_subtasks_rule(self):
        p = self.create()
        s = self.create(itype="Sub-task", parent={"key": p["key"]})
        for q in ("", "?deleteSubtasks=false"):
            r = EMU.jira("DELETE", API + "/issue/" + p["key"] + q)
            self.assertMessage(r, 400)
        self.assertMessage(EMU.jira("DELETE", API + "/issue/DEMO-1?deleteSubtasks=maybe"), 400)
        r = EMU.jira("DELETE", API + "/issue/" + p["key"] + "?deleteSubtasks=true")
        self.assertEqual(r.status, 204, r)
        self.assertEqual(EMU.jira("GET", API + "/issue/" + s["key"]).status, 404)

    def test_delete_subtask_alone(self):
        p = self.create()
        s = self.create(itype="Sub-task", parent={"key": p["key"]})
        self.assertEqual(EMU.jira("DELETE", API + "/issue/" + s["key"]).status, 204)
        self.assertEqual(self.get(p["key"])["fields"]["subtasks"], [])
        self.assertEqual(EMU.jira("DELETE", API + "/issue/" + p["key"]).status, 204)


class Properties(IssueCase):
    def test_put_get_list_delete(self):
        self.create()
        EMU.reset_counters()
        url = API + "/issue/DEMO-1/properties/jiraprov.event"
        r = EMU.jira("PUT", url, {"eventId": "abc", "n": 1})
        self.assertEqual(r.status, 201, r)
        r = EMU.jira("PUT", url, {"eventId": "def"})
        self.assertEqual(r.status, 200, r)
        r = EMU.jira("GET", url)
        self.assertEqual(r.body, {"key": "jiraprov.event", "value": {"eventId": "def"}})
        r = EMU.jira("PUT", API + "/issue/DEMO-1/properties/scalar", "42")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(EMU.jira("GET", API + "/issue/DEMO-1/properties/scalar").body["value"], 42)
        keys = EMU.jira("GET", API + "/issue/DEMO-1/properties").body["keys"]
        self.assertEqual(sorted(k["key"] for k in keys), ["jiraprov.event", "scalar"])
        self.assertEqual(emulib.mutation_count(EMU.counters(), "issue", "DEMO-1", "property"), 3)
        self.assertEqual(EMU.jira("DELETE", url).status, 204)
        r = EMU.jira("GET", url)
        self.assertMessage(r, 404, "The property with key 'jiraprov.event' does not exist.")
        self.assertEqual(EMU.jira("DELETE", url).status, 404)

    def test_property_errors(self):
        self.create()
        base = API + "/issue/DEMO-1/properties/"
        self.assertMessage(EMU.jira("PUT", base + "k", "{bad"), 400)
        self.assertMessage(EMU.jira("PUT", base + "k"), 400)
        self.assertMessage(EMU.jira("PUT", base + "k", {"v": "x" * 33000}), 400)
        self.assertMessage(EMU.jira("PUT", base + "k" * 256, {"v": 1}), 400)
        self.assertMessage(EMU.jira("PUT", API + "/issue/DEMO-7/properties/k", {"v": 1}), 404,
                           NOT_FOUND)


class Assignee(IssueCase):
    def test_assign_unassign_default(self):
        self.create()
        url = API + "/issue/DEMO-1/assignee"
        self.assertEqual(EMU.jira("PUT", url, {"accountId": ALICE}).status, 204)
        self.assertEqual(self.get("DEMO-1")["fields"]["assignee"]["accountId"], ALICE)
        self.assertEqual(EMU.jira("PUT", url, {"accountId": None}).status, 204)
        self.assertIsNone(self.get("DEMO-1")["fields"]["assignee"])
        # "-1": the project's default assignee; DEMO has no lead, so unassigned.
        self.assertEqual(EMU.jira("PUT", url, {"accountId": "-1"}).status, 204)
        self.assertIsNone(self.get("DEMO-1")["fields"]["assignee"])

    def test_assign_errors(self):
        self.create()
        url = API + "/issue/DEMO-1/assignee"
        self.assertFieldError(EMU.jira("PUT", url, {"accountId": "nobody"}), "assignee")
        self.assertFieldError(EMU.jira("PUT", url, {"accountId": DAVE}), "assignee")
        self.assertMessage(EMU.jira("PUT", url, {}), 400)
        self.assertMessage(EMU.jira("PUT", url, {"name": "alice"}), 400)
        self.assertEqual(EMU.jira("PUT", API + "/issue/DEMO-5/assignee",
                                  {"accountId": ALICE}).status, 404)


class Bulk(IssueCase):
    def test_partial_success(self):
        r = EMU.jira("POST", API + "/issue/bulk", {"issueUpdates": [
            issue_body("one"), issue_body(summary=None), issue_body("three")]})
        self.assertEqual(r.status, 201, r)
        self.assertEqual([i["key"] for i in r.body["issues"]], ["DEMO-1", "DEMO-2"])
        self.assertEqual(len(r.body["errors"]), 1)
        err = r.body["errors"][0]
        self.assertEqual((err["status"], err["failedElementNumber"]), (400, 1))
        self.assertIn("summary", err["elementErrors"]["errors"])

    def test_all_fail_and_limits(self):
        r = EMU.jira("POST", API + "/issue/bulk", {"issueUpdates": [issue_body(summary=None)]})
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.body["issues"], [])
        r = EMU.jira("POST", API + "/issue/bulk", {"issueUpdates": [issue_body()] * 51})
        self.assertEqual(r.status, 400, r)
        self.assertEqual(EMU.state()["jira"]["issues"], [])


class PerIssueLimit(unittest.TestCase):
    """Issue writes share one per-issue window whether the issue is named by
    key or by id (20 writes per 2 s)."""

    def test_key_and_id_count_together(self):
        with emulib.Emulator(["--seed-demo"]) as emu:
            r = emu.jira("POST", API + "/issue", issue_body())
            self.assertEqual(r.status, 201, r)
            ident = (r.body["key"], r.body["id"])
            statuses = []
            for i in range(24):
                r = emu.jira("PUT", API + "/issue/" + ident[i % 2],
                             {"fields": {"summary": "s%d" % i}})
                statuses.append(r.status)
                if r.status == 429:
                    self.assertEqual(r.headers.get("ratelimit-reason"), "jira-per-issue-on-write")
                    self.assertIn("retry-after", r.headers)
                    break
            self.assertIn(429, statuses)
            self.assertLessEqual(statuses.index(429), 20)
            # Another issue is not affected.
            r = emu.jira("POST", API + "/issue", issue_body())
            r = emu.jira("PUT", API + "/issue/" + r.body["key"], {"fields": {"summary": "x"}})
            self.assertEqual(r.status, 204, r)


if __name__ == "__main__":
    unittest.main()
