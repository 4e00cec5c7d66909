#!/usr/bin/env python3
"""Coverage gate: line AND branch coverage, per library crate and in total,
from `cargo llvm-cov report --json --summary-only --branch`. Prints a table;
exits 1 when any figure is under the threshold (default 80%)."""
import json
import os
import sys

CRATES = ["cmdbus", "cmdbus-macros", "cmdbus-pg", "cmdbus-cli", "cmdbus-web"]


def main(report_path, threshold):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(report_path) as f:
        files = json.load(f)["data"][0]["files"]
    sums = {crate: [0, 0, 0, 0] for crate in CRATES}  # lines, covered, branches, covered
    for entry in files:
        crate = os.path.relpath(entry["filename"], root).split(os.sep)[0]
        if crate not in sums:
            continue
        summary = entry["summary"]
        for i, key in enumerate(("lines", "branches")):
            sums[crate][2 * i] += summary[key]["count"]
            sums[crate][2 * i + 1] += summary[key]["covered"]
    sums["total"] = [sum(s[i] for s in sums.values()) for i in range(4)]

    failed = []
    print(f"{'CRATE':<15} {'LINES':>18} {'BRANCHES':>18}")
    for crate, (lines, lines_hit, branches, branches_hit) in sums.items():
        cells = []
        for what, total, hit in (("lines", lines, lines_hit), ("branches", branches, branches_hit)):
            if total == 0:
                failed.append(f"{crate}: no {what} measured (is --branch on?)")
                cells.append(f"{'-':>18}")
                continue
            pct = 100.0 * hit / total
            if pct < threshold:
                failed.append(f"{crate}: {what} {pct:.1f}% < {threshold:g}%")
            cells.append(f"{pct:6.1f}% {hit:>5}/{total:<5}")
        print(f"{crate:<15} {cells[0]:>18} {cells[1]:>18}")
    if failed:
        print("coverage gate FAILED:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    print(f"coverage gate passed: every figure >= {threshold:g}%")
    return 0


if __name__ == "__main__":
    threshold = float(os.environ.get("COVERAGE_MIN", "80"))
    sys.exit(main(sys.argv[1], threshold))
