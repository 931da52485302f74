/* jira_adf.c - structural validation of Atlassian Document Format values.
 *
 * Jira v3 rejects anything in `description` that is not an ADF document.
 * The check here is structural: the root is {"type":"doc","version":1,
 * "content":[…]}, every node is an object with a known `type`, `content` is an
 * array of nodes, text nodes carry a non-empty `text`, and marks are objects
 * with a known `type`. Attribute values are not checked. */
#include "jira.h"

#include <string.h>

#define JIRA_ADF_MAX_DEPTH 64

static const char *const jira_adf_nodes[] = {"blockCard",       "blockquote",   "bodiedExtension",
                                             "bulletList",      "codeBlock",    "date",
                                             "decisionItem",    "decisionList", "embedCard",
                                             "emoji",           "expand",       "extension",
                                             "hardBreak",       "heading",      "inlineCard",
                                             "inlineExtension", "layoutColumn", "layoutSection",
                                             "listItem",        "media",        "mediaGroup",
                                             "mediaInline",     "mediaSingle",  "mention",
                                             "nestedExpand",    "orderedList",  "panel",
                                             "paragraph",       "placeholder",  "rule",
                                             "status",          "table",        "tableCell",
                                             "tableHeader",     "tableRow",     "taskItem",
                                             "taskList",        "text",         NULL};

static const char *const jira_adf_marks[] = {
    "alignment",    "annotation", "backgroundColor", "border",      "breakout", "code",
    "dataConsumer", "em",         "fragment",        "indentation", "link",     "strike",
    "strong",       "subsup",     "textColor",       "underline",   NULL};

static int jira_adf_in(const char *const *list, const char *s)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

static int jira_adf_marks_valid(const json_t *marks)
{
    if (!marks)
        return 1;
    if (!json_is_array(marks))
        return 0;
    size_t i;
    json_t *m;
    json_array_foreach(marks, i, m)
    {
        const char *t = json_string_value(json_object_get(m, "type"));
        if (!json_is_object(m) || !t || !jira_adf_in(jira_adf_marks, t))
            return 0;
    }
    return 1;
}

static int jira_adf_node_valid(const json_t *node, int depth);

static int jira_adf_content_valid(const json_t *content, int depth)
{
    if (!json_is_array(content))
        return 0;
    size_t i;
    json_t *n;
    json_array_foreach(content, i, n)
    {
        if (!jira_adf_node_valid(n, depth + 1))
            return 0;
    }
    return 1;
}

static int jira_adf_node_valid(const json_t *node, int depth)
{
    if (depth > JIRA_ADF_MAX_DEPTH || !json_is_object(node))
        return 0;
    const char *type = json_string_value(json_object_get(node, "type"));
    if (!type || !jira_adf_in(jira_adf_nodes, type))
        return 0;
    const json_t *attrs = json_object_get(node, "attrs");
    if (attrs && !json_is_object(attrs))
        return 0;
    if (strcmp(type, "text") == 0) {
        const char *text = json_string_value(json_object_get(node, "text"));
        if (!text || !*text || json_object_get(node, "content"))
            return 0;
    }
    if (!jira_adf_marks_valid(json_object_get(node, "marks")))
        return 0;
    const json_t *content = json_object_get(node, "content");
    return content ? jira_adf_content_valid(content, depth) : 1;
}

int jira_adf_valid(const json_t *v)
{
    if (!json_is_object(v))
        return 0;
    const char *type = json_string_value(json_object_get(v, "type"));
    const json_t *ver = json_object_get(v, "version");
    if (!type || strcmp(type, "doc") != 0 || !json_is_integer(ver) || json_integer_value(ver) != 1)
        return 0;
    return jira_adf_content_valid(json_object_get(v, "content"), 0);
}
