"""Adapting the model: ``imsearch whiten`` (PCA or learned whitening) and ``imsearch train``
(fine-tuning, from labels or self-supervised)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from imsearch.cli.common import (
    CollectionName,
    DataDir,
    OnlyDb,
    OnlyQueries,
    app,
    fail,
    settings,
)
from imsearch.errors import ConfigError, ImsearchError
from imsearch.settings import Settings

if TYPE_CHECKING:
    from imsearch.train.data import TrainingData


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
    self_supervised: Annotated[
        bool,
        typer.Option(
            "--self-supervised",
            help="Lw from synthetic photos of the collection's own images (no labels).",
        ),
    ] = False,
    images: Annotated[
        Path | None,
        typer.Option(
            help="With --self-supervised: the originals (a folder, or a labelled set's "
            "database) instead of the collection's stored thumbnails."
        ),
    ] = None,
    views: Annotated[int, typer.Option(help="Synthetic photos per image.")] = 2,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """(Re-)learn the collection's whitening — PCA from its descriptors, Lw from the matching
    pairs of a labelled dataset or, self-supervised, from synthetic photos of its images — or
    remove it. The index is rebuilt with it."""
    cfg = settings(data_dir=data_dir, whitening_shrinkage=shrinkage, whitening_dim=dim)
    try:
        if pairs is not None:
            _learn_lw(cfg, pairs, tuple(only_queries or ()), shrinkage, progress)
            return
        if self_supervised:
            _learn_lw_from_views(cfg, images, views, shrinkage, progress)
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
        raise fail(exc) from exc
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


def _learn_lw_from_views(
    cfg: Settings, images: Path | None, views: int, shrinkage: float | None, progress: bool
) -> None:
    import tempfile

    from imsearch.engine import open_engine
    from imsearch.features.whitening import LW_SHRINKAGE
    from imsearch.train.lw import learn_lw_from_views

    alpha = LW_SHRINKAGE if shrinkage is None else shrinkage
    with tempfile.TemporaryDirectory(prefix="imsearch-lw-") as scratch:
        data = _self_supervised_data(images, cfg, "default", Path(scratch))
        engine = open_engine(cfg)
        try:
            learned = learn_lw_from_views(
                engine.extractor, [s.path for s in data.pool], views, 0, cfg.whitening_dim,
                alpha, progress,
            )  # fmt: skip
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
        # the head the network is built with is the one it is used with (settings), unless
        # the training settings name one
        values.setdefault("pooling", cfg.pooling)
        values.setdefault("regions", cfg.regions)
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
                f"{_pooling(e['gem_p'])}; {config.epochs - e['epoch']} to go, "
                f"ETA {_duration(e['eta_s'])}"
            ),
        )
    except ImsearchError as exc:
        raise fail(exc) from exc
    typer.echo(
        f"checkpoint {last}; use it with: imsearch --weights {last} --pooling {config.pooling} "
        f"--regions {config.regions} --cut {config.cut} --backbone {config.backbone} "
        "eval|index|serve ..."
    )


def _pooling(gem_p: float | None) -> str:
    return "MAC pooling" if gem_p is None else f"GeM p {gem_p:.2f}"


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
