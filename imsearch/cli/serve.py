"""``imsearch serve``: the embedded engine or one service role, and the writer-lock claim."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from imsearch.cli.common import (
    DataDir,
    app,
    fail,
    settings,
)
from imsearch.errors import ImsearchError
from imsearch.settings import Settings

if TYPE_CHECKING:
    from imsearch.index.writer_lock import WriterLock


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
        raise fail(exc) from exc
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
        raise fail(exc) from exc
    if role not in ("all", "gateway"):
        return lock  # an internal service: images are added through the gateway, not here
    loopback = cfg.host in ("0.0.0.0", "::", "")
    host = "127.0.0.1" if loopback else (f"[{cfg.host}]" if ":" in cfg.host else cfg.host)
    lock.advertise(f"http://{host}:{cfg.port}")
    return lock
