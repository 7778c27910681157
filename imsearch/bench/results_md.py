"""Render the benchmark JSON in docs/results as the Markdown tables of docs/BENCHMARKS.md.

python -m imsearch.bench.results_md ann docs/results/bench-ann-100000.json
python -m imsearch.bench.results_md eval docs/results/eval-smvs-*.json
python -m imsearch.bench.results_md load docs/results/bench-load.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def ann(path: str) -> str:
    data = json.loads(Path(path).read_text())
    lines = [
        "| index | params | R@1 | R@10 | R@100 | QPS 1 thread | QPS batch | overhead "
        "| bytes/vector | build s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data["rows"]:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "–"
        lines.append(
            f"| {r['index']} | {params} | {r['recall@1']:.3f} | {r['recall@10']:.3f} "
            f"| {r['recall@100']:.3f} | {r['qps_single']:,.0f} | {r['qps_batch']:,.0f} "
            f"| {100 * r['wrapper_overhead']:.1f}% | {r['bytes_per_vector']:,.0f} "
            f"| {r['build_s']:.1f} |"
        )
    for n, summary in data["summary"].items():
        lines.append("")
        front = ", ".join(
            f"{r['index']}({', '.join(f'{k}={v}' for k, v in r['params'].items())}) "
            f"{r['recall@10']:.3f}@{r['qps_single']:,.0f}"
            for r in summary["pareto"]
        )
        lines.append(f"Pareto front at N={int(n):,} (recall@10 @ QPS): {front}")
        for key in ("fastest_at_recall10_0.95", "smallest_at_recall10_0.90"):
            r = summary[key]
            if r:
                params = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "–"
                lines.append(
                    f"{key}: {r['index']} ({params}) recall@10 {r['recall@10']:.3f}, "
                    f"{r['qps_single']:,.0f} QPS, {r['bytes_per_vector']:,.0f} B/vector"
                )
    return "\n".join(lines)


def evals(paths: list[str]) -> str:
    lines = [
        "| run | rerank | mAP | mP@1 | R@10 | ms extract | ms rerank | ms total (p95) "
        "| no-match recall | false no-match |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in paths:
        r = json.loads(Path(path).read_text())
        ms = r["ms_per_query"]
        rerank = ", ".join(f"{k}={v}" for k, v in r["rerank"].items() if v is not None)
        nm = r.get("no_match_recall")
        fnm = r.get("false_no_match_rate")
        lines.append(
            f"| {Path(path).stem} | {rerank} | {100 * r['map']:.2f} | {100 * r['mp@1']:.2f} "
            f"| {100 * r['recall@10']:.1f} | {ms['extract']:.0f} | {ms['rerank']:.0f} "
            f"| {ms['total']:.0f} ({ms['total_p95']:.0f}) "
            f"| {'–' if nm is None else f'{100 * nm:.1f}'} "
            f"| {'–' if fnm is None else f'{100 * fnm:.1f}'} |"
        )
    return "\n".join(lines)


def load(path: str) -> str:
    from imsearch.bench.load import format_load

    return format_load(json.loads(Path(path).read_text()))


if __name__ == "__main__":
    kind, *files = sys.argv[1:]
    if kind == "ann":
        print("\n\n".join(ann(f) for f in files))
    elif kind == "eval":
        print(evals(files))
    elif kind == "load":
        print(load(files[0]))
    else:
        raise SystemExit(__doc__)
