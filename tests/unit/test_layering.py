"""The layering rules of DESIGN.md, checked in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BLOCKER = """
import sys
class Block:
    def __init__(self, names): self.names = names
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in self.names:
            raise ImportError(f"{{name}} is blocked by the layering test")
sys.meta_path.insert(0, Block({blocked!r}))
"""


def run_blocked(blocked: set[str], code: str) -> subprocess.CompletedProcess:
    script = BLOCKER.format(blocked=sorted(blocked)) + code
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)


def test_the_core_never_imports_web_code() -> None:
    modules = [
        p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
        for p in (ROOT / "imsearch").rglob("*.py")
        if p.name != "cli.py"
    ]
    code = "import importlib\n" + "\n".join(f"importlib.import_module({m!r})" for m in modules)
    proc = run_blocked({"fastapi", "starlette", "httpx", "uvicorn", "redis"}, code)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_search_rerank_and_remote_gateway_need_no_torch() -> None:
    code = (
        "import services.search.app, services.rerank.app, services.gateway.app\n"
        "from imsearch.settings import Settings\n"
        "services.search.app.create_app(Settings()); services.rerank.app.create_app(Settings())\n"
        "assert 'torch' not in sys.modules\n"
    )
    proc = run_blocked({"torch", "torchvision", "timm"}, code)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_search_and_remote_gateway_need_no_opencv_or_scipy() -> None:
    """What keeps their images small: local features are the extractor's and rerank's job."""
    code = (
        "import services.search.app, services.gateway.app\n"
        "from imsearch.settings import Settings\n"
        "services.search.app.create_app(Settings()); services.gateway.app.create_app(Settings())\n"
        "from services.gateway.compose import compose\n"
    )
    proc = run_blocked({"torch", "torchvision", "timm", "cv2", "scipy"}, code)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_only_the_bulk_module_imports_ray() -> None:
    """Ray is an optional extra: importing everything else works without it."""
    modules = [
        p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
        for folder in ("imsearch", "services")
        for p in (ROOT / folder).rglob("*.py")
        if p.name != "bulk.py" and "contracts" not in p.parts
    ]
    code = "import importlib\n" + "\n".join(f"importlib.import_module({m!r})" for m in modules)
    proc = run_blocked({"ray"}, code)
    assert proc.returncode == 0, proc.stderr[-2000:]
