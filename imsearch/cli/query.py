"""``imsearch query``: search a collection with one photo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from imsearch.cli.common import (
    CollectionName,
    DataDir,
    FilterText,
    MinConfidence,
    MinInliers,
    RerankM,
    RerankMethod,
    app,
    fail,
    settings,
)
from imsearch.errors import ImsearchError

if TYPE_CHECKING:
    pass


@app.command()
def query(
    image: Annotated[Path, typer.Argument(help="The query photo.")],
    data_dir: DataDir = None,
    k: Annotated[int, typer.Option("-k", help="How many results.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    rerank: RerankMethod = None,
    m: RerankM = None,
    min_inliers: MinInliers = None,
    min_confidence: MinConfidence = None,
    collection: CollectionName = "default",
    where: FilterText = None,
) -> None:
    """Search a collection with IMAGE; print ranked ids with scores."""
    from imsearch.engine import open_engine
    from imsearch.index.filters import parse_filter

    cfg = settings(
        data_dir=data_dir,
        rerank=rerank,
        rerank_m=m,
        rerank_min_inliers=min_inliers,
        rerank_min_confidence=min_confidence,
    )
    try:
        condition = parse_filter(where)
        engine = open_engine(cfg, readonly=True, collection=collection)
        result = engine.pipeline.search(image.read_bytes(), k, where=condition)
    except ImsearchError as exc:
        raise fail(exc) from exc
    except OSError as exc:
        typer.secho(f"error: cannot read {image}: {exc}", fg="red", err=True)
        raise typer.Exit(code=2) from exc
    if as_json:
        payload = {
            "results": [
                {
                    "id": h.id,
                    "score": h.score,
                    "global_score": h.global_score,
                    "inliers": h.inliers,
                    "verified": h.verified,
                    "confidence": h.confidence,
                    "box": h.box,
                }
                for h in result.hits
            ],
            "no_confident_match": result.no_confident_match,
            "model_id": result.model_id,
            "rerank": result.rerank,
            "timings_ms": result.timings_ms,
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    if result.no_confident_match:
        typer.echo("no confident match (nothing verified with confidence); closest images:")
    for rank, hit in enumerate(result.hits, 1):
        sure = f"  {100 * hit.confidence:.0f}% sure" if hit.verified and hit.confidence else ""
        inliers = f"  {hit.inliers} inliers" if hit.inliers is not None else ""
        typer.echo(f"{rank:>3}  {hit.score:.4f}  {hit.id}{sure}{inliers}")
