"""Looking after a data directory: ``imsearch vocabulary``, ``codebook``, ``migrate``,
``stats`` and ``demo``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from imsearch.cli.common import (
    CollectionName,
    DataDir,
    app,
    fail,
    settings,
)
from imsearch.errors import ConfigError, ImsearchError

if TYPE_CHECKING:
    pass


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
        vocabulary, report = vocabulary_from_folder(
            folder,
            cfg.vocabulary_words,
            cfg.local_max_side,
            cfg.local_max_keypoints,
            images,
            progress,
        )
    except ImsearchError as exc:
        raise fail(exc) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    import numpy as np

    np.save(out, vocabulary.astype(np.float16))
    typer.echo(f"{out}: {report}")


@app.command()
def codebook(
    folder: Annotated[Path, typer.Argument(help="Images to learn the codebook from.")],
    out: Annotated[Path, typer.Option(help="Where to write the centroids (.npy).")],
    m: Annotated[int, typer.Option(help="Bytes per keypoint (sub-quantisers).")] = 16,
    images: Annotated[int, typer.Option(help="At most this many images, spread evenly.")] = 2000,
    sample: Annotated[int, typer.Option(help="At most this many descriptors.")] = 300_000,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Learn a product-quantisation codebook of RootSIFT from a folder of images, with the
    collection's SIFT settings (the shipped ones: make generic-codebooks)."""
    import time

    import numpy as np

    from imsearch.engine import make_sift
    from imsearch.features.local import rootsift_sample
    from imsearch.features.local_codes import learn_codebook

    started = time.perf_counter()
    try:
        found, count = rootsift_sample(folder, make_sift(settings()), images, sample, progress)
        centroids = learn_codebook(found, m)
    except ImsearchError as exc:
        raise fail(exc) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, centroids.astype(np.float32))
    seconds = time.perf_counter() - started
    typer.echo(f"{out}: pq{m} from {len(found):,} descriptors of {count} images in {seconds:.0f} s")


@app.command()
def migrate(
    local_encoding: Annotated[
        str, typer.Option(help="Rewrite the stored local features as pq16 or pq32 codes.")
    ],
    data_dir: DataDir = None,
    collection: CollectionName = "default",
) -> None:
    """Rewrite a collection's stored local features in a compact encoding and free the old
    segments (offline: stop the servers of this data directory first; resumable)."""
    from imsearch.engine import open_store
    from imsearch.features.local_codes import ENCODINGS

    cfg = settings(data_dir=data_dir)
    codes = [e for e in ENCODINGS if e != "sift8"]
    try:
        if local_encoding not in codes:
            raise ConfigError(
                f"migrate rewrites local features as codes ({', '.join(codes)}); raw SIFT "
                "cannot be recovered from codes: re-index to go back"
            )
        store = open_store(cfg, collection=collection)
    except ImsearchError as exc:
        raise fail(exc) from exc
    try:
        rewritten, freed = store.reencode_features(local_encoding)
    finally:
        store.close()
    typer.echo(
        f"{collection}: {rewritten} images rewritten as {local_encoding}, {freed:,} bytes freed"
    )


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
        raise fail(exc) from exc
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
