"""Results of `make bench`: per-run records folded into medians, the JSON file, and the tables
(terminal and Markdown for docs/BENCHMARKS.md). Pure functions over plain dicts.
"""
import statistics

CLIENT_BOUND_PCT = 90   # a load generator above this share of its core measures itself


def _vals(runs, key):
    return [r[key] for r in runs if r.get(key) is not None]


def _med(runs, key):
    v = _vals(runs, key)
    return statistics.median(v) if v else None


def summarize(scen, runs, failures, skipped=None):
    """Folds the runs of one server in one scenario into the JSON record of issue 8."""
    if scen.get("tool") == "flood" and not skipped:
        return summarize_flood(scen, runs, failures)
    if skipped:
        return {"rps": None, "mbps": None, "cpu_us_per_req": None, "p99_us": None,
                "errors": None, "rss_per_conn_bytes": None, "skipped": skipped}
    main = scen["metric"]
    out = {
        "rps": _med(runs, "rps") if main != "rss_per_conn_bytes" else None,
        "mbps": _med(runs, "mbps") if main == "mbps" else None,
        "cpu_us_per_req": _med(runs, "cpu_us_per_req"),
        "p50_us": _med(runs, "p50_us"),
        "p99_us": _med(runs, "p99_us"),
        "errors": sum(_vals(runs, "errors")) if runs else None,
        "non2xx": sum(_vals(runs, "non2xx")) if runs else None,
        "rss_per_conn_bytes": _med(runs, "rss_per_conn_bytes"),
        "client_cpu_pct": _med(runs, "client_cpu_pct"),
        "server_cpu_pct": _med(runs, "server_cpu_pct"),
        "runs": len(runs),
        "disturbed_runs": sum(1 for r in runs if r.get("disturbed")),
        "repeats": sum(r.get("attempts", 1) - 1 for r in runs),
        "failures": failures,
    }
    v = _vals(runs, main)
    out[main + "_min"] = min(v) if v else None
    out[main + "_max"] = max(v) if v else None
    if main == "rss_per_conn_bytes":    # S7 (issue 19): per client pattern, and the give-back
        for k in ("rss_per_conn_eager", "rss_per_conn_late", "giveback_over_pct"):
            out[k] = _med(runs, k)
    if scen.get("also"):                # a second throughput shown beside the main one
        out[scen["also"]] = _med(runs, scen["also"])
    if scen.get("tool") == "tlsload":   # handshake scenarios (T3): what the client saw
        out["mbps"] = None
        out["resumed_pct"] = _med(runs, "resumed_pct")
        out["hs_p99_us"] = _med(runs, "hs_p99_us")
        out["tls"] = next((r["tls"] for r in reversed(runs) if r.get("tls")), None)
        cpu = out["cpu_us_per_req"]     # handshakes/s one core of this server could do
        out["capacity_hps"] = 1e6 / cpu if cpu else None
        out["first_error"] = next((r["first_error"] for r in runs if r.get("first_error")),
                                  None)
    cli = out["client_cpu_pct"]
    out["client_bound"] = cli is not None and cli >= CLIENT_BOUND_PCT
    out["all_runs"] = runs
    return out


FLOOD_SUMS = ("requests", "served", "failed", "timeouts", "non200", "fail_connect", "fail_send",
              "fail_closed", "fail_status", "fail_bad", "over_100ms", "over_1s")
FLOOD_MEDIANS = ("p50_ms", "p99_ms", "fds_before", "fds_peak", "fds_at_legit", "fds_after",
                 "fds_back_s", "flood_target", "flood_opened", "flood_held", "flood_pending",
                 "flood_not_started", "flood_closed_by_server", "flood_setup_s",
                 "slowloris_target", "slowloris_opened", "slowloris_open", "server_cpu_s",
                 "after_flood_ms", "duration_s", "server_log_lines", "idle_cpu_pct_after",
                 "stop_s", "client_cpu_pct", "other_cpu_pct")


def summarize_flood(scen, runs, failures):
    """A flood scenario (S10, G1, G2): counts summed over the rounds, the rest as medians
    (latencies over the runs' served requests: the median of each run's p50/p99, the max of
    the maxima). Negative latencies from the client mean "nothing served": None here."""
    out = {"rps": None, "mbps": None, "cpu_us_per_req": None, "rss_per_conn_bytes": None,
           "runs": len(runs), "failures": failures, "all_runs": runs,
           "repeats": 0}
    for k in FLOOD_SUMS:
        out[k] = sum(_vals(runs, k)) if runs else None
    clean = [dict(r, **{k: (r[k] if r.get(k) is not None and r[k] >= 0 else None)
                        for k in ("p50_ms", "p99_ms", "max_ms")}) for r in runs]
    for k in FLOOD_MEDIANS:
        out[k] = _med(clean, k)
    mx = _vals(clean, "max_ms")
    out["max_ms"] = max(mx) if mx else None
    out["served_pct"] = (100.0 * out["served"] / out["requests"]) if out.get("requests") else None
    v = _vals(runs, "success_pct")
    out["served_pct_min"], out["served_pct_max"] = (min(v), max(v)) if v else (None, None)
    out["errors"] = (out["failed"] or 0) + (out["timeouts"] or 0) if runs else None
    out["non2xx"] = out["non200"]
    out["p50_us"] = out["p50_ms"] * 1e3 if out["p50_ms"] is not None else None
    out["p99_us"] = out["p99_ms"] * 1e3 if out["p99_ms"] is not None else None
    out["statuses"] = {}
    for r in runs:
        for code, k in (r.get("statuses") or {}).items():
            out["statuses"][code] = out["statuses"].get(code, 0) + k
    out["after_flood"] = [r.get("after_flood") for r in runs]
    out["after_flood_ok"] = bool(runs) and all(r.get("after_flood_ok") for r in runs)
    out["fds_back"] = bool(runs) and all(r.get("fds_back") for r in runs)
    out["server_alive"] = bool(runs) and all(r.get("server_alive") for r in runs)
    out["server_exit"] = [r.get("server_exit") for r in runs]
    out["disturbed_runs"] = sum(1 for r in runs if r.get("load_disturbed"))
    out["server_log"] = next((r.get("server_log") for r in reversed(runs)
                              if r.get("server_log")), [])
    out["server_counters_after"] = next((r.get("server_counters_after") for r in reversed(runs)
                                         if r.get("server_counters_after")), None)
    return out


def add_ratios(scen, rows, base_rows=None):
    """Ratios to the scenario's reference (nginx, or the plain loop) and to the limit server.
    base_rows: for a variant (S10p), the rows of its base scenario, where the reference ran."""
    main = scen["metric"]
    ref, ceil = rows.get(scen["ref"], {}), rows.get(scen.get("ceiling") or "", {})
    if not ref and base_rows:
        ref = base_rows.get(scen["ref"], {})
    if scen.get("tool") == "flood":     # latency under the flood: lower is better
        for row in rows.values():
            row["x_ref"] = _ratio(row.get("served_pct"), ref.get("served_pct"))
            row["p99_x_ref"] = _ratio(row.get("p99_ms"), ref.get("p99_ms"))
            row["cpu_x_ref"] = row["x_limit"] = None
        return
    for row in rows.values():
        row["x_ref"] = _ratio(row.get(main), ref.get(main))
        row["cpu_x_ref"] = _ratio(row.get("cpu_us_per_req"), ref.get("cpu_us_per_req"))
        if row.get("capacity_hps"):     # T3: handshakes per CPU-second, as a ratio
            row["capacity_x_ref"] = _ratio(row["capacity_hps"], ref.get("capacity_hps"))
        row["x_limit"] = _ratio(row.get(main), ceil.get(main)) if ceil else None


def _ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


PAIRED_FOR = ("portico", "portico-tls")     # the rows whose paired ratios the report shows


def add_paired(scen, rows):
    """Per-round ratios of each Portico row to every other server of the scenario: round k's
    run against round k's run of the other, their median and range. The servers of a round run
    minutes apart at most, so a slow stretch of this shared machine hits both sides of a pair;
    the ratio of two medians taken over different rounds does not cancel it."""
    main = scen["metric"]
    if scen.get("tool") in ("flood", "idle") or main not in ("rps", "mbps"):
        return
    for name in PAIRED_FOR:
        row = rows.get(name)
        if not row or not row.get("all_runs"):
            continue
        mine = {r.get("round"): r for r in row["all_runs"] if r.get("round")}
        paired = {}
        for other, orow in rows.items():
            if other == name or not orow.get("all_runs"):
                continue
            x, cpu = [], []
            for r in orow["all_runs"]:
                m = mine.get(r.get("round"))
                if m is None:
                    continue
                if m.get(main) and r.get(main):
                    x.append(m[main] / r[main])
                if m.get("cpu_us_per_req") and r.get("cpu_us_per_req"):
                    cpu.append(m["cpu_us_per_req"] / r["cpu_us_per_req"])
            if x or cpu:
                paired[other] = {"rounds": max(len(x), len(cpu)),
                                 "x": _mr(x), "x_range": _rng(x),
                                 "cpu_x": _mr(cpu), "cpu_x_range": _rng(cpu)}
        row["paired"] = paired


def _mr(v):
    return round(statistics.median(v), 3) if v else None


def _rng(v):
    return [round(min(v), 3), round(max(v), 3)] if v else None


def paired_lines(results, scenarios):
    """Text lines: each Portico row's per-round ratios to the other servers."""
    out = []
    for key, scen in scenarios.items():
        for name, row in results.get(key, {}).items():
            for other, p in (row.get("paired") or {}).items():
                def part(k, what):
                    if p.get(k) is None:
                        return f"{what} —"
                    lo, hi = p[k + "_range"]
                    return f"{what} {p[k]:.2f}× [{lo:.2f}–{hi:.2f}]"
                out.append(f"{key:4} {name} / {other}: {part('x', scen['metric'])}, "
                           f"{part('cpu_x', 'CPU/req')} ({p['rounds']} rounds)")
    return out


# ---- formatting ------------------------------------------------------------------------------

def num(v, unit=""):
    if v is None:
        return "—"
    if abs(v) >= 1000:
        s = f"{v:,.0f}".replace(",", " ")
    elif abs(v) >= 100:
        s = f"{v:.0f}"
    elif abs(v) >= 10:
        s = f"{v:.1f}"
    else:
        s = f"{v:.2f}"
    return s + unit


UNITS = {"rps": "", "mbps": " MB/s", "rss_per_conn_bytes": " B"}
HEAD = ["scen", "server", "median [min–max]", "CPU µs/req", "p99 ms", "errors", "cli %",
        "×ref", "CPU ×ref", "×limit", "notes"]
ALSO_UNITS = {"mbps": " MB/s", "rps": " req/s", "resp_bytes": " B/response on the wire"}


def row_cells(key, scen, name, row):
    main = scen["metric"]
    if row.get("skipped"):
        return [key, name, "skipped", "", "", "", "", "", "", "", row["skipped"]]
    if not row.get("runs"):
        why = "; ".join(row.get("failures") or ["no run succeeded"])
        return [key, name, "FAILED", "", "", "", "", "", "", "", why[:120]]
    unit = UNITS.get(main, "")
    med = num(row.get(main), unit)
    lo, hi = row.get(main + "_min"), row.get(main + "_max")
    if row["runs"] > 1 and lo is not None:
        med += f" [{num(lo)}–{num(hi)}]"
    also = scen.get("also")
    if also and row.get(also) is not None:
        med += f" ({num(row[also])}{ALSO_UNITS.get(also, ' req/s')})"
    p99 = row.get("p99_us")
    err, non2xx = row.get("errors"), row.get("non2xx")
    errs = "—" if err is None else (str(err) + (f" +{non2xx} non-2xx" if non2xx else ""))
    notes = []
    if row.get("client_bound"):
        notes.append("client-bound: measures wrk/the client, not the server")
    if row.get("disturbed_runs"):
        notes.append(f"{row['disturbed_runs']} run(s) disturbed by other load")
    if row.get("failures"):
        notes.append(f"{len(row['failures'])} run(s) failed")
    if p99 is None and main in ("rps", "mbps") and scen["tool"] == "wrk":
        notes.append("p99 n/a (wrk)")
    if main == "rss_per_conn_bytes":
        for k, what in (("rss_per_conn_eager", "eager"), ("rss_per_conn_late", "late")):
            if row.get(k) is not None:
                notes.append(f"{what} {num(row[k])} B")
        if row.get("giveback_over_pct") is not None:
            notes.append(f"after close {num(row['giveback_over_pct'])} % over the start")
    if scen.get("tool") == "tlsload":
        if row.get("capacity_hps"):
            notes.append(f"capacity {num(row['capacity_hps'])}/s of server CPU"
                         + (f" ({num(row['capacity_x_ref'])}× ref)"
                            if row.get("capacity_x_ref") and name != scen["ref"] else ""))
        if row.get("tls"):
            notes.append(row["tls"])
        res = row.get("resumed_pct")
        if scen.get("tls_mode") == "resume" and res is not None:
            notes.append(f"resumed {res:.0f} %")
        elif res:
            notes.append(f"RESUMED {res:.1f} % (a full-handshake scenario)")
        if row.get("first_error"):
            notes.append(f"first error: {row['first_error'][:80]}")
    return [key, name, med, num(row.get("cpu_us_per_req")),
            "—" if p99 is None else f"{p99 / 1000:.1f}", errs,
            num(row.get("client_cpu_pct")), num(row.get("x_ref")), num(row.get("cpu_x_ref")),
            num(row.get("x_limit")), "; ".join(notes)]


FLOOD_HEAD = ["scen", "server", "served", "p50 ms", "p99 ms", "max ms",
              "fds before / peak / after", "after flood", "flood held / opened / target",
              "slowloris open", "p99 ×ref", "notes"]


def tls_summary(tls_info, results):
    """One line: what each TLS server negotiated in the pre-check (TLS 1.3 and 1.2)."""
    parts = [f"{name}: {info.get('tls13')} / {info.get('tls12')}"
             for name, info in sorted(tls_info.items())
             if any(name in rows for rows in results.values())]
    return "TLS negotiated (pre-check, Python's OpenSSL client; 1.3 / 1.2): " + "; ".join(parts)


def _ms(v):
    return "—" if v is None else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def flood_cells(key, scen, name, row):
    if row.get("skipped"):
        return [key, name, "skipped"] + [""] * 8 + [row["skipped"]]
    if not row.get("runs"):
        why = "; ".join(row.get("failures") or ["no run succeeded"])
        return [key, name, "FAILED"] + [""] * 8 + [why[:120]]

    def n(v):                   # counts: whole numbers, thousands spaced
        return "—" if v is None else f"{v:,.0f}".replace(",", " ")
    served = f"{n(row['served'])}/{n(row['requests'])}"
    notes = []
    if row.get("over_100ms"):
        starts = [r.get("last_over_100ms_at_s") for r in row.get("all_runs") or []]
        last = max([v for v in starts if v is not None and v >= 0] or [0.0])   # 0.0 is a start
        notes.append(f"{row['over_100ms']} served in over 100 ms ({row.get('over_1s') or 0} "
                     f"over 1 s), the last one started {last:.1f} s into the run")
    if row.get("timeouts"):
        notes.append(f"{row['timeouts']} timed out (budget {scen['budget']:g} s)")
    if row.get("failed"):
        why = [f"{row[k]} {label}" for k, label in (
            ("fail_connect", "connect failed"), ("fail_send", "send failed"),
            ("fail_closed", "closed/reset before the response"),
            ("fail_status", "status " + ", ".join(
                f"{c}×{k}" for c, k in sorted((row.get("statuses") or {}).items())
                if c != "200")), ("fail_bad", "bad bytes")) if row.get(k)]
        notes.append(f"{row['failed']} failed" + (f" ({'; '.join(why)})" if why else ""))
    if row.get("flood_pending") or row.get("flood_not_started"):
        notes.append(f"flood: {n(row.get('flood_pending'))} connects hung, "
                     f"{n(row.get('flood_not_started'))} not started")
    cnt = row.get("server_counters_after") or {}
    if cnt:                     # portico's own counters (SIGUSR1), last run
        notes.append("server: shed %s, accept errors %s" % (
            n(cnt.get("shed")), n(cnt.get("accept_errors"))))
    if not row.get("fds_back"):
        notes.append("descriptors did not return to the baseline")
    if not row.get("server_alive"):
        notes.append("SERVER DIED")
    elif any(x != 0 for x in row.get("server_exit") or []):
        notes.append("on SIGTERM after the flood: %s" % ", ".join(
            "hung (killed)" if x == "hung" else f"exit {x}" for x in row["server_exit"]))
    if row.get("disturbed_runs"):
        notes.append(f"{row['disturbed_runs']} run(s) disturbed by other load "
                     f"({row['other_cpu_pct']:.0f} % of a CPU)")
    if (row.get("idle_cpu_pct_after") or 0) > 20:
        notes.append(f"{row['idle_cpu_pct_after']:.0f} % CPU when idle after the flood")
    if row.get("failures"):
        notes.append(f"{len(row['failures'])} run(s) failed")
    after = row.get("after_flood") or []
    after_s = ("200" if row.get("after_flood_ok") and scen.get("mode") != "echo" else
               "ok" if row.get("after_flood_ok") else ", ".join(str(a) for a in after)[:40])
    fds = f"{n(row.get('fds_before'))} / {n(row.get('fds_peak'))} / {n(row.get('fds_after'))}"
    held = (f"{n(row.get('flood_held'))} / {n(row.get('flood_opened'))} / "
            f"{n(row.get('flood_target'))}") if row.get("flood_target") else "—"
    slow = (f"{n(row.get('slowloris_open'))} / {n(row.get('slowloris_target'))}"
            if row.get("slowloris_target") else "—")
    return [key, name, served, _ms(row.get("p50_ms")), _ms(row.get("p99_ms")),
            _ms(row.get("max_ms")), fds, after_s, held, slow, num(row.get("p99_x_ref")),
            "; ".join(notes)]


def table_rows(results, scenarios, flood=False):
    rows = []
    for key, scen in scenarios.items():
        if (scen.get("tool") == "flood") != flood:
            continue
        for name, row in results.get(key, {}).items():
            rows.append((flood_cells if flood else row_cells)(key, scen, name, row))
    return rows


def _terminal_table(head, rows):
    rows = [head] + rows
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    out = []
    for i, r in enumerate(rows):
        cells = [c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))]
        out.append("  ".join(cells) + "  " + r[-1])
        if i == 0:
            out.append("-" * (sum(widths) + 2 * len(widths) + 5))
    return "\n".join(out)


def terminal(results, scenarios):
    """The main table, then the flood scenarios' own table (issue 10) when any ran."""
    out = []
    rows = table_rows(results, scenarios)
    if rows:
        out.append(_terminal_table(HEAD, rows))
    rows = table_rows(results, scenarios, flood=True)
    if rows:
        out.append(_terminal_table(FLOOD_HEAD, rows))
    lines = paired_lines(results, scenarios)
    if lines:
        out.append("Paired per-round ratios (median [min–max] of round k / round k):\n"
                   + "\n".join("  " + ln for ln in lines))
    return "\n\n".join(out)


def _markdown_table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        out.append("| " + " | ".join(c if c else " " for c in r) + " |")
    return "\n".join(out)


def markdown(results, scenarios):
    out = []
    rows = table_rows(results, scenarios)
    if rows:
        out.append(_markdown_table(HEAD, rows))
    rows = table_rows(results, scenarios, flood=True)
    if rows:
        out.append(_markdown_table(FLOOD_HEAD, rows))
    lines = paired_lines(results, scenarios)
    if lines:
        out.append("Paired per-round ratios (median [min–max] of round k / round k):\n\n"
                   + "\n".join("- " + ln for ln in lines))
    return "\n\n".join(out)
