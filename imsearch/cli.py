"""The command line: index · query · eval · whiten · stats · demo · bench · serve.

Model and engine settings come from ``IMSEARCH_*`` environment variables (see
:class:`~imsearch.settings.Settings`); the options before the command override them, e.g.
``imsearch --backbone efficientnet_lite0 --max-side 512 eval DATASET --json out.json``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast, get_args

import typer
from pydantic import ValidationError

from imsearch.errors import ConfigError, ImsearchError
from imsearch.settings import Settings

if TYPE_CHECKING:
    from imsearch.index.writer_lock import Holder, WriterLock
    from imsearch.sources import SourceFile
    from imsearch.train.data import TrainingData

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
        raise _fail(ConfigError(f"invalid settings: {problems}")) from exc


def _require_or_fail(module: str) -> None:
    from imsearch.optional import require

    try:
        require(module)
    except ImsearchError as exc:
        raise _fail(exc) from exc


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


def _fail(exc: ImsearchError) -> typer.Exit:
    typer.secho(f"error [{exc.code}]: {exc.message}", fg="red", err=True)
    return typer.Exit(code=2)


@app.command()
def index(
    source: Annotated[
        str,
        typer.Argument(
            help="A folder of images (searched recursively), or a manifest: a file or URL "
            "listing one image path or URL per line (optionally TAB and its id), or a .csv "
            "with path and id columns.",
            metavar="SOURCE",
        ),
    ],
    data_dir: DataDir = None,
    ids: Annotated[str, typer.Option(help="Id of an image: relpath | stem | sha256.")] = "relpath",
    batch_size: Annotated[int | None, typer.Option(help="Images per forward pass.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="IMSEARCH_API_KEY",
            help="X-API-Key for a server that owns the data directory (see below).",
        ),
    ] = None,
    collection: CollectionName = "default",
    engine: Annotated[
        str,
        typer.Option(help="local (this process) or ray (Ray Data; pip install imsearch[bulk])."),
    ] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="A Ray cluster (ray://… or auto); default: a local one.")
    ] = None,
    actors: Annotated[
        int | None, typer.Option(help="Ray: network actors (default: one per GPU, else one).")
    ] = None,
) -> None:
    """Index every image of SOURCE into a collection (created if it does not exist);
    re-running skips images already indexed.

    When a server (imsearch serve) owns the data directory, the images are sent through its
    API instead: one process writes a collection. --engine ray spreads reading, decoding,
    the network and SIFT over a Ray cluster; this process still writes the collection.
    """
    from imsearch.engine import open_engine
    from imsearch.index.writer_lock import current_holder
    from imsearch.indexing import index_files, maybe_learn_vocabulary, maybe_learn_whitening
    from imsearch.sources import IdMode, source_files

    cfg = settings(data_dir=data_dir, batch_size=batch_size)
    if ids not in get_args(IdMode):
        raise typer.BadParameter("--ids must be relpath, stem or sha256")
    if engine not in ("local", "ray"):
        raise typer.BadParameter("--engine must be local or ray")
    try:
        files = source_files(source, cast(IdMode, ids))
    except ImsearchError as exc:
        raise _fail(exc) from exc
    if engine == "ray" and cfg.search_url:
        _bulk_through_search(files, cfg, collection, ray_address, actors, progress)
        return
    holder = current_holder(cfg.data_dir)
    if holder is not None and holder.url and holder.is_local:
        _index_through_server(files, cfg.data_dir, holder, api_key, progress, collection)
        return
    try:
        opened = open_engine(cfg, collection=collection, create=True)
        if engine == "ray":
            from imsearch.bulk import index_on_ray

            report = index_on_ray(files, opened.store, cfg, ray_address, actors, progress=progress)
        else:
            report = index_files(files, opened.store, opened.extractor, cfg.image_limits(),
                                 cfg.batch_size, progress, opened.sift)  # fmt: skip
        report.whitening = maybe_learn_whitening(opened.store, cfg)
        vocabulary = maybe_learn_vocabulary(opened.words, cfg)
        if opened.words is not None:
            opened.words.flush()  # every new image's visual words stored before exiting
        opened.close()
    except ImsearchError as exc:
        raise _fail(exc) from exc
    typer.echo(
        f"found {report.found}, added {report.added} ({report.reused} copied from identical "
        f"content), skipped {report.skipped} already indexed, failed {len(report.failed)}; "
        f"{report.images_per_s:.2f} images/s; collection: {len(opened.store)} images"
    )
    typer.echo(f"whitening: {report.whitening}")
    typer.echo(f"visual vocabulary: {vocabulary}")
    for path, error in report.failed:
        typer.echo(f"  failed: {path}: {error}", err=True)


def _bulk_through_search(
    files: list[SourceFile],
    cfg: Settings,
    collection: str,
    address: str | None,
    actors: int | None,
    progress: bool,
) -> None:
    """--engine ray with IMSEARCH_SEARCH_URL: the search service owns the collection (its one
    writer), so finished batches go to it; nothing here opens the data directory."""
    from imsearch.bulk import index_on_ray
    from imsearch.engine import make_extractors
    from services.common.access import internal_token
    from services.common.client import ServiceClient
    from services.search.client import RemoteSearcher, RemoteSink

    assert cfg.search_url is not None
    try:
        network = make_extractors(cfg)[0]  # the model's id and dimension, as the actors load it
        client = ServiceClient(
            "search", cfg.search_url, cfg.service_timeout_s, cfg.service_retries,
            internal_token(cfg), cfg.service_max_in_flight, cfg.service_queue_timeout_s,
        )  # fmt: skip
        searcher = RemoteSearcher(client, lambda: network.model_id)
        names = {c["name"] for c in searcher.collections()}
        if collection not in names:
            searcher.create_collection(collection, None, network.model_id, network.dim)
        report = index_on_ray(files, RemoteSink(searcher, collection), cfg, address, actors,
                              progress=progress)  # fmt: skip
        client.close()
    except ImsearchError as exc:
        raise _fail(exc) from exc
    typer.echo(
        f"found {report.found}, added {report.added}, skipped {report.skipped} already "
        f"indexed, failed {len(report.failed)}; {report.images_per_s:.2f} images/s "
        f"(sent to {cfg.search_url}, collection {collection})"
    )
    for path, error in report.failed:
        typer.echo(f"  failed: {path}: {error}", err=True)


def _index_through_server(
    files: list[SourceFile],
    data_dir: Path,
    holder: Holder,
    api_key: str | None,
    progress: bool,
    collection: str,
) -> None:
    from services.gateway.forward import index_through_api  # the server's API: httpx

    assert holder.url is not None
    typer.echo(f"{data_dir} is written by {holder.describe()}: sending the images to its API")
    try:
        report, count = index_through_api(
            holder.url, files, data_dir, api_key, progress, collection
        )
    except ImsearchError as exc:
        raise _fail(exc) from exc
    typer.echo(
        f"found {report.found}, added {report.added}, skipped {report.skipped} already "
        f"indexed, failed {len(report.failed)}; {report.images_per_s:.2f} images/s; "
        f"collection: {count} images"
    )
    typer.echo("whitening and visual vocabulary: learned by the server when due")
    for path, error in report.failed:
        typer.echo(f"  failed: {path}: {error}", err=True)


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
        raise _fail(exc) from exc
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
        _require_or_fail("matplotlib")  # before minutes of evaluation, not after
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
        raise _fail(exc) from exc
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


@app.command()
def whiten(
    data_dir: DataDir = None,
    shrinkage: Annotated[float | None, typer.Option(help="Eigenvalue shrinkage α.")] = None,
    dim: Annotated[int | None, typer.Option(help="Output dimension (default: full).")] = None,
    clear: Annotated[bool, typer.Option(help="Remove the whitening instead.")] = False,
    pairs: Annotated[
        Path | None,
        typer.Option(help="Learn from this labelled dataset's matching pairs (Lw) instead."),
    ] = None,
    only_queries: OnlyQueries = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """(Re-)learn the collection's whitening — PCA from its descriptors, or Lw from the
    matching pairs of a labelled dataset — or remove it. The index is rebuilt with it."""
    cfg = settings(data_dir=data_dir, whitening_shrinkage=shrinkage, whitening_dim=dim)
    try:
        if pairs is not None:
            _learn_lw(cfg, pairs, tuple(only_queries or ()), shrinkage, progress)
            return
        from imsearch.engine import open_store

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


def _learn_lw(
    cfg: Settings,
    dataset_dir: Path,
    queries: tuple[str, ...],
    shrinkage: float | None,
    progress: bool,
) -> None:
    from imsearch.engine import open_engine
    from imsearch.evaluate.datasets import load_dataset
    from imsearch.evaluate.runner import select
    from imsearch.features.whitening import LW_SHRINKAGE
    from imsearch.train.lw import learn_lw_from_dataset

    dataset = select(load_dataset(dataset_dir), only_queries=queries)
    engine = open_engine(cfg)
    try:
        alpha = LW_SHRINKAGE if shrinkage is None else shrinkage
        learned = learn_lw_from_dataset(
            engine.pipeline.extractor, dataset, cfg.whitening_dim, alpha, progress
        )
        engine.store.set_whitening(learned)
    finally:
        engine.close()
    typer.echo(f"whitening learned: {learned.info}")


@app.command()
def train(
    source: Annotated[
        Path | None,
        typer.Argument(
            help="A labelled dataset (images/ + gt.json, …) or a folder of images; with "
            "--self-supervised and no SOURCE, the images of the collection (--data-dir, "
            "--collection)."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Where checkpoints go (epoch-N.pt, last.pt).")] = Path(
        "var/train"
    ),
    self_supervised: Annotated[
        bool,
        typer.Option(
            "--self-supervised",
            help="No labels: each image's positives are synthetic photos of it (a labelled "
            "SOURCE's gt.json is ignored; its images/ are used).",
        ),
    ] = False,
    data_dir: DataDir = None,
    collection: CollectionName = "default",
    config_file: Annotated[
        Path | None, typer.Option("--config", help="JSON file of training settings.")
    ] = None,
    only_queries: OnlyQueries = None,
    only_db: OnlyDb = None,
    loss: Annotated[str | None, typer.Option(help="contrastive | triplet.")] = None,
    margin: Annotated[float | None, typer.Option(help="Loss margin.")] = None,
    sos: Annotated[float | None, typer.Option(help="λ of the SOS loss (0 = off).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs.")] = None,
    tuples: Annotated[int | None, typer.Option(help="Tuples per epoch.")] = None,
    batch: Annotated[int | None, typer.Option(help="Tuples per optimizer step.")] = None,
    negatives: Annotated[int | None, typer.Option(help="Hard negatives per tuple.")] = None,
    pool: Annotated[int | None, typer.Option(help="Pool images mined per epoch.")] = None,
    image_size: Annotated[int | None, typer.Option(help="Training image side, px.")] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate.")] = None,
    freeze: Annotated[int | None, typer.Option(help="Frozen trunk stages.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/last.pt.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Fine-tune the network (trunk + pooling + whitening) with contrastive/triplet (+SOS)
    loss, from labels or self-supervised."""
    from imsearch.train.trainer import TrainConfig
    from imsearch.train.trainer import train as run_training

    cfg = settings(data_dir=data_dir)
    flags = {
        "loss": loss, "margin": margin, "sos_weight": sos, "epochs": epochs,
        "tuples_per_epoch": tuples, "batch_size": batch, "negatives": negatives,
        "pool_size": pool, "image_size": image_size, "lr": lr, "freeze_stages": freeze,
        "seed": seed,
    }  # fmt: skip
    try:
        values = json.loads(config_file.read_text()) if config_file else {}
        values |= {k: v for k, v in flags.items() if v is not None}
        values |= {
            "backbone": cfg.backbone,
            "weights": str(cfg.weights) if cfg.weights else None,
            "cut": cfg.cut,
            "device": cfg.device,
        }
        config = TrainConfig(**values)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    try:
        if self_supervised:
            data = _self_supervised_data(source, cfg, collection, out)
        elif source is None:
            raise ConfigError("give a SOURCE to train on, or --self-supervised")
        else:
            data = _training_data(source, tuple(only_queries or ()), tuple(only_db or ()))
        last = run_training(
            config,
            data,
            out,
            resume,
            progress,
            lambda e: typer.echo(
                f"epoch {e['epoch']}: loss {e['loss']:.4f}, {e['seconds']:.0f} s, "
                f"GeM p {e['gem_p'] or 0:.2f}; {config.epochs - e['epoch']} to go, "
                f"ETA {_duration(e['eta_s'])}"
            ),
        )
    except ImsearchError as exc:
        raise _fail(exc) from exc
    typer.echo(
        f"checkpoint {last}; use it with: imsearch --weights {last} --pooling {config.pooling} "
        f"--regions {config.regions} --cut {config.cut} --backbone {config.backbone} "
        "eval|index|serve ..."
    )


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _self_supervised_data(
    source: Path | None, cfg: Settings, collection: str, out: Path
) -> TrainingData:
    from imsearch.collection import collection_dir
    from imsearch.train.data import from_collection, unlabelled, unlabelled_paths

    if source is None:
        catalog = collection_dir(cfg.data_dir, collection) / "catalog.sqlite"
        return from_collection(catalog, out / "collection-images")
    if (source / "gt.json").is_file() or any(source.glob("gnd_*.pkl")):
        # a labelled set: its database images only, as a user would index them (no query
        # photo, no label)
        from imsearch.evaluate.datasets import load_dataset

        return unlabelled_paths(load_dataset(source).database_paths)
    return unlabelled(source)


def _training_data(source: Path, queries: tuple[str, ...], db: tuple[str, ...]) -> TrainingData:
    from imsearch.evaluate.datasets import load_dataset
    from imsearch.evaluate.runner import select
    from imsearch.train.data import labelled, unlabelled

    if (source / "gt.json").is_file() or any(source.glob("gnd_*.pkl")):
        return labelled(select(load_dataset(source), only_db=db, only_queries=queries))
    if queries or db:
        raise ConfigError("--only-queries / --only-db select from a labelled dataset")
    return unlabelled(source)


@app.command()
def vocabulary(
    folder: Annotated[Path, typer.Argument(help="Images to learn the visual words from.")],
    out: Annotated[Path, typer.Option(help="Where to write the vocabulary (.npy).")],
    words: Annotated[
        int | None, typer.Option(help="Words (default IMSEARCH_VOCABULARY_WORDS).")
    ] = None,
    images: Annotated[int, typer.Option(help="At most this many images, spread evenly.")] = 2000,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Learn a visual vocabulary from a folder of images, for IMSEARCH_VOCABULARY=FILE (the
    shipped generic one was made this way: make generic-vocabulary)."""
    from imsearch.rerank.visual_words import vocabulary_from_folder

    cfg = settings(vocabulary_words=words)
    try:
        vocabulary, report = vocabulary_from_folder(folder, cfg, images, progress)
    except ImsearchError as exc:
        raise _fail(exc) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    import numpy as np

    np.save(out, vocabulary.astype(np.float16))
    typer.echo(f"{out}: {report}")


@app.command()
def stats(
    data_dir: DataDir = None,
    collection: CollectionName = "default",
    list_all: Annotated[
        bool, typer.Option("--list", help="List the data directory's collections instead.")
    ] = False,
) -> None:
    """Print what a collection holds (or, with --list, which collections there are)."""
    from imsearch import collection as collections
    from imsearch.engine import open_store

    cfg = settings(data_dir=data_dir)
    if list_all:
        found = [
            {"name": name, "count": collections.count(cfg.data_dir, name)}
            for name in collections.names(cfg.data_dir)
        ]
        typer.echo(json.dumps(found, indent=2))
        return
    try:
        store = open_store(cfg, readonly=True, collection=collection)
    except ImsearchError as exc:
        raise _fail(exc) from exc
    typer.echo(json.dumps({"collection": collection, **store.stats()}, indent=2))


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


@bench_app.command("ann")
def bench_ann(
    json_out: Annotated[Path, typer.Option("--json", help="Write the rows here.")],
    sizes: Annotated[str, typer.Option(help="Collection sizes.")] = "10000,100000,1000000",
    presets: Annotated[str, typer.Option(help="Comma-separated presets (default: all).")] = "",
    vectors: Annotated[
        Path | None, typer.Option(help="Real descriptors (.npy, N x d) instead of synthetic.")
    ] = None,
    dim: Annotated[
        int | None, typer.Option(help="Synthetic dimension (default: the model's).")
    ] = None,
    queries: Annotated[int, typer.Option(help="Held-out queries.")] = 1000,
    hnswlib: Annotated[bool, typer.Option(help="Run hnswlib as an outside reference.")] = True,
    replot: Annotated[
        bool, typer.Option(help="Only redraw the plots of an existing --json.")
    ] = False,
) -> None:
    """ANN families: recall@1/10/100, QPS (1 thread, batch 1, and batched), bytes, build time."""
    import numpy as np

    from imsearch.evaluate.ann_bench import (
        SWEEPS,
        choose_presets,
        format_rows,
        pareto_front,
        plot,
        run_ann_bench,
    )
    from imsearch.features.backbones import build_backbone

    if replot:
        saved = json.loads(json_out.read_text())["rows"]
        sizes_saved = sorted({r["n"] for r in saved})
        for n in sizes_saved:
            name = f"{json_out.stem}.png" if len(sizes_saved) == 1 else f"{json_out.stem}-{n}.png"
            plot(saved, n, json_out.with_name(name))
        return
    cfg = settings()
    data = np.load(vectors).astype(np.float32) if vectors else None
    if dim is None:
        dim = (
            int(data.shape[1])
            if data is not None
            else build_backbone(cfg.backbone, cfg.weights, cfg.cut).channels
        )
    names = [p for p in presets.split(",") if p] or list(SWEEPS)
    unknown = set(names) - set(SWEEPS)
    if unknown:
        raise typer.BadParameter(f"unknown presets {sorted(unknown)}; known: {sorted(SWEEPS)}")
    size_list = [int(s) for s in sizes.split(",")]
    rows = run_ann_bench(size_list, dim, names, data, queries, hnswlib)
    summary = {n: {"pareto": pareto_front(rows, n), **choose_presets(rows, n)} for n in size_list}
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))
    for n in size_list:
        name = f"{json_out.stem}.png" if len(size_list) == 1 else f"{json_out.stem}-{n}.png"
        plot(rows, n, json_out.with_name(name))
    typer.echo(format_rows(rows))


@bench_app.command("filter")
def bench_filter(
    json_out: Annotated[Path, typer.Option("--json", help="Write the rows here.")],
    n: Annotated[int, typer.Option(help="Collection size.")] = 100_000,
    presets: Annotated[str, typer.Option(help="Index families.")] = "exact,hnsw,ivf-pq",
    shares: Annotated[
        str, typer.Option(help="Shares of the collection the filters match.")
    ] = "0.01,0.1,0.3,1",
    dim: Annotated[int, typer.Option(help="Descriptor dimension.")] = 320,
    queries: Annotated[int, typer.Option(help="Held-out queries.")] = 200,
    memory: Annotated[bool, typer.Option(help="Also measure a collection's memory.")] = True,
    work: Annotated[Path | None, typer.Option(help="Folder for the temporary stores.")] = None,
) -> None:
    """Filtered search: recall@10 against an exhaustive filtered search, latency, filter cost;
    and the memory one open collection costs (docs/BENCHMARKS.md §11)."""
    from imsearch.evaluate.filter_bench import collection_memory, format_rows, run_filter_bench

    specs = [p for p in presets.split(",") if p]
    rows = run_filter_bench(n, dim, specs, [float(s) for s in shares.split(",")], queries, work)
    typer.echo(format_rows(rows))
    report: dict[str, Any] = {"rows": rows}
    if memory:
        report["memory"] = [collection_memory(n, dim, spec) for spec in specs]
        for m in report["memory"]:
            typer.echo(
                f"{m['spec']}: one open collection of {m['n']:,} images {m['open_mb']:.0f} MB; "
                f"an empty one {m['empty_open_mb']:.2f} MB"
            )
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(report, indent=2))


@bench_app.command("scale")
def bench_scale(
    items: Annotated[int, typer.Option(help="Collection size N.")],
    json_out: Annotated[Path, typer.Option("--json", help="Write the report here.")],
    features_from: Annotated[
        Path, typer.Option(help="Photos whose SIFT features the items copy (perturbed).")
    ] = Path("tests/data/mini/images"),
    work: Annotated[Path, typer.Option(help="Where the collection is built.")] = Path(
        "var/bench-scale"
    ),
    queries: Annotated[int, typer.Option(help="Search calls (k = 100).")] = 1000,
    rerank_queries: Annotated[int, typer.Option(help="Candidate + rerank calls.")] = 300,
    adds: Annotated[int, typer.Option(help="Adds over HTTP while serving.")] = 1000,
    port: Annotated[int, typer.Option(help="Search service port (rerank: +1).")] = 8700,
    keep: Annotated[bool, typer.Option(help="Keep the built collection.")] = False,
) -> None:
    """A collection of N items served by real processes: restart, memory, disk, latency,
    adds and snapshots (docs/BENCHMARKS.md, "Scale")."""
    from imsearch.evaluate.scale_bench import ScaleConfig, run_scale
    from imsearch.features.backbones import build_backbone

    cfg = settings()
    dim = build_backbone(cfg.backbone, cfg.weights, cfg.cut).channels
    config = ScaleConfig(
        items, work, features_from, dim, queries, rerank_queries, adds, port=port, keep=keep
    )
    report = run_scale(config, cfg, log=lambda line: typer.echo(line, err=True))
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(report, indent=2))
    typer.echo(json.dumps(report, indent=2))


@bench_app.command("stages")
def bench_stages(
    dataset_dir: Annotated[Path, typer.Argument(help="images/ + gt.json, or jpg/ + gnd_*.pkl.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    data_dir: DataDir = None,
    limit: Annotated[int | None, typer.Option(help="Time only the first N queries.")] = None,
    distractors: Annotated[
        Path | None, typer.Option(help="Folder of extra database images (no positives).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Where a query's time goes: decode, CNN, SIFT, search, read, matching, RANSAC."""
    from imsearch.evaluate.datasets import load_dataset
    from imsearch.evaluate.runner import EvalOptions
    from imsearch.evaluate.stages_bench import format_stages, run_stages

    cfg = settings()
    options = EvalOptions(rerank=cfg.rerank_config(), data_dir=data_dir, distractors=distractors)
    try:
        report = run_stages(load_dataset(dataset_dir), cfg, options, limit, progress)
    except ImsearchError as exc:
        raise _fail(exc) from exc
    typer.echo(format_stages(report))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2))


@bench_app.command("calibrate")
def bench_calibrate(
    dataset_dirs: Annotated[
        list[Path], typer.Argument(help="Development sets (images/ + gt.json), one or more.")
    ],
    json_out: Annotated[Path, typer.Option("--json", help="Write the report here.")],
    data_dirs: Annotated[
        str | None,
        typer.Option(help="Comma-separated collection folders, one per set (reuse an index)."),
    ] = None,
    max_false_no_match: Annotated[
        str, typer.Option(help="Comma-separated bound per set on the false no-match rate.")
    ] = "0.01",
    model_out: Annotated[
        Path | None,
        typer.Option(
            help="Write the match model here (the shipped one: imsearch/data/match-model.json)."
        ),
    ] = None,
    records: Annotated[
        Path | None,
        typer.Option(help="Verifications: read from this JSON if it exists, else written to it."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Fit the confidence of a verification and choose the no-match threshold (cross-validated)."""
    from imsearch.evaluate.calibrate import calibrate, collect, records_from_json, records_to_json
    from imsearch.evaluate.datasets import load_dataset
    from imsearch.evaluate.runner import EvalOptions

    cfg = settings()
    bounds = [float(b) for b in max_false_no_match.split(",")]
    dirs = [Path(d) for d in data_dirs.split(",")] if data_dirs else [None] * len(dataset_dirs)
    if len(dirs) != len(dataset_dirs) or len(bounds) not in (1, len(dataset_dirs)):
        raise _fail(ConfigError("one --data-dirs entry per set, and one bound or one per set"))
    try:
        if records and records.is_file():
            found = records_from_json(json.loads(records.read_text()))
        else:
            found = []
            for root, data_dir in zip(dataset_dirs, dirs, strict=True):
                options = EvalOptions(rerank=cfg.rerank_config(), data_dir=data_dir)
                found += collect(load_dataset(root), cfg, options, progress)
            if records:
                records.write_text(json.dumps(records_to_json(found)))
    except ImsearchError as exc:
        raise _fail(exc) from exc
    names = list(dict.fromkeys(r.dataset for r in found))
    limits = dict(zip(names, bounds * len(names) if len(bounds) == 1 else bounds, strict=True))
    report = calibrate(found, limits, cfg.rerank_min_inliers)
    report["command"] = "imsearch bench calibrate " + " ".join(str(d) for d in dataset_dirs)
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(report, indent=2))
    model = report["model"]
    typer.echo(f"weights {model['weights']}, threshold {model['threshold']}")
    for name, point in report["held_out_at_threshold"].items():
        typer.echo(
            f"{name}: no-match recall {100 * point['no_match_recall']:.1f} %, "
            f"false no-match {100 * point['false_no_match']:.1f} % (held out)"
        )
    if model_out:
        model_out.write_text(json.dumps({**model, "source": report["command"]}, indent=2) + "\n")
        typer.echo(f"match model written to {model_out}")


@bench_app.command("load")
def bench_load(
    url: Annotated[str, typer.Option(help="The gateway, e.g. http://127.0.0.1:8000.")],
    images: Annotated[Path, typer.Option(help="Folder of query photos to send.")],
    json_out: Annotated[Path, typer.Option("--json", help="Append the rows to this file.")],
    concurrency: Annotated[str, typer.Option(help="Client counts, comma-separated.")] = "1,4,16",
    duration: Annotated[float, typer.Option(help="Seconds per level.")] = 30.0,
    mode: Annotated[str, typer.Option(help="A label for the rows (embedded, services…).")] = "",
    rerank: Annotated[str | None, typer.Option(help="Re-ranking method per request.")] = None,
    cache_bust: Annotated[bool, typer.Option(help="Make every request a cache miss.")] = True,
) -> None:
    """Throughput and latency percentiles of /v1/search at several concurrency levels."""
    from imsearch.evaluate.load_bench import format_load, run_load

    params = {"rerank": rerank} if rerank else {}
    rows = json.loads(json_out.read_text()) if json_out.exists() else []
    new = []
    for level in [int(c) for c in concurrency.split(",")]:
        row = run_load(url, images, level, duration, params, cache_bust) | {"mode": mode}
        new.append(row)
        typer.echo(format_load([row]).splitlines()[-1])
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(rows + new, indent=2))
    typer.echo(format_load(new))


@bench_app.command("soak")
def bench_soak(
    url: Annotated[str, typer.Option(help="The gateway, e.g. http://127.0.0.1:8000.")],
    images: Annotated[Path, typer.Option(help="Folder of photos to search and add.")],
    json_out: Annotated[Path, typer.Option("--json", help="Write the report here.")],
    clients: Annotated[int, typer.Option(help="Concurrent clients.")] = 16,
    duration: Annotated[float, typer.Option(help="Seconds.")] = 300.0,
    pid: Annotated[
        list[int] | None, typer.Option(help="Server process whose memory to sample (repeat).")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="IMSEARCH_SOAK_API_KEY", help="X-API-Key for writes.")
    ] = None,
    add_share: Annotated[float, typer.Option(help="Share of requests that add.")] = 0.15,
    delete_share: Annotated[float, typer.Option(help="Share of requests that delete.")] = 0.05,
    sample: Annotated[float, typer.Option(help="Seconds between memory samples.")] = 5.0,
    mode: Annotated[str, typer.Option(help="A label for the report.")] = "",
) -> None:
    """Minutes of mixed searches, adds and deletes; latency, errors and memory over time."""
    from imsearch.evaluate.soak import SoakConfig, format_soak, run_soak

    config = SoakConfig(
        url,
        images,
        clients,
        duration,
        add_share=add_share,
        delete_share=delete_share,
        api_key=api_key,
        pids=pid or (),
        sample_s=sample,
    )
    report = run_soak(config) | {"mode": mode}
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(report, indent=2))
    typer.echo(format_soak(report))


@app.command()
def serve(
    role: Annotated[
        str,
        typer.Option(help="all (embedded: everything here), gateway, extractor, search, rerank."),
    ] = "all",
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port.")] = None,
) -> None:
    """Serve over HTTP: the whole engine in this process, or one of the four services.

    The gateway reaches the others through IMSEARCH_EXTRACTOR_URL, IMSEARCH_SEARCH_URL and
    IMSEARCH_RERANK_URL (unset: that stage runs inside it) and caches in IMSEARCH_REDIS_URL.
    """
    import importlib
    import os

    modules = {
        "all": "gateway",
        "gateway": "gateway",
        "extractor": "extractor",
        "search": "search",
        "rerank": "rerank",
    }
    if role not in modules:
        raise typer.BadParameter(f"--role must be one of {', '.join(modules)}")
    try:
        import uvicorn

        factory = importlib.import_module(f"services.{modules[role]}.app").create_app
    except ImportError as exc:  # pragma: no cover - depends on the install
        typer.secho(
            f"serving needs the 'serve' extra: pip install -e '.[serve]' ({exc})",
            fg="red",
            err=True,
        )
        raise typer.Exit(code=2) from exc
    cfg = settings(data_dir=data_dir, host=host, port=port)
    if role == "all":
        cfg = cfg.model_copy(update={"extractor_url": None, "search_url": None, "rerank_url": None})
    lock = _claim_data_dir(role, cfg)
    # One process per service: torch and FAISS may use every core they are given.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        app = _build_app(factory, role, cfg)
    except ImsearchError as exc:
        if lock is not None:
            lock.release()
        raise _fail(exc) from exc
    try:
        uvicorn.run(
            app,
            host=cfg.host,
            port=cfg.port,
            log_level="info",
            # Behind a proxy, rate limits must see the client's address, not the proxy's.
            proxy_headers=True,
            forwarded_allow_ips=cfg.trusted_proxies,
        )
    finally:
        if lock is not None:
            lock.release()


def _build_app(factory: Any, role: str, cfg: Settings) -> Any:
    """The app of ``role``. The embedded engine is opened here, before serving, so that a
    collection or model it cannot open is a one-line error, not a failed start-up."""
    if role != "all":
        return factory(cfg)
    from services.gateway.compose import compose

    return factory(cfg, compose(cfg))


def _claim_data_dir(role: str, cfg: Settings) -> WriterLock | None:
    """Take the data directory's writer lock before serving, if this role writes it: a
    second writer is refused at once, and ``imsearch index`` finds this server's URL."""
    from imsearch.index.writer_lock import acquire_writer, set_process_command

    writes = {
        "all": True,
        "search": not cfg.replica,
        # Stateless: it reads the feature store (often a read-only mount) and writes nothing.
        "rerank": False,
        # A gateway keeps the collection when it runs the search stage itself.
        "gateway": not cfg.search_url,
        "extractor": False,
    }[role]
    if not writes:
        return None
    if role != "all":
        set_process_command(f"imsearch serve --role {role}")
    try:
        lock = acquire_writer(cfg.data_dir)
    except ImsearchError as exc:
        raise _fail(exc) from exc
    if role not in ("all", "gateway"):
        return lock  # an internal service: images are added through the gateway, not here
    loopback = cfg.host in ("0.0.0.0", "::", "")
    host = "127.0.0.1" if loopback else (f"[{cfg.host}]" if ":" in cfg.host else cfg.host)
    lock.advertise(f"http://{host}:{cfg.port}")
    return lock


def run() -> None:  # pragma: no cover - console entry
    app(prog_name="imsearch")


if __name__ == "__main__":  # pragma: no cover
    run()
