"""The layering rules of DESIGN.md, checked in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Modules that do their work when imported (entry points), and Ray's own module.
SCRIPTS = {"__main__.py", "scale_baseline.py", "bulk.py"}

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
        if not {"cli", "bench"} & set(p.relative_to(ROOT).parts)
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
        if p.name not in SCRIPTS and "contracts" not in p.parts
    ]
    code = "import importlib\n" + "\n".join(f"importlib.import_module({m!r})" for m in modules)
    proc = run_blocked({"ray"}, code)
    assert proc.returncode == 0, proc.stderr[-2000:]


# -- the floors of the house (docs/ARCHITECTURE.md): a module imports its own floor or below ----

#: Each package or module of the project and its floor; a longer prefix wins.
FLOORS = {
    "imsearch.errors": 0,
    "imsearch.fsutil": 0,
    "imsearch.ids": 0,
    "imsearch.optional": 0,
    "imsearch.images": 0,
    "imsearch.sources": 0,
    "imsearch.features": 1,
    "imsearch.index": 2,
    "imsearch.rerank": 3,
    "imsearch.settings": 4,
    "imsearch": 5,  # the application core: collection, pipeline, indexing, engine, demo, bulk
    "imsearch.evaluate": 6,
    "imsearch.train": 7,
    "services": 8,
    "imsearch.bench": 9,
    "imsearch.cli": 10,
}


def floor(module: str) -> int:
    parts = module.split(".")
    while parts:
        if ".".join(parts) in FLOORS:
            return FLOORS[".".join(parts)]
        parts.pop()
    raise AssertionError(f"{module} has no floor in FLOORS")


def project_modules() -> dict[str, Path]:
    found = {}
    for package in ("imsearch", "services"):
        for path in (ROOT / package).rglob("*.py"):
            if "contracts" in path.parts:  # generated from proto/
                continue
            name = path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
            found[name.removesuffix(".__init__")] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Every import statement of every module (lazy ones in functions too), resolved to the
    project module it names: ``from a.b import c`` is ``a.b.c`` when that is a module."""
    import ast

    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                named = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                named = [
                    f"{node.module}.{alias.name}"
                    if f"{node.module}.{alias.name}" in modules
                    else node.module
                    for alias in node.names
                ]
            else:
                continue
            for target in named:
                parts = target.split(".")
                while parts and ".".join(parts) not in modules:
                    parts.pop()
                if parts:
                    targets.add(".".join(parts))
        targets.discard(name)
        graph[name] = targets
    return graph


def test_every_import_goes_down_or_sideways() -> None:
    up = [
        f"{source} (floor {floor(source)}) imports {target} (floor {floor(target)})"
        for source, targets in import_graph().items()
        for target in targets
        if target.split(".")[0] in ("imsearch", "services") and floor(target) > floor(source)
    ]
    assert not up, "imports up the house:\n" + "\n".join(sorted(up))


def test_no_circles() -> None:
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not circles, f"import circles: {circles}"


def test_the_layering_check_sees_an_arrow_up_and_a_circle() -> None:
    """The two checks above can fail: the graph holds the arrows they look for."""
    graph = import_graph()
    assert "imsearch.features.checkpoints" in graph["imsearch.features.backbones"]
    assert "services.gateway.compose" in graph["imsearch.cli.serve"]  # a lazy import, seen
    assert floor("imsearch.cli.serve") > floor("services.gateway.compose")
    assert floor("imsearch.index.store") < floor("imsearch.settings")
