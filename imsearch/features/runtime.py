"""Where the CNN trunk runs: eager PyTorch (the reference), ONNX Runtime or OpenVINO.

Only the trunk moves: input normalisation and the convolutional layers, exported once at
start-up to ONNX with dynamic batch, height and width (about a second; nothing is cached on
disk, so a new model or a new runtime version can never meet a stale export). Pooling and
whitening stay in PyTorch: R-MAC's region grid depends on the map's shape, and both cost
well under a millisecond. On CPU the exported graph runs about twice as fast as eager PyTorch
for EfficientNet-Lite (depthwise convolutions and TF-style "same" padding are fused); the
descriptors agree to a cosine above 0.9999 (docs/BENCHMARKS.md §9), so the runtime is not
part of the model id and collections indexed under one runtime are searched under another.

``auto`` picks OpenVINO, then ONNX Runtime, on the CPU, and PyTorch on a GPU; a runtime whose
package is missing falls back to PyTorch with a warning.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import nn

from imsearch.errors import ConfigError

log = logging.getLogger(__name__)

Runtime = Literal["auto", "torch", "onnxruntime", "openvino"]
RUNTIMES: tuple[str, ...] = ("auto", "torch", "onnxruntime", "openvino")
#: What ``auto`` tries on the CPU, fastest first (measured side by side, BENCHMARKS.md §9).
CPU_PREFERENCE = ("openvino", "onnxruntime")

#: Runs a batch ``(B, 3, H, W)`` of RGB in [0, 1] through normalisation and the trunk.
TrunkFn = Callable[[torch.Tensor], torch.Tensor]


class _Trunk(nn.Module):
    """Normalisation + trunk as one module: what gets exported."""

    def __init__(self, normalize: Callable[[torch.Tensor], torch.Tensor], trunk: nn.Module):
        super().__init__()
        self.normalize = normalize
        self.trunk = trunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.trunk(self.normalize(x)))


def default_threads() -> int:
    """The cores this process may use (cgroup/affinity aware where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def resolve_runtime(runtime: str, device: torch.device) -> str:
    """The runtime that will actually run: ``auto`` and missing packages resolved."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if device.type != "cpu":
        if runtime not in ("auto", "torch"):
            log.warning("runtime %s runs on the CPU only; using torch on %s", runtime, device)
        return "torch"
    wanted = CPU_PREFERENCE if runtime == "auto" else (runtime,)
    for name in wanted:
        if name == "torch" or _importable(name):
            return name
    if runtime != "auto":
        log.warning("runtime %s is not installed; using eager PyTorch", runtime)
    return "torch"


def build_trunk(
    normalize: Callable[[torch.Tensor], torch.Tensor],
    trunk: nn.Module,
    runtime: str,
    threads: int,
    example: torch.Tensor,
) -> TrunkFn:
    """A function running ``trunk(normalize(x))`` on ``runtime`` (already resolved)."""
    module = _Trunk(normalize, trunk).eval()
    if runtime == "torch":
        return module
    onnx = export_onnx(module, example)
    if runtime == "onnxruntime":
        return _onnxruntime(onnx, threads)
    if runtime == "openvino":
        return _openvino(onnx, threads)
    raise ConfigError(f"unknown runtime {runtime!r}")


def export_onnx(module: nn.Module, example: torch.Tensor) -> bytes:
    """The module as ONNX with dynamic batch, height and width."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript-based exporter: the dynamo one needs onnxscript and gives the same
        # graph for these convolutional trunks.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            buffer,  # type: ignore[arg-type]  # file-like objects are accepted too
            input_names=["images"],
            output_names=["maps"],
            dynamic_axes={"images": {0: "b", 2: "h", 3: "w"}, "maps": {0: "b", 2: "y", 3: "x"}},
            opset_version=17,
            dynamo=False,
        )
    return buffer.getvalue()


def _onnxruntime(onnx: bytes, threads: int) -> TrunkFn:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Spinning threads would steal the cores from SIFT and matching right after each call.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> torch.Tensor:
        out = session.run(None, {"images": _as_numpy(x)})[0]
        return torch.from_numpy(np.asarray(out))

    return run


def _openvino(onnx: bytes, threads: int) -> TrunkFn:
    return OpenVinoTrunk(onnx, threads)


class OpenVinoTrunk:
    """The trunk on OpenVINO: a dynamic-shape model answers any input at once, and an input
    shape met ``compile_after`` times gets a static-shape model compiled in the background
    (the ``max_static`` most recently used are kept), which answers that shape from then on.

    Static shapes let OpenVINO fold the TF-style "same" padding and plan its memory: 17 %
    less time per 1024 px image on this machine (BENCHMARKS.md §9), same outputs. Phone photos
    come in a few shapes after resizing (4:3 and 16:9, landscape and portrait), so most
    requests find theirs compiled; shapes seen once or twice (scans, crops) never pay the
    ~0.4 s of CPU a compilation takes, and no request waits for one.
    """

    def __init__(
        self, onnx: bytes, threads: int, max_static: int = 8, compile_after: int = 3
    ) -> None:
        import openvino as ov

        self._core = ov.Core()
        self._onnx = onnx
        self._config = {
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
            # fp32 throughout: bf16 on CPUs that have it would change the descriptors.
            "INFERENCE_PRECISION_HINT": "f32",
        }
        self._dynamic = self._core.compile_model(self._core.read_model(onnx), "CPU", self._config)
        self._static: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._pending: dict[tuple[int, ...], Future[None]] = {}
        self._seen: dict[tuple[int, ...], int] = {}
        self._max_static = max_static
        self._compile_after = compile_after
        self._lock = threading.Lock()
        self._compiler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="openvino-compile")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        array = _as_numpy(x)
        model = self._model_for(array.shape)
        # One request per call: concurrent extractions must not share its output buffers.
        out = model.create_infer_request().infer({0: array})[0]
        return torch.from_numpy(np.array(out, copy=True))

    def static_shapes(self) -> list[tuple[int, ...]]:
        """Shapes that have their own compiled model now."""
        with self._lock:
            return list(self._static)

    def wait(self) -> None:
        """Block until the compilations asked for so far are done (tests, warm-up)."""
        with self._lock:
            pending = list(self._pending.values())
        for future in pending:
            future.result()

    def _model_for(self, shape: tuple[int, ...]) -> Any:
        with self._lock:
            model = self._static.get(shape)
            if model is not None:
                self._static.move_to_end(shape)
                return model
            if shape not in self._pending:
                if len(self._seen) > 4096:  # bounded: forget the counts of rare shapes
                    self._seen.clear()
                self._seen[shape] = seen = self._seen.get(shape, 0) + 1
                if seen >= self._compile_after:
                    self._pending[shape] = self._compiler.submit(self._compile, shape)
        return self._dynamic

    def _compile(self, shape: tuple[int, ...]) -> None:
        try:
            model = self._core.read_model(self._onnx)
            model.reshape({0: list(shape)})
            compiled = self._core.compile_model(model, "CPU", self._config)
        except Exception:
            # The dynamic model keeps answering this shape; its pending entry stays, so the
            # compilation is not tried again on every request.
            log.exception("static OpenVINO model for %s not compiled", shape)
            return
        with self._lock:
            self._static[shape] = compiled
            self._pending.pop(shape, None)
            while len(self._static) > self._max_static:
                self._static.popitem(last=False)


def _as_numpy(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True
