/* The metrics registry and its Prometheus text rendering: exact output for
 * counters, gauges and histograms, escaping, number spelling, refused names
 * and updates, concurrent updates while rendering, and the worker's
 * catalogue (every line checked against the exposition format). */
#include "jiraprov/metrics.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/check_main.h"

/* ---- a checker of the text format (version 0.0.4) ------------------------------- */

typedef struct fmt_state {
    char family[128];
    char type[16];
    char hist_labels[512]; /* label set of the histogram series being read */
    double last_le;
    double last_bucket;
    double inf_count;
    int seen_inf;
} fmt_state_t;

static int name_char(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

static int parse_value(const char *s, double *out)
{
    if (!strcmp(s, "+Inf")) {
        *out = INFINITY;
        return 1;
    }
    if (!strcmp(s, "-Inf")) {
        *out = -INFINITY;
        return 1;
    }
    if (!strcmp(s, "NaN")) {
        *out = NAN;
        return 1;
    }
    char *end;
    *out = strtod(s, &end);
    return end != s && *end == '\0';
}

/* Checks one sample line; fills name, the label set without le, and le. */
static const char *parse_sample(const char *line, char *name, size_t nsize, char *labels,
                                size_t lsize, char *le, size_t lesize, double *value)
{
    size_t n = 0;
    const char *p = line;
    while (name_char(*p, p == line)) {
        if (n + 1 < nsize)
            name[n++] = *p;
        p++;
    }
    name[n] = '\0';
    if (!n)
        return "no metric name";
    labels[0] = le[0] = '\0';
    size_t lpos = 0;
    if (*p == '{') {
        p++;
        int first = 1;
        while (*p != '}') {
            if (!first && *p++ != ',')
                return "labels not separated by a comma";
            first = 0;
            char lname[64];
            size_t k = 0;
            const char *start = p;
            while (name_char(*p, p == start) && *p != ':') {
                if (k + 1 < sizeof(lname))
                    lname[k++] = *p;
                p++;
            }
            lname[k] = '\0';
            if (!k || *p++ != '=' || *p++ != '"')
                return "bad label";
            char val[256];
            size_t v = 0;
            while (*p != '"') {
                if (!*p || *p == '\n')
                    return "unterminated label value";
                if (*p == '\\') {
                    p++;
                    if (*p != '\\' && *p != '"' && *p != 'n')
                        return "bad escape in a label value";
                }
                if (v + 1 < sizeof(val))
                    val[v++] = *p;
                p++;
            }
            val[v] = '\0';
            p++;
            if (!strcmp(lname, "le")) {
                snprintf(le, lesize, "%s", val);
            } else {
                int w = snprintf(labels + lpos, lsize - lpos, "%s=%s;", lname, val);
                if (w > 0 && (size_t)w < lsize - lpos)
                    lpos += (size_t)w;
            }
        }
        p++;
    }
    if (*p++ != ' ')
        return "no space before the value";
    if (!parse_value(p, value))
        return "bad value";
    return NULL;
}

static const char *check_line(fmt_state_t *st, const char *line)
{
    static const char *const types[] = {"counter", "gauge", "histogram", "summary", "untyped"};
    if (!strncmp(line, "# HELP ", 7)) {
        const char *p = line + 7;
        size_t n = strcspn(p, " ");
        if (!n || !p[n])
            return "HELP without text";
        for (const char *h = p + n + 1; *h; h++)
            if (*h == '\\' && *++h != '\\' && *h != 'n')
                return "bad escape in HELP";
        snprintf(st->family, sizeof(st->family), "%.*s", (int)n, p);
        st->type[0] = '\0';
        return NULL;
    }
    if (!strncmp(line, "# TYPE ", 7)) {
        const char *p = line + 7;
        size_t n = strcspn(p, " ");
        if (strlen(st->family) != n || strncmp(p, st->family, n))
            return "TYPE does not follow the HELP of its family";
        const char *t = p + n + 1;
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (!strcmp(t, types[i]))
                snprintf(st->type, sizeof(st->type), "%s", t);
        st->hist_labels[0] = '\0';
        st->seen_inf = 1;
        return st->type[0] ? NULL : "unknown TYPE";
    }
    if (line[0] == '#')
        return NULL;
    char name[160], labels[512], le[64];
    double value;
    const char *err =
        parse_sample(line, name, sizeof(name), labels, sizeof(labels), le, sizeof(le), &value);
    if (err)
        return err;
    if (!st->type[0])
        return "sample before TYPE";
    size_t fl = strlen(st->family);
    if (strcmp(st->type, "histogram")) {
        if (strcmp(name, st->family))
            return "sample of another family";
        if (le[0])
            return "le label outside a histogram";
        return NULL;
    }
    if (strncmp(name, st->family, fl))
        return "sample of another family";
    const char *suffix = name + fl;
    if (!strcmp(suffix, "_bucket")) {
        double bound;
        if (!le[0] || !parse_value(le, &bound))
            return "bucket without a valid le";
        if (strcmp(labels, st->hist_labels)) {
            if (!st->seen_inf)
                return "histogram series without a +Inf bucket";
            snprintf(st->hist_labels, sizeof(st->hist_labels), "%s", labels);
            st->last_le = -INFINITY;
            st->last_bucket = 0;
            st->seen_inf = 0;
        }
        if (!(bound > st->last_le))
            return "le not increasing";
        if (value < st->last_bucket)
            return "bucket counts not cumulative";
        st->last_le = bound;
        st->last_bucket = value;
        if (isinf(bound)) {
            st->seen_inf = 1;
            st->inf_count = value;
        }
        return NULL;
    }
    if (strcmp(labels, st->hist_labels) || !st->seen_inf)
        return "_sum/_count without the buckets of their series";
    if (!strcmp(suffix, "_count"))
        return value == st->inf_count ? NULL : "_count differs from the +Inf bucket";
    return !strcmp(suffix, "_sum") ? NULL : "unknown histogram suffix";
}

/* NULL when every line of text is valid; else the first problem with its line. */
static char *check_format(const char *text)
{
    static char why[512];
    fmt_state_t st;
    memset(&st, 0, sizeof(st));
    st.seen_inf = 1;
    const char *p = text;
    int lineno = 0;
    while (*p) {
        const char *nl = strchr(p, '\n');
        if (!nl) {
            snprintf(why, sizeof(why), "last line without a newline");
            return why;
        }
        char line[1024];
        snprintf(line, sizeof(line), "%.*s", (int)(nl - p), p);
        lineno++;
        const char *err = check_line(&st, line);
        if (err) {
            snprintf(why, sizeof(why), "line %d: %s: %s", lineno, err, line);
            return why;
        }
        p = nl + 1;
    }
    return NULL;
}

/* ---- exact output ----------------------------------------------------------------- */

START_TEST(counter_and_gauge_exact)
{
    jp_metrics_t *r = jp_metrics_new();
    char err[256];
    jp_metrics_family_t *c =
        jp_metrics_register(r, JP_METRICS_COUNTER, "http_requests_total", "Requests served.",
                            JP_METRICS_LV("method", "code"), NULL, 0, err, sizeof(err));
    jp_metrics_family_t *g = jp_metrics_register(r, JP_METRICS_GAUGE, "queue_depth", "Items.", NULL,
                                                 NULL, 0, err, sizeof(err));
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(jp_metrics_add(c, JP_METRICS_LV("GET", "200"), 1), 0);
    ck_assert_int_eq(jp_metrics_add(c, JP_METRICS_LV("POST", "429"), 2), 0);
    ck_assert_int_eq(jp_metrics_add(c, JP_METRICS_LV("GET", "200"), 3), 0);
    ck_assert_int_eq(jp_metrics_set(g, NULL, 7), 0);
    ck_assert_int_eq(jp_metrics_add(g, NULL, -2.5), 0);
    size_t len = 0;
    char *out = jp_metrics_render(r, &len);
    ck_assert_str_eq(out, "# HELP http_requests_total Requests served.\n"
                          "# TYPE http_requests_total counter\n"
                          "http_requests_total{method=\"GET\",code=\"200\"} 4\n"
                          "http_requests_total{method=\"POST\",code=\"429\"} 2\n"
                          "# HELP queue_depth Items.\n"
                          "# TYPE queue_depth gauge\n"
                          "queue_depth 4.5\n");
    ck_assert_uint_eq(len, strlen(out));
    ck_assert_ptr_null(check_format(out));
    free(out);
    jp_metrics_destroy(r);
}
END_TEST

START_TEST(family_without_series_has_help_and_type)
{
    jp_metrics_t *r = jp_metrics_new();
    ck_assert_ptr_nonnull(jp_metrics_register(r, JP_METRICS_GAUGE, "idle", "Nothing yet.",
                                              JP_METRICS_LV("site"), NULL, 0, NULL, 0));
    char *out = jp_metrics_render(r, NULL);
    ck_assert_str_eq(out, "# HELP idle Nothing yet.\n# TYPE idle gauge\n");
    free(out);
    jp_metrics_destroy(r);
}
END_TEST

START_TEST(escaping)
{
    jp_metrics_t *r = jp_metrics_new();
    jp_metrics_family_t *f =
        jp_metrics_register(r, JP_METRICS_GAUGE, "odd", "Back\\slash and\nnew \"line\".",
                            JP_METRICS_LV("v"), NULL, 0, NULL, 0);
    jp_metrics_set(f, JP_METRICS_LV("a\\b \"q\"\nz"), 1);
    char *out = jp_metrics_render(r, NULL);
    ck_assert_str_eq(out, "# HELP odd Back\\\\slash and\\nnew \"line\".\n"
                          "# TYPE odd gauge\n"
                          "odd{v=\"a\\\\b \\\"q\\\"\\nz\"} 1\n");
    ck_assert_ptr_null(check_format(out));
    free(out);
    jp_metrics_destroy(r);
}
END_TEST

START_TEST(histogram_exact)
{
    jp_metrics_t *r = jp_metrics_new();
    static const double b[] = {0.1, 1, 2.5};
    jp_metrics_family_t *h =
        jp_metrics_register(r, JP_METRICS_HISTOGRAM, "call_seconds", "Call time.",
                            JP_METRICS_LV("site"), b, 3, NULL, 0);
    ck_assert_ptr_nonnull(h);
    /* Upper bounds are inclusive: 0.1 falls in le="0.1". */
    const double obs[] = {0.05, 0.1, 2, 100};
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_eq(jp_metrics_observe(h, JP_METRICS_LV("acme"), obs[i]), 0);
    jp_metrics_observe(h, JP_METRICS_LV("b"), 0.5);
    char *out = jp_metrics_render(r, NULL);
    ck_assert_str_eq(out, "# HELP call_seconds Call time.\n"
                          "# TYPE call_seconds histogram\n"
                          "call_seconds_bucket{site=\"acme\",le=\"0.1\"} 2\n"
                          "call_seconds_bucket{site=\"acme\",le=\"1\"} 2\n"
                          "call_seconds_bucket{site=\"acme\",le=\"2.5\"} 3\n"
                          "call_seconds_bucket{site=\"acme\",le=\"+Inf\"} 4\n"
                          "call_seconds_sum{site=\"acme\"} 102.15\n"
                          "call_seconds_count{site=\"acme\"} 4\n"
                          "call_seconds_bucket{site=\"b\",le=\"0.1\"} 0\n"
                          "call_seconds_bucket{site=\"b\",le=\"1\"} 1\n"
                          "call_seconds_bucket{site=\"b\",le=\"2.5\"} 1\n"
                          "call_seconds_bucket{site=\"b\",le=\"+Inf\"} 1\n"
                          "call_seconds_sum{site=\"b\"} 0.5\n"
                          "call_seconds_count{site=\"b\"} 1\n");
    ck_assert_ptr_null(check_format(out));
    free(out);
    double n = 0;
    ck_assert(jp_metrics_get(h, JP_METRICS_LV("acme"), &n));
    ck_assert(n == 4);
    jp_metrics_destroy(r);
}
END_TEST

START_TEST(histogram_without_labels)
{
    jp_metrics_t *r = jp_metrics_new();
    static const double b[] = {1};
    jp_metrics_family_t *h =
        jp_metrics_register(r, JP_METRICS_HISTOGRAM, "t", "T.", NULL, b, 1, NULL, 0);
    jp_metrics_observe(h, NULL, 3);
    char *out = jp_metrics_render(r, NULL);
    ck_assert_str_eq(out, "# HELP t T.\n# TYPE t histogram\n"
                          "t_bucket{le=\"1\"} 0\nt_bucket{le=\"+Inf\"} 1\nt_sum 3\nt_count 1\n");
    ck_assert_ptr_null(check_format(out));
    free(out);
    jp_metrics_destroy(r);
}
END_TEST

START_TEST(number_spelling)
{
    char buf[64];
    ck_assert_str_eq(jp_metrics_format_value(42, buf, sizeof(buf)), "42");
    ck_assert_str_eq(jp_metrics_format_value(-3, buf, sizeof(buf)), "-3");
    ck_assert_str_eq(jp_metrics_format_value(0.1, buf, sizeof(buf)), "0.1");
    ck_assert_str_eq(jp_metrics_format_value(0.005, buf, sizeof(buf)), "0.005");
    ck_assert_str_eq(jp_metrics_format_value(1e-7, buf, sizeof(buf)), "1e-07");
    ck_assert_str_eq(jp_metrics_format_value(1.5e300, buf, sizeof(buf)), "1.5e+300");
    ck_assert_str_eq(jp_metrics_format_value(INFINITY, buf, sizeof(buf)), "+Inf");
    ck_assert_str_eq(jp_metrics_format_value(-INFINITY, buf, sizeof(buf)), "-Inf");
    ck_assert_str_eq(jp_metrics_format_value(NAN, buf, sizeof(buf)), "NaN");
    /* Round trip of a value without a short decimal form. */
    double third = 1.0 / 3.0;
    ck_assert(strtod(jp_metrics_format_value(third, buf, sizeof(buf)), NULL) == third);
}
END_TEST

/* ---- refusals ---------------------------------------------------------------------- */

START_TEST(bad_registrations)
{
    jp_metrics_t *r = jp_metrics_new();
    char err[256];
    static const double good[] = {1, 2}, flat[] = {1, 1}, nan_b[] = {NAN};
    ck_assert_ptr_null(
        jp_metrics_register(r, JP_METRICS_GAUGE, "1abc", "", NULL, NULL, 0, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "invalid metric name \"1abc\""));
    ck_assert_ptr_null(
        jp_metrics_register(r, JP_METRICS_GAUGE, "a-b", "", NULL, NULL, 0, err, sizeof(err)));
    ck_assert_ptr_null(jp_metrics_register(r, JP_METRICS_GAUGE, "g", "", JP_METRICS_LV("__x"), NULL,
                                           0, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "invalid label name \"__x\""));
    ck_assert_ptr_null(jp_metrics_register(r, JP_METRICS_GAUGE, "g", "", JP_METRICS_LV("a:b"), NULL,
                                           0, err, sizeof(err)));
    ck_assert_ptr_null(jp_metrics_register(r, JP_METRICS_GAUGE, "g", "", JP_METRICS_LV("a", "a"),
                                           NULL, 0, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "given twice"));
    ck_assert_ptr_null(jp_metrics_register(r, JP_METRICS_HISTOGRAM, "h", "", JP_METRICS_LV("le"),
                                           good, 2, err, sizeof(err)));
    ck_assert_ptr_null(
        jp_metrics_register(r, JP_METRICS_HISTOGRAM, "h", "", NULL, flat, 2, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "strictly increasing"));
    ck_assert_ptr_null(
        jp_metrics_register(r, JP_METRICS_HISTOGRAM, "h", "", NULL, nan_b, 1, err, sizeof(err)));
    ck_assert_ptr_null(
        jp_metrics_register(r, JP_METRICS_HISTOGRAM, "h", "", NULL, NULL, 0, err, sizeof(err)));
    ck_assert_ptr_null(jp_metrics_register(
        r, JP_METRICS_GAUGE, "g", "", JP_METRICS_LV("a", "b", "c", "d", "e", "f", "g", "h", "i"),
        NULL, 0, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "more than 8 labels"));
    ck_assert_ptr_nonnull(
        jp_metrics_register(r, JP_METRICS_GAUGE, "ns:g_1", "", NULL, NULL, 0, err, sizeof(err)));
    ck_assert_ptr_null(
        jp_metrics_register(r, JP_METRICS_COUNTER, "ns:g_1", "", NULL, NULL, 0, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "registered already"));
    char *out = jp_metrics_render(r, NULL);
    ck_assert_str_eq(out, "# HELP ns:g_1 \n# TYPE ns:g_1 gauge\n");
    ck_assert_ptr_null(check_format(out));
    free(out);
    jp_metrics_destroy(r);
}
END_TEST

START_TEST(bad_updates_change_nothing)
{
    jp_metrics_t *r = jp_metrics_new();
    static const double b[] = {1};
    jp_metrics_family_t *c = jp_metrics_register(r, JP_METRICS_COUNTER, "c_total", "C.",
                                                 JP_METRICS_LV("a", "b"), NULL, 0, NULL, 0);
    jp_metrics_family_t *h =
        jp_metrics_register(r, JP_METRICS_HISTOGRAM, "h", "H.", NULL, b, 1, NULL, 0);
    ck_assert_int_eq(jp_metrics_add(c, JP_METRICS_LV("only-one"), 1), -1);
    ck_assert_int_eq(jp_metrics_add(c, JP_METRICS_LV("x", "y", "z"), 1), -1);
    ck_assert_int_eq(jp_metrics_add(c, NULL, 1), -1);
    ck_assert_int_eq(jp_metrics_add(c, JP_METRICS_LV("x", "y"), -1), -1);
    ck_assert_int_eq(jp_metrics_add(c, JP_METRICS_LV("x", "y"), NAN), -1);
    ck_assert_int_eq(jp_metrics_observe(c, JP_METRICS_LV("x", "y"), 1), -1);
    ck_assert_int_eq(jp_metrics_add(h, NULL, 1), -1);
    ck_assert_int_eq(jp_metrics_add(NULL, NULL, 1), -1);
    ck_assert_int_eq(jp_metrics_observe(NULL, NULL, 1), -1);
    char *out = jp_metrics_render(r, NULL);
    ck_assert_str_eq(out, "# HELP c_total C.\n# TYPE c_total counter\n# HELP h H.\n"
                          "# TYPE h histogram\n");
    free(out);
    jp_metrics_destroy(r);
}
END_TEST

START_TEST(remove_get_and_each)
{
    jp_metrics_t *r = jp_metrics_new();
    jp_metrics_family_t *g = jp_metrics_register(r, JP_METRICS_GAUGE, "lag", "Lag.",
                                                 JP_METRICS_LV("partition"), NULL, 0, NULL, 0);
    ck_assert_ptr_eq(jp_metrics_find(r, "lag"), g);
    ck_assert_ptr_null(jp_metrics_find(r, "nope"));
    for (int i = 0; i < 4; i++) {
        char p[8];
        snprintf(p, sizeof(p), "%d", i);
        jp_metrics_set(g, JP_METRICS_LV(p), i * 10);
    }
    ck_assert_int_eq(jp_metrics_remove(g, JP_METRICS_LV("1")), 0);
    ck_assert_int_eq(jp_metrics_remove(g, JP_METRICS_LV("1")), -1);
    double v = -1;
    ck_assert(!jp_metrics_get(g, JP_METRICS_LV("1"), &v));
    ck_assert(jp_metrics_get(g, JP_METRICS_LV("3"), &v));
    ck_assert(v == 30);
    char *out = jp_metrics_render(r, NULL);
    ck_assert_str_eq(out, "# HELP lag Lag.\n# TYPE lag gauge\n"
                          "lag{partition=\"0\"} 0\nlag{partition=\"2\"} 20\nlag{partition=\"3\"} "
                          "30\n");
    free(out);
    jp_metrics_destroy(r);
    jp_metrics_destroy(NULL);
}
END_TEST

static void list_family(const char *name, jp_metrics_type_t type, const char *help,
                        const char *const *labels, void *opaque)
{
    char *buf = opaque;
    size_t n = strlen(buf);
    n += (size_t)snprintf(buf + n, 256 - n, "%s %s %s", name, jp_metrics_type_name(type), help);
    for (size_t i = 0; labels[i]; i++)
        n += (size_t)snprintf(buf + n, 256 - n, "%s%s", i ? "," : " ", labels[i]);
    snprintf(buf + n, 256 - n, ";");
}

START_TEST(families_are_listed)
{
    jp_metrics_t *r = jp_metrics_new();
    static const double b[] = {1};
    jp_metrics_register(r, JP_METRICS_COUNTER, "a_total", "A.", JP_METRICS_LV("x", "y"), NULL, 0,
                        NULL, 0);
    jp_metrics_register(r, JP_METRICS_HISTOGRAM, "h", "H.", NULL, b, 1, NULL, 0);
    char buf[256] = "";
    jp_metrics_families(r, list_family, buf);
    ck_assert_str_eq(buf, "a_total counter A. x,y;h histogram H.;");
    ck_assert_str_eq(jp_metrics_type_name((jp_metrics_type_t)7), "unknown");
    jp_metrics_destroy(r);
}
END_TEST

/* Thousands of series: the hash index grows, and stays right after removals. */
START_TEST(many_series_grow_and_remove)
{
    jp_metrics_t *r = jp_metrics_new();
    jp_metrics_family_t *g = jp_metrics_register(r, JP_METRICS_GAUGE, "g", "G.",
                                                 JP_METRICS_LV("a", "b"), NULL, 0, NULL, 0);
    char a[16], b[16];
    for (int i = 0; i < 3000; i++) {
        snprintf(a, sizeof(a), "%d", i % 97);
        snprintf(b, sizeof(b), "%d", i);
        ck_assert_int_eq(jp_metrics_set(g, JP_METRICS_LV(a, b), i), 0);
    }
    for (int i = 0; i < 3000; i += 2) {
        snprintf(a, sizeof(a), "%d", i % 97);
        snprintf(b, sizeof(b), "%d", i);
        ck_assert_int_eq(jp_metrics_remove(g, JP_METRICS_LV(a, b)), 0);
    }
    for (int i = 0; i < 3000; i++) {
        double v = -1;
        snprintf(a, sizeof(a), "%d", i % 97);
        snprintf(b, sizeof(b), "%d", i);
        ck_assert_int_eq(jp_metrics_get(g, JP_METRICS_LV(a, b), &v), i % 2 == 1);
        if (i % 2)
            ck_assert(v == i);
    }
    /* Updating an existing series creates no second one. */
    jp_metrics_add(g, JP_METRICS_LV("1", "1"), 1);
    char *out = jp_metrics_render(r, NULL);
    ck_assert_ptr_nonnull(strstr(out, "\ng{a=\"1\",b=\"1\"} 2\ng{a=\"3\",b=\"3\"} 3\n"));
    ck_assert_ptr_null(strstr(out, "b=\"2\"}"));
    size_t lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    ck_assert_uint_eq(lines, 2 + 1500);
    free(out);
    jp_metrics_destroy(r);
}
END_TEST

/* ---- threads ------------------------------------------------------------------------- */

#define THREADS 4
#define PER     50000

typedef struct race {
    jp_metrics_t *r;
    jp_metrics_family_t *c, *h;
    volatile int stop;
    int bad_renders;
} race_t;

static void *updater(void *arg)
{
    race_t *x = arg;
    for (int i = 0; i < PER; i++) {
        jp_metrics_add(x->c, JP_METRICS_LV(i % 2 ? "odd" : "even"), 1);
        jp_metrics_observe(x->h, NULL, (double)(i % 5));
    }
    return NULL;
}

static void *renderer(void *arg)
{
    race_t *x = arg;
    while (!x->stop) {
        char *out = jp_metrics_render(x->r, NULL);
        if (!out || check_format(out))
            x->bad_renders++;
        free(out);
    }
    return NULL;
}

START_TEST(concurrent_updates_while_rendering)
{
    static const double b[] = {1, 2, 3};
    race_t x = {0};
    x.r = jp_metrics_new();
    x.c = jp_metrics_register(x.r, JP_METRICS_COUNTER, "n_total", "N.", JP_METRICS_LV("k"), NULL, 0,
                              NULL, 0);
    x.h = jp_metrics_register(x.r, JP_METRICS_HISTOGRAM, "v", "V.", NULL, b, 3, NULL, 0);
    pthread_t t[THREADS], rt;
    pthread_create(&rt, NULL, renderer, &x);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, updater, &x);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    x.stop = 1;
    pthread_join(rt, NULL);
    ck_assert_int_eq(x.bad_renders, 0);
    double even = 0, odd = 0, count = 0;
    ck_assert(jp_metrics_get(x.c, JP_METRICS_LV("even"), &even));
    ck_assert(jp_metrics_get(x.c, JP_METRICS_LV("odd"), &odd));
    ck_assert(jp_metrics_get(x.h, NULL, &count));
    ck_assert(even == THREADS * PER / 2 && odd == THREADS * PER / 2);
    ck_assert(count == THREADS * PER);
    jp_metrics_destroy(x.r);
}
END_TEST

/* ---- the worker's catalogue ------------------------------------------------------------ */

START_TEST(worker_catalogue_renders_valid_text)
{
    const jp_metrics_worker_t *w = jp_metrics_worker();
    const jp_metrics_family_t *const *fam = (const jp_metrics_family_t *const *)w;
    for (size_t i = 0; i < sizeof(*w) / sizeof(fam[0]); i++)
        ck_assert_msg(fam[i] != NULL, "catalogue member %zu not registered", i);

    jp_metrics_event_consumed("account.create");
    jp_metrics_event_consumed(NULL);
    jp_metrics_event_completed("account.create", "succeeded");
    jp_metrics_event_deadlettered("invalid", "malformed");
    jp_metrics_event_retry("acme", "http_429");
    jp_metrics_event_done("account.create", 0.2, 3.5);
    jp_metrics_event_done("account.create", 0.3, -1);
    jp_metrics_jira_call("acme", "scim", "scim.users", "GET", 200, 0.012);
    jp_metrics_jira_call("acme", "rest", "rest.issue", "POST", 0, 30);
    jp_metrics_kafka_error("consumer", "retriable");
    jp_metrics_kafka_lag("idhub.events", 3, 17);
    jp_metrics_kafka_lag("idhub.events", 4, 0);
    jp_metrics_kafka_lag("idhub.events", 4, -1);
    jp_metrics_ratelimit_tokens("acme", "scim.users", "GET", 12.5);
    jp_metrics_ratelimit_cooldown("acme", "burst", -2);

    ck_assert_uint_eq(jp_metrics_sites_quarantined(), 0);
    jp_metrics_site_quarantined("acme", "scim", true);
    jp_metrics_site_quarantined("acme", "rest", true);
    jp_metrics_site_quarantined("beta", "rest", false);
    ck_assert_uint_eq(jp_metrics_sites_quarantined(), 1);
    jp_metrics_site_quarantined("beta", "admin", true);
    ck_assert_uint_eq(jp_metrics_sites_quarantined(), 2);

    size_t len;
    char *out = jp_metrics_render(jp_metrics_process(), &len);
    ck_assert_ptr_nonnull(out);
    char *why = check_format(out);
    ck_assert_msg(why == NULL, "%s", why);
    ck_assert_ptr_nonnull(strstr(
        out,
        "jiraprov_jira_requests_total{site=\"acme\",api=\"rest\",endpoint_class=\"rest.issue\","
        "method=\"POST\",status=\"none\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(out, "jiraprov_events_consumed_total{type=\"\"} 1\n"));
    ck_assert_ptr_nonnull(
        strstr(out, "jiraprov_kafka_consumer_lag{topic=\"idhub.events\",partition=\"3\"} 17\n"));
    ck_assert_ptr_null(strstr(out, "partition=\"4\""));
    ck_assert_ptr_nonnull(
        strstr(out, "jiraprov_event_end_to_end_seconds_count{type=\"account.create\"} 1\n"));
    ck_assert_ptr_nonnull(
        strstr(out, "jiraprov_event_processing_seconds_count{type=\"account.create\"} 2\n"));
    ck_assert_ptr_nonnull(
        strstr(out, "jiraprov_ratelimit_cooldown_seconds{site=\"acme\",scope=\"burst\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(out, "# TYPE jiraprov_build_info gauge\njiraprov_build_info{"));
    ck_assert_ptr_nonnull(strstr(out, "jiraprov_publish_errors_total 0\n"));
    free(out);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, counter_and_gauge_exact);
    tcase_add_test(tc, family_without_series_has_help_and_type);
    tcase_add_test(tc, escaping);
    tcase_add_test(tc, histogram_exact);
    tcase_add_test(tc, histogram_without_labels);
    tcase_add_test(tc, number_spelling);
    tcase_add_test(tc, bad_registrations);
    tcase_add_test(tc, bad_updates_change_nothing);
    tcase_add_test(tc, remove_get_and_each);
    tcase_add_test(tc, families_are_listed);
    tcase_add_test(tc, many_series_grow_and_remove);
    tcase_add_test(tc, concurrent_updates_while_rendering);
    tcase_add_test(tc, worker_catalogue_renders_valid_text);
    suite_add_tcase(s, tc);
    return s;
}

JP_CHECK_MAIN(metrics_suite)
