/* jiraprov-bench-watch: counts the records on Kafka topics over time, from the
 * outside, the same way for every program the benchmark measures.
 *
 * Every --interval-ms it asks the broker for the high watermark of every
 * partition of the topics and prints one line "<CLOCK_MONOTONIC s> <sum>"
 * (the clock Python's time.monotonic() reads). It exits 0 once the sum reaches
 * --until, 1 when --timeout-s passes first, 2 on bad usage. A topic that does
 * not exist yet counts 0. Reading watermarks costs the broker one small request
 * per partition, instead of fetching every record.
 *
 * Usage: jiraprov-bench-watch -b BOOTSTRAP -t TOPIC [-t TOPIC...] --until N
 *        [--interval-ms 100] [--timeout-s 600]
 *
 * Ownership: main() owns everything. */
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG       "jiraprov-bench-watch"
#define MAX_TOPICS 8

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Partitions of `topic`, 0 when it does not exist (yet). */
static int partitions_of(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int n = 0;
    if (t && rd_kafka_metadata(rk, 0, t, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR && md &&
        md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    if (t)
        rd_kafka_topic_destroy(t);
    return n;
}

static const char usage[] =
    "usage: " PROG " -b BOOTSTRAP -t TOPIC [-t TOPIC...] --until N [--interval-ms MS]\n"
    "       [--timeout-s S]\n"
    "Prints \"<monotonic s> <records on the topics>\" every interval until N are there.\n";

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"bootstrap", required_argument, NULL, 'b'},
                                             {"topic", required_argument, NULL, 't'},
                                             {"until", required_argument, NULL, 'u'},
                                             {"interval-ms", required_argument, NULL, 'i'},
                                             {"timeout-s", required_argument, NULL, 'T'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *bootstrap = NULL, *topics[MAX_TOPICS];
    int ntopics = 0, opt;
    long long until = -1;
    long interval = 100, timeout = 600;
    while ((opt = getopt_long(argc, argv, "b:t:u:i:T:h", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (opt) {
        case 'b':
            bootstrap = optarg;
            break;
        case 't':
            if (ntopics == MAX_TOPICS) {
                fprintf(stderr, PROG ": at most %d topics\n", MAX_TOPICS);
                return 2;
            }
            topics[ntopics++] = optarg;
            break;
        case 'u':
            until = strtoll(optarg, &end, 10);
            break;
        case 'i':
            interval = strtol(optarg, &end, 10);
            break;
        case 'T':
            timeout = strtol(optarg, &end, 10);
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
        if (end && (*end || end == optarg)) {
            fprintf(stderr, PROG ": --%s wants a number, got \"%s\"\n",
                    opt == 'u'   ? "until"
                    : opt == 'i' ? "interval-ms"
                                 : "timeout-s",
                    optarg);
            return 2;
        }
    }
    if (!bootstrap || !ntopics || until < 0 || interval < 1 || timeout < 1 || optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr))) {
        fprintf(stderr, PROG ": %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 2;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, PROG ": %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 2;
    }
    int parts[MAX_TOPICS] = {0};
    double deadline = mono_s() + (double)timeout;
    int rc = 1;
    while (mono_s() < deadline) {
        double t0 = mono_s();
        long long sum = 0;
        for (int i = 0; i < ntopics; i++) {
            if (!parts[i])
                parts[i] = partitions_of(rk, topics[i]);
            for (int p = 0; p < parts[i]; p++) {
                int64_t lo = 0, hi = 0;
                if (rd_kafka_query_watermark_offsets(rk, topics[i], p, &lo, &hi, 2000) ==
                    RD_KAFKA_RESP_ERR_NO_ERROR)
                    sum += hi;
            }
        }
        printf("%.3f %lld\n", t0, sum);
        fflush(stdout);
        if (sum >= until) {
            rc = 0;
            break;
        }
        long spent = (long)((mono_s() - t0) * 1000);
        if (spent < interval)
            sleep_ms(interval - spent);
    }
    rd_kafka_destroy(rk);
    return rc;
}
