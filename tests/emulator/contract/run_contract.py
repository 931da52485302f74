#!/usr/bin/python3
"""Contract test: the emulator's bodies against Atlassian's OpenAPI documents.

Starts jiraprov-jira-emulator (--seed-demo --record FILE, rate limits off so
the tour is deterministic; 429 and 5xx come from the fault API instead) on a
free port, drives a scripted tour that reaches every operation listed in
trim_specs.py with a success and its main error statuses, stops the
emulator, and runs validate.py over the record with --require-coverage.

Fails when validate.py reports a violation or an uncovered operation, or when
the emulator answers a tour step with a status other than the one the notes
and the documents lead us to expect (listed as TOUR lines).

    run_contract.py [EMULATOR_BINARY] [--keep-record FILE]

The binary comes from argv, else $JP_EMULATOR, else $JP_EMULATOR_BIN, else
the newest build*/ copy.  ctest: contract.emulator.
"""

import argparse
import os
import shutil
import sys
import tempfile
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import emulib  # noqa: E402
import validate  # noqa: E402

ALICE = "alice@demo.example"
NOBODY = "5b10ffffffffffffffffffff"  # an accountId nobody has
ADF = {"type": "doc", "version": 1,
       "content": [{"type": "paragraph", "content": [{"type": "text", "text": "contract tour"}]}]}
SCIM_USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
SCIM_GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def q(value):
    return urllib.parse.quote(str(value), safe="")


class Tour:
    def __init__(self, emu):
        self.emu = emu
        self.mismatches = []
        self.steps = 0

    # One call; expect is a status or a tuple of acceptable statuses.
    def call(self, family, method, path, body=None, expect=200, auth=True, why=""):
        fn = getattr(self.emu, family)
        r = fn(method, path, body, auth=auth)
        self.steps += 1
        ok = r.status in expect if isinstance(expect, tuple) else r.status == expect
        if not ok:
            self.mismatches.append("%s %s %s: expected %s, got %d%s: %s" % (
                family, method, path, expect, r.status, " (" + why + ")" if why else "",
                str(r.body)[:200]))
        return r

    def jira(self, method, path, body=None, expect=200, auth=True, why=""):
        return self.call("jira", method, "/rest/api/3" + path, body, expect, auth, why)

    def scim(self, method, path, body=None, expect=200, auth=True, why=""):
        return self.call("scim", method, path, body, expect, auth, why)

    def admin(self, method, path, body=None, expect=204, auth=True, why=""):
        return self.call("admin", method, path, body, expect, auth, why)

    # ------------------------------------------------------------------
    def run(self):
        alice = self.jira_users()
        self.jira_projects_and_roles(alice)
        self.jira_issues(alice)
        self.jira_groups(alice)
        self.scim_discovery()
        self.scim_users()
        self.scim_groups()
        self.admin_lifecycle(alice)
        self.injected_faults()

    def jira_users(self):
        r = self.jira("GET", "/user/search?query=" + q(ALICE))
        alice = r.body[0]["accountId"] if r.status == 200 and r.body else NOBODY
        self.jira("GET", "/user/search", expect=400, why="no query, accountId or property")
        self.jira("GET", "/user/search?query=x", auth=None, expect=401)

        self.jira("GET", "/user?accountId=" + q(alice))
        self.jira("GET", "/user?accountId=%s&expand=groups,applicationRoles" % q(alice))
        self.jira("GET", "/user?accountId=" + NOBODY, expect=404)
        self.jira("GET", "/user?accountId=" + q(alice), auth=None, expect=401)

        self.jira("GET", "/users/search?startAt=0&maxResults=50")
        self.jira("GET", "/users/search?maxResults=-5", expect=400, why="negative maxResults")

        self.jira("GET", "/user/groups?accountId=" + q(alice))
        self.jira("GET", "/user/groups?accountId=" + NOBODY, expect=404)
        self.jira("GET", "/user/groups?accountId=" + q(alice), auth=None, expect=401)

        r = self.jira("POST", "/user", {"emailAddress": "tour.new@demo.example",
                                        "displayName": "Tour New", "products": ["jira-software"]},
                      expect=201)
        new = r.body.get("accountId") if r.status == 201 and isinstance(r.body, dict) else None
        self.jira("POST", "/user", {"displayName": "no email", "products": []}, expect=400,
                  why="emailAddress missing")
        self.jira("POST", "/user", {"emailAddress": "tour.noproducts@demo.example"}, expect=400,
                  why="products is required in the Dec 2025 document (notes §3.3)")
        self.jira("POST", "/user", {"emailAddress": "x@demo.example", "products": []}, auth=None,
                  expect=401)
        if new:
            self.jira("DELETE", "/user?accountId=" + q(new), expect=204)
        self.jira("DELETE", "/user?accountId=" + NOBODY, expect=404)
        self.jira("DELETE", "/user?accountId=" + q(alice), auth=None, expect=401)
        return alice

    def jira_projects_and_roles(self, alice):
        self.jira("GET", "/project/search")
        self.jira("GET", "/project/search?keys=DEMO&maxResults=10&expand=" + q("description,lead,issueTypes,url,insight"))
        self.jira("GET", "/project/search?maxResults=-1", expect=400, why="negative maxResults")
        self.jira("GET", "/project/search", auth=None, expect=401)

        self.jira("GET", "/project/DEMO")
        self.jira("GET", "/project/DEMO?expand=" + q("description,lead,issueTypes,url,projectKeys,insight"))
        self.jira("GET", "/project/NOPE", expect=404)
        self.jira("GET", "/project/DEMO", auth=None, expect=401)

        r = self.jira("GET", "/project/DEMO/role")
        self.jira("GET", "/project/NOPE/role", expect=404)
        self.jira("GET", "/project/DEMO/role", auth=None, expect=401)
        role = None
        if r.status == 200 and isinstance(r.body, dict) and r.body:
            role = sorted(r.body.values())[0].rstrip("/").rsplit("/", 1)[1]
        role = role or "10000"

        base = "/project/DEMO/role/" + role
        self.jira("GET", base)
        self.jira("GET", "/project/DEMO/role/999999", expect=404)
        self.jira("GET", "/project/NOPE/role/" + role, expect=404)
        self.jira("GET", "/project/DEMO/role/abc", expect=(400, 404), why="role id not a number")
        self.jira("GET", base, auth=None, expect=401)

        self.jira("POST", base, {"user": [alice]})
        self.jira("POST", base, {"group": ["jira-software-users"]})
        self.jira("POST", base, {"user": [NOBODY]}, expect=404, why="user not found")
        self.jira("POST", "/project/NOPE/role/" + role, {"user": [alice]}, expect=404)
        self.jira("POST", base, {"user": "not-a-list"}, expect=400)
        self.jira("POST", base, {"user": [alice]}, auth=None, expect=401)

        self.jira("PUT", base, {"categorisedActors": {"atlassian-user-role-actor": [alice]}})
        self.jira("PUT", base, {"categorisedActors": {"atlassian-user-role-actor": [NOBODY]}},
                  expect=404, why="user not found")
        self.jira("PUT", base, {"categorisedActors": "x"}, expect=400)
        self.jira("PUT", base, {"categorisedActors": {}}, auth=None, expect=401)

        self.jira("DELETE", base + "?user=" + q(alice), expect=204)
        self.jira("POST", base, {"group": ["jira-software-users"]})
        self.jira("DELETE", base + "?group=jira-software-users", expect=204)
        self.jira("DELETE", "/project/DEMO/role/999999?user=" + q(alice), expect=404)
        self.jira("DELETE", base, expect=400, why="neither user nor group given")

    def jira_issues(self, alice):
        r = self.jira("GET", "/project/DEMO")
        itype = None
        if r.status == 200:
            for t in r.body.get("issueTypes", []):
                if not t.get("subtask"):
                    itype = t["id"]
                    break
        fields = {"project": {"key": "DEMO"}, "issuetype": {"id": itype or "10001"},
                  "summary": "Contract tour", "description": ADF, "labels": ["iam"]}
        r = self.jira("POST", "/issue", {"fields": fields}, expect=201)
        key = r.body.get("key") if r.status == 201 else "DEMO-1"
        no_summary = {k: v for k, v in fields.items() if k != "summary"}
        self.jira("POST", "/issue", {"fields": no_summary}, expect=400,
                  why="summary missing")
        self.jira("POST", "/issue", {"fields": dict(fields, project={"key": "NOPE"})}, expect=400)
        self.jira("POST", "/issue", {"fields": fields}, auth=None, expect=401)

        self.jira("GET", "/issue/" + key)
        self.jira("GET", "/issue/%s?fields=summary,status&expand=names" % key)
        self.jira("GET", "/issue/%s?fields=*all&expand=%s" % (
            key, q("renderedFields,names,schema,transitions,operations,editmeta,changelog")))
        self.jira("GET", "/issue/DEMO-999999", expect=404)
        self.jira("GET", "/issue/" + key, auth=None, expect=401)

        self.jira("PUT", "/issue/" + key, {"fields": {"summary": "Contract tour, edited"}}, expect=204)
        self.jira("PUT", "/issue/%s?returnIssue=true" % key,
                  {"update": {"labels": [{"add": "tour"}]}}, expect=200)
        self.jira("PUT", "/issue/" + key, {"fields": {"summary": "a"},
                                           "update": {"summary": [{"set": "b"}]}},
                  expect=400, why="field in both fields and update")
        self.jira("PUT", "/issue/DEMO-999999", {"fields": {"summary": "x"}}, expect=404)
        self.jira("PUT", "/issue/" + key, {"fields": {"summary": "x"}}, auth=None, expect=401)

        r = self.jira("GET", "/issue/%s/transitions" % key)
        tid = r.body["transitions"][0]["id"] if r.status == 200 and r.body.get("transitions") else "11"
        self.jira("GET", "/issue/DEMO-999999/transitions", expect=404)
        self.jira("GET", "/issue/%s/transitions" % key, auth=None, expect=401)
        self.jira("POST", "/issue/%s/transitions" % key, {"transition": {"id": tid}}, expect=204)
        self.jira("POST", "/issue/%s/transitions" % key, {"transition": {"id": "999999"}},
                  expect=400, why="no such transition")
        self.jira("POST", "/issue/%s/transitions" % key, {}, expect=400, why="no transition given")
        self.jira("POST", "/issue/DEMO-999999/transitions", {"transition": {"id": tid}}, expect=404)
        self.jira("POST", "/issue/%s/transitions" % key, {"transition": {"id": tid}}, auth=None,
                  expect=401)

        prop = "/issue/%s/properties/jiraprov.sync" % key
        self.jira("PUT", prop, {"eventId": "e-1", "version": 1}, expect=201)
        self.jira("PUT", prop, {"eventId": "e-2", "version": 2}, expect=200)
        self.jira("GET", prop)
        self.jira("GET", "/issue/%s/properties/absent" % key, expect=404)
        self.jira("PUT", "/issue/DEMO-999999/properties/p", {"a": 1}, expect=404)
        self.jira("PUT", prop, "{not json", expect=400)
        self.jira("GET", prop, auth=None, expect=401)

        self.jira("PUT", "/issue/%s/assignee" % key, {"accountId": alice}, expect=204)
        self.jira("PUT", "/issue/%s/assignee" % key, {"accountId": NOBODY}, expect=400,
                  why="user not found")
        self.jira("PUT", "/issue/DEMO-999999/assignee", {"accountId": alice}, expect=404)

        self.jira("GET", "/search/jql?jql=" + q("project = DEMO ORDER BY key") + "&fields=summary")
        self.jira("GET", "/search/jql?jql=" + q("project = DEMO") + "&fields=*navigable&maxResults=1")
        self.jira("GET", "/search/jql?jql=" + q("project = DEMO") + "&fields=*all&expand=" + q("names,schema,transitions,operations,changelog"))
        self.jira("GET", "/search/jql?jql=" + q("project = = DEMO"), expect=400, why="bad JQL")
        self.jira("GET", "/search/jql?jql=" + q("project = DEMO"), auth=None, expect=401)
        r = self.jira("POST", "/search/jql", {"jql": "project = DEMO", "fields": ["summary", "status"],
                                              "maxResults": 1})
        token = r.body.get("nextPageToken") if r.status == 200 else None
        if token:
            self.jira("POST", "/search/jql", {"jql": "project = DEMO", "fields": ["summary"],
                                              "maxResults": 1, "nextPageToken": token})
        self.jira("POST", "/search/jql", {"jql": "order by key"}, expect=400, why="unbounded JQL")
        self.jira("POST", "/search/jql", {"jql": "project = DEMO"}, auth=None, expect=401)

        self.jira("DELETE", "/issue/" + key, expect=204)
        self.jira("DELETE", "/issue/" + key, expect=404, why="already deleted")
        self.jira("DELETE", "/issue/DEMO-1", auth=None, expect=401)
        self.subtask_delete(itype)

    def subtask_delete(self, itype):
        """400 when deleting an issue that has subtasks without deleteSubtasks."""
        r = self.jira("GET", "/project/DEMO")
        sub = None
        if r.status == 200:
            sub = next((t["id"] for t in r.body.get("issueTypes", []) if t.get("subtask")), None)
        if not sub:
            return
        base = {"project": {"key": "DEMO"}, "issuetype": {"id": itype or "10001"}, "summary": "parent"}
        r = self.jira("POST", "/issue", {"fields": base}, expect=201)
        if r.status != 201:
            return
        parent = r.body["key"]
        self.jira("POST", "/issue", {"fields": dict(base, issuetype={"id": sub}, summary="child",
                                                    parent={"key": parent})}, expect=201)
        self.jira("DELETE", "/issue/" + parent, expect=400, why="has subtasks")
        self.jira("DELETE", "/issue/%s?deleteSubtasks=true" % parent, expect=204)

    def jira_groups(self, alice):
        r = self.jira("POST", "/group", {"name": "tour-group"}, expect=201)
        gid = r.body.get("groupId") if r.status == 201 else "none"
        self.jira("POST", "/group", {"name": "tour-group"}, expect=400, why="name in use")
        self.jira("POST", "/group", {}, expect=400, why="name missing")
        self.jira("POST", "/group", {"name": "x"}, auth=None, expect=401)

        self.jira("POST", "/group/user?groupId=" + q(gid), {"accountId": alice}, expect=201)
        self.jira("POST", "/group/user?groupname=tour-group", {"accountId": alice},
                  expect=(201, 400), why="already a member: [U] notes §3.4")
        self.jira("POST", "/group/user?groupId=" + q(gid), {}, expect=400, why="accountId missing")
        self.jira("POST", "/group/user?groupId=00000000-0000-0000-0000-000000000000",
                  {"accountId": alice}, expect=404)
        self.jira("POST", "/group/user?groupId=" + q(gid), {"accountId": NOBODY}, expect=404)
        self.jira("POST", "/group/user?groupId=" + q(gid), {"accountId": alice}, auth=None, expect=401)

        self.jira("GET", "/group/member?groupId=" + q(gid))
        self.jira("GET", "/group/member?groupname=jira-software-users&maxResults=2&includeInactiveUsers=true")
        self.jira("GET", "/group/member?groupId=00000000-0000-0000-0000-000000000000", expect=404)
        self.jira("GET", "/group/member", expect=400, why="group not given")
        self.jira("GET", "/group/member?groupId=" + q(gid), auth=None, expect=401)

        self.jira("GET", "/group/bulk?groupId=%s&groupName=demo-team" % q(gid))
        self.jira("GET", "/group/bulk?maxResults=2")
        self.jira("GET", "/group/bulk?maxResults=-1", expect=400)
        self.jira("GET", "/group/bulk", auth=None, expect=401)

        self.jira("DELETE", "/group/user?groupId=%s&accountId=%s" % (q(gid), q(alice)))
        self.jira("DELETE", "/group/user?groupId=%s" % q(gid), expect=400, why="accountId missing")
        self.jira("DELETE", "/group/user?groupId=00000000-0000-0000-0000-000000000000&accountId="
                  + q(alice), expect=404)
        self.jira("DELETE", "/group/user?groupId=%s&accountId=%s" % (q(gid), q(alice)), auth=None,
                  expect=401)

        self.jira("DELETE", "/group?groupId=" + q(gid))
        self.jira("DELETE", "/group?groupId=" + q(gid), expect=404, why="already deleted")
        self.jira("DELETE", "/group", expect=400, why="group not given")
        self.jira("DELETE", "/group?groupname=demo-team", auth=None, expect=401)

    def scim_discovery(self):
        for path in ("/ServiceProviderConfig", "/ResourceTypes", "/ResourceTypes/User",
                     "/ResourceTypes/Group", "/Schemas", "/Schemas/" + SCIM_USER_URN,
                     "/Schemas/" + SCIM_GROUP_URN,
                     "/Schemas/urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"):
            self.scim("GET", path)
        self.scim("GET", "/ServiceProviderConfig", auth=None, expect=401)
        self.scim("GET", "/Schemas", auth=emulib.bearer("wrong-key"), expect=403)
        r = self.emu.request("GET", "/scim/directory/no-such-directory/ResourceTypes",
                             headers=emulib.scim_auth())
        self.steps += 1
        if r.status != 404:
            self.mismatches.append("scim GET unknown directory: expected 404, got %d" % r.status)

    def scim_users(self):
        self.scim("GET", "/Users")
        self.scim("GET", "/Users?startIndex=2&count=2")
        self.scim("GET", "/Users?filter=" + q('userName eq "%s"' % ALICE))
        self.scim("GET", "/Users?filter=" + q('userName co "a"'), expect=400, why="only eq")
        self.scim("GET", "/Users", auth=None, expect=401)
        self.scim("GET", "/Users", auth=emulib.bearer("wrong-key"), expect=403)

        user = {"schemas": [SCIM_USER_URN], "userName": "tour.scim@demo.example",
                "externalId": "idhub-tour", "name": {"givenName": "Tour", "familyName": "Scim"},
                "displayName": "Tour Scim", "active": True, "title": "Tester",
                "emails": [{"value": "tour.scim@demo.example", "type": "work", "primary": True}]}
        r = self.scim("POST", "/Users", user, expect=201)
        uid = r.body.get("id") if r.status == 201 else "none"
        self.scim("POST", "/Users", user, expect=409, why="userName exists")
        self.scim("POST", "/Users", {"schemas": [SCIM_USER_URN], "emails": user["emails"]},
                  expect=400, why="userName missing")
        self.scim("POST", "/Users", user, auth=None, expect=401)

        self.scim("GET", "/Users/" + uid)
        self.scim("GET", "/Users/%s?attributes=userName,emails" % uid)
        self.scim("GET", "/Users/no-such-user", expect=404)
        self.scim("GET", "/Users/" + uid, auth=None, expect=401)

        put = dict(user, title="Senior Tester", department="QA")
        self.scim("PUT", "/Users/" + uid, put)
        self.scim("PUT", "/Users/" + uid, dict(put, userName=12), expect=400, why="userName not a string")
        self.scim("PUT", "/Users/no-such-user", put, expect=404)
        self.scim("PUT", "/Users/" + uid, put, auth=emulib.bearer("wrong-key"), expect=403)

        patch = {"schemas": [PATCH_URN], "Operations": [
            {"op": "replace", "path": "name.familyName", "value": "Patched"},
            {"op": "replace", "path": "active", "value": False}]}
        self.scim("PATCH", "/Users/" + uid, patch)
        self.scim("PATCH", "/Users/" + uid, {"schemas": [PATCH_URN], "Operations": [
            {"op": "replace", "path": "active", "value": True}]})
        self.scim("PATCH", "/Users/" + uid, {"schemas": [PATCH_URN], "Operations": [{"op": "explode"}]},
                  expect=400, why="unknown op")
        self.scim("PATCH", "/Users/no-such-user", patch, expect=404)
        self.scim("PATCH", "/Users/" + uid, patch, auth=None, expect=401)
        self.tour_user = uid

    def scim_groups(self):
        uid = self.tour_user
        self.scim("GET", "/Groups")
        self.scim("GET", "/Groups?filter=" + q('displayName eq "demo-team"'))
        self.scim("GET", "/Groups?filter=" + q('displayName sw "demo"'), expect=400, why="only eq")
        self.scim("GET", "/Groups", auth=None, expect=401)

        group = {"schemas": [SCIM_GROUP_URN], "displayName": "tour-scim-group",
                 "members": [{"value": uid}]}
        r = self.scim("POST", "/Groups", group, expect=201)
        gid = r.body.get("id") if r.status == 201 else "none"
        self.scim("POST", "/Groups", group, expect=409, why="displayName exists")
        self.scim("POST", "/Groups", {"schemas": [SCIM_GROUP_URN]}, expect=400, why="displayName missing")
        self.scim("POST", "/Groups", group, auth=emulib.bearer("wrong-key"), expect=403)

        self.scim("GET", "/Groups/" + gid)
        self.scim("GET", "/Groups/no-such-group", expect=404)
        self.scim("GET", "/Groups/" + gid, auth=None, expect=401)

        self.scim("PUT", "/Groups/" + gid, dict(group, members=[]))
        self.scim("PUT", "/Groups/" + gid, dict(group, members=[{"value": "no-such-user"}]), expect=400,
                  why="member does not exist")
        self.scim("PUT", "/Groups/no-such-group", group, expect=404)

        add = {"schemas": [PATCH_URN], "Operations": [
            {"op": "add", "path": "members", "value": [{"value": uid, "display": "Tour Scim"}]}]}
        self.scim("PATCH", "/Groups/" + gid, add)
        self.scim("PATCH", "/Groups/" + gid, {"schemas": [PATCH_URN], "Operations": [
            {"op": "remove", "path": 'members[value eq "%s"]' % uid}]}, expect=(200, 204))
        self.scim("PATCH", "/Groups/" + gid, {"schemas": [PATCH_URN], "Operations": "x"}, expect=400)
        self.scim("PATCH", "/Groups/no-such-group", add, expect=404)

        self.scim("DELETE", "/Groups/" + gid, expect=204)
        self.scim("DELETE", "/Groups/" + gid, expect=404, why="already deleted")
        self.scim("DELETE", "/Groups/" + gid, auth=None, expect=401)

        self.scim("DELETE", "/Users/" + uid, expect=204)
        self.scim("DELETE", "/Users/" + uid, expect=404, why="already deleted")
        self.scim("DELETE", "/Users/" + uid, auth=None, expect=401)
        self.scim("DELETE", "/Users/" + uid, auth=emulib.bearer("wrong-key"), expect=403)

    def admin_lifecycle(self, alice):
        path = "/users/%s/manage/lifecycle/" % q(alice)
        self.admin("POST", path + "disable", {"message": "contract tour"})
        self.admin("POST", path + "enable")
        self.admin("POST", "/users/%s/manage/lifecycle/disable" % NOBODY, {}, expect=404)
        self.admin("POST", "/users/%s/manage/lifecycle/enable" % NOBODY, expect=404)
        self.admin("POST", path + "disable", {}, auth=None, expect=401)
        self.admin("POST", path + "enable", auth=emulib.scim_auth(), expect=403,
                   why="SCIM key lacks the org privilege")

    def injected_faults(self):
        """5xx and 429 from the fault API: their bodies must match the
        documents too (SCIM lists 500/503 with ScimError)."""
        d = self.emu.directory
        rules = [
            {"kind": "error", "path": "/scim/directory/%s/Users" % d, "method": "GET", "status": 503,
             "retry_after": 1, "times": 1},
            {"kind": "error", "path": "/scim/directory/%s/Groups" % d, "method": "GET", "status": 500,
             "times": 1},
            {"kind": "rate_limit", "path": "/scim/directory/%s/Groups" % d, "method": "GET", "times": 1},
            {"kind": "error", "path": "/rest/api/3/issue/*", "method": "GET", "status": 503,
             "retry_after": 2, "times": 1},
            {"kind": "rate_limit", "path": "/rest/api/3/user", "method": "GET", "retry_after": 1,
             "times": 1},
            {"kind": "rate_limit", "path": "/users/*", "method": "POST", "times": 1},
        ]
        self.emu.set_faults(rules)
        self.scim("GET", "/Users", expect=503)
        self.scim("GET", "/Groups", expect=500)
        self.scim("GET", "/Groups", expect=429)
        self.jira("GET", "/issue/DEMO-1", expect=503)
        self.jira("GET", "/user?accountId=" + NOBODY, expect=429)
        self.admin("POST", "/users/%s/manage/lifecycle/enable" % NOBODY, expect=429)
        self.emu.clear_faults()


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binary", nargs="?", default=os.environ.get("JP_EMULATOR"))
    ap.add_argument("--keep-record", help="copy the record here")
    args = ap.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="jp-contract-")
    record = os.path.join(tmp, "record.jsonl")
    try:
        emu = emulib.Emulator(["--seed-demo", "--record", record, "--rate-limits", "off"],
                              binary=args.binary)
        with emu:
            tour = Tour(emu)
            tour.run()
            # A clean exit matters too: sanitizer builds report leaks here.
            code = emu.stop()
            if code != 0:
                tour.mismatches.append("emulator exited with status %s after SIGTERM" % code)
        if args.keep_record:
            shutil.copyfile(record, args.keep_record)
        specs, ops = validate.load_specs(validate.DEFAULT_SPECS)
        records = validate.read_records(record)
        api = [r for r in records if not str(r.get("path", "")).startswith(validate.CONTROL_PREFIX)]
        if len(api) != tour.steps:
            tour.mismatches.append("the record holds %d API exchanges but the tour made %d requests"
                                   % (len(api), tour.steps))
        failures = validate.run(records, specs, ops, require_coverage=True, check_requests=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print("\ntour: %d requests, %d answered differently than expected" % (tour.steps, len(tour.mismatches)))
    for m in tour.mismatches:
        print("TOUR " + m)
    if failures or tour.mismatches:
        print("FAIL: %d contract failures, %d tour mismatches" % (failures, len(tour.mismatches)))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
