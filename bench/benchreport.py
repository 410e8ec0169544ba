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
    cli = out["client_cpu_pct"]
    out["client_bound"] = cli is not None and cli >= CLIENT_BOUND_PCT
    out["all_runs"] = runs
    return out


def add_ratios(scen, rows):
    """Ratios to the scenario's reference (nginx, or the plain loop) and to the limit server."""
    main = scen["metric"]
    ref, ceil = rows.get(scen["ref"], {}), rows.get(scen.get("ceiling") or "", {})
    for row in rows.values():
        row["x_ref"] = _ratio(row.get(main), ref.get(main))
        row["cpu_x_ref"] = _ratio(row.get("cpu_us_per_req"), ref.get("cpu_us_per_req"))
        row["x_limit"] = _ratio(row.get(main), ceil.get(main)) if ceil else None


def _ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


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
    return [key, name, med, num(row.get("cpu_us_per_req")),
            "—" if p99 is None else f"{p99 / 1000:.1f}", errs,
            num(row.get("client_cpu_pct")), num(row.get("x_ref")), num(row.get("cpu_x_ref")),
            num(row.get("x_limit")), "; ".join(notes)]


def table_rows(results, scenarios):
    rows = []
    for key, scen in scenarios.items():
        for name, row in results.get(key, {}).items():
            rows.append(row_cells(key, scen, name, row))
    return rows


def terminal(results, scenarios):
    rows = [HEAD] + table_rows(results, scenarios)
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEAD) - 1)]
    out = []
    for i, r in enumerate(rows):
        cells = [c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))]
        out.append("  ".join(cells) + "  " + r[-1])
        if i == 0:
            out.append("-" * (sum(widths) + 2 * len(widths) + 5))
    return "\n".join(out)


def markdown(results, scenarios):
    out = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    for r in table_rows(results, scenarios):
        out.append("| " + " | ".join(c if c else " " for c in r) + " |")
    return "\n".join(out)
