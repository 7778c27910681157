"""Print the reference-against-default table of `make bench-speed` from its JSON reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def row(path: Path) -> str:
    report = json.loads(path.read_text())
    ms = report["ms_per_query"]
    return (
        f"| {path.stem} | {report['runtime']} | {report['settings']['rerank_matcher']} "
        f"| {100 * report['map']:.2f} | {ms['extract']:.0f} | {ms['rerank']:.0f} "
        f"| {ms['total']:.0f} | {ms['total_p95']:.0f} |"
    )


def main(results: Path) -> None:
    print("| run | runtime | matcher | mAP | extract ms | rerank ms | mean ms | p95 ms |")
    print("|---|---|---|---|---|---|---|---|")
    pairs = []
    for stem in ("speed-smvs", "speed-smvs-4k"):
        ref, new = results / f"{stem}-reference.json", results / f"{stem}-default.json"
        if ref.exists() and new.exists():
            print(row(ref))
            print(row(new))
            a, b = (json.loads(p.read_text())["ms_per_query"] for p in (ref, new))
            pairs.append((stem, a["total"] / b["total"], a["total_p95"] / b["total_p95"]))
    for stem in ("stages-smvs", "stages-smvs-4k"):
        ref, new = results / f"{stem}-reference.json", results / f"{stem}-default.json"
        if ref.exists() and new.exists():
            a, b = (json.loads(p.read_text())["ms"]["end_to_end"] for p in (ref, new))
            pairs.append((f"{stem} (k = 10)", a["mean"] / b["mean"], a["p95"] / b["p95"]))
    for stem, mean, p95 in pairs:
        print(f"{stem}: default is {mean:.2f}x faster (mean), {p95:.2f}x (p95)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/results"))
