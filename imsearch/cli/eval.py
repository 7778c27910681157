"""``imsearch eval``: index a labelled dataset and measure the pipeline on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from imsearch.cli.common import (
    CollectionName,
    DataDir,
    MinConfidence,
    MinInliers,
    OnlyDb,
    OnlyQueries,
    RerankM,
    RerankMethod,
    app,
    fail,
    require_or_fail,
    settings,
)
from imsearch.errors import ImsearchError

if TYPE_CHECKING:
    pass


@app.command(name="eval")
def eval_(
    dataset_dir: Annotated[Path, typer.Argument(help="images/ + gt.json, or jpg/ + gnd_*.pkl.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    data_dir: DataDir = None,
    rerank: RerankMethod = None,
    m: RerankM = None,
    min_inliers: MinInliers = None,
    min_confidence: MinConfidence = None,
    early_exit: Annotated[
        int | None, typer.Option(help="Stop verifying once a candidate has this many inliers.")
    ] = None,
    fusion: Annotated[
        str | None,
        typer.Option(help="How the two shortlists merge: interleave, rrf, global, visual."),
    ] = None,
    protocol: Annotated[str, typer.Option(help="Revisited protocol: easy|medium|hard.")] = "medium",
    exclude_db: Annotated[
        list[str] | None,
        typer.Option(help="Leave database ids matching this glob out (repeatable)."),
    ] = None,
    only_db: OnlyDb = None,
    only_queries: OnlyQueries = None,
    distractors: Annotated[
        Path | None, typer.Option(help="Folder of extra database images (no positives).")
    ] = None,
    rotate: Annotated[int, typer.Option(help="Rotate queries by 90, 180 or 270 degrees.")] = 0,
    plot: Annotated[
        Path | None, typer.Option(help="Draw the no-match curve into this PNG (matplotlib).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    collection: CollectionName = "default",
) -> None:
    """Index a dataset's database (into --collection of --data-dir, created if needed), run
    its queries, report mAP, mP@k, recall and timings."""
    from imsearch.evaluate.datasets import load_dataset
    from imsearch.evaluate.runner import EvalOptions, format_table, run_eval

    if plot:
        require_or_fail("matplotlib")  # before minutes of evaluation, not after
    cfg = settings(
        rerank=rerank,
        rerank_m=m,
        rerank_min_inliers=min_inliers,
        rerank_min_confidence=min_confidence,
        rerank_early_exit=early_exit,
        rerank_fusion=fusion,
    )
    options = EvalOptions(
        rerank=cfg.rerank_config(),
        data_dir=data_dir,
        exclude_db=tuple(exclude_db or ()),
        only_db=tuple(only_db or ()),
        only_queries=tuple(only_queries or ()),
        distractors=distractors,
        rotate=rotate,
        collection=collection,
    )
    try:
        options.rerank.stages  # noqa: B018 - an unknown method is a usage error, reported early
        dataset = load_dataset(dataset_dir, protocol)  # type: ignore[arg-type]
        result = run_eval(dataset, cfg, options, progress=progress)
    except ImsearchError as exc:
        raise fail(exc) from exc
    typer.echo(format_table(result))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2))
        typer.echo(f"report written to {json_out}")
    if plot and result.get("no_match_curve"):
        from imsearch.evaluate.runner import plot_no_match_curve

        threshold = result["rerank"]["min_confidence"]
        plot_no_match_curve({result["dataset"]: result}, threshold, plot)
        typer.echo(f"no-match curve drawn in {plot}")
