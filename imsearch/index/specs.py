"""Index families: named presets, FAISS factory strings, and what each needs to be trained.

A spec is either a preset name (``exact``, ``hnsw``, ``ivf-pq``…) or a FAISS factory string
(``IVF1024,PQ64``). Presets and strings may hold the placeholders ``{nlist}`` (IVF lists),
``{m}`` and ``{m8}`` (PQ sub-quantizers), resolved when the index is built from the
collection's size ``n`` and dimension ``d``:

* ``nlist`` = the power of two nearest ``4·√n``, at most ``n / 39`` (FAISS wants about 39
  training points per centroid), between 16 and 65536;
* ``m`` = ``d / 4`` (four dimensions per 8-bit code: 80 bytes for 320-d descriptors), rounded
  down to a divisor of ``d``; ``m8`` = ``d / 8`` (the memory-lean setting, where an OPQ
  rotation pays off most and trains in a fraction of the time of ``d / 4``).

Families that must be trained refuse to build on fewer than :func:`min_train_size` vectors;
the store then serves exact search and says so in its stats, and switches to the requested
family once the collection is large enough.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from imsearch.errors import ConfigError

#: Named presets. See docs/BENCHMARKS.md for how each trades recall, speed and memory.
PRESETS: dict[str, str] = {
    "exact": "Flat",
    "sq8": "SQ8",
    "pq": "PQ{m}",
    "ivf-flat": "IVF{nlist},Flat",
    "ivf-sq8": "IVF{nlist},SQ8",
    "ivf-pq": "IVF{nlist},PQ{m}",
    "opq-ivf-pq": "OPQ{m8},IVF{nlist},PQ{m8}",
    "ivf-pq-refine": "IVF{nlist},PQ{m},RFlat",
    "hnsw": "HNSW32,Flat",
    "hnsw-sq8": "HNSW32_SQ8",
    "hnsw-pq": "HNSW32_PQ{m}",
    "ivf-hnsw-pq": "IVF{nlist}_HNSW32,PQ{m}",
    "ivf-hnsw-pq-refine": "IVF{nlist}_HNSW32,PQ{m},RFlat",
}

#: ``auto``: exact search below this many vectors, ``AUTO_LARGE`` from there on. Chosen from
#: `imsearch bench ann` (docs/BENCHMARKS.md): exact search stays interactive up to here.
AUTO_EXACT_MAX = 200_000
AUTO_LARGE = "hnsw"

#: FAISS asks for at least this many training points per centroid (k-means).
POINTS_PER_CENTROID = 39
#: Centroids of one 8-bit PQ sub-quantizer.
PQ_CENTROIDS = 256


@dataclass(frozen=True)
class ResolvedSpec:
    """A factory string with its placeholders filled in for a given collection."""

    requested: str
    factory: str
    nlist: int | None
    m: int | None


def auto_nlist(n: int) -> int:
    target = 4 * math.sqrt(max(n, 1))
    nlist = 2 ** round(math.log2(max(target, 1)))
    nlist = min(nlist, max(16, n // POINTS_PER_CENTROID))
    return int(min(max(nlist, 16), 65536))


def auto_m(d: int, dims_per_code: int = 4) -> int:
    m = max(1, d // dims_per_code)
    while d % m:
        m -= 1
    return m


def resolve(spec: str, n: int, d: int) -> ResolvedSpec:
    """Turn a preset or factory string into a concrete factory string for ``n`` × ``d``."""
    if spec == "auto":
        spec_for_n = "exact" if n < AUTO_EXACT_MAX else AUTO_LARGE
        return replace(resolve(spec_for_n, n, d), requested="auto")
    factory = PRESETS.get(spec, spec)
    nlist = auto_nlist(n) if "{nlist}" in factory else None
    m = auto_m(d) if "{m}" in factory else auto_m(d, 8) if "{m8}" in factory else None
    try:
        factory = factory.format(nlist=nlist, m=m, m8=m)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"index spec {spec!r} has an unknown placeholder: {exc}") from exc
    explicit_nlist = re.search(r"IVF(\d+)", factory)
    if nlist is None and explicit_nlist:
        nlist = int(explicit_nlist.group(1))
    explicit_m = re.search(r"PQ(\d+)", factory)
    if m is None and explicit_m:
        m = int(explicit_m.group(1))
    if m is not None and d % m:
        raise ConfigError(f"PQ{m} needs a dimension divisible by {m}; descriptors are {d}-d")
    return ResolvedSpec(spec, factory, nlist, m)


def min_train_size(resolved: ResolvedSpec, needs_training: bool) -> int:
    """Fewest vectors the family can be trained on without degenerate clusters."""
    if not needs_training:
        return 0
    need = 1
    if resolved.nlist:
        need = max(need, POINTS_PER_CENTROID * resolved.nlist)
    if resolved.m:
        need = max(need, POINTS_PER_CENTROID * PQ_CENTROIDS)
    return need


def describe_presets() -> str:
    return ", ".join(f"{name} ({factory})" for name, factory in PRESETS.items())
