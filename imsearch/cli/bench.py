"""``imsearch bench …``: the benchmarks of docs/BENCHMARKS.md (their code: imsearch.bench)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import typer

from imsearch.cli.common import (
    DataDir,
    app,
    fail,
    settings,
)
from imsearch.errors import ConfigError, ImsearchError

if TYPE_CHECKING:
    pass

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
    from imsearch.bench.grid import feature_grid, format_grid
    from imsearch.evaluate.datasets import load_dataset

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
        raise fail(exc) from exc
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

    from imsearch.bench.ann import (
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
    from imsearch.bench.filters import collection_memory, format_rows, run_filter_bench

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
    port: Annotated[int, typer.Option(help="Search service port (0: any free one).")] = 0,
    rerank_port: Annotated[int, typer.Option(help="Rerank service port (0: any free one).")] = 0,
    keep: Annotated[bool, typer.Option(help="Keep the built collection.")] = False,
) -> None:
    """A collection of N items served by real processes: restart, memory, disk, latency,
    adds and snapshots (docs/BENCHMARKS.md, "Scale")."""
    from imsearch.bench.scale import ScaleConfig, run_scale
    from imsearch.features.backbones import build_backbone

    cfg = settings()
    dim = build_backbone(cfg.backbone, cfg.weights, cfg.cut).channels
    config = ScaleConfig(
        items,
        work,
        features_from,
        dim,
        queries,
        rerank_queries,
        adds,
        port=port,
        rerank_port=rerank_port,
        keep=keep,
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
    from imsearch.bench.stages import format_stages, run_stages
    from imsearch.evaluate.datasets import load_dataset
    from imsearch.evaluate.runner import EvalOptions

    cfg = settings()
    options = EvalOptions(rerank=cfg.rerank_config(), data_dir=data_dir, distractors=distractors)
    try:
        report = run_stages(load_dataset(dataset_dir), cfg, options, limit, progress)
    except ImsearchError as exc:
        raise fail(exc) from exc
    typer.echo(format_stages(report))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2))


@bench_app.command("shortlist")
def bench_shortlist(
    dataset_dir: Annotated[Path, typer.Argument(help="images/ + gt.json, or jpg/ + gnd_*.pkl.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    data_dir: DataDir = None,
    distractors: Annotated[
        Path | None, typer.Option(help="Folder of extra database images (no positives).")
    ] = None,
    budgets: Annotated[
        str, typer.Option(help="Comma-separated postings per image of the collection (0: all).")
    ] = "0,16,8,4,2,1,0.5",
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """What a posting budget on the visual-word shortlist keeps of the candidates."""
    from imsearch.bench.shortlist import format_shortlist, run_shortlist
    from imsearch.evaluate.datasets import load_dataset
    from imsearch.evaluate.runner import EvalOptions

    cfg = settings()
    options = EvalOptions(rerank=cfg.rerank_config(), data_dir=data_dir, distractors=distractors)
    shares = [float(b) for b in budgets.split(",")]
    try:
        report = run_shortlist(load_dataset(dataset_dir), cfg, options, shares, progress)
    except ImsearchError as exc:
        raise fail(exc) from exc
    typer.echo(format_shortlist(report))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2))


@bench_app.command("words")
def bench_words(
    data_dir: Annotated[Path, typer.Argument(help="An indexed collection (its words).")],
    queries: Annotated[Path, typer.Argument(help="A dataset whose query photos are the queries.")],
    json_out: Annotated[Path, typer.Option("--json", help="Write the report here.")],
    items: Annotated[str, typer.Option(help="Comma-separated collection sizes.")] = "10000,100000",
    budgets: Annotated[
        str, typer.Option(help="Comma-separated posting budgets per shortlist (0: all).")
    ] = "0,200000,400000",
    work: Annotated[Path, typer.Option(help="Where the inverted files are built.")] = Path(
        "var/bench-words"
    ),
) -> None:
    """The visual-word shortlist alone at sizes bench scale cannot build (1M): ms per query."""
    import numpy as np

    from imsearch.bench.words import run_words
    from imsearch.engine import make_sift
    from imsearch.evaluate.datasets import load_dataset
    from imsearch.images import load_image
    from imsearch.rerank.bow import Quantizer
    from imsearch.rerank.visual_words import VOCABULARY_FILE

    cfg = settings()
    sift = make_sift(cfg, query=True)
    quantizer = Quantizer(np.load(data_dir / VOCABULARY_FILE).astype(np.float32))
    photos = [q.path for q in load_dataset(queries).queries]
    words = [quantizer.assign(sift.extract(load_image(p)).rootsift()) for p in photos]
    sizes = [int(n) for n in items.split(",")]
    report = run_words(
        data_dir, words, sizes, [int(b) for b in budgets.split(",")], work,
        log=lambda line: typer.echo(line, err=True),
    )  # fmt: skip
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
    from imsearch.bench.calibrate import (
        calibrate,
        collect,
        cross_domain,
        records_from_json,
        records_to_json,
    )
    from imsearch.evaluate.datasets import load_dataset
    from imsearch.evaluate.runner import EvalOptions

    cfg = settings()
    bounds = [float(b) for b in max_false_no_match.split(",")]
    dirs = [Path(d) for d in data_dirs.split(",")] if data_dirs else [None] * len(dataset_dirs)
    if len(dirs) != len(dataset_dirs) or len(bounds) not in (1, len(dataset_dirs)):
        raise fail(ConfigError("one --data-dirs entry per set, and one bound or one per set"))
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
        raise fail(exc) from exc
    names = list(dict.fromkeys(r.dataset for r in found))
    limits = dict(zip(names, bounds * len(names) if len(bounds) == 1 else bounds, strict=True))
    report = calibrate(found, limits, cfg.rerank_min_inliers)
    report["cross_domain"] = cross_domain(found, limits, cfg.rerank_min_inliers)
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
    for row in report["cross_domain"]:
        typer.echo(
            f"fitted on {row['fitted_on']} (threshold {row['threshold']}), measured on "
            f"{row['measured_on']}: false no-match {100 * row['false_no_match']:.1f} %, "
            f"no-match recall {100 * row['no_match_recall']:.1f} %"
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
    from imsearch.bench.load import format_load, run_load

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
    from imsearch.bench.soak import SoakConfig, format_soak, run_soak

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
