#!/usr/bin/env python3
"""Medians of run-compare.sh results: Curator | Corral | zookeeper-client | ratio | Corral variants.

    python3 benches/summarize.py target/bench-compare/results-*.txt

Naming (run-compare.sh): Curator metrics are bare, Corral's are prefixed corral_ (corralmain_
with the workload on the main thread, corralct_ on Tokio's current-thread runtime), the zookeeper-client crate's zkc_, and everything measured against the forceSync=no server has a
nosync_ prefix in front. zkraw_* rows are the bare ZooKeeper Java client under Curator (the
Curator harness measures them; they sit in the Curator column). One markdown table per server mode; each cell is
"median [min-max]" over the rounds (a single value when there was one round).
"""
import re
import statistics
import sys

LINE = re.compile(r"^([a-z0-9_]+)=(\S+) (\S+)\s*$")
LIBS = ("curator", "corral", "corralmain", "corralct", "zkc")
SKIP = ("_mean", "_n", "_max", "_errors")


def split(name):
    mode = "durable"
    if name.startswith("nosync_"):
        mode, name = "nosync", name[len("nosync_"):]
    lib = "curator"
    for prefix in ("corralct", "corralmain", "corral", "zkc"):
        if name.startswith(prefix + "_"):
            lib, name = prefix, name[len(prefix) + 1:]
    return name, lib, mode


def fmt(x):
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


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
                if base.endswith(SKIP):
                    continue
                if (mode, base) not in units:
                    order.append((mode, base))
                units[(mode, base)] = unit
                values.setdefault((mode, base, lib), []).append(v)
    for mode in ("nosync", "durable"):
        rows = [b for (m, b) in order if m == mode]
        if not rows:
            continue
        print(f"\n### server: {'forceSync=no' if mode == 'nosync' else 'durable (fsync)'}\n")
        print(
            "| metric | unit | Curator 5.4.0 | Corral | zookeeper-client | Corral/Curator"
            " | Corral, driver on main thread | Corral, current-thread rt |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for base in rows:
            cells, medians = {}, {}
            for lib in LIBS:
                xs = values.get((mode, base, lib))
                if not xs:
                    cells[lib] = ""
                    continue
                medians[lib] = statistics.median(xs)
                if len(xs) == 1:
                    cells[lib] = fmt(xs[0])
                else:
                    cells[lib] = f"{fmt(medians[lib])} [{fmt(min(xs))}–{fmt(max(xs))}]"
            ratio = ""
            if medians.get("curator") and "corral" in medians:
                ratio = f"{medians['corral'] / medians['curator']:.2f}"
            row = [cells["curator"], cells["corral"], cells["zkc"], ratio, cells["corralmain"], cells["corralct"]]
            print(f"| {base} | {units[(mode, base)]} | " + " | ".join(row) + " |")

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
