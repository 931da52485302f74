#!/usr/bin/python3
"""Proves validate.py catches what it should: hand-made exchanges with a
wrong type, a missing required property, an unexpected property, a status
the document does not list, a body on a 204, a wrong media type, and the
allowlisted exceptions that must pass.  ctest: contract.validator."""

import io
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import validate  # noqa: E402

SPECS, OPS = validate.load_specs(validate.DEFAULT_SPECS)
DIR = "/scim/directory/{directoryId}"

GOOD_USER = {
    "self": "http://127.0.0.1:1/rest/api/3/user?accountId=712020:a",
    "accountId": "712020:a",
    "accountType": "atlassian",
    "emailAddress": "a@example.com",
    "displayName": "A",
    "active": True,
    "timeZone": "UTC",
    "locale": "en_US",
    "avatarUrls": {"48x48": "http://127.0.0.1:1/a.png"},
    "groups": {"size": 1, "items": [{"name": "jira-users", "groupId": None}]},
}

GOOD_SCIM_USER = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "id": "u1",
    "userName": "a@example.com",
    "emails": [{"value": "a@example.com", "type": "work", "primary": True}],
    "name": {"givenName": "A", "familyName": "B"},
    "active": True,
    "meta": {"resourceType": "User", "created": "2024-01-31T12:34:56.789Z",
             "lastModified": "2024-01-31T12:34:56Z", "location": "http://x/Users/u1"},
}


def ex(method, route, path, status, body=None, ctype="application/json", request=None):
    return {
        "method": method,
        "route": route,
        "path": path,
        "status": status,
        "request_body": json.dumps(request) if request is not None else "",
        "response_body": body if isinstance(body, str) or body is None else json.dumps(body),
        "content_type": ctype,
    }


def check(rec):
    """Violations for one exchange."""
    op, violations, _warn = validate.check_exchange(SPECS, OPS, rec)
    return op, violations


class Matching(unittest.TestCase):
    def test_route_pattern_with_other_parameter_names(self):
        op, _ = check(ex("GET", DIR + "/Users/{id}", "/scim/directory/d/Users/x", 200, GOOD_SCIM_USER,
                         "application/scim+json"))
        self.assertEqual(op.spec_path, DIR + "/Users/{userId}")

    def test_concrete_path_when_no_route(self):
        op, _ = check(ex("GET", None, "/rest/api/3/issue/DEMO-1/transitions?expand=x", 200,
                         {"transitions": []}))
        self.assertEqual(op.key, "GET /rest/api/3/issue/{issueIdOrKey}/transitions")

    def test_literal_template_wins_over_parameter(self):
        op, _ = check(ex("GET", None, "/scim/directory/d/ResourceTypes/User", 200, {}))
        self.assertEqual(op.spec_path, DIR + "/ResourceTypes/User")

    def test_gateway_prefix(self):
        op, v = check(ex("GET", None, "/ex/jira/c1/rest/api/3/user", 200, GOOD_USER))
        self.assertEqual(op.spec_path, "/rest/api/3/user")
        self.assertEqual(v, [])

    def test_admin_prefix_from_servers(self):
        op, v = check(ex("POST", "/users/{accountId}/manage/lifecycle/enable",
                         "/users/712020:a/manage/lifecycle/enable", 204, None, None))
        self.assertEqual(op.doc_name, "admin-user-management")
        self.assertEqual(v, [])

    def test_unknown_path_is_a_warning_not_a_violation(self):
        op, violations, warnings = validate.check_exchange(
            SPECS, OPS, ex("GET", None, "/rest/api/3/myself", 200, {}))
        self.assertIsNone(op)
        self.assertEqual(violations, [])
        self.assertEqual(len(warnings), 1)


class Bodies(unittest.TestCase):
    def test_good_bodies_pass(self):
        cases = [
            ex("GET", "/rest/api/3/user", "/rest/api/3/user", 200, GOOD_USER),
            ex("GET", DIR + "/Users/{userId}", "/scim/directory/d/Users/u1", 200, GOOD_SCIM_USER,
               "application/scim+json; charset=utf-8"),
            ex("GET", "/rest/api/3/user/groups", "/rest/api/3/user/groups", 200,
               [{"name": "g", "groupId": "1", "self": "http://h/rest/api/3/group?groupId=1"}]),
            ex("POST", "/rest/api/3/issue", "/rest/api/3/issue", 400,
               {"errorMessages": [], "errors": {"summary": "required"}}),
            ex("DELETE", "/rest/api/3/group", "/rest/api/3/group", 200, None, None),
            ex("PUT", "/rest/api/3/issue/{issueIdOrKey}/properties/{propertyKey}",
               "/rest/api/3/issue/DEMO-1/properties/p", 201, None, None),
        ]
        for rec in cases:
            with self.subTest(path=rec["path"], status=rec["status"]):
                self.assertEqual(check(rec)[1], [])

    def test_wrong_type(self):
        bad = dict(GOOD_USER, active="yes")
        v = check(ex("GET", "/rest/api/3/user", "/rest/api/3/user", 200, bad))[1]
        self.assertEqual(len(v), 1)
        self.assertIn("$.active", v[0])
        self.assertIn("not of type 'boolean'", v[0])

    def test_wrong_type_deep_in_array(self):
        bad = dict(GOOD_SCIM_USER, emails=[{"value": "a@example.com", "primary": "true"}])
        v = check(ex("GET", DIR + "/Users/{userId}", "/scim/directory/d/Users/u1", 200, bad,
                     "application/scim+json"))[1]
        self.assertEqual(len(v), 1)
        self.assertIn("$.emails[0].primary", v[0])

    def test_missing_required_property(self):
        v = check(ex("POST", "/users/{accountId}/manage/lifecycle/disable",
                     "/users/a/manage/lifecycle/disable", 404, {"message": "no such user"}))[1]
        self.assertEqual(len(v), 1)
        self.assertIn("'key' is a required property", v[0])

    def test_missing_required_in_nested_schema(self):
        body = {"transitions": [{"id": "1", "fields": {"resolution": {"key": "resolution"}}}]}
        v = check(ex("GET", None, "/rest/api/3/issue/DEMO-1/transitions", 200, body))[1]
        self.assertTrue(any("$.transitions[0].fields.resolution" in x and "required" in x for x in v), v)

    def test_additional_property_on_closed_schema(self):
        v = check(ex("GET", "/rest/api/3/user", "/rest/api/3/user", 200, dict(GOOD_USER, extra=1)))[1]
        self.assertEqual(len(v), 1)
        self.assertIn("'extra' was unexpected", v[0])

    def test_enum(self):
        v = check(ex("GET", "/rest/api/3/user", "/rest/api/3/user", 200,
                     dict(GOOD_USER, accountType="robot")))[1]
        self.assertEqual(len(v), 1)
        self.assertIn("$.accountType", v[0])

    def test_nullable(self):
        ok = [{"name": "g", "groupId": None}]
        bad = [{"name": None, "groupId": "1"}]
        route = "/rest/api/3/user/groups"
        self.assertEqual(check(ex("GET", route, route, 200, ok))[1], [])
        self.assertEqual(len(check(ex("GET", route, route, 200, bad))[1]), 1)

    def test_formats(self):
        bad_uri = dict(GOOD_USER, self="not a uri")
        self.assertEqual(len(check(ex("GET", "/rest/api/3/user", "/rest/api/3/user", 200, bad_uri))[1]), 1)
        bad_date = dict(GOOD_SCIM_USER, meta={"resourceType": "User", "created": "yesterday"})
        v = check(ex("GET", DIR + "/Users/{userId}", "/scim/directory/d/Users/u1", 200, bad_date,
                     "application/scim+json"))[1]
        self.assertEqual(len(v), 1)
        self.assertIn("$.meta.created", v[0])
        big = {"transitions": [], "expand": "x"}
        self.assertEqual(check(ex("GET", None, "/rest/api/3/issue/A-1/transitions", 200, big))[1], [])
        roles = "/rest/api/3/project/{projectIdOrKey}/role/{id}"
        v = check(ex("GET", roles, "/rest/api/3/project/D/role/1", 200, {"id": 2 ** 64}))[1]
        self.assertEqual(len(v), 1)

    def test_write_only_property_in_response(self):
        body = {"id": "10000", "key": "DEMO", "components": [{"leadAccountId": "x"}]}
        v = check(ex("GET", None, "/rest/api/3/project/DEMO", 200, body))[1]
        self.assertEqual(len(v), 1)
        self.assertIn("writeOnly", v[0])

    def test_one_of_reports_the_closest_branch(self):
        v = check(ex("POST", None, "/users/a/manage/lifecycle/disable", 403, {"key": "forbidden.action"}))[1]
        self.assertEqual(len(v), 1)
        self.assertIn("'context' is a required property", v[0])
        ok = check(ex("POST", None, "/users/a/manage/lifecycle/disable", 403, {"key": "forbidden"}))[1]
        self.assertEqual(ok, [])

    def test_not_json(self):
        v = check(ex("GET", "/rest/api/3/user", "/rest/api/3/user", 200, "{oops"))[1]
        self.assertEqual(len(v), 1)
        self.assertIn("not JSON", v[0])

    def test_empty_body_where_schema_expected(self):
        v = check(ex("GET", "/rest/api/3/user", "/rest/api/3/user", 200, None, None))[1]
        self.assertEqual(len(v), 1)
        self.assertIn("empty body", v[0])

    def test_body_on_204(self):
        v = check(ex("DELETE", None, "/rest/api/3/issue/DEMO-1", 204, "{}"))[1]
        self.assertEqual(v, ["status 204 must not carry a body"])

    def test_wrong_media_type(self):
        v = check(ex("GET", "/rest/api/3/user", "/rest/api/3/user", 200, GOOD_USER, "text/html"))[1]
        self.assertEqual(len(v), 1)
        self.assertIn("content type 'text/html'", v[0])

    def test_scim_error_status_is_a_string(self):
        err = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": 404,
               "detail": "no such user"}
        v = check(ex("GET", None, "/scim/directory/d/Users/x", 404, err, "application/scim+json"))[1]
        self.assertEqual(len(v), 1)
        self.assertIn("$.status", v[0])


class Statuses(unittest.TestCase):
    def test_unlisted_status(self):
        v = check(ex("GET", None, "/rest/api/3/issue/DEMO-1", 403, {"errorMessages": ["no"]}))[1]
        self.assertEqual(len(v), 1)
        self.assertIn("status 403 is not listed", v[0])

    def test_unlisted_status_on_scim(self):
        v = check(ex("DELETE", None, "/scim/directory/d/Users/x", 409, {}, "application/scim+json"))[1]
        self.assertEqual(len(v), 1)

    def test_429_allowed_everywhere(self):
        for path in ("/rest/api/3/issue/DEMO-1", "/scim/directory/d/Users/x", "/users/a/manage/lifecycle/enable"):
            method = "POST" if path.startswith("/users") else "GET"
            with self.subTest(path=path):
                self.assertEqual(check(ex(method, None, path, 429, {"code": 429, "message": "slow"}))[1], [])

    def test_jira_401_allowed_but_not_scim_500_on_admin(self):
        self.assertEqual(check(ex("PUT", None, "/rest/api/3/issue/DEMO-1/assignee", 401,
                                  "Client must be authenticated", "text/plain"))[1], [])
        v = check(ex("POST", None, "/users/a/manage/lifecycle/enable", 500, {"code": 500}))[1]
        self.assertEqual(len(v), 1)

    def test_text_plain_401_allowed_on_jira_only(self):
        self.assertEqual(check(ex("POST", None, "/rest/api/3/issue", 401, "no", "text/plain"))[1], [])
        v = check(ex("GET", None, "/scim/directory/d/Users/x", 401, "no", "text/plain"))[1]
        self.assertEqual(len(v), 1)

    def test_scim_resource_type_override(self):
        ok = dict(GOOD_SCIM_USER, meta={"resourceType": "User"})
        bad = dict(GOOD_SCIM_USER, meta={"resourceType": "Robot"})
        route = DIR + "/Users/{userId}"
        self.assertEqual(check(ex("GET", route, "/scim/directory/d/Users/u1", 200, ok))[1], [])
        self.assertEqual(len(check(ex("GET", route, "/scim/directory/d/Users/u1", 200, bad))[1]), 1)

    def test_discovery_replacement_schema(self):
        spc = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
               "patch": {"supported": True}, "bulk": {"supported": False, "maxOperations": 0,
                                                      "maxPayloadSize": 0},
               "filter": {"supported": True, "maxResults": 100}, "changePassword": {"supported": False},
               "sort": {"supported": False}, "etag": {"supported": False},
               "authenticationSchemes": [{"type": "oauthbearertoken", "name": "OAuth Bearer Token",
                                          "description": "Bearer"}]}
        path = "/scim/directory/d/ServiceProviderConfig"
        self.assertEqual(check(ex("GET", None, path, 200, spc))[1], [])
        broken = dict(spc, patch={"supported": "yes"})
        del broken["etag"]
        self.assertEqual(len(check(ex("GET", None, path, 200, broken))[1]), 2)


class Run(unittest.TestCase):
    def write(self, recs):
        fd, path = tempfile.mkstemp(suffix=".jsonl")
        with os.fdopen(fd, "w") as f:
            for r in recs:
                f.write(json.dumps(r) + "\n")
        self.addCleanup(os.unlink, path)
        return path

    def test_report_and_coverage(self):
        recs = [ex("GET", "/rest/api/3/user", "/rest/api/3/user", 200, GOOD_USER),
                ex("GET", "/rest/api/3/user", "/rest/api/3/user", 404, None, None),
                ex("GET", "/__emulator/state", "/__emulator/state", 200, {"anything": 1})]
        for r in recs:
            r["_line"] = 1
        out = io.StringIO()
        self.assertEqual(validate.run(recs, SPECS, OPS, out=out), 0)
        text = out.getvalue()
        self.assertRegex(text, r"ok jira +GET /rest/api/3/user +200×1, 404×1")
        self.assertRegex(text, r"-- jira +POST /rest/api/3/user +not exercised")
        out = io.StringIO()
        self.assertGreater(validate.run(recs, SPECS, OPS, require_coverage=True, out=out), 0)

    def test_exit_status(self):
        good = self.write([ex("GET", "/rest/api/3/user", "/rest/api/3/user", 200, GOOD_USER)])
        bad = self.write([ex("GET", "/rest/api/3/user", "/rest/api/3/user", 200, dict(GOOD_USER, active=1))])
        script = os.path.join(HERE, "validate.py")
        r = subprocess.run([sys.executable, script, good], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = subprocess.run([sys.executable, script, bad], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("VIOLATION", r.stdout)
        r = subprocess.run([sys.executable, script, "/nonexistent.jsonl"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        broken = self.write([])
        with open(broken, "w") as f:
            f.write("not json\n")
        r = subprocess.run([sys.executable, script, broken], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)


class Requests(unittest.TestCase):
    def test_request_bodies_of_successes_are_checked(self):
        rec = ex("POST", "/rest/api/3/user", "/rest/api/3/user", 201, GOOD_USER,
                 request={"emailAddress": "a@example.com"})
        op, v, _ = validate.check_exchange(SPECS, OPS, rec)
        self.assertEqual(v, [])
        w = validate.check_request(rec, op)
        self.assertEqual(len(w), 1)
        self.assertIn("'products' is a required property", w[0])
        rec["request_body"] = json.dumps({"emailAddress": "a@example.com", "products": []})
        self.assertEqual(validate.check_request(rec, op), [])
        rec.update(status=400, request_body=json.dumps({}))
        self.assertEqual(validate.check_request(rec, op), [], "errors are not looked at")


class Translate(unittest.TestCase):
    def test_nullable_without_type_and_read_only_in_requests(self):
        s = validate.translate({"nullable": True, "allOf": [{"$ref": "#/x"}]}, "response")
        self.assertEqual(s, {"anyOf": [{"type": "null"}, {"allOf": [{"$ref": "#/x"}]}]})
        s = validate.translate({"type": "object", "required": ["id", "name"],
                                "properties": {"id": {"type": "string", "readOnly": True},
                                               "name": {"type": "string"}}}, "request")
        self.assertEqual(s["required"], ["name"])

    def test_nullable_enum(self):
        s = validate.translate({"type": "string", "enum": ["a"], "nullable": True}, "response")
        self.assertEqual(s, {"type": ["string", "null"], "enum": ["a", None]})


if __name__ == "__main__":
    unittest.main(verbosity=1)
