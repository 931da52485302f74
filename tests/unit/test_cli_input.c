#include "jiraprov/cli_input.h"

#include <check.h>
#include <glob.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/check_main.h"

/* A reader over `text` (format `fmt`), through a temporary file so that empty inputs work. */
typedef struct reader {
    FILE *fp;
    jp_input_t *in;
} reader_t;

static reader_t open_text(const char *text, const char *name, jp_input_format_t fmt)
{
    reader_t r;
    char errstr[256];
    size_t len = strlen(text);

    r.fp = tmpfile();
    ck_assert_ptr_nonnull(r.fp);
    ck_assert_uint_eq(fwrite(text, 1, len, r.fp), len);
    rewind(r.fp);
    ck_assert_int_eq(jp_input_open_stream(r.fp, name, fmt, &r.in, errstr, sizeof(errstr)), JP_OK);
    return r;
}

static void close_reader(reader_t *r)
{
    jp_input_destroy(r->in);
    fclose(r->fp);
}

/* Reads the next record and checks its line; returns its text (caller frees). */
static char *expect_record(reader_t *r, long line)
{
    jp_input_record_t rec;
    char errstr[256] = "";
    jp_err_t err = jp_input_next(r->in, &rec, errstr, sizeof(errstr));

    ck_assert_msg(err == JP_OK, "unexpected error: %s", errstr);
    ck_assert_ptr_nonnull(rec.text);
    ck_assert_uint_eq(rec.len, strlen(rec.text));
    ck_assert_int_eq(rec.line, line);
    return rec.text;
}

static void expect_end(reader_t *r)
{
    jp_input_record_t rec;
    char errstr[256] = "";

    ck_assert_int_eq(jp_input_next(r->in, &rec, errstr, sizeof(errstr)), JP_OK);
    ck_assert_ptr_null(rec.text);
    /* the end is sticky */
    ck_assert_int_eq(jp_input_next(r->in, &rec, errstr, sizeof(errstr)), JP_OK);
    ck_assert_ptr_null(rec.text);
}

/* Expects an error at `line` whose message contains `needle`; then the end. */
static void expect_error(reader_t *r, jp_err_t want, long line, const char *needle)
{
    jp_input_record_t rec;
    char errstr[256] = "";
    jp_err_t err = jp_input_next(r->in, &rec, errstr, sizeof(errstr));

    ck_assert_int_eq(err, want);
    ck_assert_ptr_null(rec.text);
    ck_assert_int_eq(rec.line, line);
    ck_assert_msg(strstr(errstr, needle) != NULL, "\"%s\" not in \"%s\"", needle, errstr);
    expect_end(r);
}

static void expect_text(reader_t *r, long line, const char *want)
{
    char *text = expect_record(r, line);
    ck_assert_str_eq(text, want);
    free(text);
}

static json_t *expect_json(reader_t *r, long line)
{
    char *text = expect_record(r, line);
    json_error_t jerr;
    json_t *v = json_loads(text, 0, &jerr);

    ck_assert_msg(v != NULL, "record is not JSON: %s", text);
    free(text);
    return v;
}

START_TEST(jsonl_lines_and_skips)
{
    reader_t r = open_text("\n# a comment\n{\"a\":1}\n   \n{\"b\": 2 }\r\n  # indented comment\n"
                           "\t\n{\"c\":3}",
                           "x.jsonl", JP_INPUT_AUTO);

    ck_assert_int_eq(jp_input_format(r.in), JP_INPUT_JSONL);
    expect_text(&r, 3, "{\"a\":1}");
    expect_text(&r, 5, "{\"b\": 2 }");
    expect_text(&r, 8, "{\"c\":3}");
    expect_end(&r);
    close_reader(&r);
}
END_TEST

START_TEST(jsonl_keeps_bad_lines_for_the_decoder)
{
    /* the reader does not parse lines: the decoder reports them with their line */
    reader_t r = open_text("\xEF\xBB\xBF{\"a\":1}\nnot json\n", "x.ndjson", JP_INPUT_AUTO);

    expect_text(&r, 1, "{\"a\":1}");
    expect_text(&r, 2, "not json");
    expect_end(&r);
    close_reader(&r);
}
END_TEST

START_TEST(json_array_exact_slices)
{
    reader_t r = open_text("[\n  {\"a\": 1},\n  {\"b\": [1, 2, {\"c\": \"]\\\"}\"}]}\n"
                           "  ,\"str,ing\", 42 ,\n  {\n   \"d\": null\n  }\n]\n",
                           "x.json", JP_INPUT_AUTO);

    expect_text(&r, 2, "{\"a\": 1}");
    expect_text(&r, 3, "{\"b\": [1, 2, {\"c\": \"]\\\"}\"}]}");
    expect_text(&r, 4, "\"str,ing\"");
    expect_text(&r, 4, "42");
    expect_text(&r, 5, "{\n   \"d\": null\n  }");
    expect_end(&r);
    close_reader(&r);
}
END_TEST

START_TEST(json_single_object_and_empty_array)
{
    reader_t r = open_text("\n\n  {\"id\": \"e1\",\n   \"x\": [1]}  \n\n", "x.json", JP_INPUT_AUTO);

    expect_text(&r, 3, "{\"id\": \"e1\",\n   \"x\": [1]}");
    expect_end(&r);
    close_reader(&r);

    r = open_text(" [ ] ", "x.json", JP_INPUT_AUTO);
    expect_end(&r);
    close_reader(&r);
}
END_TEST

START_TEST(json_syntax_error_has_line)
{
    reader_t r = open_text("[\n {\"a\": 1},\n {\"b\": 2,}\n]\n", "x.json", JP_INPUT_AUTO);

    expect_error(&r, JP_ERR_INVALID, 3, "invalid JSON");
    close_reader(&r);

    r = open_text("\n\n{\"a\": 1} {\"b\": 2}\n", "x.json", JP_INPUT_AUTO);
    expect_error(&r, JP_ERR_INVALID, 3, "invalid JSON");
    close_reader(&r);
}
END_TEST

START_TEST(yaml_single_event_types)
{
    reader_t r = open_text("# an event\n"
                           "id: \"123\"\n"
                           "count: 123\n"
                           "neg: -7\n"
                           "hex: 0x1F\n"
                           "oct: 0o17\n"
                           "ratio: 1.5\n"
                           "active: false\n"
                           "on: True\n"
                           "quoted_bool: 'true'\n"
                           "nothing: null\n"
                           "tilde: ~\n"
                           "empty:\n"
                           "version: 1.0.0\n"
                           "yes_word: yes\n"
                           "text: hello world\n"
                           "tagged_str: !!str 42\n"
                           "tagged_int: !!int \"42\"\n"
                           "nested:\n"
                           "  list: [a, 2, \"3\"]\n"
                           "block: |\n"
                           "  line one\n"
                           "  line two\n",
                           "x.yaml", JP_INPUT_AUTO);
    json_t *v = expect_json(&r, 2);

    ck_assert(json_is_string(json_object_get(v, "id")));
    ck_assert_str_eq(json_string_value(json_object_get(v, "id")), "123");
    ck_assert(json_is_integer(json_object_get(v, "count")));
    ck_assert_int_eq(json_integer_value(json_object_get(v, "count")), 123);
    ck_assert_int_eq(json_integer_value(json_object_get(v, "neg")), -7);
    ck_assert_int_eq(json_integer_value(json_object_get(v, "hex")), 31);
    ck_assert_int_eq(json_integer_value(json_object_get(v, "oct")), 15);
    ck_assert(json_is_real(json_object_get(v, "ratio")));
    ck_assert(json_is_false(json_object_get(v, "active")));
    ck_assert(json_is_true(json_object_get(v, "on")));
    ck_assert(json_is_string(json_object_get(v, "quoted_bool")));
    ck_assert(json_is_null(json_object_get(v, "nothing")));
    ck_assert(json_is_null(json_object_get(v, "tilde")));
    ck_assert(json_is_null(json_object_get(v, "empty")));
    ck_assert_str_eq(json_string_value(json_object_get(v, "version")), "1.0.0");
    ck_assert_str_eq(json_string_value(json_object_get(v, "yes_word")), "yes");
    ck_assert_str_eq(json_string_value(json_object_get(v, "text")), "hello world");
    ck_assert_str_eq(json_string_value(json_object_get(v, "tagged_str")), "42");
    ck_assert_int_eq(json_integer_value(json_object_get(v, "tagged_int")), 42);
    json_t *list = json_object_get(json_object_get(v, "nested"), "list");
    ck_assert_uint_eq(json_array_size(list), 3);
    ck_assert(json_is_string(json_array_get(list, 0)));
    ck_assert(json_is_integer(json_array_get(list, 1)));
    ck_assert(json_is_string(json_array_get(list, 2)));
    ck_assert_str_eq(json_string_value(json_object_get(v, "block")), "line one\nline two\n");
    json_decref(v);
    expect_end(&r);
    close_reader(&r);
}
END_TEST

START_TEST(yaml_keeps_key_order_compact)
{
    reader_t r = open_text("b: 1\na: [x, {c: true}]\n", "x.yml", JP_INPUT_AUTO);

    expect_text(&r, 1, "{\"b\":1,\"a\":[\"x\",{\"c\":true}]}");
    expect_end(&r);
    close_reader(&r);
}
END_TEST

START_TEST(yaml_list_and_documents)
{
    reader_t r = open_text("# events\n"
                           "- id: e1\n"
                           "  n: 1\n"
                           "\n"
                           "- id: e2\n"
                           "  n: 2\n"
                           "---\n"
                           "---\n"
                           "# an empty document above, a single event below\n"
                           "id: e3\n",
                           "x.yaml", JP_INPUT_AUTO);

    expect_text(&r, 2, "{\"id\":\"e1\",\"n\":1}");
    expect_text(&r, 5, "{\"id\":\"e2\",\"n\":2}");
    expect_text(&r, 10, "{\"id\":\"e3\"}");
    expect_end(&r);
    close_reader(&r);
}
END_TEST

START_TEST(yaml_anchors_and_aliases)
{
    reader_t r = open_text("- &base {site: demo, actor: admin}\n"
                           "- k: *base\n"
                           "  s: &s hello\n"
                           "  t: *s\n",
                           "x.yaml", JP_INPUT_AUTO);

    expect_text(&r, 1, "{\"site\":\"demo\",\"actor\":\"admin\"}");
    expect_text(&r, 2,
                "{\"k\":{\"site\":\"demo\",\"actor\":\"admin\"},\"s\":\"hello\",\"t\":\"hello\"}");
    expect_end(&r);
    close_reader(&r);
}
END_TEST

START_TEST(yaml_alias_bomb_is_refused)
{
    /* 10 levels of 10 aliases: 10^10 values once expanded */
    char text[4096];
    size_t used = 0;
    int i;

    used += (size_t)snprintf(text + used, sizeof(text) - used,
                             "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for (i = 1; i < 10; i++)
        used += (size_t)snprintf(text + used, sizeof(text) - used,
                                 "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, "
                                 "*a%d]\n",
                                 i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1,
                                 i - 1, i - 1);
    ck_assert_uint_lt(used, sizeof(text));
    reader_t r = open_text(text, "x.yaml", JP_INPUT_AUTO);
    expect_error(&r, JP_ERR_TOO_LARGE, 6, "alias expansion");
    close_reader(&r);
}
END_TEST

START_TEST(yaml_syntax_error_has_line)
{
    reader_t r =
        open_text("- id: e1\n- id: e2\n  name: [a, b\n- id: e3\n", "x.yaml", JP_INPUT_AUTO);

    /* events before the error are still returned */
    expect_text(&r, 1, "{\"id\":\"e1\"}");
    jp_input_record_t rec;
    char errstr[256] = "";
    ck_assert_int_eq(jp_input_next(r.in, &rec, errstr, sizeof(errstr)), JP_ERR_INVALID);
    ck_assert_ptr_null(rec.text);
    ck_assert_int_ge(rec.line, 3);
    ck_assert_int_le(rec.line, 4);
    ck_assert_ptr_nonnull(strstr(errstr, "invalid YAML"));
    expect_end(&r);
    close_reader(&r);

    r = open_text("a: 1\n  b: 2\n", "x.yaml", JP_INPUT_AUTO);
    expect_error(&r, JP_ERR_INVALID, 2, "invalid YAML");
    close_reader(&r);
}
END_TEST

START_TEST(yaml_semantic_errors)
{
    reader_t r = open_text("a: 1\nb: 2\na: 3\n", "x.yaml", JP_INPUT_AUTO);
    expect_error(&r, JP_ERR_INVALID, 3, "duplicate key \"a\"");
    close_reader(&r);

    r = open_text("n: 99999999999999999999\n", "x.yaml", JP_INPUT_AUTO);
    expect_error(&r, JP_ERR_INVALID, 1, "out of range");
    close_reader(&r);

    r = open_text("x: 1\ny: .inf\n", "x.yaml", JP_INPUT_AUTO);
    expect_error(&r, JP_ERR_INVALID, 2, "no JSON form");
    close_reader(&r);

    r = open_text("? [a, b]\n: 1\n", "x.yaml", JP_INPUT_AUTO);
    expect_error(&r, JP_ERR_INVALID, 1, "mapping keys");
    close_reader(&r);

    r = open_text("x: !!binary aGVsbG8=\n", "x.yaml", JP_INPUT_AUTO);
    expect_error(&r, JP_ERR_INVALID, 1, "not supported");
    close_reader(&r);

    r = open_text("x: *nope\n", "x.yaml", JP_INPUT_AUTO);
    expect_error(&r, JP_ERR_INVALID, 1, "unknown anchor");
    close_reader(&r);
}
END_TEST

START_TEST(empty_inputs)
{
    static const char *const names[] = {"e.jsonl", "e.json", "e.yaml"};
    static const char *const texts[] = {"", "  \n\n# only a comment\n"};
    size_t i, j;

    for (i = 0; i < 3; i++) {
        for (j = 0; j < 2; j++) {
            if (i == 1 && j == 1)
                continue; /* '#' is not JSON */
            reader_t r = open_text(texts[j], names[i], JP_INPUT_AUTO);
            expect_end(&r);
            close_reader(&r);
        }
    }
    reader_t r = open_text(" \n\t\n", "e.json", JP_INPUT_AUTO);
    expect_end(&r);
    close_reader(&r);
}
END_TEST

START_TEST(formats_and_open_errors)
{
    jp_input_t *in = NULL;
    char errstr[256];

    ck_assert_int_eq(jp_input_format_guess("a/b.JSONL"), JP_INPUT_JSONL);
    ck_assert_int_eq(jp_input_format_guess("a/b.txt"), JP_INPUT_AUTO);
    ck_assert_int_eq(jp_input_format_guess("a/b.jsonl"), JP_INPUT_JSONL);
    ck_assert_int_eq(jp_input_format_guess("b.ndjson"), JP_INPUT_JSONL);
    ck_assert_int_eq(jp_input_format_guess("b.json"), JP_INPUT_JSON);
    ck_assert_int_eq(jp_input_format_guess("b.yml"), JP_INPUT_YAML);
    ck_assert_int_eq(jp_input_format_guess("-"), JP_INPUT_JSONL);
    ck_assert_int_eq(jp_input_format_guess("dir.json/file"), JP_INPUT_AUTO);
    ck_assert_int_eq(jp_input_format_parse("YAML"), JP_INPUT_YAML);
    ck_assert_int_eq(jp_input_format_parse("xml"), -1);
    ck_assert_str_eq(jp_input_format_name(JP_INPUT_JSON), "json");

    ck_assert_int_eq(
        jp_input_open("/nonexistent/dir/x.jsonl", JP_INPUT_AUTO, &in, errstr, sizeof(errstr)),
        JP_ERR_IO);
    ck_assert_ptr_null(in);
    ck_assert_ptr_nonnull(strstr(errstr, "/nonexistent/dir/x.jsonl"));
    ck_assert_int_eq(jp_input_open("events.txt", JP_INPUT_AUTO, &in, errstr, sizeof(errstr)),
                     JP_ERR_INVALID);
    ck_assert_int_eq(jp_input_open("-", JP_INPUT_AUTO, &in, errstr, sizeof(errstr)), JP_OK);
    ck_assert_str_eq(jp_input_name(in), "<stdin>");
    ck_assert_int_eq(jp_input_format(in), JP_INPUT_JSONL);
    jp_input_destroy(in);
    jp_input_destroy(NULL);
}
END_TEST

/* Counts the records of a repository sample, failing on any reader error. */
static int sample_records(const char *path)
{
    jp_input_t *in = NULL;
    jp_input_record_t rec;
    char errstr[256];
    int n = 0;

    ck_assert_msg(jp_input_open(path, JP_INPUT_AUTO, &in, errstr, sizeof(errstr)) == JP_OK, "%s",
                  errstr);
    for (;;) {
        ck_assert_msg(jp_input_next(in, &rec, errstr, sizeof(errstr)) == JP_OK, "%s: %s", path,
                      errstr);
        if (!rec.text)
            break;
        ck_assert_int_gt(rec.line, 0);
        ck_assert_ptr_nonnull(strstr(rec.text, "\"specversion\""));
        free(rec.text);
        n++;
    }
    jp_input_destroy(in);
    return n;
}

START_TEST(reads_repository_samples)
{
    char path[1024];
    glob_t g;
    size_t i;

    snprintf(path, sizeof(path), "%s/config/samples/demo.jsonl", JP_SOURCE_DIR);
    ck_assert_int_gt(sample_records(path), 0);
    snprintf(path, sizeof(path), "%s/config/samples/*.json", JP_SOURCE_DIR);
    ck_assert_int_eq(glob(path, 0, NULL, &g), 0);
    ck_assert_uint_gt(g.gl_pathc, 0);
    for (i = 0; i < g.gl_pathc; i++)
        ck_assert_int_eq(sample_records(g.gl_pathv[i]), 1);
    globfree(&g);
}
END_TEST

static Suite *cli_input_suite(void)
{
    Suite *s = suite_create("cli_input");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, jsonl_lines_and_skips);
    tcase_add_test(tc, jsonl_keeps_bad_lines_for_the_decoder);
    tcase_add_test(tc, json_array_exact_slices);
    tcase_add_test(tc, json_single_object_and_empty_array);
    tcase_add_test(tc, json_syntax_error_has_line);
    tcase_add_test(tc, yaml_single_event_types);
    tcase_add_test(tc, yaml_keeps_key_order_compact);
    tcase_add_test(tc, yaml_list_and_documents);
    tcase_add_test(tc, yaml_anchors_and_aliases);
    tcase_add_test(tc, yaml_alias_bomb_is_refused);
    tcase_add_test(tc, yaml_syntax_error_has_line);
    tcase_add_test(tc, yaml_semantic_errors);
    tcase_add_test(tc, empty_inputs);
    tcase_add_test(tc, formats_and_open_errors);
    tcase_add_test(tc, reads_repository_samples);
    suite_add_tcase(s, tc);
    return s;
}

JP_CHECK_MAIN(cli_input_suite)
