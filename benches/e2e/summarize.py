#!/usr/bin/env python3
"""summarize.py — results.csv of benches/e2e/run.sh (one or more, concatenated) to markdown.

Usage: summarize.py results.csv [environment.txt ...]
       summarize.py --compare a.csv b.csv ...

One line per (target, bench, tool, record size, partitions, rate): the median MiB/s over the
repeats with its min-max spread, median records/s, and the median of each latency percentile.
Failed rows are counted and their first note is shown.

--compare: one line per (bench, tool, record size, partitions, rate) and one column per
target, each cell "median MiB/s · p50 / p99 ms" (latency where the tool reports it).
"""

import csv
import statistics
import sys

KEY_FIELDS = ("target", "bench", "tool", "record_bytes", "partitions", "rate_per_s")
BENCH_ORDER = {"produce-max": 0, "produce-fixed": 1, "consume": 2, "limits": 3}


def number(text):
    return float(text) if text not in ("", None) else None


def median_of(rows, field):
    values = [number(row[field]) for row in rows if number(row[field]) is not None]
    return statistics.median(values) if values else None


def spread_of(rows, field):
    values = [number(row[field]) for row in rows if number(row[field]) is not None]
    if len(values) < 2:
        return ""
    return f"{min(values):.1f}–{max(values):.1f}"


def show(value, digits=1):
    if value is None:
        return ""
    return f"{value:,.{digits}f}"


def size_label(text):
    if not text:
        return ""
    size = int(text)
    for unit, factor in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def sort_key(key):
    target, bench, tool, size, partitions, rate = key
    return (target, BENCH_ORDER.get(bench, 9), tool, int(size or 0), int(partitions or 0), rate)


def read_groups(paths):
    groups = {}
    for path in paths:
        with open(path, newline="") as file:
            for record in csv.DictReader(file):
                groups.setdefault(tuple(record[f] for f in KEY_FIELDS), []).append(record)
    return groups


def compare_cell(group):
    good = [row for row in group if not row["note"].startswith("failed")]
    if not good:
        return "failed"
    cell = show(median_of(good, "mib_per_s"))
    p50, p99 = median_of(good, "p50_ms"), median_of(good, "p99_ms")
    if p50 is not None and p99 is not None:
        cell += f" · {show(p50, 2)} / {show(p99, 2)}"
    return cell


def compare(paths):
    groups = read_groups(paths)
    targets = sorted({key[0] for key in groups}, key=lambda t: (t != "tern", t))
    rows = sorted({key[1:] for key in groups}, key=lambda rest: sort_key(("",) + rest))
    print("| bench | tool | record | partitions | rate/s | " + " | ".join(targets) + " |")
    print("|" + "---|" * (5 + len(targets)))
    for bench, tool, size, partitions, rate in rows:
        cells = [compare_cell(groups[key]) if key in groups else ""
                 for key in ((t, bench, tool, size, partitions, rate) for t in targets)]
        rate = "max" if rate == "-1" else rate
        print(f"| {bench} | {tool} | {size_label(size)} | {partitions} | {rate} | "
              + " | ".join(cells) + " |")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if sys.argv[1] == "--compare":
        compare(sys.argv[2:])
        return
    groups = read_groups(sys.argv[1:2])
    for path in sys.argv[2:]:
        print("```")
        print(open(path).read().rstrip())
        print("```\n")
    print("| target | bench | tool | record | partitions | rate/s | MiB/s median | MiB/s min–max "
          "| records/s | p50 ms | p99 ms | p99.9 ms | runs | note |")
    print("|" + "---|" * 14)
    for key in sorted(groups, key=sort_key):
        group = groups[key]
        good = [row for row in group if not row["note"].startswith("failed")]
        failed = len(group) - len(good)
        notes = sorted({row["note"] for row in group if row["note"]})
        note = "; ".join(notes[:2]) + (f" ({failed} failed)" if failed else "")
        target, bench, tool, size, partitions, rate = key
        rate = "max" if rate == "-1" else rate
        print(f"| {target} | {bench} | {tool} | {size_label(size)} | {partitions} | {rate} "
              f"| {show(median_of(good, 'mib_per_s'))} | {spread_of(good, 'mib_per_s')} "
              f"| {show(median_of(good, 'records_per_s'), 0)} "
              f"| {show(median_of(good, 'p50_ms'), 2)} | {show(median_of(good, 'p99_ms'), 2)} "
              f"| {show(median_of(good, 'p999_ms'), 2)} | {len(good)} | {note} |")


if __name__ == "__main__":
    main()
