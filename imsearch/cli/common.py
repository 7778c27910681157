"""What every command shares: the Typer app, the global model options, the settings they
override, option types, and one way to print an error and exit."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from imsearch.errors import ConfigError, ImsearchError
from imsearch.settings import Settings

if TYPE_CHECKING:
    pass

app = typer.Typer(
    help="Image-query search engine: index a collection, search it by photo, evaluate it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

RerankMethod = Annotated[
    str | None,
    typer.Option(
        "--rerank",
        help="none, or a '+'-joined combination of qe, dba, diffusion, spatial "
        "(default: IMSEARCH_RERANK, spatial).",
    ),
]
RerankM = Annotated[int | None, typer.Option("--m", help="Candidates verified (spatial).")]
MinConfidence = Annotated[
    float | None,
    typer.Option("--min-confidence", help="Confidence (0..1) a match needs; default calibrated."),
]
MinInliers = Annotated[
    int | None, typer.Option("--min-inliers", help="Inliers for a confident match.")
]
DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", "-d", help="Data directory (default: IMSEARCH_DATA_DIR)."),
]
#: A split of a labelled dataset: id globs, repeatable.
OnlyQueries = Annotated[
    list[str] | None, typer.Option(help="Only the queries whose id matches this glob (repeatable).")
]
CollectionName = Annotated[
    str,
    typer.Option(
        "--collection",
        "-c",
        help="Which collection of the data directory (default: 'default').",
    ),
]
FilterText = Annotated[
    str | None,
    typer.Option(
        "--filter", help='Only results whose metadata satisfy this JSON, e.g. {"brand": "acme"}.'
    ),
]
OnlyDb = Annotated[
    list[str] | None, typer.Option(help="Only the database ids matching this glob (repeatable).")
]


class _State:
    overrides: dict[str, Any] = {}  # noqa: RUF012 - one CLI invocation per process


def settings(**extra: Any) -> Settings:
    """Settings from the environment, then global CLI options, then per-command options."""
    values = {**_State.overrides, **{k: v for k, v in extra.items() if v is not None}}
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_setting_name(e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise fail(ConfigError(f"invalid settings: {problems}")) from exc


def require_or_fail(module: str) -> None:
    from imsearch.optional import require

    try:
        require(module)
    except ImsearchError as exc:
        raise fail(exc) from exc


def _setting_name(loc: tuple[int | str, ...]) -> str:
    """``port (IMSEARCH_PORT)``: the setting, and the variable a user may have set it by."""
    field = str(loc[0]) if loc else "?"
    return f"{field} (IMSEARCH_{field.upper()})" if field in Settings.model_fields else field


@app.callback()
def main(
    ctx: typer.Context,
    backbone: Annotated[
        str | None, typer.Option(help="efficientnet_lite0/1/2, resnet50/101/152")
    ] = None,
    weights: Annotated[
        Path | None, typer.Option(help="Checkpoint: ResNet, or one from imsearch train.")
    ] = None,
    cut: Annotated[str | None, typer.Option(help="EfficientNet trunk end: blocks | head.")] = None,
    pooling: Annotated[str | None, typer.Option(help="gem | mac | spoc.")] = None,
    max_side: Annotated[int | None, typer.Option(help="Longer side at scale 1, px.")] = None,
    scales: Annotated[str | None, typer.Option(help="'1', 'ms' (1,1/√2,√2) or a list.")] = None,
    regions: Annotated[int | None, typer.Option(help="R-MAC levels; 0 = global pooling.")] = None,
    whitening: Annotated[str | None, typer.Option(help="collection | none.")] = None,
    index_spec: Annotated[str | None, typer.Option(help="FAISS index factory string.")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda[:N].")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    from imsearch.index.writer_lock import set_process_command

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    # A data directory's writer lock names its holder by the command it runs.
    set_process_command(f"imsearch {ctx.invoked_subcommand}")
    _State.overrides = {
        k: v
        for k, v in {
            "backbone": backbone,
            "weights": weights,
            "cut": cut,
            "pooling": pooling,
            "max_side": max_side,
            "scales": scales,
            "regions": regions,
            "whitening": whitening,
            "index_spec": index_spec,
            "device": device,
        }.items()
        if v is not None
    }


def fail(exc: ImsearchError) -> typer.Exit:
    typer.secho(f"error [{exc.code}]: {exc.message}", fg="red", err=True)
    return typer.Exit(code=2)
