"""Evaluation datasets: the project's format and the Revisited Oxford/Paris layout.

Project format (DESIGN.md)::

    DATASET/images/<id>.<ext>
    DATASET/gt.json   {"database": [ids], "queries": [{"id", "positives", "junk", "bbox"}]}

Revisited layout (Radenović et al. 2018)::

    DATASET/jpg/<name>.jpg
    DATASET/gnd_<roxford5k|rparis6k>.pkl   {"imlist", "qimlist", "gnd": [{"bbx", "easy",
                                            "hard", "junk"}]}

Revisited queries are cropped to their box, and ``protocol`` picks what counts as a positive:
easy (easy; hard images are junk), medium (easy + hard) or hard (hard; easy images are junk).
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from imsearch.errors import DatasetError
from imsearch.evaluate.metrics import GroundTruth
from imsearch.images import IMAGE_EXTENSIONS, BBox

Protocol = Literal["easy", "medium", "hard"]


@dataclass(frozen=True)
class Query:
    id: str
    path: Path
    gt: GroundTruth
    bbox: BBox | None = None
    #: The query's group in gt.json (``set``: a camera, a week, a kind of photo); "" if none.
    set: str = ""


@dataclass(frozen=True)
class Dataset:
    name: str
    root: Path
    database_ids: list[str]
    database_paths: list[Path]
    queries: list[Query]
    protocol: str = ""


def load_dataset(root: str | Path, protocol: Protocol = "medium") -> Dataset:
    """Load either layout from ``root`` (see the module docstring)."""
    root = Path(root)
    if (root / "gt.json").is_file():
        return _load_project_format(root)
    gnd_files = sorted(root.glob("gnd_*.pkl"))
    if gnd_files and (root / "jpg").is_dir():
        return _load_revisited(root, gnd_files[0], protocol)
    raise DatasetError(
        f"{root} is not a dataset: expected images/ + gt.json, or jpg/ + gnd_<name>.pkl"
    )


def _load_project_format(root: Path) -> Dataset:
    try:
        gt = json.loads((root / "gt.json").read_text())
        database = [str(x) for x in gt["database"]]
        raw_queries = gt["queries"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{root / 'gt.json'} is not valid: {exc}") from exc
    files = _files_by_stem(root / "images")
    missing = [i for i in database + [q.get("id") for q in raw_queries] if i not in files]
    if missing:
        raise DatasetError(f"{len(missing)} ids have no image in {root / 'images'}: {missing[:5]}")
    index = {image_id: i for i, image_id in enumerate(database)}
    queries = []
    for q in raw_queries:
        unknown = [x for x in [*q.get("positives", []), *q.get("junk", [])] if x not in index]
        if unknown:
            raise DatasetError(f"query {q['id']} names ids not in the database: {unknown[:5]}")
        gt_q = GroundTruth(
            ok=[index[x] for x in q.get("positives", [])],
            junk=[index[x] for x in q.get("junk", [])],
        )
        bbox = q.get("bbox")
        queries.append(
            Query(str(q["id"]), files[q["id"]], gt_q, _bbox(bbox), str(q.get("set") or ""))
        )
    return Dataset(
        name=str(gt.get("name", root.name)),
        root=root,
        database_ids=database,
        database_paths=[files[i] for i in database],
        queries=queries,
    )


def _files_by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise DatasetError(f"{folder} does not exist")
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS}


def _bbox(value: Any) -> BBox | None:
    if value is None:
        return None
    x1, y1, x2, y2 = (float(v) for v in value)
    return (x1, y1, x2, y2)


def revisited_ground_truth(gnd: list[dict[str, Any]], protocol: Protocol) -> list[GroundTruth]:
    """Positives and junk per query for one protocol of the revisited benchmark."""
    out = []
    for g in gnd:
        easy, hard, junk = list(g["easy"]), list(g["hard"]), list(g["junk"])
        if protocol == "easy":
            out.append(GroundTruth(ok=easy, junk=junk + hard))
        elif protocol == "medium":
            out.append(GroundTruth(ok=easy + hard, junk=junk))
        elif protocol == "hard":
            out.append(GroundTruth(ok=hard, junk=junk + easy))
        else:
            raise DatasetError(f"unknown protocol {protocol!r}: use easy, medium or hard")
    return out


def read_revisited_gnd(path: str | Path) -> dict[str, Any]:
    """Read a ``gnd_*.pkl`` (a plain dict of lists; pickled by the benchmark's authors)."""
    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict) or not {"imlist", "qimlist", "gnd"} <= set(data):
        raise DatasetError(f"{path} lacks imlist / qimlist / gnd")
    return data


def _load_revisited(root: Path, gnd_path: Path, protocol: Protocol) -> Dataset:
    data = read_revisited_gnd(gnd_path)
    ground_truth = revisited_ground_truth(data["gnd"], protocol)
    jpg = root / "jpg"
    queries = [
        Query(name, jpg / f"{name}.jpg", gt, _bbox(g.get("bbx")))
        for name, gt, g in zip(data["qimlist"], ground_truth, data["gnd"], strict=True)
    ]
    missing = [q.path for q in queries if not q.path.is_file()]
    database_paths = [jpg / f"{name}.jpg" for name in data["imlist"]]
    missing += [p for p in database_paths if not p.is_file()]
    if missing:
        raise DatasetError(f"{len(missing)} images missing under {jpg}: {missing[:3]}")
    return Dataset(
        name=gnd_path.stem.removeprefix("gnd_"),
        root=root,
        database_ids=list(data["imlist"]),
        database_paths=database_paths,
        queries=queries,
        protocol=protocol,
    )
