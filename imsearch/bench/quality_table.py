"""Print the today-against-default tables of `make bench-quality` and draw the no-match plot."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def totals(results: Path) -> None:
    print("| run | mAP | mP@1 | no-match recall | false no-match | mean ms | p95 ms |")
    print("|---|---|---|---|---|---|---|")
    for stem in ("smvs-dvd", "museum-dev", "smvs-dvd-absent", "smvs-dvd-4k", "museum-dev-4k"):
        for name in ("today", "default"):
            report = _load(results / f"quality-{stem}-{name}.json")
            if report is None:
                continue
            ms = report["ms_per_query"]
            print(
                f"| {stem} {name} | {_pct(report['map'])} | {_pct(report['mp@1'])} "
                f"| {_pct(report['no_match_recall'])} | {_pct(report['false_no_match_rate'])} "
                f"| {ms['total']:.0f} | {ms['total_p95']:.0f} |"
            )


def per_set(results: Path, stem: str) -> None:
    today = _load(results / f"quality-{stem}-today.json")
    default = _load(results / f"quality-{stem}-default.json")
    if not today or not default or not default.get("per_set"):
        return
    print(f"\n{stem}, per query set (today → default)\n")
    print("| set | queries | mAP | mP@1 | false no-match | no-match recall |")
    print("|---|---|---|---|---|---|")
    for name, new in default["per_set"].items():
        old = today["per_set"][name]
        print(
            f"| {name} | {new['n_queries']} | {_pct(old['map'])} → **{_pct(new['map'])}** "
            f"| {_pct(old['mp@1'])} → {_pct(new['mp@1'])} "
            f"| {_pct(old['false_no_match_rate'])} → {_pct(new['false_no_match_rate'])} "
            f"| {_pct(old['no_match_recall'])} → {_pct(new['no_match_recall'])} |"
        )


def plot(results: Path) -> None:
    from imsearch.errors import ImsearchError
    from imsearch.evaluate.runner import plot_no_match_curve

    reports = {
        "museum-dev": _load(results / "quality-museum-dev-default.json"),
        "smvs-dvd, covers 090-099 absent": _load(results / "quality-smvs-dvd-absent-default.json"),
    }
    chosen = {k: v for k, v in reports.items() if v}
    if chosen:
        threshold = next(iter(chosen.values()))["rerank"]["min_confidence"]
        try:
            plot_no_match_curve(chosen, threshold, results / "no-match-curve.png")
        except ImsearchError as exc:  # matplotlib is the bench extra
            print(f"\nno plot: {exc}")
            return
        print(f"\nno-match curve drawn in {results / 'no-match-curve.png'}")


def main(results: Path) -> None:
    totals(results)
    for stem in ("museum-dev", "museum-dev-4k"):
        per_set(results, stem)
    plot(results)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/results"))
