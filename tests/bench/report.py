"""The benchmark report: report.md and PNG plots (gnuplot) in the results folder, from what
bench.py measured. See tests/bench/README.md for the method behind each figure."""
import os
import subprocess


def _fmt(v, f="%.0f"):
    return "n/a" if v is None else f % v


def _range(st, f="%.0f"):
    if not st or st.get("median") is None:
        return "n/a"
    if st["n"] == 1:
        return f % st["median"]
    return (f + " (" + f + "–" + f + ")") % (st["median"], st["min"], st["max"])


def _verdict(met):
    return {True: "**met**", False: "**missed**", None: "reported"}[met]


class Plots:
    def __init__(self, out):
        self.out = out
        self.made = []

    def data(self, name, rows):
        path = os.path.join(self.out, name)
        with open(path, "w") as f:
            for row in rows:
                if row is None:
                    f.write("\n\n")  # next gnuplot data block
                else:
                    f.write(" ".join(str(x) for x in row) + "\n")
        return path

    def plot(self, png, script):
        path = os.path.join(self.out, png)
        text = ('set terminal pngcairo size 900,480 font ",10"\nset output "%s"\n'
                'set grid\nset key left top\n%s\n' % (path, script))
        r = subprocess.run(["gnuplot"], input=text, text=True, capture_output=True, timeout=60)
        if r.returncode == 0 and os.path.exists(path):
            self.made.append(png)
            return png
        return None


def _curves(plots, name, groups):
    """groups: [(title, samples)] -> one data block each, time from the first record."""
    rows, titles = [], []
    for g in groups:
        title, samples = g[0], g[1]
        if not samples:
            continue
        t0 = g[2] if len(g) > 2 else next((t for t, n in samples if n > 0), samples[0][0])
        for t, n in samples:
            if t >= t0 - 0.5:
                rows.append((round(t - t0, 3), n))
        rows.append(None)
        titles.append(title)
    path = plots.data(name, rows)
    return path, titles


def write(out, meta, results, summary):
    plots = Plots(out)
    md = ["# jiraprov benchmark report", ""]
    md.append("Run %s → %s on %s CPUs (load average %s before, %s after), commit %s%s. "
              "Every speed figure is a ratio against a limit measured in the same run."
              % (meta["started"], meta.get("finished", "?"), meta["cpus"],
                 meta["loadavg_before"], meta.get("loadavg_after", "?"), meta["commit"],
                 ", **quick mode**" if meta.get("quick") else ""))
    md += ["", "| # | scenario | metric | value | target | verdict |", "|---|---|---|---|---|---|"]
    order = ["overhead", "latency", "ratelimit", "isolation", "memory", "added-latency", "cost"]
    for e in sorted(summary, key=lambda e: order.index(e["scenario"])):
        tgt = e["target"]
        cmp_ = "≤" if e["scenario"] in ("memory", "added-latency") else "≥"
        md.append("| %d | %s | %s | %s | %s | %s |" % (
            order.index(e["scenario"]) + 1, e["scenario"], e["metric"], e["value"],
            "%s %s" % (cmp_, tgt) if tgt is not None else "–", _verdict(e["met"])))
    md.append("")

    r = results.get("overhead")
    if r and "recs" in r:
        md += ["## 1. Overhead-bound (target: worker ≥ 0.6 × limit)", "",
               "%d `account.update` events (each a SCIM lookup and a PATCH), emulator without "
               "latency or rate limits, one process at a time; runs of the limit program and "
               "the worker alternate. Rate = results per second between 10 %% and 90 %% of the "
               "events, counted from the results topic's offsets." % r["n"], "",
               "| program | events/s median (min–max) | CPU µs/event | emulator µs/event | "
               "Redis µs/event | Kafka µs/event |", "|---|---|---|---|---|---|"]
        for kind in ("limit", "worker"):
            recs = r["recs"][kind]

            def med(key, recs=recs):
                vals = sorted(x["stack_cpu_us_per_event"].get(key) for x in recs
                              if x["stack_cpu_us_per_event"].get(key) is not None)
                return vals[len(vals) // 2] if vals else None
            md.append("| %s | %s | %s | %s | %s | %s |" % (
                kind, _range(r[kind]), _range(r["cpu_" + kind], "%.1f"),
                _fmt(med("emulator"), "%.1f"), _fmt(med("redis"), "%.1f"),
                _fmt(med("kafka"), "%.1f")))
        md += ["", "Ratio of the medians: **%.3f** (pairs: %s) — %s." % (
            r["ratio"], ", ".join("%.2f" % x for x in r["pair_ratios"]), _verdict(r["met"])), ""]
        groups = [("%s run %d" % (x["kind"], x["run"]), x["samples"])
                  for kind in ("limit", "worker") for x in r["recs"][kind]]
        path, titles = _curves(plots, "s1-throughput.dat", groups)
        png = plots.plot("s1-throughput.png",
                         'set title "1. results published over time"\nset xlabel "s"\n'
                         'set ylabel "results"\nplot ' + ", ".join(
                             '"%s" index %d with lines lw 2 title "%s"' % (path, i, t)
                             for i, t in enumerate(titles)))
        if png:
            md += ["![throughput](%s)" % png, ""]
        if os.path.exists(os.path.join(out, "s1-worker.perf.txt")):
            md += ["A `perf` profile of the last worker run is in `s1-worker.perf.txt`.", ""]

    r = results.get("latency")
    if r and "recs" in r:
        md += ["## 2. Latency-bound (target: calls/s ≥ 0.9 × cap / latency)", "",
               "%d events, the emulator delays every SCIM call by %d ms, `max_in_flight: %d`: "
               "the bound is %.0f calls/s. Calls per second from the emulator's own count "
               "(sampled every 0.2 s) between 10 %% and 90 %% of the run's calls; events/s "
               "from the first to the last result." % (r["n"], r["latency_ms"], r["cap"],
                                                      r["bound"]), "",
               "| run | events/s | calls/event | calls/s | ratio to bound |",
               "|---|---|---|---|---|"]
        for x in r["recs"]:
            md.append("| %d | %.0f | %.2f | %.0f | %.3f |" % (
                x["run"], x["wall_rate"], x["calls_per_event"], x["calls_per_s"],
                x["calls_per_s"] / r["bound"]))
        md += ["", "Median **%.0f calls/s = %.3f** of the bound — %s." % (
            r["calls"]["median"], r["ratio"], _verdict(r["met"])), ""]
        groups = []
        for x in r["recs"]:
            cs = x["call_samples"]
            t0 = next((t for t, n in cs if n > 0), cs[0][0]) if cs else 0
            groups.append(("calls, run %d" % x["run"], cs, t0))
            groups.append(("results, run %d" % x["run"], x["samples"], t0))
        path, titles = _curves(plots, "s2-latency.dat", groups)
        png = plots.plot("s2-latency.png",
                         'set title "2. Jira calls and results over time, 100 ms per call"\n'
                         'set xlabel "s"\nset ylabel "count"\nset yrange [0:]\n'
                         'plot ' + ", ".join(
                             '"%s" index %d with lines lw 2 title "%s"' % (path, i, t)
                             for i, t in enumerate(titles)) +
                         ', %f * x with lines dt 2 title "bound (calls)"' % r["bound"])
        if png:
            md += ["![latency](%s)" % png, ""]

    r = results.get("ratelimit")
    if r and "agg" in r:
        md += ["## 3. Rate-limited (target: shared ≥ 0.95 of the limit, ≤ 1 % answered 429)",
               "", "`ratelimit_bench.sh --events %d`: 4 workers, SCIM POST limit 100/s in the "
               "emulator, shared budget vs each worker limiting itself. Medians (min–max) of %d "
               "run(s)." % (r["events"], len(r["recs"])), "",
               "| budget | POST/s | vs. limit | SCIM calls | 429s | 429 share |",
               "|---|---|---|---|---|---|"]
        for m in ("shared", "unshared"):
            a = r["agg"][m]
            md.append("| %s | %s | %s | %s | %s | %s %% |" % (
                m, _range(a["achieved"], "%.1f"), _range(a["ratio"], "%.3f"),
                _range(a["calls"]), _range(a["limited"]),
                _range({k: (v * 100 if isinstance(v, float) and k != "n" else v)
                        for k, v in a["share"].items()}, "%.2f")))
        md += ["", "Verdict (shared): %s." % _verdict(r["met"]), ""]

    r = results.get("isolation")
    if r and "recs" in r:
        md += ["## 4. Tenant isolation (target: nine healthy sites keep ≥ 95 % of their "
               "throughput)", "",
               "10 sites, each its own emulator, %d `account.update` events per site "
               "interleaved on one topic, one worker; every SCIM call takes %d ms, at most "
               "%d are in flight, and each site has its own budget (%s), as against Jira "
               "Cloud. In the storm runs the last site answers every SCIM call with a 429 "
               "(probability 0.5, "
               "`Retry-After: 1`) or else a 503 (probability 0.6). Throughput of the nine = "
               "their PATCHes answered 200 per second between 10 %% and 90 %% of their events "
               "(emulator counters). Calm and storm runs alternate."
               % (r["per_site"], r["latency_ms"], r["cap"],
                  ", ".join("%s %s" % kv for kv in r["budget"].items())), "",
               "| run | mode | buffer | nine sites events/s | nine done | storm site calls | "
               "storm site done | held / parked at the end | paused | retries |",
               "|---|---|---|---|---|---|---|---|---|---|"]
        for mode in ("calm", "storm", "long-storm"):
            for x in r["recs"].get(mode, []):
                md.append("| %d | %s | %d | %.0f | %d of %d | %d | %d | %s / %s | %s | %s |" % (
                    x["run"], mode, x["buffer"], x["rate"], x["completed"], x["total"],
                    x["storm_site_calls"], x["storm_site_patched"], _fmt(x["held_at_end"]),
                    _fmt(x["parked_at_end"]),
                    "%.0f %%" % (100 * x["paused_share"]) if x["paused_share"] is not None
                    else "n/a", _fmt(x["retries"])))
        md += ["", "Storm / calm (medians): **%.3f** (pairs %s) — %s." % (
            r["ratio"], ", ".join("%.2f" % p for p in r["pairs"]), _verdict(r["met"])), ""]
        storm_held = [x["held_at_end"] for x in r["recs"]["storm"] if x["held_at_end"]]
        if storm_held:
            md += ["The storm site's events are never dropped: they stay held, waiting for "
                   "their cool-downs or parked (%d of the buffer's 10000 places at the end of "
                   "the storm runs), so the other sites lose nothing only while the storm "
                   "site's backlog fits in the buffer: at 10 %% of the traffic, a storm lasting "
                   "longer than about 10 × `max_buffered_events` events of traffic fills it, "
                   "and consumption stops for every site until the storm ends or the attempts "
                   "run out." % max(storm_held)]
            ls = r["recs"].get("long-storm")
            if ls:
                x = ls[0]
                md += ["The *long-storm* run shows it with a buffer of %d (smaller than the "
                       "storm site's %d events): the nine sites completed %d of %d events "
                       "before everything stalled." % (x["buffer"], r["per_site"],
                                                       x["completed"], x["total"])]
            md.append("")
        groups = [("%s run %d" % (m, x["run"]), x["samples"])
                  for m in ("calm", "storm", "long-storm") for x in r["recs"].get(m, [])]
        path, titles = _curves(plots, "s4-isolation.dat", groups)
        png = plots.plot("s4-isolation.png",
                         'set title "4. events done by the nine healthy sites"\n'
                         'set xlabel "s"\nset ylabel "PATCHes answered 200"\nplot ' + ", ".join(
                             '"%s" index %d with lines lw 2 title "%s"' % (path, i, t)
                             for i, t in enumerate(titles)))
        if png:
            md += ["![isolation](%s)" % png, ""]

    r = results.get("memory")
    if r and "cases" in r:
        md += ["## 5. Memory (targets: peak RSS ≤ 64 MiB with 10k events held; RSS growth ≤ "
               "16 MiB in a 100k-user reconciliation)", "",
               "%d `account.update` events, one worker (`max_buffered_events` 10000, "
               "`max_in_flight` 512), each case a fresh process. *in-flight*: the emulator "
               "delays every SCIM call by 15 s, so every event is held with its call "
               "outstanding; *parked*: every call is answered 503 with `Retry-After: 60`, so "
               "every event is parked; *in-flight-then-parked*: the first, then every call "
               "fails within a second. Peak = `VmHWM`." % r["n"], "",
               "| case | idle RSS | peak RSS (VmHWM) | held max | parked max | verdict |",
               "|---|---|---|---|---|---|"]
        for c in r["cases"]:
            md.append("| %s | %.1f MiB | **%.1f MiB** | %d | %d | %s |" % (
                c["case"], c["idle_mib"], c["hwm_mib"], c["held_max"], c["parked_max"],
                _verdict(c["met"])))
        rec = r["recon"]
        md += ["", "Reconciliation of 100k users (one worker, after a one-user warm-up run): "
               "%s%s." % (rec["status"], "; RSS %.1f MiB before, peak (VmHWM) %.1f MiB: "
                          "growth **%.1f MiB** (%s)" % (
                              rec["base_mib"], rec["peak_mib"], rec["growth_mib"],
                              _verdict(rec["met"])) if "growth_mib" in rec else ""), ""]
        rows = []
        for c in r["cases"]:
            rows += [(round(t, 2), round(kb / 1024, 2), h, p) for t, kb, h, p in c["series"]]
            rows.append(None)
        path = plots.data("s5-memory.dat", rows)
        png = plots.plot("s5-memory.png",
                         'set title "5. RSS of the worker"\nset xlabel "s"\n'
                         'set ylabel "RSS MiB"\nset key right bottom\n'
                         'plot ' + ", ".join('"%s" index %d using 1:2 with lines lw 2 title "%s"'
                                             % (path, i, c["case"])
                                             for i, c in enumerate(r["cases"])) +
                         ', 64 with lines dt 2 title "64 MiB"')
        if png:
            md += ["![memory](%s)" % png, ""]

    r = results.get("added-latency")
    if r and "worker" in r:
        md += ["## 6. Latency the worker adds (target: p99 ≤ 5 ms at half of scenario 1's "
               "throughput)", "",
               "Events produced at %.0f/s (half of %.0f/s), %d per run, after a warm-up. The "
               "worker's histogram `jiraprov_event_overhead_seconds`: per event, from the "
               "consumer handing the message over to the result being handed to the producer, "
               "minus the time of its Jira calls (request sent to response read, as its loop "
               "saw it); events that were parked or retried are left out. The limit program "
               "measures the same span minus its HTTP calls, at the same rate, on the same "
               "stack." % (r["rate"], r["full_rate"], r["n"]), "",
               "| program | events | p50 | p90 | p99 | p99.9 | within 5 ms | verdict |",
               "|---|---|---|---|---|---|---|---|"]
        for kind in ("worker", "limit"):
            x = r[kind]
            q = x["q"]
            md.append("| %s | %d | %s ms | %s ms | **%s ms** | %s ms | %.2f %% | %s |" % (
                kind, x["count"], _fmt(q[50], "%.2f"), _fmt(q[90], "%.2f"), _fmt(q[99], "%.2f"),
                _fmt(q[99.9], "%.2f"), 100 * x["within_5ms"],
                _verdict(r["met"]) if kind == "worker" else "(reference)"))
        md.append("")
        rows = []
        for kind in ("worker", "limit"):
            rows += [(hi * 1, share) for hi, share in r[kind]["cdf"] if hi != float("inf")]
            rows.append(None)
        path = plots.data("s6-overhead.dat", rows)
        png = plots.plot("s6-overhead.png",
                         'set title "6. share of events with added time <= x"\n'
                         'set xlabel "ms (log)"\nset logscale x\nset yrange [0:1.02]\n'
                         'set key right bottom\n'
                         'plot "%s" index 0 with linespoints lw 2 title "worker", '
                         '"%s" index 1 with linespoints lw 2 title "limit", '
                         '0.99 with lines dt 2 title "99 %%"' % (path, path))
        if png:
            md += ["![added latency](%s)" % png, ""]

    r = results.get("cost")
    if r and "res" in r:
        md += ["## 7. Cost (reported): instructions per event", "",
               "callgrind on the worker and on the limit program, each over %d events after %d "
               "of warm-up (counters zeroed and dumped with `callgrind_control`); every thread "
               "counts (librdkafka's too)." % (r["n"], r["warm"]), "",
               "| program | Ir/event | events |", "|---|---|---|"]
        for kind in ("worker", "limit"):
            x = r["res"].get(kind)
            md.append("| %s | %s | %s |" % (kind, _fmt(x and x["ir_per_event"]),
                                            x["events"] if x else "n/a"))
        if r["ratio"]:
            md += ["", "Worker / limit: **%.2f**." % r["ratio"]]
        w = r["res"].get("worker")
        for key, title in (("inclusive", "Worker, inclusive Ir of its own functions"),
                           ("self", "Worker, self Ir by function")):
            if w and w.get(key):
                md += ["", title + ":", "", "| function | Ir/event | share |", "|---|---|---|"]
                for fn, ir, share in w[key]:
                    md.append("| `%s` | %.0f | %.1f %% |" % (fn, ir / max(w["events"], 1),
                                                           100 * share))
        md += ["", "Per-function profiles: `s7-worker.callgrind.txt`, `s7-limit.callgrind.txt`.",
               ""]

    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(md) + "\n")
