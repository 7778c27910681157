"""The tables of docs/BENCHMARKS.md §14 from the reports of ``scripts/bench-model.sh``.

python -m imsearch.bench.model_table docs/results
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SETS = ("smvs-dvd", "museum-dev", "smvs-landmarks-dev", "smvs-paintings-dev")
RUNS = (
    ("today-global", "today, first stage alone"),
    ("default-global", "default, first stage alone"),
    ("today", "today, full pipeline"),
    ("default", "default, full pipeline"),
)


def _cell(report: dict[str, Any], key: str, scale: float = 100.0) -> str:
    value = report.get(key)
    return "–" if value is None else f"{scale * value:.2f}"


def pipeline_table(results: Path) -> list[str]:
    lines = [
        "| set | run | mAP | mP@1 | R@10 | false no-match % | mean ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ds in SETS:
        for run, label in RUNS:
            path = results / f"model-{ds}-{run}.json"
            if not path.is_file():
                continue
            r = json.loads(path.read_text())
            ms = r["ms_per_query"]
            lines.append(
                f"| {ds} | {label} | {_cell(r, 'map')} | {_cell(r, 'mp@1')} | "
                f"{_cell(r, 'recall@10')} | {_cell(r, 'false_no_match_rate')} | "
                f"{ms['total']:.0f} | {ms['total_p95']:.0f} |"
            )
    return lines


def cross_domain_table(results: Path) -> list[str]:
    path = results / "calibrate-cross-domain.json"
    if not path.is_file():
        return []
    report = json.loads(path.read_text())
    lines = [
        "| fitted on | measured on | threshold | false no-match % | no-match recall % |",
        "|---|---|---|---|---|",
    ]
    for row in report.get("cross_domain", []):
        lines.append(
            f"| {row['fitted_on']} | {row['measured_on']} | {row['threshold']:.3f} | "
            f"{100 * row['false_no_match']:.1f} | {100 * row['no_match_recall']:.1f} |"
        )
    return lines


def main() -> None:
    results = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/results")
    print("\n".join(pipeline_table(results)))
    print()
    print("\n".join(cross_domain_table(results)))


if __name__ == "__main__":
    main()
