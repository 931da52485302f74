/* Plain text to Atlassian Document Format (Jira REST v3 wants ADF for
 * description and other rich-text fields; IDHub sends plain text).
 *
 * Blank lines separate paragraphs; a single newline inside a paragraph
 * becomes a hardBreak; CR LF and lone CR count as newlines. No markup is
 * interpreted: what IDHub wrote is what Jira shows. */
#ifndef JIRAPROV_ADF_H
#define JIRAPROV_ADF_H

#include <jansson.h>

/* Returns a new reference to {"type":"doc","version":1,"content":[...]},
 * or NULL on allocation failure. `text` must be valid UTF-8 (the event
 * decoder guarantees it); NULL counts as empty. */
json_t *jp_adf_from_text(const char *text);

#endif
