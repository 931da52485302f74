"""SCIM 2.0 API of the emulator: CRUD, filters, paging, PATCH forms, DELETE
semantics, errors and auth (notes §1)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emulib  # noqa: E402

EMU = None
USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
ERR_URN = "urn:ietf:params:scim:api:messages:2.0:Error"
ATL = "urn:scim:schemas:extension:atlassian-external:1.0"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def setUpModule():
    global EMU
    EMU = emulib.Emulator(["--rate-limits", "off", "--seed-rng", "7"]).__enter__()


def tearDownModule():
    code = EMU.stop()
    assert code == 0, "emulator exit code %r" % code


def patch_body(*ops, key="Operations"):
    return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], key: list(ops)}


class ScimCase(unittest.TestCase):
    def setUp(self):
        EMU.reset()

    def assertScimError(self, r, status, scim_type=None):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.body["schemas"], [ERR_URN])
        self.assertEqual(r.body["status"], str(status))
        if scim_type:
            self.assertEqual(r.body.get("scimType"), scim_type)
        self.assertIsInstance(r.body.get("detail"), str)
        self.assertTrue(r.headers["content-type"].startswith("application/scim+json"))


class UserCrud(ScimCase):
    def test_create_returns_full_resource(self):
        r = EMU.scim("POST", "/Users", {
            "schemas": [USER_URN], "userName": "jdoe@example.com", "externalId": "00u1",
            "emails": [{"value": "jdoe@example.com", "type": "work", "primary": True}],
            "name": {"givenName": "Jane", "familyName": "Doe"}, "displayName": "Jane Doe",
            "title": "Engineer", "department": "R&D", "organization": "Acme",
            "timezone": "Europe/Paris", "active": True})
        self.assertEqual(r.status, 201, r)
        u = r.body
        self.assertTrue(r.headers["content-type"].startswith("application/scim+json"))
        self.assertIn(USER_URN, u["schemas"])
        self.assertEqual(u["userName"], "jdoe@example.com")
        self.assertEqual(u["externalId"], "00u1")
        self.assertEqual(u["name"], {"givenName": "Jane", "familyName": "Doe"})
        self.assertTrue(u["active"])
        self.assertEqual(u[ENT], {"organization": "Acme", "department": "R&D"})
        self.assertRegex(u[ATL]["atlassianAccountId"], r"^712020:[0-9a-f-]{36}$")
        self.assertEqual(u["meta"]["resourceType"], "User")
        self.assertTrue(u["meta"]["location"].endswith("/Users/" + u["id"]))
        self.assertEqual(r.headers["location"], u["meta"]["location"])
        self.assertRegex(u["meta"]["created"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        g = EMU.scim("GET", "/Users/" + u["id"])
        self.assertEqual(g.status, 200)
        self.assertEqual(g.body, u)

    def test_create_requires_username_and_primary_email(self):
        r = EMU.scim("POST", "/Users", {"emails": [{"value": "a@x", "primary": True}]})
        self.assertScimError(r, 400, "invalidValue")
        r = EMU.scim("POST", "/Users", {"userName": "a@x"})
        self.assertScimError(r, 400, "invalidValue")
        r = EMU.scim("POST", "/Users", {"userName": "a@x", "emails": [{"value": "a@x"}]})
        self.assertScimError(r, 400, "invalidValue")
        r = EMU.scim("POST", "/Users", {"userName": "a@x", "title": 5,
                                        "emails": [{"value": "a@x", "primary": True}]})
        self.assertScimError(r, 400, "invalidValue")
        r = EMU.scim("POST", "/Users", "{not json")
        self.assertScimError(r, 400, "invalidSyntax")
        self.assertEqual(EMU.scim("GET", "/Users").body["totalResults"], 0)

    def test_duplicate_username_conflicts(self):
        EMU.scim_create_user("dup@x.example")
        r = EMU.scim("POST", "/Users", {"userName": "DUP@x.example",
                                        "emails": [{"value": "other@x.example", "primary": True}]})
        self.assertScimError(r, 409, "uniqueness")

    def test_put_replaces_and_clears_omitted(self):
        u = EMU.scim_create_user("put@x.example", title="T", department="D",
                                 name={"givenName": "P", "familyName": "Q"}, nickName="pq")
        r = EMU.scim("PUT", "/Users/" + u["id"], {
            "schemas": [USER_URN], "id": "ignored", "userName": "put@x.example",
            "emails": [{"value": "put2@x.example", "primary": True}],
            "name": {"givenName": "P2"}})
        self.assertEqual(r.status, 200, r)
        b = r.body
        self.assertEqual(b["id"], u["id"])
        self.assertEqual(b[ATL], u[ATL])
        self.assertEqual(b["meta"]["created"], u["meta"]["created"])
        self.assertEqual(b["name"], {"givenName": "P2"})
        self.assertNotIn("title", b)
        self.assertNotIn("department", b)
        self.assertNotIn("nickName", b)
        self.assertEqual(b["emails"][0]["value"], "put2@x.example")
        self.assertTrue(b["active"])
        self.assertGreaterEqual(b["meta"]["lastModified"], u["meta"]["lastModified"])

    def test_put_unknown_and_invalid(self):
        r = EMU.scim("PUT", "/Users/nope", {"userName": "a", "emails": [{"value": "a", "primary": True}]})
        self.assertScimError(r, 404)
        u = EMU.scim_create_user("pv@x.example")
        r = EMU.scim("PUT", "/Users/" + u["id"], {"emails": [{"value": "a", "primary": True}]})
        self.assertScimError(r, 400, "invalidValue")
        EMU.scim_create_user("taken@x.example")
        r = EMU.scim("PUT", "/Users/" + u["id"], {"userName": "taken@x.example",
                                                  "emails": [{"value": "pv@x.example", "primary": True}]})
        self.assertScimError(r, 409, "uniqueness")

    def test_unknown_user_404(self):
        self.assertScimError(EMU.scim("GET", "/Users/does-not-exist"), 404)
        self.assertScimError(EMU.scim("DELETE", "/Users/does-not-exist"), 404)
        self.assertScimError(EMU.scim("PATCH", "/Users/does-not-exist",
                                      patch_body({"op": "replace", "path": "title", "value": "x"})), 404)

    def test_wrong_directory_404(self):
        r = EMU.request("GET", "/scim/directory/other-dir/Users", headers=emulib.scim_auth())
        self.assertScimError(r, 404)
        r = EMU.request("GET", "/scim/directory/other-dir/Groups", headers=emulib.scim_auth())
        self.assertScimError(r, 404)

    def test_attributes_projection(self):
        u = EMU.scim_create_user("proj@x.example", title="T")
        r = EMU.scim("GET", "/Users/%s?attributes=userName,emails.value" % u["id"])
        self.assertEqual(set(r.body), {"schemas", "id", "userName", "emails"})
        r = EMU.scim("GET", "/Users/%s?excludedAttributes=title,groups,emails.type" % u["id"])
        self.assertNotIn("title", r.body)
        self.assertNotIn("groups", r.body)
        self.assertNotIn("type", r.body["emails"][0])
        r = EMU.scim("GET", "/Users/%s?attributes=userName&excludedAttributes=title" % u["id"])
        self.assertScimError(r, 400, "invalidSyntax")


class Patch(ScimCase):
    def test_dotted_paths_and_both_array_names(self):
        u = EMU.scim_create_user("p@x.example", name={"givenName": "A", "familyName": "B"})
        for key in ("Operations", "operations"):
            r = EMU.scim("PATCH", "/Users/" + u["id"], patch_body(
                {"op": "replace", "path": "name.familyName", "value": "Doe-" + key},
                {"op": "add", "path": "title", "value": "Boss"},
                {"op": "replace", "path": "department", "value": "Ops"},
                {"op": "replace", "path": "organization", "value": "Org"},
                {"op": "replace", "path": "timezone", "value": "UTC"},
                {"op": "replace", "path": "displayName", "value": "Disp"},
                {"op": "replace", "path": "nickName", "value": "nick"},
                {"op": "replace", "path": "externalId", "value": "ext-1"},
                key=key))
            self.assertEqual(r.status, 200, r)
            b = r.body
            self.assertEqual(b["name"]["familyName"], "Doe-" + key)
            self.assertEqual(b["name"]["givenName"], "A")
            self.assertEqual((b["title"], b["department"], b["organization"], b["timezone"]),
                             ("Boss", "Ops", "Org", "UTC"))
            self.assertEqual((b["displayName"], b["nickName"], b["externalId"]), ("Disp", "nick", "ext-1"))
            self.assertEqual(b[ENT], {"organization": "Org", "department": "Ops"})

    def test_enterprise_paths_both_versions(self):
        u = EMU.scim_create_user("ent@x.example")
        r = EMU.scim("PATCH", "/Users/" + u["id"], patch_body(
            {"op": "replace", "path": ENT + ":department", "value": "D1"},
            {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.1:User:organization",
             "value": "O1"}))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body[ENT], {"organization": "O1", "department": "D1"})

    def test_no_path_forms(self):
        u = EMU.scim_create_user("np@x.example")
        r = EMU.scim("PATCH", "/Users/" + u["id"], patch_body(
            {"op": "replace", "value": {"active": False, "title": "X", "name.givenName": "G",
                                        "name": {"familyName": "F"},
                                        ENT: {"department": "Dep"}}}))
        self.assertEqual(r.status, 200, r)
        b = r.body
        self.assertFalse(b["active"])
        self.assertEqual(b["title"], "X")
        self.assertEqual(b["name"], {"givenName": "G", "familyName": "F"})
        self.assertEqual(b["department"], "Dep")

    def test_active_false_keeps_user_readable(self):
        u = EMU.scim_create_user("inactive@x.example")
        r = EMU.scim("PATCH", "/Users/" + u["id"], patch_body({"op": "replace", "path": "active", "value": False}))
        self.assertFalse(r.body["active"])
        g = EMU.scim("GET", "/Users/" + u["id"])
        self.assertEqual(g.status, 200)
        self.assertFalse(g.body["active"])
        lst = EMU.scim("GET", '/Users?filter=userName%20eq%20%22inactive@x.example%22')
        self.assertEqual(lst.body["totalResults"], 1)
        # string booleans as sent by some IdPs
        r = EMU.scim("PATCH", "/Users/" + u["id"], patch_body({"op": "Replace", "path": "active", "value": "True"}))
        self.assertTrue(r.body["active"])

    def test_remove_and_emails(self):
        u = EMU.scim_create_user("rm@x.example", title="T", name={"givenName": "G", "familyName": "F"})
        r = EMU.scim("PATCH", "/Users/" + u["id"], patch_body(
            {"op": "remove", "path": "title"}, {"op": "remove", "path": "name.givenName"},
            {"op": "replace", "path": "emails", "value": [{"value": "new@x.example", "primary": True}]}))
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("title", r.body)
        self.assertEqual(r.body["name"], {"familyName": "F"})
        self.assertEqual(r.body["emails"][0]["value"], "new@x.example")
        r = EMU.scim("PATCH", "/Users/" + u["id"], patch_body(
            {"op": "replace", "path": 'emails[type eq "work"].value', "value": "newer@x.example"}))
        self.assertEqual(r.body["emails"][0]["value"], "newer@x.example")

    def test_add_email_and_readonly_extension(self):
        u = EMU.scim_create_user("ae@x.example")
        r = EMU.scim("PATCH", "/Users/" + u["id"], patch_body(
            {"op": "add", "path": "emails", "value": [{"value": "home@x.example", "type": "home"}]}))
        self.assertEqual(r.status, 200, r)
        self.assertEqual([(e["value"], e.get("primary")) for e in r.body["emails"]],
                         [("ae@x.example", True), ("home@x.example", None)])
        r = EMU.scim("PATCH", "/Users/" + u["id"], patch_body(
            {"op": "add", "path": "emails", "value": [{"value": "p2@x.example", "primary": True}]}))
        self.assertEqual([e["value"] for e in r.body["emails"] if e.get("primary")], ["p2@x.example"])
        r = EMU.scim("PATCH", "/Users/" + u["id"], patch_body(
            {"op": "replace", "path": ATL + ":atlassianAccountId", "value": "x"}))
        self.assertScimError(r, 400, "mutability")

    def test_patch_errors(self):
        u = EMU.scim_create_user("pe@x.example")
        path = "/Users/" + u["id"]
        self.assertScimError(EMU.scim("PATCH", path, {"schemas": []}), 400, "invalidSyntax")
        self.assertScimError(EMU.scim("PATCH", path, patch_body({"op": "move", "path": "title"})), 400, "invalidSyntax")
        self.assertScimError(EMU.scim("PATCH", path, patch_body({"op": "replace", "path": "shoeSize", "value": 1})),
                             400, "invalidPath")
        self.assertScimError(EMU.scim("PATCH", path, patch_body({"op": "remove"})), 400, "noTarget")
        self.assertScimError(EMU.scim("PATCH", path, patch_body({"op": "replace", "path": "active", "value": 3})),
                             400, "invalidValue")
        self.assertScimError(EMU.scim("PATCH", path, patch_body({"op": "remove", "path": "userName"})),
                             400, "mutability")


class DeleteSemantics(ScimCase):
    def test_delete_user(self):
        g = EMU.scim_create_group("del-team")
        u = EMU.scim_create_user("gone@x.example")
        acc = u[ATL]["atlassianAccountId"]
        r = EMU.scim("PATCH", "/Groups/" + g["id"], patch_body(
            {"op": "add", "path": "members", "value": [{"value": u["id"]}]}))
        self.assertEqual(len(r.body["members"]), 1)
        gid = [x for x in EMU.state()["groups"] if x["name"] == "del-team"][0]["groupId"]
        r = EMU.scim("DELETE", "/Users/" + u["id"])
        self.assertEqual(r.status, 204)
        self.assertEqual(r.raw, b"")
        self.assertScimError(EMU.scim("GET", "/Users/" + u["id"]), 404)
        self.assertScimError(EMU.scim("DELETE", "/Users/" + u["id"]), 404)
        lst = EMU.scim("GET", "/Users")
        self.assertEqual(lst.body["totalResults"], 0)
        lst = EMU.scim("GET", '/Users?filter=userName%20eq%20"gone@x.example"')
        self.assertEqual(lst.body["totalResults"], 0)
        self.assertEqual(EMU.scim("GET", "/Groups/" + g["id"]).body["members"], [])
        # The linked account survives, deactivated, without memberships.
        st = EMU.state()
        acct = [x for x in st["users"] if x["accountId"] == acc][0]
        self.assertFalse(acct["active"])
        self.assertFalse(acct["scim"])
        self.assertEqual(acct["groups"], [])
        # Undone only by a new POST, which links the same account again.
        again = EMU.scim_create_user("gone@x.example")
        self.assertNotEqual(again["id"], u["id"])
        self.assertEqual(again[ATL]["atlassianAccountId"], acc)
        self.assertTrue(again["active"])
        c = EMU.counters()
        self.assertEqual(emulib.mutation_count(c, "user", acc, "delete"), 1)
        self.assertEqual(emulib.mutation_count(c, "user", acc, "create"), 2)
        self.assertEqual(emulib.mutation_count(c, "membership", gid + ":" + acc, "remove"), 1)


class FilterAndPaging(ScimCase):
    def test_filters(self):
        EMU.scim_create_user("f1@x.example", externalId="E1")
        EMU.scim_create_user("f2@x.example", externalId="E1")
        EMU.scim_create_user("f3@x.example", externalId="e1")
        r = EMU.scim("GET", '/Users?filter=userName%20eq%20%22f2@x.example%22')
        self.assertEqual(r.body["totalResults"], 1)
        self.assertEqual(r.body["Resources"][0]["userName"], "f2@x.example")
        r = EMU.scim("GET", '/Users?filter=userName+eq+"F2@X.example"')
        self.assertEqual(r.body["totalResults"], 1)
        r = EMU.scim("GET", '/Users?filter=externalId%20eq%20%22E1%22')
        self.assertEqual(r.body["totalResults"], 2)
        self.assertEqual([x["userName"] for x in r.body["Resources"]], ["f1@x.example", "f2@x.example"])
        r = EMU.scim("GET", '/Users?filter=userName%20eq%20%22nobody%22')
        self.assertEqual((r.body["totalResults"], r.body["itemsPerPage"], r.body["Resources"]), (0, 0, []))
        for bad in ['userName%20sw%20%22f%22', 'displayName%20eq%20%22x%22',
                    'userName%20eq%20%22a%22%20and%20externalId%20eq%20%22b%22',
                    'meta.lastModified%20gt%20%222020-01-01%22', 'userName%20eq%20f1']:
            self.assertScimError(EMU.scim("GET", "/Users?filter=" + bad), 400, "invalidFilter")
        EMU.scim_create_group("grp-a")
        EMU.scim_create_group("grp-b")
        r = EMU.scim("GET", '/Groups?filter=displayName%20eq%20%22grp-b%22')
        self.assertEqual(r.body["totalResults"], 1)
        self.assertEqual(r.body["Resources"][0]["displayName"], "grp-b")
        self.assertScimError(EMU.scim("GET", '/Groups?filter=externalId%20eq%20%22x%22'), 400, "invalidFilter")

    def test_paging(self):
        EMU.seed({"bulk_users": {"count": 250, "prefix": "pg", "domain": "p.example"}})
        r = EMU.scim("GET", "/Users")
        self.assertEqual((r.body["totalResults"], r.body["startIndex"], r.body["itemsPerPage"]), (250, 1, 100))
        r = EMU.scim("GET", "/Users?startIndex=101&count=200")
        self.assertEqual((r.body["totalResults"], r.body["startIndex"], r.body["itemsPerPage"]), (250, 101, 100))
        self.assertEqual(r.body["Resources"][0]["userName"], "pg101@p.example")
        r = EMU.scim("GET", "/Users?startIndex=201&count=100")
        self.assertEqual(r.body["itemsPerPage"], 50)
        self.assertEqual(r.body["Resources"][-1]["userName"], "pg250@p.example")
        r = EMU.scim("GET", "/Users?startIndex=300")
        self.assertEqual((r.body["totalResults"], r.body["itemsPerPage"]), (250, 0))
        r = EMU.scim("GET", "/Users?count=0")
        self.assertEqual((r.body["totalResults"], r.body["itemsPerPage"]), (250, 0))
        r = EMU.scim("GET", "/Users?startIndex=0&count=5")
        self.assertEqual((r.body["startIndex"], r.body["itemsPerPage"]), (1, 5))
        self.assertScimError(EMU.scim("GET", "/Users?count=abc"), 400, "invalidValue")
        seen = set()
        start = 1
        while True:
            r = EMU.scim("GET", "/Users?startIndex=%d&count=100" % start)
            ids = [x["id"] for x in r.body["Resources"]]
            if not ids:
                break
            seen.update(ids)
            start += len(ids)
        self.assertEqual(len(seen), 250)


class Groups(ScimCase):
    def test_group_lifecycle_and_membership_forms(self):
        a = EMU.scim_create_user("ga@x.example", displayName="A")
        b = EMU.scim_create_user("gb@x.example")
        c = EMU.scim_create_user("gc@x.example")
        g = EMU.scim_create_group("team-x", [a["id"]])
        self.assertEqual(g["schemas"], [GROUP_URN])
        self.assertEqual(g["meta"]["resourceType"], "Group")
        self.assertEqual([m["value"] for m in g["members"]], [a["id"]])
        self.assertEqual(g["members"][0]["display"], "A")
        self.assertEqual(g["members"][0]["type"], "User")
        self.assertTrue(g["members"][0]["$ref"].endswith("/Users/" + a["id"]))
        gid = g["id"]
        r = EMU.scim("PATCH", "/Groups/" + gid, patch_body(
            {"op": "add", "path": "members", "value": [{"value": b["id"], "display": "b"}, {"value": c["id"]}]}))
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.body["members"]), 3)
        # the user side shows the group
        ub = EMU.scim("GET", "/Users/" + b["id"]).body
        self.assertEqual([x["display"] for x in ub["groups"]], ["team-x"])
        r = EMU.scim("PATCH", "/Groups/" + gid, patch_body(
            {"op": "remove", "path": 'members[value eq "%s"]' % a["id"]}))
        self.assertEqual([m["value"] for m in r.body["members"]], [b["id"], c["id"]])
        r = EMU.scim("PATCH", "/Groups/" + gid, patch_body(
            {"op": "remove", "path": "members", "value": [{"value": b["id"]}]}))
        self.assertEqual([m["value"] for m in r.body["members"]], [c["id"]])
        r = EMU.scim("PATCH", "/Groups/" + gid, patch_body(
            {"op": "add", "path": "members", "value": [{"value": "no-such-user"}]}))
        self.assertScimError(r, 404)
        r = EMU.scim("PATCH", "/Groups/" + gid, patch_body(
            {"op": "replace", "path": "displayName", "value": "renamed"}))
        self.assertScimError(r, 400, "mutability")
        r = EMU.scim("PUT", "/Groups/" + gid, {"displayName": "team-x", "members": [{"value": a["id"]}]})
        self.assertEqual([m["value"] for m in r.body["members"]], [a["id"]])
        r = EMU.scim("PUT", "/Groups/" + gid, {"displayName": "team-x", "members": [{"value": "ghost"}]})
        self.assertScimError(r, 400)
        r = EMU.scim("GET", "/Groups/%s?excludedAttributes=members" % gid)
        self.assertNotIn("members", r.body)
        self.assertScimError(EMU.scim("POST", "/Groups", {"displayName": "TEAM-X"}), 409, "uniqueness")
        self.assertScimError(EMU.scim("POST", "/Groups", {"members": []}), 400, "invalidValue")
        r = EMU.scim("DELETE", "/Groups/" + gid)
        self.assertEqual(r.status, 204)
        self.assertScimError(EMU.scim("GET", "/Groups/" + gid), 404)
        self.assertScimError(EMU.scim("DELETE", "/Groups/" + gid), 404)
        self.assertEqual(EMU.scim("GET", "/Users/" + a["id"]).body["groups"], [])
        self.assertEqual(EMU.scim("GET", "/Groups").body["totalResults"], 0)

    def test_group_paging(self):
        for i in range(5):
            EMU.scim_create_group("pg-%d" % i)
        r = EMU.scim("GET", "/Groups?startIndex=2&count=2")
        self.assertEqual((r.body["totalResults"], r.body["itemsPerPage"]), (5, 2))
        self.assertEqual([x["displayName"] for x in r.body["Resources"]], ["pg-1", "pg-2"])


class Discovery(ScimCase):
    def test_metadata_endpoints(self):
        r = EMU.scim("GET", "/ServiceProviderConfig")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.body["patch"]["supported"])
        self.assertEqual(r.body["filter"]["maxResults"], 100)
        r = EMU.scim("GET", "/ResourceTypes")
        self.assertEqual([x["id"] for x in r.body["Resources"]], ["User", "Group"])
        self.assertEqual(EMU.scim("GET", "/ResourceTypes/User").body["schema"], USER_URN)
        self.assertEqual(EMU.scim("GET", "/ResourceTypes/Group").body["schema"], GROUP_URN)
        r = EMU.scim("GET", "/Schemas")
        self.assertEqual(r.body["totalResults"], 3)
        for urn in (USER_URN, GROUP_URN, ENT):
            r = EMU.scim("GET", "/Schemas/" + urn)
            self.assertEqual(r.status, 200, urn)
            self.assertEqual(r.body["id"], urn)
        self.assertScimError(EMU.scim("GET", "/Schemas/urn:nope"), 404)


class Auth(ScimCase):
    def test_auth_failures(self):
        for path in ("/Users", "/Groups", "/ServiceProviderConfig", "/Users/x"):
            r = EMU.scim("GET", path, auth=None)
            self.assertEqual(r.status, 401)
            self.assertEqual(set(r.body), {"error", "traceId"})
            r = EMU.scim("GET", path, auth=emulib.bearer("wrong-key"))
            self.assertEqual(r.status, 403)
            self.assertEqual(set(r.body), {"error", "traceId"})
            # the org key is not the directory key
            r = EMU.scim("GET", path, auth=emulib.org_auth())
            self.assertEqual(r.status, 403)
            r = EMU.scim("GET", path, auth=emulib.basic_auth())
            self.assertEqual(r.status, 401)


class ScimJiraIdentity(ScimCase):
    def test_accepts_2_1_and_1_1_urns(self):
        r = EMU.scim("POST", "/Users", {
            "schemas": [USER_URN, "urn:ietf:params:scim:schemas:extension:enterprise:2.1:User",
                        "urn:scim:schemas:extension:atlassian-external:1.1"],
            "userName": "urn@x.example", "emails": [{"value": "urn@x.example", "primary": True}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.1:User": {"department": "D21"},
            "urn:scim:schemas:extension:atlassian-external:1.1": {"atlassianAccountId": "ignored"}})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.body["department"], "D21")
        self.assertIn(ENT, r.body["schemas"])
        self.assertIn(ATL, r.body["schemas"])
        self.assertNotEqual(r.body[ATL]["atlassianAccountId"], "ignored")

    def test_post_links_existing_account_by_email(self):
        EMU.seed({"users": [{"userName": "link@x.example", "accountId": "5b10ac8d82e05b22cc7d4ef9",
                             "scim": False}]})
        u = EMU.scim_create_user("link@x.example")
        self.assertEqual(u[ATL]["atlassianAccountId"], "5b10ac8d82e05b22cc7d4ef9")
        self.assertEqual(len(EMU.state()["users"]), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
