"""The CUDA paths, measured: run by scripts/gpu-check.sh (which installs carried wheels first).

On a machine with an NVIDIA GPU, with the repository copied alone: the extractor on CUDA in
fp32 and with AMP (fp16 autocast), at batch 1 and 16 at 1024 px, TensorRT when
torch-tensorrt is there; SIFT and verification; exact search on the GPU (FAISS when it has
GPU support, else a torch matrix product over the same vectors) against FAISS on the CPU.
Every descriptor is compared with the CPU's eager-PyTorch one (cosine). What cannot be
imported is skipped with the reason. ``--cpu`` runs the same script on the CPU (the test
suite's mode: AMP becomes bf16 autocast there).

Prints one table and writes the JSON report given by ``--json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from imsearch.features.config import ModelConfig  # noqa: E402
from imsearch.features.extractor import Extractor  # noqa: E402
from imsearch.features.local import SiftExtractor  # noqa: E402
from imsearch.images import load_image  # noqa: E402
from imsearch.rerank.spatial import VerifyParams, fit, ratio_matches  # noqa: E402

IMAGES = ROOT / "tests" / "data" / "mini" / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="Run on the CPU (no GPU needed).")
    parser.add_argument("--quick", action="store_true", help="Fewer images and repeats.")
    parser.add_argument("--side", type=int, default=1024, help="Longer image side (px).")
    parser.add_argument("--json", type=Path, help="Write the report here.")
    args = parser.parse_args()
    cuda = torch.cuda.is_available() and not args.cpu
    device = "cuda" if cuda else "cpu"
    images = [load_image(p) for p in sorted(IMAGES.glob("*.jpg"))]
    images = images[:4] if args.quick else images
    reps = 1 if args.quick else 5
    report: dict[str, Any] = {"environment": _environment(device), "rows": []}
    rows: list[dict[str, Any]] = report["rows"]

    config = ModelConfig(max_side=args.side)
    reference = Extractor(config, device="cpu", runtime="torch").describe(images)
    rows += _extractor_rows(config, device, images, reference, reps)
    rows += _local_rows(images, device, reps)
    rows += _search_rows(device, 20_000 if args.quick else 1_000_000, reps)
    print(format_rows(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


def _environment(device: str) -> dict[str, Any]:
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "cpu_threads": torch.get_num_threads(),
    }
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
    return env


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _topk(queries: torch.Tensor, base: torch.Tensor) -> Any:
    return torch.topk(queries @ base.T, 100, dim=1)


def _timed(work: Callable[[], Any], device: str, reps: int) -> tuple[float, Any]:
    """Seconds per call (best of ``reps`` after one warm-up call), and the last result."""
    out = work()
    _sync(device)
    best = float("inf")
    for _ in range(reps):
        started = time.perf_counter()
        out = work()
        _sync(device)
        best = min(best, time.perf_counter() - started)
    return best, out


def _cosines(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1)))


def _extractor_rows(
    config: ModelConfig,
    device: str,
    images: list[Image.Image],
    reference: np.ndarray,
    reps: int,
) -> list[dict[str, Any]]:
    net = Extractor(config, device=device, runtime="torch", batch_size=16)
    # A batch needs one shape: 16 copies of one image, all resized alike.
    batch = [images[0]] * 16
    amp_dtype = torch.float16 if device == "cuda" else torch.bfloat16
    rows = []
    for precision in ("fp32", "amp"):

        def describe(imgs: list[Image.Image], precision: str = precision) -> np.ndarray:
            if precision == "fp32":
                return net.describe(imgs)
            with torch.autocast(device, dtype=amp_dtype):
                return net.describe(imgs)

        one, _ = _timed(lambda: [describe([img]) for img in images], device, reps)
        got = np.concatenate([describe([img]) for img in images])
        many, _ = _timed(lambda: describe(batch), device, reps)
        name = precision if precision == "fp32" else f"amp ({str(amp_dtype).split('.')[-1]})"
        rows.append(
            {
                "stage": "cnn",
                "variant": f"{name}, batch 1",
                "ms": 1e3 * one / len(images),
                "images_per_s": len(images) / one,
                "min_cosine_vs_cpu": _cosines(got, reference),
            }
        )
        rows.append(
            {
                "stage": "cnn",
                "variant": f"{name}, batch 16",
                "ms": 1e3 * many,
                "images_per_s": 16 / many,
            }
        )
    rows.append(_tensorrt_row(device))
    return rows


def _tensorrt_row(device: str) -> dict[str, Any]:
    row: dict[str, Any] = {"stage": "cnn", "variant": "tensorrt (torch-tensorrt)"}
    if device != "cuda":
        return row | {"skipped": "no GPU"}
    try:
        import torch_tensorrt  # noqa: F401
    except ImportError as exc:
        return row | {"skipped": f"torch_tensorrt not importable ({exc})"}
    return row | {"skipped": "torch_tensorrt found; not wired into the extractor yet"}


def _local_rows(images: list[Image.Image], device: str, reps: int) -> list[dict[str, Any]]:
    sift = SiftExtractor(800, 1000)
    seconds, feats = _timed(lambda: [sift.extract(img) for img in images], "cpu", reps)
    rows: list[dict[str, Any]] = [
        {"stage": "sift", "variant": "OpenCV, 800 px, CPU", "ms": 1e3 * seconds / len(images)}
    ]
    query, candidates = feats[0], (feats * 20)[:20]
    q = query.rootsift()
    params = VerifyParams()
    for matcher in ("matmul", "opencv"):

        def match(m: str = matcher) -> list[Any]:
            return [ratio_matches(q, c.rootsift(), 0.8, m) for c in candidates]

        seconds, pairs = _timed(match, "cpu", reps)
        rows.append(
            {"stage": "matching", "variant": f"{matcher}, 20 candidates, CPU", "ms": 1e3 * seconds}
        )
    seconds, _ = _timed(
        lambda: [fit(query, c, p, params) for c, p in zip(candidates, pairs, strict=True)],
        "cpu",
        reps,
    )
    rows.append({"stage": "ransac", "variant": "MAGSAC++, 20 candidates, CPU", "ms": 1e3 * seconds})
    if device == "cuda":
        rows.append(_gpu_matching_row(q, [c.rootsift() for c in candidates], reps))
    return rows


def _gpu_matching_row(query: np.ndarray, candidates: list[np.ndarray], reps: int) -> dict[str, Any]:
    """The ratio test of 20 candidates as one batched product on the GPU."""
    q = torch.from_numpy(query).cuda()
    width = max(len(c) for c in candidates)
    stacked = np.zeros((len(candidates), width, 128), np.float32)
    for i, c in enumerate(candidates):
        stacked[i, : len(c)] = c
    cands = torch.from_numpy(stacked).cuda()

    def run() -> torch.Tensor:
        top = torch.topk(torch.einsum("qd,cnd->cqn", q, cands), 2, dim=2).values
        d = (2 - 2 * top).clamp(min=0)
        return (d[..., 0] < 0.64 * d[..., 1]).sum()

    seconds, _ = _timed(run, "cuda", reps)
    return {
        "stage": "matching",
        "variant": "batched product, 20 candidates, GPU",
        "ms": 1e3 * seconds,
    }


def _search_rows(device: str, n: int, reps: int) -> list[dict[str, Any]]:
    """Exact top-100 of 1 and of 100 queries over ``n`` random 320-d vectors."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal((n, 320), dtype=np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = base[:100] + 0.01
    rows: list[dict[str, Any]] = []
    faiss: Any
    try:
        import faiss
    except ImportError as exc:
        rows.append({"stage": "search", "variant": "faiss", "skipped": f"not importable ({exc})"})
        faiss = None
    if faiss is not None:
        index = faiss.IndexFlatIP(320)
        index.add(base)
        for nq in (1, 100):
            seconds, _ = _timed(partial(index.search, queries[:nq], 100), "cpu", reps)
            rows.append(
                {
                    "stage": "search",
                    "variant": f"faiss Flat CPU, n={n}, {nq} queries",
                    "ms": 1e3 * seconds,
                }
            )
        if device == "cuda" and hasattr(faiss, "StandardGpuResources"):
            gpu = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
            for nq in (1, 100):
                seconds, _ = _timed(partial(gpu.search, queries[:nq], 100), "cuda", reps)
                rows.append(
                    {
                        "stage": "search",
                        "variant": f"faiss Flat GPU, n={n}, {nq} queries",
                        "ms": 1e3 * seconds,
                    }
                )
        elif device == "cuda":
            rows.append(
                {
                    "stage": "search",
                    "variant": "faiss GPU",
                    "skipped": "this faiss has no GPU support",
                }
            )
    if device == "cuda":
        on_gpu = torch.from_numpy(base).cuda()
        for nq in (1, 100):
            q = torch.from_numpy(queries[:nq]).cuda()
            seconds, _ = _timed(partial(_topk, q, on_gpu), "cuda", reps)
            rows.append(
                {
                    "stage": "search",
                    "variant": f"torch exact GPU, n={n}, {nq} queries",
                    "ms": 1e3 * seconds,
                }
            )
    return rows


def format_rows(report: dict[str, Any]) -> str:
    env = ", ".join(f"{k} {v}" for k, v in report["environment"].items())
    lines = [env, f"{'stage':<10}{'variant':<44}{'ms':>10}{'img/s':>9}{'cos':>9}"]
    for row in report["rows"]:
        if "skipped" in row:
            lines.append(f"{row['stage']:<10}{row['variant']:<44}  skipped: {row['skipped']}")
            continue
        ips = f"{row['images_per_s']:.1f}" if "images_per_s" in row else ""
        cos = f"{row['min_cosine_vs_cpu']:.5f}" if "min_cosine_vs_cpu" in row else ""
        lines.append(f"{row['stage']:<10}{row['variant']:<44}{row['ms']:>10.1f}{ips:>9}{cos:>9}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
