"""The command line: index · query · eval · whiten · stats · demo · bench · serve.

Model and engine settings come from ``IMSEARCH_*`` environment variables (see
:class:`~imsearch.settings.Settings`); the options before the command override them, e.g.
``imsearch --backbone efficientnet_lite0 --max-side 512 eval DATASET --json out.json``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any, Literal, cast, get_args

import typer

from imsearch.errors import ImsearchError
from imsearch.settings import Settings

app = typer.Typer(
    help="Image-query search engine: index a collection, search it by photo, evaluate it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", "-d", help="Collection folder (default: IMSEARCH_DATA_DIR)."),
]


class _State:
    overrides: dict[str, Any] = {}  # noqa: RUF012 - one CLI invocation per process


def settings(**extra: Any) -> Settings:
    """Settings from the environment, then global CLI options, then per-command options."""
    values = {**_State.overrides, **{k: v for k, v in extra.items() if v is not None}}
    try:
        return Settings(**values)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


@app.callback()
def main(
    backbone: Annotated[
        str | None, typer.Option(help="efficientnet_lite0/1/2, resnet50/101/152")
    ] = None,
    weights: Annotated[Path | None, typer.Option(help="Checkpoint (ResNets).")] = None,
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
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
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


def _fail(exc: ImsearchError) -> typer.Exit:
    typer.secho(f"error [{exc.code}]: {exc.message}", fg="red", err=True)
    return typer.Exit(code=2)


@app.command()
def index(
    folder: Annotated[Path, typer.Argument(help="Folder of images (searched recursively).")],
    data_dir: DataDir = None,
    ids: Annotated[str, typer.Option(help="Id of an image: relpath | stem | sha256.")] = "relpath",
    batch_size: Annotated[int | None, typer.Option(help="Images per forward pass.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Index every image under FOLDER; re-running skips images already indexed."""
    from imsearch.engine import open_engine
    from imsearch.indexing import IdMode, index_directory, maybe_learn_whitening

    cfg = settings(data_dir=data_dir, batch_size=batch_size)
    if ids not in get_args(IdMode):
        raise typer.BadParameter("--ids must be relpath, stem or sha256")
    try:
        engine = open_engine(cfg)
        report = index_directory(
            folder,
            engine.store,
            engine.extractor,
            cfg.image_limits(),
            cfg.batch_size,
            cast(IdMode, ids),
            progress,
        )
        report.whitening = maybe_learn_whitening(engine.store, cfg)
    except ImsearchError as exc:
        raise _fail(exc) from exc
    typer.echo(
        f"found {report.found}, added {report.added} ({report.reused} copied from identical "
        f"content), skipped {report.skipped} already indexed, failed {len(report.failed)}; "
        f"{report.images_per_s:.2f} images/s; collection: {len(engine.store)} images"
    )
    typer.echo(f"whitening: {report.whitening}")
    for path, error in report.failed:
        typer.echo(f"  failed: {path}: {error}", err=True)


@app.command()
def query(
    image: Annotated[Path, typer.Argument(help="The query photo.")],
    data_dir: DataDir = None,
    k: Annotated[int, typer.Option("-k", help="How many results.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Search the collection with IMAGE; print ranked ids with scores."""
    from imsearch.engine import open_engine

    cfg = settings(data_dir=data_dir)
    try:
        engine = open_engine(cfg, readonly=True)
        result = engine.pipeline.search(image.read_bytes(), k)
    except ImsearchError as exc:
        raise _fail(exc) from exc
    except OSError as exc:
        typer.secho(f"error: cannot read {image}: {exc}", fg="red", err=True)
        raise typer.Exit(code=2) from exc
    if as_json:
        payload = {
            "results": [{"id": h.id, "score": h.score} for h in result.hits],
            "model_id": result.model_id,
            "timings_ms": result.timings_ms,
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    for rank, hit in enumerate(result.hits, 1):
        typer.echo(f"{rank:>3}  {hit.score:.4f}  {hit.id}")


@app.command(name="eval")
def eval_(
    dataset_dir: Annotated[Path, typer.Argument(help="images/ + gt.json, or jpg/ + gnd_*.pkl.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    data_dir: DataDir = None,
    rerank: Annotated[str, typer.Option(help="Re-ranking method.")] = "none",
    protocol: Annotated[str, typer.Option(help="Revisited protocol: easy|medium|hard.")] = "medium",
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Index a dataset's database, run its queries, report mAP, mP@k, recall and timings."""
    from imsearch.evaluate.datasets import load_dataset
    from imsearch.evaluate.runner import format_table, run_eval

    cfg = settings()
    try:
        dataset = load_dataset(dataset_dir, protocol)  # type: ignore[arg-type]
        result = run_eval(dataset, cfg, data_dir, rerank, progress=progress)
    except ImsearchError as exc:
        raise _fail(exc) from exc
    typer.echo(format_table(result))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2))
        typer.echo(f"report written to {json_out}")


@app.command()
def whiten(
    data_dir: DataDir = None,
    shrinkage: Annotated[float | None, typer.Option(help="Eigenvalue shrinkage α.")] = None,
    dim: Annotated[int | None, typer.Option(help="Output dimension (default: full).")] = None,
    clear: Annotated[bool, typer.Option(help="Remove the whitening instead.")] = False,
) -> None:
    """(Re-)learn the collection's PCA whitening from its descriptors, or remove it."""
    from imsearch.engine import open_store

    cfg = settings(data_dir=data_dir, whitening_shrinkage=shrinkage, whitening_dim=dim)
    try:
        store = open_store(cfg)
        if clear:
            store.clear_whitening()
            typer.echo("whitening removed")
            return
        learned = store.learn_whitening(
            cfg.whitening_shrinkage, cfg.whitening_dim, cfg.whitening_min_images
        )
    except ImsearchError as exc:
        raise _fail(exc) from exc
    typer.echo(f"whitening learned: {learned.info}")


@app.command()
def stats(data_dir: DataDir = None) -> None:
    """Print what the collection holds."""
    from imsearch.engine import open_store

    try:
        store = open_store(settings(data_dir=data_dir), readonly=True)
    except ImsearchError as exc:
        raise _fail(exc) from exc
    typer.echo(json.dumps(store.stats(), indent=2))


@app.command()
def demo(
    folder: Annotated[Path, typer.Argument(help="Where to write the demo collection.")] = Path(
        "var/demo"
    ),
) -> None:
    """Write the bundled demo collection (scikit-image's sample photos) to FOLDER."""
    from imsearch.demo import export_demo_collection

    written = export_demo_collection(folder)
    typer.echo(f"{len(written)} demo images in {folder}")


bench_app = typer.Typer(help="Benchmarks; results are JSON rows plus a readable table.")
app.add_typer(bench_app, name="bench")


@bench_app.command("features")
def bench_features(
    dataset_dir: Annotated[Path, typer.Argument(help="A dataset (images/ + gt.json, …).")],
    json_out: Annotated[Path, typer.Option("--json", help="Write the rows here.")],
    backbones: Annotated[str, typer.Option(help="Comma-separated.")] = (
        "efficientnet_lite0,efficientnet_lite1,efficientnet_lite2"
    ),
    sizes: Annotated[str, typer.Option(help="Max sides, comma-separated.")] = "512,1024",
    poolings: Annotated[str, typer.Option(help="Comma-separated.")] = "gem,mac,spoc",
    regions: Annotated[str, typer.Option(help="R-MAC levels to try; 0 = global.")] = "0,3",
    cut: Annotated[str, typer.Option(help="EfficientNet trunk end.")] = "blocks",
    protocol: Annotated[str, typer.Option(help="Revisited protocol.")] = "medium",
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Descriptor grid: backbone × size × pooling × scales × whitening (quality and ms/image)."""
    from imsearch.evaluate.datasets import load_dataset
    from imsearch.evaluate.grid import feature_grid, format_grid

    cfg = settings()
    try:
        rows = feature_grid(
            load_dataset(dataset_dir, protocol),  # type: ignore[arg-type]
            backbones=backbones.split(","),
            sizes=[int(s) for s in sizes.split(",")],
            cut=cast(Literal["blocks", "head"], cut),
            poolings=poolings.split(","),
            regions=[int(r) for r in regions.split(",")],
            device=cfg.device,
            whitening_shrinkage=cfg.whitening_shrinkage,
            progress=progress,
        )
    except ImsearchError as exc:
        raise _fail(exc) from exc
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(rows, indent=2))
    typer.echo(format_grid(rows))


@app.command()
def serve(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port.")] = None,
) -> None:
    """Serve the engine over HTTP, everything in this process (the embedded mode)."""
    try:
        import uvicorn

        from services.gateway.app import create_app
    except ImportError as exc:  # pragma: no cover - depends on the install
        typer.secho(
            f"serving needs the 'serve' extra: pip install -e '.[serve]' ({exc})",
            fg="red",
            err=True,
        )
        raise typer.Exit(code=2) from exc
    cfg = settings(data_dir=data_dir, host=host, port=port)
    uvicorn.run(create_app(cfg), host=cfg.host, port=cfg.port, log_level="info")


def run() -> None:  # pragma: no cover - console entry
    app(prog_name="imsearch")


if __name__ == "__main__":  # pragma: no cover
    run()
