"""Jira REST v3 enhanced search (/search/jql): the JQL subset, bounded
queries, quoting, ordering, field selection and nextPageToken paging; the
removed /search endpoint answers 410 (notes §3.2)."""

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
UNBOUNDED = ("Unbounded JQL queries are not allowed here. Please add a search restriction to "
             "your query.")


def setUpModule():
    global EMU
    EMU = emulib.Emulator(["--rate-limits", "off"]).__enter__()


def tearDownModule():
    assert EMU.stop() == 0


def search(jql=None, **params):
    q = {}
    if jql is not None:
        q["jql"] = jql
    q.update(params)
    return EMU.jira("GET", API + "/search/jql?" + urllib.parse.urlencode(q, doseq=True))


def post_search(**body):
    return EMU.jira("POST", API + "/search/jql", body)


def keys_of(r):
    return [i["key"] for i in r.body["issues"]]


class SearchCase(unittest.TestCase):
    """DEMO-1..DEMO-6 and OPS-1..OPS-3 with labels, statuses, assignees and
    properties; seeded through the control API."""

    def setUp(self):
        EMU.reset(seed_demo=True)
        issues = []
        for n in range(1, 7):
            issues.append({
                "project": "DEMO", "summary": "demo issue %d" % n,
                "labels": ["iam"] + (["even"] if n % 2 == 0 else ["odd"]),
                "status": ["To Do", "In Progress", "Done"][n % 3],
                "assignee": ALICE if n <= 2 else (BOB if n <= 4 else None),
                "properties": {"jiraprov": {"eventId": "e-%d" % n, "tags": ["t%d" % n, "all"]}},
                "created": 1700000000000 + n * 1000, "updated": 1700000000000 + (10 - n) * 1000})
        for n in range(1, 4):
            issues.append({"project": "OPS", "summary": "ops issue %d" % n, "labels": ["ops"],
                           "created": 1700000100000 + n * 1000})
        issues = [dict((k, v) for k, v in i.items() if v is not None) for i in issues]
        EMU.seed({"issues": issues})

    def assertJqlError(self, r, prefix=None):
        self.assertEqual(r.status, 400, r)
        self.assertEqual(len(r.body["errorMessages"]), 1, r)
        if prefix is not None:
            self.assertTrue(r.body["errorMessages"][0].startswith(prefix), r.body)

    def keys(self, jql, **kw):
        r = search(jql, fields="key", maxResults=100, **kw)
        self.assertEqual(r.status, 200, (jql, r))
        return keys_of(r)


class Basics(SearchCase):
    def test_default_fields_are_id_only(self):
        r = search("project = OPS")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.body["issues"]), 3)
        for i in r.body["issues"]:
            self.assertEqual(list(i), ["id"])
        self.assertIs(r.body["isLast"], True)
        self.assertNotIn("nextPageToken", r.body)
        self.assertNotIn("total", r.body)

    def test_named_and_navigable_fields(self):
        r = search("key = DEMO-1", fields="summary,status")
        i = r.body["issues"][0]
        self.assertEqual(i["key"], "DEMO-1")
        self.assertEqual(set(i["fields"]), {"summary", "status"})
        r = search("key = DEMO-1", fields="*navigable")
        self.assertIn("labels", r.body["issues"][0]["fields"])
        r = post_search(jql="key = DEMO-1", fields=["summary", "assignee"])
        self.assertEqual(r.body["issues"][0]["fields"]["assignee"]["accountId"], ALICE)

    def test_properties_param(self):
        r = search("key = DEMO-2", fields="key", properties="jiraprov")
        self.assertEqual(r.body["issues"][0]["properties"]["jiraprov"]["eventId"], "e-2")
        r = search("key = DEMO-2", properties="a,b,c,d,e,f")
        self.assertEqual(r.status, 400, r)

    def test_old_search_is_gone(self):
        for method in ("GET", "POST"):
            r = EMU.jira(method, API + "/search?jql=project%3DDEMO",
                         {"jql": "project = DEMO"} if method == "POST" else None)
            self.assertEqual(r.status, 410, r)
            self.assertIn("/rest/api/3/search/jql", r.body["errorMessages"][0])
        self.assertEqual(EMU.jira("GET", "/rest/api/2/search?jql=x").status, 410)

    def test_unbounded(self):
        for jql in (None, "", "   ", "ORDER BY key", "order by created DESC"):
            r = search(jql)
            self.assertEqual(r.status, 400, (jql, r))
            self.assertEqual(r.body, {"errorMessages": [UNBOUNDED], "errors": {}})
        self.assertEqual(post_search(jql="order by key").status, 400)
        self.assertEqual(post_search().status, 400)

    def test_post_body_validation(self):
        self.assertEqual(post_search(jql="project = DEMO", bogus=1).status, 400)
        self.assertEqual(post_search(jql="project = DEMO", maxResults="5").status, 400)
        self.assertEqual(post_search(jql="project = DEMO", fields="summary").status, 400)
        r = post_search(jql="project = DEMO", reconcileIssues=[10000])
        self.assertEqual(r.status, 200, r)

    def test_max_results_bounds(self):
        self.assertEqual(search("project = DEMO", maxResults=0).status, 400)
        self.assertEqual(search("project = DEMO", maxResults="x").status, 400)


class Clauses(SearchCase):
    def test_project(self):
        self.assertEqual(len(self.keys("project = DEMO")), 6)
        self.assertEqual(len(self.keys("project in (DEMO, OPS)")), 9)
        self.assertEqual(len(self.keys("project = 10001")), 3)
        self.assertEqual(len(self.keys('project = "Demo project"')), 6)
        self.assertEqual(len(self.keys("project != DEMO")), 3)
        self.assertEqual(len(self.keys("project not in (DEMO)")), 3)

    def test_labels(self):
        self.assertEqual(sorted(self.keys("labels = even")), ["DEMO-2", "DEMO-4", "DEMO-6"])
        self.assertEqual(len(self.keys("labels in (even, ops)")), 6)
        self.assertEqual(len(self.keys("labels = EVEN")), 3)  # case-insensitive
        self.assertEqual(self.keys("labels = nosuchlabel"), [])  # not an error
        self.assertEqual(len(self.keys("labels != even")), 6)
        self.assertEqual(len(self.keys("project = DEMO AND labels is not EMPTY")), 6)

    def test_key_and_id(self):
        self.assertEqual(self.keys("key = DEMO-3"), ["DEMO-3"])
        self.assertEqual(sorted(self.keys("key in (DEMO-1, OPS-2)")), ["DEMO-1", "OPS-2"])
        self.assertEqual(self.keys("issuekey = demo-2"), ["DEMO-2"])
        iid = search("key = DEMO-5").body["issues"][0]["id"]
        self.assertEqual(self.keys("id = %s" % iid), ["DEMO-5"])
        self.assertEqual(self.keys("key = 999999"), [])
        self.assertEqual(sorted(self.keys("key > DEMO-4")), ["DEMO-5", "DEMO-6"])

    def test_missing_key_is_an_error(self):
        self.assertJqlError(search("key = DEMO-99"),
                            "An issue with key 'DEMO-99' does not exist for field 'key'.")
        self.assertJqlError(search("key = garbage"))

    def test_status(self):
        self.assertEqual(sorted(self.keys('status = "In Progress"')), ["DEMO-1", "DEMO-4"])
        self.assertEqual(sorted(self.keys("status = Done AND project = DEMO")),
                         ["DEMO-2", "DEMO-5"])
        self.assertEqual(len(self.keys("status in ('To Do', Open)")), 5)
        self.assertEqual(len(self.keys("statusCategory = done")), 2)
        self.assertJqlError(search('status = "Nope"'),
                            "The value 'Nope' does not exist for the field 'status'.")

    def test_assignee(self):
        self.assertEqual(sorted(self.keys("assignee = %s" % ALICE)), ["DEMO-1", "DEMO-2"])
        self.assertEqual(len(self.keys("assignee in (%s, %s)" % (ALICE, BOB))), 4)
        self.assertEqual(len(self.keys("assignee is EMPTY")), 5)
        self.assertEqual(len(self.keys("assignee = EMPTY")), 5)
        # != never matches unassigned issues, as in Jira.
        self.assertEqual(sorted(self.keys("assignee != %s" % ALICE)), ["DEMO-3", "DEMO-4"])
        self.assertJqlError(search("assignee = nobody"),
                            "The value 'nobody' does not exist for the field 'assignee'.")

    def test_current_user(self):
        r = EMU.jira("PUT", API + "/issue/OPS-1/assignee",
                     {"accountId": "5b10ac8d82e05b22cc7d4ef5"})
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.keys("assignee = currentUser()"), ["OPS-1"])
        self.assertJqlError(search("assignee = someoneElse()"),
                            "Error in the JQL Query: Unable to find JQL function")

    def test_property(self):
        self.assertEqual(self.keys('issue.property[jiraprov].eventId = "e-4"'), ["DEMO-4"])
        self.assertEqual(self.keys("issue.property[jiraprov].eventId = e-4"), ["DEMO-4"])
        self.assertEqual(self.keys('issue.property[jiraprov].tags = "t3"'), ["DEMO-3"])
        self.assertEqual(len(self.keys('issue.property[jiraprov].tags = "all"')), 6)
        self.assertEqual(len(self.keys('issue.property[jiraprov].eventId in ("e-1", "e-2")')), 2)
        self.assertEqual(len(self.keys("issue.property[jiraprov].eventId is EMPTY "
                                       "AND project = OPS")), 3)
        self.assertEqual(self.keys('issue.property[other].eventId = "e-4"'), [])

    def test_property_index_follows_updates(self):
        url = API + "/issue/DEMO-4/properties/jiraprov"
        self.assertEqual(EMU.jira("PUT", url, {"eventId": "changed"}).status, 200)
        self.assertEqual(self.keys('issue.property[jiraprov].eventId = "e-4"'), [])
        self.assertEqual(self.keys('issue.property[jiraprov].eventId = "changed"'), ["DEMO-4"])
        self.assertEqual(EMU.jira("DELETE", url).status, 204)
        self.assertEqual(self.keys('issue.property[jiraprov].eventId = "changed"'), [])
        self.assertEqual(EMU.jira("DELETE", API + "/issue/DEMO-5").status, 204)
        self.assertEqual(self.keys('issue.property[jiraprov].eventId = "e-5"'), [])
        self.assertEqual(self.keys("labels = odd"), ["DEMO-3", "DEMO-1"])

    def test_label_index_follows_edits(self):
        r = EMU.jira("PUT", API + "/issue/DEMO-1", {"update": {"labels": [{"remove": "odd"},
                                                                          {"add": "fresh"}]}})
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.keys("labels = fresh"), ["DEMO-1"])
        self.assertNotIn("DEMO-1", self.keys("labels = odd"))

    def test_boolean_logic(self):
        self.assertEqual(sorted(self.keys("project = DEMO AND labels = even AND status = Done")),
                         ["DEMO-2"])
        self.assertEqual(len(self.keys("labels = even OR project = OPS")), 6)
        self.assertEqual(sorted(self.keys("project = DEMO AND (labels = odd OR key = DEMO-2) "
                                          "AND assignee = %s" % ALICE)), ["DEMO-1", "DEMO-2"])
        self.assertEqual(len(self.keys("project = DEMO AND NOT labels = even")), 3)
        self.assertEqual(len(self.keys("project = DEMO && !(labels = even)")), 3)
        self.assertEqual(len(self.keys("labels = ops || key = DEMO-1")), 4)
        # AND binds tighter than OR.
        self.assertEqual(sorted(self.keys("key = OPS-1 OR project = DEMO AND labels = even")),
                         ["DEMO-2", "DEMO-4", "DEMO-6", "OPS-1"])

    def test_other_fields(self):
        self.assertEqual(len(self.keys("issuetype = Task")), 9)
        self.assertEqual(len(self.keys("priority = Medium")), 9)
        self.assertEqual(self.keys('summary ~ "issue 3" AND project = DEMO'), ["DEMO-3"])
        self.assertEqual(len(self.keys('created >= "2023-11-14 22:13" AND project = DEMO')), 6)
        self.assertEqual(self.keys("created > -1d"), [])
        self.assertEqual(len(self.keys("updated < 2030-01-01 AND project = OPS")), 3)


class Quoting(SearchCase):
    def setUp(self):
        super().setUp()
        r = EMU.jira("PUT", API + "/issue/OPS-1", {"fields": {
            "labels": ['say"hi', "back\\slash", "it's"]}})
        self.assertEqual(r.status, 204, r)

    def test_escapes(self):
        self.assertEqual(self.keys(r'labels = "say\"hi"'), ["OPS-1"])
        self.assertEqual(self.keys(r'labels = "back\\slash"'), ["OPS-1"])
        self.assertEqual(self.keys(r"labels = 'it\'s'"), ["OPS-1"])
        self.assertEqual(self.keys('labels = "it\'s"'), ["OPS-1"])
        self.assertEqual(self.keys('"labels" = "ops" AND key = OPS-2'), ["OPS-2"])

    def test_bad_quoting(self):
        self.assertJqlError(search('labels = "open'), "Error in the JQL Query: The quoted string")
        self.assertJqlError(search(r'labels = "bad\q"'), "Error in the JQL Query: The escape")


class Errors(SearchCase):
    def test_unknown_field(self):
        r = search("foo = bar")
        self.assertEqual(r.body, {"errorMessages": [
            "Field 'foo' does not exist or you do not have permission to view it."],
            "errors": {}})
        self.assertJqlError(search("project = DEMO ORDER BY foo"), "Field 'foo' does not exist")

    def test_syntax(self):
        for jql in ("project DEMO", "project = DEMO AND", "project = DEMO labels = x",
                    "(project = DEMO", "project in DEMO", "project = DEMO ORDER key",
                    "project = DEMO ORDER BY key sideways", "project is DEMO", "= DEMO"):
            r = search(jql)
            self.assertEqual(r.status, 400, (jql, r))
            self.assertEqual(len(r.body["errorMessages"]), 1)

    def test_operator_not_supported(self):
        self.assertJqlError(search("project ~ DEMO"),
                            "The operator '~' is not supported by the 'project' field.")
        self.assertJqlError(search("labels > x"))

    def test_unknown_project(self):
        self.assertJqlError(search("project = NOPE"),
                            "The value 'NOPE' does not exist for the field 'project'.")


class Ordering(SearchCase):
    def test_default_is_newest_first(self):
        self.assertEqual(self.keys("project = DEMO"),
                         ["DEMO-6", "DEMO-5", "DEMO-4", "DEMO-3", "DEMO-2", "DEMO-1"])

    def test_order_by(self):
        self.assertEqual(self.keys("project = DEMO ORDER BY key ASC")[:3],
                         ["DEMO-1", "DEMO-2", "DEMO-3"])
        self.assertEqual(self.keys("project in (DEMO, OPS) ORDER BY key DESC")[:2],
                         ["OPS-3", "OPS-2"])
        self.assertEqual(self.keys("project = DEMO ORDER BY updated DESC")[0], "DEMO-1")
        self.assertEqual(self.keys("project = DEMO ORDER BY created")[0], "DEMO-6")
        self.assertEqual(self.keys("project = DEMO ORDER BY created ASC")[0], "DEMO-1")
        self.assertEqual(self.keys("project = DEMO order by status ASC, key DESC")[:2],
                         ["DEMO-5", "DEMO-2"])

    def test_too_many_and_unsortable(self):
        self.assertJqlError(search("project = DEMO ORDER BY key, created, updated, summary, "
                                   "status, priority, id, assignee"))
        self.assertJqlError(search("project = DEMO ORDER BY labels"))


class Paging(unittest.TestCase):
    """Over many issues: tokens chain pages, the last page has no token and
    nothing is skipped or repeated even when issues go away in between."""

    @classmethod
    def setUpClass(cls):
        EMU.reset(seed_demo=True)
        EMU.seed({"issues": [{"project": "DEMO", "summary": "bulk %d" % n,
                              "labels": ["bulk"]} for n in range(1, 131)]})

    def pages(self, fetch):
        seen, tokens, token = [], [], None
        for _ in range(20):
            r = fetch(token)
            self.assertEqual(r.status, 200, r)
            seen += [i["id"] for i in r.body["issues"]]
            token = r.body.get("nextPageToken")
            if r.body["isLast"]:
                self.assertIsNone(token)
                break
            self.assertIsInstance(token, str)
            tokens.append(token)
        return seen, tokens

    def test_get_paging(self):
        def fetch(tok):
            params = {"maxResults": 50}
            if tok:
                params["nextPageToken"] = tok
            return search("labels = bulk ORDER BY key", **params)
        seen, tokens = self.pages(fetch)
        self.assertEqual(len(seen), 130)
        self.assertEqual(len(set(seen)), 130)
        self.assertEqual(len(tokens), 2)

    def test_post_paging_default_page_size(self):
        def fetch(tok):
            body = {"jql": "project = DEMO"}
            if tok:
                body["nextPageToken"] = tok
            return post_search(**body)
        seen, tokens = self.pages(fetch)
        self.assertEqual((len(seen), len(set(seen)), len(tokens)), (130, 130, 2))

    def test_id_only_pages_up_to_5000_and_field_pages_up_to_100(self):
        r = search("project = DEMO", maxResults=10000)
        self.assertEqual((len(r.body["issues"]), r.body["isLast"]), (130, True))
        r = search("project = DEMO", maxResults=10000, fields="summary")
        self.assertEqual((len(r.body["issues"]), r.body["isLast"]), (100, False))

    def test_bad_tokens(self):
        r = search("labels = bulk", maxResults=10)
        tok = r.body["nextPageToken"]
        self.assertEqual(search("labels = bulk", maxResults=10, nextPageToken=tok).status, 200)
        self.assertEqual(search("project = DEMO", maxResults=10, nextPageToken=tok).status, 400)
        self.assertEqual(search("labels = bulk", nextPageToken="!!not-a-token").status, 400)
        self.assertEqual(search("labels = bulk", nextPageToken="AAAA").status, 400)


class PagingWithDeletes(SearchCase):
    def test_delete_between_pages_skips_nothing(self):
        EMU.seed({"issues": [{"project": "DEMO", "summary": "p%d" % n, "labels": ["pg"]}
                             for n in range(30)]})
        r = search("labels = pg ORDER BY key", maxResults=10, fields="key")
        first = keys_of(r)
        # Delete two issues already handed out; the next page must start right
        # after the last key seen.
        for k in first[:2]:
            self.assertEqual(EMU.jira("DELETE", API + "/issue/" + k).status, 204)
        r2 = search("labels = pg ORDER BY key", maxResults=10, fields="key",
                    nextPageToken=r.body["nextPageToken"])
        second = keys_of(r2)
        num = lambda k: int(k.split("-")[1])  # noqa: E731
        self.assertEqual(num(second[0]), num(first[-1]) + 1)
        self.assertEqual(len(second), 10)


if __name__ == "__main__":
    unittest.main()
