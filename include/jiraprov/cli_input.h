/* cli_input: the event readers of the producer CLIs (jiraprov-produce and friends).
 *
 * A reader turns one input (a file, or stdin) into a sequence of records, one per event: the
 * event's JSON text and the line where the event starts, so that a CLI can report a bad event as
 * `FILE:LINE: reason`. Readers do not judge events; the contract decoder (event.h) does.
 *
 * Formats:
 * - JSON Lines (.jsonl, .ndjson; the default for stdin): one event per line. Blank lines and lines
 *   whose first non-blank character is '#' are skipped. A record's text is the line exactly as
 *   read, without its terminator (LF or CRLF) and without a leading UTF-8 byte-order mark.
 * - JSON (.json): one document, either an array of events (one record per element, the element's
 *   exact bytes) or anything else (one record, the whole document minus surrounding blanks).
 * - YAML (.yaml, .yml): a stream of documents, each either a sequence of events (one record per
 *   element) or a single event. Documents that are empty or null are skipped. Each record is the
 *   element converted to compact JSON. Plain scalars are typed by the YAML 1.2 core schema: null
 *   (~, null, empty), booleans (true/false, also Title and UPPER case), integers (decimal, 0o
 *   octal, 0x hex, within int64) and floats; every other scalar, and every quoted or block
 *   scalar, is a string. Explicit tags !!str, !!int, !!float, !!bool, !!null are honoured.
 *   Anchors and aliases work; mapping keys must be scalars; duplicate keys, .inf/.nan (not JSON)
 *   and integers out of int64 range are errors.
 *
 * Errors: jp_input_next() returns JP_ERR_INVALID for a syntax error in a JSON or YAML input,
 * with the line in rec->line and the reason (without file or line) in errstr; such an error ends
 * that input (the next call reports the end). JP_ERR_IO means the input could not be read.
 *
 * Ownership: jp_input_t belongs to the caller (jp_input_destroy, which accepts NULL). A record's
 * text is malloc'd and handed to the caller, who frees it with free(). A stream passed to
 * jp_input_open_stream() stays the caller's; files opened by jp_input_open() are the reader's.
 * A reader is used by one thread at a time. */
#ifndef JIRAPROV_CLI_INPUT_H
#define JIRAPROV_CLI_INPUT_H

#include <stddef.h>
#include <stdio.h>

#include "jiraprov/err.h"

typedef enum jp_input_format {
    JP_INPUT_AUTO = 0, /* from the file name's extension; JSON Lines for stdin */
    JP_INPUT_JSONL,
    JP_INPUT_JSON,
    JP_INPUT_YAML
} jp_input_format_t;

typedef struct jp_input jp_input_t;

typedef struct jp_input_record {
    char *text; /* the event's JSON, NUL-terminated; NULL at the end of the input */
    size_t len; /* bytes in text, without the NUL */
    long line;  /* 1-based line where the event starts (or where the error is) */
} jp_input_record_t;

/* "jsonl" (also "ndjson"), "json", "yaml" (also "yml"), "auto"; -1 if unknown. */
int jp_input_format_parse(const char *name);
const char *jp_input_format_name(jp_input_format_t fmt);
/* The format implied by a path's extension; JP_INPUT_JSONL for "-" (stdin), JP_INPUT_AUTO when
 * the extension says nothing. */
jp_input_format_t jp_input_format_guess(const char *path);

/* Opens `path` ("-" = stdin) in format `fmt` (JP_INPUT_AUTO: guessed from the extension; an
 * unknown extension is JP_ERR_INVALID). JP_ERR_IO if the file cannot be opened. */
jp_err_t jp_input_open(const char *path, jp_input_format_t fmt, jp_input_t **out, char *errstr,
                       size_t errstr_size);

/* Reads from a stream the caller keeps; `name` is used in messages (copied). `fmt` must not be
 * JP_INPUT_AUTO unless the name has a known extension. */
jp_err_t jp_input_open_stream(FILE *fp, const char *name, jp_input_format_t fmt, jp_input_t **out,
                              char *errstr, size_t errstr_size);

/* The next record. At the end of the input returns JP_OK with rec->text == NULL. */
jp_err_t jp_input_next(jp_input_t *in, jp_input_record_t *rec, char *errstr, size_t errstr_size);

/* The input's display name: the path as given, "<stdin>" for "-". */
const char *jp_input_name(const jp_input_t *in);
jp_input_format_t jp_input_format(const jp_input_t *in);

void jp_input_destroy(jp_input_t *in);

#endif
