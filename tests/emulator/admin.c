/* Atlassian user-management lifecycle API (notes §2; admin user management
 * OpenAPI): disable / enable / delete / cancel-delete of an account with the
 * organization API key. The account is the shared identity, so disabling it
 * shows as active:false both in SCIM and in Jira. */
#include "emu_internal.h"

#include <string.h>

/* Internal account flag: deletion requested (14-day grace period). */
#define EMU_USER_PENDING_DELETE 0x100u

static emu_user_t *admin_account(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    emu_user_t *u = emu_user_by_account_id(emu, emu_req_param(req, "accountId"));
    if (!u)
        emu_resp_json(resp, 404, json_pack("{s:s}", "key", "accountNotFound"));
    return u;
}

/* The body is optional ({"message": "..."}), but if present it must parse. */
static bool admin_body_ok(emu_req_t *req, emu_resp_t *resp)
{
    size_t len;
    emu_req_body(req, &len);
    if (len == 0)
        return true;
    json_t *b = emu_req_json(req, NULL, 0);
    json_t *msg = json_object_get(b, "message");
    if (!json_is_object(b) || (msg && !json_is_string(msg))) {
        emu_resp_json(resp, 400, json_pack("{s:s}", "key", "bodyParseFailure"));
        return false;
    }
    return true;
}

static void admin_set_active(emu_t *emu, emu_req_t *req, emu_resp_t *resp, bool active)
{
    if (!admin_body_ok(req, resp))
        return;
    emu_user_t *u = admin_account(emu, req, resp);
    if (!u)
        return;
    if (u->active != active)
        emu_count_mutation(emu, "user", u->account_id, active ? "activate" : "deactivate");
    emu_user_set_active(emu, u, active);
    emu_resp_empty(resp, 204);
}

static void admin_disable(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    admin_set_active(emu, req, resp, false);
}

static void admin_enable(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    admin_set_active(emu, req, resp, true);
}

static void admin_delete(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    emu_user_t *u = admin_account(emu, req, resp);
    if (!u)
        return;
    if (u->flags & EMU_USER_PENDING_DELETE) {
        emu_resp_json(resp, 409,
                      json_pack("{s:s, s:{s:s, s:s, s:[{s:s, s:s}]}}", "key",
                                "conflict.lifecycleErrors", "context", "message",
                                "This account is already scheduled for deletion.", "accountId",
                                u->account_id, "errorCodes", "code", "ALREADY_SCHEDULED", "message",
                                "The account is already scheduled for deletion."));
        return;
    }
    u->flags |= EMU_USER_PENDING_DELETE;
    emu_user_set_active(emu, u, false);
    emu_count_mutation(emu, "user", u->account_id, "delete-requested");
    emu_resp_json(
        resp, 200,
        json_pack("{s:s}", "message", "The account will be deleted after a 14-day grace period."));
}

static void admin_cancel_delete(emu_t *emu, emu_req_t *req, emu_resp_t *resp)
{
    emu_user_t *u = admin_account(emu, req, resp);
    if (!u)
        return;
    if (u->flags & EMU_USER_PENDING_DELETE) {
        u->flags &= ~EMU_USER_PENDING_DELETE;
        emu_user_set_active(emu, u, true);
        emu_count_mutation(emu, "user", u->account_id, "delete-cancelled");
    }
    emu_resp_json(resp, 200, json_pack("{s:s}", "message", "Success"));
}

void emu_admin_register(emu_t *emu)
{
    const emu_route_opts o = {.auth = EMU_AUTH_ADMIN};
    emu_route(emu, "POST", "/users/{accountId}/manage/lifecycle/disable", admin_disable, &o);
    emu_route(emu, "POST", "/users/{accountId}/manage/lifecycle/enable", admin_enable, &o);
    emu_route(emu, "POST", "/users/{accountId}/manage/lifecycle/delete", admin_delete, &o);
    emu_route(emu, "POST", "/users/{accountId}/manage/lifecycle/cancel-delete", admin_cancel_delete,
              &o);
}
