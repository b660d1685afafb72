#!/usr/bin/env python3
"""Medians of run-recipes.sh results: Curator | Corral | Corral/Curator, one table per server mode.

    python3 benches/summarize_recipes.py target/bench-recipes/results-*.txt

Naming (run-recipes.sh): Curator metrics are bare, Corral's are prefixed corral_ (corralnj_: the
expiry benchmark with --resession-jitter-ms 0), and everything measured against the
forceSync=no server has a nosync_ prefix in front. herd_* (Corral only, embedded server) gets a
table of its own. Each cell is "median [min-max]" over the rounds (one value for one round).
"""
import re
import statistics
import sys

LINE = re.compile(r"^([a-z0-9_]+)=(\S+) (\S+)\s*$")
LIBS = ("curator", "corral", "corralnj")
SKIP = ("_mean", "_n", "_max")


def split(name):
    mode = "durable"
    if name.startswith("nosync_"):
        mode, name = "nosync", name[len("nosync_"):]
    lib = "curator"
    for prefix in ("corralnj", "corral"):
        if name.startswith(prefix + "_"):
            lib, name = prefix, name[len(prefix) + 1:]
            break
    if name.startswith("herd_"):
        mode = "embedded"
    return name, lib, mode


def fmt(x):
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def cell(xs):
    if not xs:
        return ""
    m = statistics.median(xs)
    if len(xs) == 1:
        return fmt(m)
    return f"{fmt(m)} [{fmt(min(xs))}–{fmt(max(xs))}]"


def main(paths):
    values, units, order = {}, {}, []
    for path in paths:
        with open(path) as f:
            for line in f:
                m = LINE.match(line.rstrip("\n"))
                if line.startswith("#") or not m:
                    continue
                name, value, unit = m.groups()
                try:
                    v = float(value)
                except ValueError:
                    continue
                base, lib, mode = split(name)
                if base.endswith(SKIP) and not base.startswith("herd_"):
                    continue
                if (mode, base) not in units:
                    order.append((mode, base))
                units[(mode, base)] = unit
                values.setdefault((mode, base, lib), []).append(v)
    titles = {"nosync": "forceSync=no", "durable": "durable (fsync)"}
    for mode in ("nosync", "durable"):
        rows = [b for (m, b) in order if m == mode]
        if not rows:
            continue
        print(f"\n### server: {titles[mode]}\n")
        print("| metric | unit | Curator 5.4.0 | Corral | Corral/Curator | Corral, no re-session jitter |")
        print("|---|---|---|---|---|---|")
        for base in rows:
            xs = {lib: values.get((mode, base, lib), []) for lib in LIBS}
            ratio = ""
            if xs["curator"] and xs["corral"] and statistics.median(xs["curator"]) != 0:
                ratio = fmt(statistics.median(xs["corral"]) / statistics.median(xs["curator"]))
            print(
                f"| {base} | {units[(mode, base)]} | {cell(xs['curator'])} | {cell(xs['corral'])} | {ratio}"
                f" | {cell(xs['corralnj'])} |"
            )
    rows = [b for (m, b) in order if m == "embedded"]
    if rows:
        print("\n### herd (embedded server, in process)\n")
        print("| metric | unit | Corral |")
        print("|---|---|---|")
        for base in rows:
            print(f"| {base} | {units[('embedded', base)]} | {cell(values.get(('embedded', base, 'corral'), []))} |")


if __name__ == "__main__":
    main(sys.argv[1:])
