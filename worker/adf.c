#include "jiraprov/adf.h"

#include <string.h>

/* Appends a text node for s[0..n) to `content` unless the run is empty:
 * ADF forbids empty text nodes. */
static int add_text(json_t *content, const char *s, size_t n)
{
    if (n == 0)
        return 0;
    json_t *node = json_pack("{s:s, s:s%}", "type", "text", "text", s, n);
    return node ? json_array_append_new(content, node) : -1;
}

/* Consumes para_content in every case. */
static int add_paragraph(json_t *doc_content, json_t *para_content)
{
    /* Drop a trailing hardBreak: it would render as an empty line. */
    size_t n = json_array_size(para_content);
    if (n &&
        !strcmp(json_string_value(json_object_get(json_array_get(para_content, n - 1), "type")),
                "hardBreak"))
        json_array_remove(para_content, n - 1);
    if (json_array_size(para_content) == 0) {
        json_decref(para_content);
        return 0;
    }
    json_t *para = json_pack("{s:s, s:o}", "type", "paragraph", "content", para_content);
    return para ? json_array_append_new(doc_content, para) : -1;
}

static size_t newline_len(const char *p)
{
    if (p[0] == '\r' && p[1] == '\n')
        return 2;
    return (p[0] == '\n' || p[0] == '\r') ? 1 : 0;
}

json_t *jp_adf_from_text(const char *text)
{
    json_t *content = json_array();
    json_t *para = json_array();
    if (!content || !para)
        goto fail;
    const char *p = text ? text : "", *run = p;
    while (*p) {
        size_t nl = newline_len(p);
        if (!nl) {
            p++;
            continue;
        }
        if (add_text(para, run, (size_t)(p - run)))
            goto fail;
        p += nl;
        if (newline_len(p)) { /* blank line: end the paragraph */
            while (newline_len(p))
                p += newline_len(p);
            int rc = add_paragraph(content, para); /* consumes para */
            para = rc ? NULL : json_array();
            if (!para)
                goto fail;
        } else if (json_array_size(para) &&
                   json_array_append_new(para, json_pack("{s:s}", "type", "hardBreak"))) {
            goto fail;
        }
        run = p;
    }
    if (add_text(para, run, (size_t)(p - run)) || add_paragraph(content, para))
        goto fail_content;
    return json_pack("{s:s, s:i, s:o}", "type", "doc", "version", 1, "content", content);
fail:
    json_decref(para);
fail_content:
    json_decref(content);
    return NULL;
}
