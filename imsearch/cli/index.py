"""``imsearch index``: a folder or manifest into a collection — here, on Ray, or through a
running server."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast, get_args

import typer

from imsearch.cli.common import (
    CollectionName,
    DataDir,
    app,
    fail,
    settings,
)
from imsearch.errors import ImsearchError
from imsearch.settings import Settings

if TYPE_CHECKING:
    from imsearch.index.writer_lock import Holder
    from imsearch.sources import SourceFile


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
        raise fail(exc) from exc
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
        raise fail(exc) from exc
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
        raise fail(exc) from exc
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
        raise fail(exc) from exc
    typer.echo(
        f"found {report.found}, added {report.added}, skipped {report.skipped} already "
        f"indexed, failed {len(report.failed)}; {report.images_per_s:.2f} images/s; "
        f"collection: {count} images"
    )
    typer.echo("whitening and visual vocabulary: learned by the server when due")
    for path, error in report.failed:
        typer.echo(f"  failed: {path}: {error}", err=True)
