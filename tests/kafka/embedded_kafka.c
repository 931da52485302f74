/* jiraprov-embedded-kafka: librdkafka's mock cluster run as a standalone Kafka broker process,
 * so that kcat, the producers and the worker can reach a broker by address in tests and in the
 * local stack without a JVM.
 *
 * What the librdkafka 2.0.2 mock does (read from its source, src/rdkafka_mock*.c):
 * - Each broker listens on 127.0.0.1 with a port chosen by the kernel; there is no way to choose
 *   the address or port, so this program has no --listen flag.
 * - Topics not created up front are created on first Metadata (auto-create allowed) or Produce
 *   request with 4 partitions.
 * - Replica count is min(3, brokers) whatever replication factor is asked for.
 * - Consumer groups work (join, sync, heartbeat, offset commit and fetch), but the first join of
 *   a new group waits ~3 s (the broker's initial rebalance delay) before assigning. Once the
 *   last member left (even cleanly), the group waits session.timeout.ms - 1 s for it to come
 *   back before a new member is assigned: 44 s with librdkafka's default 45 s session, so
 *   tests that restart consumers of one group should lower session.timeout.ms.
 * - Each partition keeps at most ~5 MiB or 100000 message sets; older sets are dropped.
 * - No admin API (CreateTopics, DescribeConfigs...), no ACLs, no TLS or SASL.
 *
 * Fault injection: with --control-fifo PATH the process reads one command per line from a FIFO
 * (see usage()) and applies it to the cluster; results are logged on stderr.
 *
 * Ownership: everything is owned by main(); the mock cluster is destroyed before the rd_kafka_t
 * that hosts it. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define EK_PROG             "jiraprov-embedded-kafka"
#define EK_MAX_TOPICS       64
#define EK_TOPIC_NAME_MAX   249
#define EK_MAX_PARTITIONS   1000
#define EK_MAX_BROKERS      16
#define EK_DEFAULT_PARTS    4
#define EK_CTL_LINE_MAX     1024
#define EK_CTL_MAX_REQ_ERRS 32

typedef struct ek_topic {
    char name[EK_TOPIC_NAME_MAX + 1];
    int partitions;
} ek_topic_t;

typedef struct ek_opts {
    int brokers;
    int replication;
    int rtt_ms;
    const char *bootstrap_file;
    const char *control_fifo;
    ek_topic_t topics[EK_MAX_TOPICS];
    int topic_cnt;
} ek_opts_t;

/* Control FIFO state: the read buffer accumulates partial lines between polls. */
typedef struct ek_ctl {
    int fd;
    int created; /* we made the FIFO, so we remove it at exit */
    char buf[EK_CTL_LINE_MAX];
    size_t len;
} ek_ctl_t;

static int ek_sig_pipe[2] = {-1, -1};

static void ek_err(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, EK_PROG ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: " EK_PROG " [options]\n"
            "Runs the librdkafka %s mock cluster as a Kafka broker on 127.0.0.1.\n"
            "\n"
            "  --brokers N              number of brokers (1..%d) [1]\n"
            "  --topic NAME[:PARTS]     create a topic up front (repeatable) [PARTS=%d]\n"
            "  --topics A:4,B:1         several topics at once\n"
            "  --replication N          replication factor asked for each topic [1]\n"
            "  --rtt MS                 added round-trip latency on every broker [0]\n"
            "  --bootstrap-file PATH    also write the bootstrap address there (atomically)\n"
            "  --control-fifo PATH      read fault-injection commands from this FIFO\n"
            "  --help, --version\n"
            "\n"
            "Prints 'bootstrap.servers=HOST:PORT,...' on stdout once ready, then runs until\n"
            "SIGTERM or SIGINT and exits 0.\n"
            "\n"
            "Limits of the mock: ports are picked by the kernel on 127.0.0.1 and cannot be\n"
            "chosen; unknown topics are auto-created with 4 partitions; replicas are always\n"
            "min(3, brokers); the first join of a consumer group waits ~3 s, and a join after\n"
            "the last member left waits session.timeout.ms - 1 s; each partition keeps about\n"
            "5 MiB or 100000 message sets, older data is dropped; no admin API, TLS or SASL.\n"
            "\n"
            "Control commands (one per line on the FIFO):\n"
            "  broker-down ID | broker-up ID | broker-rtt ID MS\n"
            "  leader TOPIC PARTITION ID    (move the partition's leader to broker ID)\n"
            "  topic-error TOPIC ERR        (ERR is a Kafka error code, 0 clears)\n"
            "  request-errors APIKEY ERR... (errors returned to the next requests of APIKEY)\n",
            rd_kafka_version_str(), EK_MAX_BROKERS, EK_DEFAULT_PARTS);
}

/* Parses a whole decimal integer in [min, max]; returns 0 on success. */
static int ek_parse_int(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    long v;

    if (!s || !*s)
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int ek_valid_topic_name(const char *name, size_t len)
{
    size_t i;

    if (len == 0 || len > EK_TOPIC_NAME_MAX)
        return 0;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return 0;
    for (i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* Adds one "NAME[:PARTS]" spec of length len (not NUL-terminated) to opts. */
static int ek_add_topic(ek_opts_t *opts, const char *spec, size_t len)
{
    const char *colon = memchr(spec, ':', len);
    size_t name_len = colon ? (size_t)(colon - spec) : len;
    long parts = EK_DEFAULT_PARTS;
    ek_topic_t *t;
    int i;

    if (!ek_valid_topic_name(spec, name_len)) {
        ek_err("invalid topic name in '%.*s' (1..%d of [A-Za-z0-9._-])", (int)len, spec,
               EK_TOPIC_NAME_MAX);
        return -1;
    }
    if (colon) {
        char num[16];
        size_t num_len = len - name_len - 1;
        if (num_len == 0 || num_len >= sizeof(num)) {
            ek_err("invalid partition count in '%.*s'", (int)len, spec);
            return -1;
        }
        memcpy(num, colon + 1, num_len);
        num[num_len] = '\0';
        if (ek_parse_int(num, 1, EK_MAX_PARTITIONS, &parts) != 0) {
            ek_err("partition count in '%.*s' must be 1..%d", (int)len, spec, EK_MAX_PARTITIONS);
            return -1;
        }
    }
    for (i = 0; i < opts->topic_cnt; i++) {
        if (strlen(opts->topics[i].name) == name_len &&
            memcmp(opts->topics[i].name, spec, name_len) == 0) {
            ek_err("topic '%.*s' given twice", (int)name_len, spec);
            return -1;
        }
    }
    if (opts->topic_cnt == EK_MAX_TOPICS) {
        ek_err("too many topics (at most %d)", EK_MAX_TOPICS);
        return -1;
    }
    t = &opts->topics[opts->topic_cnt++];
    memcpy(t->name, spec, name_len);
    t->name[name_len] = '\0';
    t->partitions = (int)parts;
    return 0;
}

static int ek_add_topic_list(ek_opts_t *opts, const char *list)
{
    const char *p = list;

    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (ek_add_topic(opts, p, len) != 0)
            return -1;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

/* Returns 0 to run, 1 when --help/--version was handled, 2 on a usage error. */
static int ek_parse_args(int argc, char **argv, ek_opts_t *opts)
{
    int i;
    long v;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--version")) {
            printf(EK_PROG " %s (librdkafka %s)\n", JP_VERSION, rd_kafka_version_str());
            return 1;
        }
        if (!val) {
            ek_err("unknown option or missing value: %s (see --help)", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--brokers")) {
            if (ek_parse_int(val, 1, EK_MAX_BROKERS, &v) != 0) {
                ek_err("--brokers must be 1..%d", EK_MAX_BROKERS);
                return 2;
            }
            opts->brokers = (int)v;
        } else if (!strcmp(a, "--replication")) {
            if (ek_parse_int(val, 1, EK_MAX_BROKERS, &v) != 0) {
                ek_err("--replication must be 1..%d", EK_MAX_BROKERS);
                return 2;
            }
            opts->replication = (int)v;
        } else if (!strcmp(a, "--rtt")) {
            if (ek_parse_int(val, 0, 3600 * 1000, &v) != 0) {
                ek_err("--rtt must be 0..3600000 milliseconds");
                return 2;
            }
            opts->rtt_ms = (int)v;
        } else if (!strcmp(a, "--topic")) {
            if (ek_add_topic(opts, val, strlen(val)) != 0)
                return 2;
        } else if (!strcmp(a, "--topics")) {
            if (ek_add_topic_list(opts, val) != 0)
                return 2;
        } else if (!strcmp(a, "--bootstrap-file")) {
            opts->bootstrap_file = val;
        } else if (!strcmp(a, "--control-fifo")) {
            opts->control_fifo = val;
        } else {
            ek_err("unknown option: %s (see --help)", a);
            return 2;
        }
    }
    if (opts->replication > opts->brokers) {
        ek_err("--replication %d exceeds --brokers %d", opts->replication, opts->brokers);
        return 2;
    }
    return 0;
}

/* Writes "text\n" to path through a temporary file and rename(), so readers never see a
 * partial address. */
static int ek_write_atomic(const char *path, const char *text)
{
    char tmp[4096];
    FILE *f;
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());

    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        ek_err("bootstrap file path too long");
        return -1;
    }
    f = fopen(tmp, "w");
    if (!f) {
        ek_err("cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    if (fprintf(f, "%s\n", text) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        ek_err("cannot write %s: %s", tmp, strerror(errno));
        fclose(f);
        unlink(tmp);
        return -1;
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        ek_err("cannot install %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void ek_on_signal(int sig)
{
    unsigned char b = (unsigned char)sig;
    int saved = errno;
    /* A full pipe already holds a pending wake-up, so a failed write loses nothing. */
    if (write(ek_sig_pipe[1], &b, 1) < 0) {
    }
    errno = saved;
}

static int ek_setup_signals(void)
{
    struct sigaction sa;
    int i;

    if (pipe(ek_sig_pipe) != 0) {
        ek_err("pipe: %s", strerror(errno));
        return -1;
    }
    for (i = 0; i < 2; i++) {
        int fl = fcntl(ek_sig_pipe[i], F_GETFL);
        if (fl < 0 || fcntl(ek_sig_pipe[i], F_SETFL, fl | O_NONBLOCK) != 0 ||
            fcntl(ek_sig_pipe[i], F_SETFD, FD_CLOEXEC) != 0) {
            ek_err("fcntl: %s", strerror(errno));
            return -1;
        }
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = ek_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) {
        ek_err("sigaction: %s", strerror(errno));
        return -1;
    }
    /* A reader of stdout going away must not kill the broker. */
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static void ek_close_signals(void)
{
    int i;
    for (i = 0; i < 2; i++) {
        if (ek_sig_pipe[i] >= 0)
            close(ek_sig_pipe[i]);
        ek_sig_pipe[i] = -1;
    }
}

static int ek_ctl_open(ek_ctl_t *ctl, const char *path)
{
    struct stat st;

    ctl->fd = -1;
    ctl->created = 0;
    ctl->len = 0;
    if (mkfifo(path, 0600) == 0) {
        ctl->created = 1;
    } else if (errno != EEXIST) {
        ek_err("cannot create control FIFO %s: %s", path, strerror(errno));
        return -1;
    }
    if (stat(path, &st) != 0 || !S_ISFIFO(st.st_mode)) {
        ek_err("%s exists and is not a FIFO", path);
        return -1;
    }
    /* Opened read-write (Linux semantics) so that writers closing it never yield EOF. */
    ctl->fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (ctl->fd < 0) {
        ek_err("cannot open control FIFO %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static void ek_ctl_close(ek_ctl_t *ctl, const char *path)
{
    if (ctl->fd >= 0)
        close(ctl->fd);
    ctl->fd = -1;
    if (ctl->created && path)
        unlink(path);
}

/* Splits line into at most max whitespace-separated words, in place. */
static int ek_split(char *line, char **words, int max)
{
    int n = 0;
    char *save = NULL;
    char *w = strtok_r(line, " \t\r", &save);

    while (w && n < max) {
        words[n++] = w;
        w = strtok_r(NULL, " \t\r", &save);
    }
    return w ? -1 : n;
}

static rd_kafka_resp_err_t ek_ctl_request_errors(rd_kafka_mock_cluster_t *mc, char **w, int n)
{
    rd_kafka_resp_err_t errs[EK_CTL_MAX_REQ_ERRS];
    long apikey, v;
    int i;

    if (n < 3 || n - 2 > EK_CTL_MAX_REQ_ERRS || ek_parse_int(w[1], 0, INT16_MAX, &apikey) != 0)
        return RD_KAFKA_RESP_ERR__INVALID_ARG;
    for (i = 2; i < n; i++) {
        if (ek_parse_int(w[i], -200, 1000, &v) != 0)
            return RD_KAFKA_RESP_ERR__INVALID_ARG;
        errs[i - 2] = (rd_kafka_resp_err_t)v;
    }
    rd_kafka_mock_push_request_errors_array(mc, (int16_t)apikey, (size_t)(n - 2), errs);
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static rd_kafka_resp_err_t ek_ctl_apply(rd_kafka_mock_cluster_t *mc, char *line)
{
    char *w[EK_CTL_MAX_REQ_ERRS + 2];
    int n = ek_split(line, w, (int)(sizeof(w) / sizeof(w[0])));
    long id, v;

    if (n <= 0)
        return RD_KAFKA_RESP_ERR__INVALID_ARG;
    if (!strcmp(w[0], "request-errors"))
        return ek_ctl_request_errors(mc, w, n);
    if (!strcmp(w[0], "topic-error")) {
        if (n != 3 || !ek_valid_topic_name(w[1], strlen(w[1])) ||
            ek_parse_int(w[2], -200, 1000, &v) != 0)
            return RD_KAFKA_RESP_ERR__INVALID_ARG;
        rd_kafka_mock_topic_set_error(mc, w[1], (rd_kafka_resp_err_t)v);
        return RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    if (!strcmp(w[0], "leader")) { /* leader TOPIC PARTITION BROKER: a leader move */
        long part;
        if (n != 4 || !ek_valid_topic_name(w[1], strlen(w[1])) ||
            ek_parse_int(w[2], 0, 100000, &part) != 0 ||
            ek_parse_int(w[3], 1, EK_MAX_BROKERS, &id) != 0)
            return RD_KAFKA_RESP_ERR__INVALID_ARG;
        return rd_kafka_mock_partition_set_leader(mc, w[1], (int32_t)part, (int32_t)id);
    }
    if (n < 2 || ek_parse_int(w[1], 1, EK_MAX_BROKERS, &id) != 0)
        return RD_KAFKA_RESP_ERR__INVALID_ARG;
    if (!strcmp(w[0], "broker-down") && n == 2)
        return rd_kafka_mock_broker_set_down(mc, (int32_t)id);
    if (!strcmp(w[0], "broker-up") && n == 2)
        return rd_kafka_mock_broker_set_up(mc, (int32_t)id);
    if (!strcmp(w[0], "broker-rtt") && n == 3 && ek_parse_int(w[2], 0, 3600 * 1000, &v) == 0)
        return rd_kafka_mock_broker_set_rtt(mc, (int32_t)id, (int)v);
    return RD_KAFKA_RESP_ERR__INVALID_ARG;
}

/* Reads what is available on the FIFO and applies every complete line. */
static void ek_ctl_service(ek_ctl_t *ctl, rd_kafka_mock_cluster_t *mc)
{
    for (;;) {
        ssize_t r = read(ctl->fd, ctl->buf + ctl->len, sizeof(ctl->buf) - 1 - ctl->len);
        char *nl;

        if (r <= 0)
            return;
        ctl->len += (size_t)r;
        while ((nl = memchr(ctl->buf, '\n', ctl->len)) != NULL) {
            size_t line_len = (size_t)(nl - ctl->buf);
            char line[EK_CTL_LINE_MAX];
            char shown[EK_CTL_LINE_MAX];
            rd_kafka_resp_err_t err;

            memcpy(line, ctl->buf, line_len);
            line[line_len] = '\0';
            memcpy(shown, line, line_len + 1);
            memmove(ctl->buf, nl + 1, ctl->len - line_len - 1);
            ctl->len -= line_len + 1;
            err = ek_ctl_apply(mc, line);
            fprintf(stderr, EK_PROG ": control '%s': %s\n", shown,
                    err == RD_KAFKA_RESP_ERR__INVALID_ARG ? "unknown or malformed command"
                    : err                                 ? rd_kafka_err2str(err)
                                                          : "ok");
        }
        if (ctl->len == sizeof(ctl->buf) - 1) {
            ek_err("control line longer than %d bytes dropped", EK_CTL_LINE_MAX - 1);
            ctl->len = 0;
        }
    }
}

static int ek_create_topics(rd_kafka_mock_cluster_t *mc, const ek_opts_t *opts)
{
    int i;

    for (i = 0; i < opts->topic_cnt; i++) {
        const ek_topic_t *t = &opts->topics[i];
        rd_kafka_resp_err_t err =
            rd_kafka_mock_topic_create(mc, t->name, t->partitions, opts->replication);
        if (err) {
            ek_err("cannot create topic %s: %s", t->name, rd_kafka_err2str(err));
            return -1;
        }
    }
    return 0;
}

static int ek_set_rtt(rd_kafka_mock_cluster_t *mc, const ek_opts_t *opts)
{
    int id;

    for (id = 1; opts->rtt_ms > 0 && id <= opts->brokers; id++) {
        rd_kafka_resp_err_t err = rd_kafka_mock_broker_set_rtt(mc, id, opts->rtt_ms);
        if (err) {
            ek_err("cannot set rtt on broker %d: %s", id, rd_kafka_err2str(err));
            return -1;
        }
    }
    return 0;
}

/* Creates the rd_kafka_t that hosts the mock cluster; it never talks to a broker itself. */
static rd_kafka_t *ek_host_new(void)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;

    /* log_level 4 hides the notice that this host handle has no bootstrap.servers. */
    if (rd_kafka_conf_set(conf, "client.id", EK_PROG, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        ek_err("%s", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        ek_err("cannot create librdkafka handle: %s", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* Waits for SIGTERM/SIGINT, serving the control FIFO meanwhile. */
static int ek_run(rd_kafka_mock_cluster_t *mc, ek_ctl_t *ctl)
{
    for (;;) {
        struct pollfd pfd[2] = {{.fd = ek_sig_pipe[0], .events = POLLIN},
                                {.fd = ctl->fd, .events = POLLIN}};
        int r = poll(pfd, ctl->fd >= 0 ? 2 : 1, -1);

        if (r < 0) {
            if (errno == EINTR)
                continue;
            ek_err("poll: %s", strerror(errno));
            return -1;
        }
        if (pfd[0].revents)
            return 0;
        if (ctl->fd >= 0 && pfd[1].revents)
            ek_ctl_service(ctl, mc);
    }
}

int main(int argc, char **argv)
{
    ek_opts_t opts;
    ek_ctl_t ctl = {.fd = -1};
    rd_kafka_t *rk = NULL;
    rd_kafka_mock_cluster_t *mc = NULL;
    const char *bootstraps;
    int wrote_file = 0;
    int rc = 1;
    int pr;

    memset(&opts, 0, sizeof(opts));
    opts.brokers = 1;
    opts.replication = 1;
    pr = ek_parse_args(argc, argv, &opts);
    if (pr != 0)
        return pr == 1 ? 0 : 2;

    if (ek_setup_signals() != 0)
        goto out;
    if (opts.control_fifo && ek_ctl_open(&ctl, opts.control_fifo) != 0)
        goto out;
    rk = ek_host_new();
    if (!rk)
        goto out;
    mc = rd_kafka_mock_cluster_new(rk, opts.brokers);
    if (!mc) {
        ek_err("cannot start the mock cluster (see librdkafka log above)");
        goto out;
    }
    if (ek_create_topics(mc, &opts) != 0 || ek_set_rtt(mc, &opts) != 0)
        goto out;

    bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    if (opts.bootstrap_file) {
        if (ek_write_atomic(opts.bootstrap_file, bootstraps) != 0)
            goto out;
        wrote_file = 1;
    }
    printf("bootstrap.servers=%s\n", bootstraps);
    fflush(stdout);

    if (ek_run(mc, &ctl) == 0)
        rc = 0;

out:
    if (wrote_file)
        unlink(opts.bootstrap_file);
    if (mc)
        rd_kafka_mock_cluster_destroy(mc);
    if (rk)
        rd_kafka_destroy(rk);
    ek_ctl_close(&ctl, opts.control_fifo);
    ek_close_signals();
    return rc;
}
