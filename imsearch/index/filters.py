"""Metadata filters: a small JSON language, run as SQL over the catalog.

A filter is a JSON object. Each key is a metadata field (``a.b`` reaches into nested objects)
whose condition must hold; several keys must all hold. ``and``/``or`` take a list of filters,
``not`` one filter::

    {"brand": "acme", "year": {"gte": 1990, "lt": 2000}}
    {"or": [{"room": {"in": ["A1", "A2"]}}, {"not": {"on_loan": true}}]}

A condition is a value (equality) or an object of operators: ``eq``, ``ne``, ``in``, ``nin``
(a list), ``gt``, ``gte``, ``lt``, ``lte`` (a number or a string: a bound only compares with
values of its own type, so ISO dates compare as text) and ``exists`` (true: the field is there
and not null). Values are strings, numbers, booleans or null; ``true`` is not ``1``. A field
holding a list matches when any of its elements does (``{"tags": "red"}`` finds
``{"tags": ["red", "round"]}``). ``ne``, ``nin`` and ``not`` are the complements of ``eq``,
``in`` and their filter, so they also hold where the field is missing.

:func:`parse_filter` checks a filter and gives a :class:`Filter`, which compiles to one SQL
condition on the catalog's ``items`` table (:meth:`Filter.sql`) and also evaluates in Python
(:meth:`Filter.matches`: the reference the SQL is tested against). The store turns the SQL's
ids into a FAISS ID selector, so the ANN search itself only returns matching images.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from imsearch.errors import ConfigError

#: Bounds on one filter: its JSON text, nesting and number of conditions.
MAX_FILTER_BYTES = 8192
MAX_DEPTH = 8
MAX_CONDITIONS = 64
MAX_IN_VALUES = 1024
#: A field is one or more dot-separated names of letters, digits, ``_`` and ``-``.
FIELD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}(\.[A-Za-z0-9_][A-Za-z0-9_-]{0,63}){0,7}")
COMBINATORS = ("and", "or", "not")
RANGES = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
OPERATORS = ("eq", "ne", "in", "nin", "exists", *RANGES)

Scalar = str | int | float | bool | None
# Parsed nodes: ("and"|"or", [nodes]) · ("not", node) · ("match", field, op, value)
Node = tuple[Any, ...]


@dataclass(frozen=True)
class Filter:
    node: Node
    #: The canonical JSON of the filter (cache keys, logs).
    key: str

    def sql(self) -> tuple[str, dict[str, Any]]:
        """A condition on ``items`` (its ``metadata`` column) and its named parameters."""
        params = _Params()
        return _sql(self.node, params), dict(params)

    def matches(self, metadata: dict[str, Any]) -> bool:
        return _matches(self.node, metadata)


def parse_filter(value: str | dict[str, Any] | None) -> Filter | None:
    """A checked filter from JSON text or an object; None for none (empty text or ``{}``)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        if len(value.encode()) > MAX_FILTER_BYTES:
            raise ConfigError(f"the filter is longer than {MAX_FILTER_BYTES} bytes")
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"the filter is not valid JSON: {exc.msg}") from exc
    if not isinstance(value, dict):
        raise ConfigError('a filter is a JSON object, e.g. {"brand": "acme"}')
    if not value:
        return None
    counter = [0]
    node = _parse(value, 1, counter)
    return Filter(node, json.dumps(value, sort_keys=True, separators=(",", ":")))


# -- parsing ------------------------------------------------------------------------------------


def _parse(value: Any, depth: int, counter: list[int]) -> Node:
    if depth > MAX_DEPTH:
        raise ConfigError(f"the filter is nested deeper than {MAX_DEPTH} levels")
    if not isinstance(value, dict) or not value:
        raise ConfigError("each filter inside and/or/not is a non-empty JSON object")
    parts = [_parse_key(key, cond, depth, counter) for key, cond in value.items()]
    return parts[0] if len(parts) == 1 else ("and", parts)


def _parse_key(key: str, cond: Any, depth: int, counter: list[int]) -> Node:
    if key in ("and", "or"):
        if not isinstance(cond, list) or not cond:
            raise ConfigError(f"{key!r} takes a non-empty list of filters")
        return (key, [_parse(c, depth + 1, counter) for c in cond])
    if key == "not":
        return ("not", _parse(cond, depth + 1, counter))
    if not FIELD.fullmatch(key):
        raise ConfigError(
            f"invalid field {key!r}: names of letters, digits, '_' and '-', joined by '.'"
        )
    if not isinstance(cond, dict):
        return _condition(key, "eq", cond, counter)
    if not cond:
        raise ConfigError(f"field {key!r}: an empty condition")
    unknown = [op for op in cond if op not in OPERATORS]
    if unknown:
        raise ConfigError(
            f"field {key!r}: unknown operator {unknown[0]!r}; use one of {', '.join(OPERATORS)}"
        )
    parts = [_condition(key, op, arg, counter) for op, arg in cond.items()]
    return parts[0] if len(parts) == 1 else ("and", parts)


def _condition(field: str, op: str, arg: Any, counter: list[int]) -> Node:
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        raise ConfigError(f"the filter has more than {MAX_CONDITIONS} conditions")
    path = tuple(field.split("."))
    if op in ("eq", "ne"):
        return ("match", path, op, _scalar(field, arg))
    if op in ("in", "nin"):
        if not isinstance(arg, list) or not arg:
            raise ConfigError(f"field {field!r}: {op!r} takes a non-empty list of values")
        if len(arg) > MAX_IN_VALUES:
            raise ConfigError(f"field {field!r}: {op!r} takes at most {MAX_IN_VALUES} values")
        return ("match", path, op, tuple(_scalar(field, v) for v in arg))
    if op == "exists":
        if not isinstance(arg, bool):
            raise ConfigError(f"field {field!r}: 'exists' takes true or false")
        return ("match", path, op, arg)
    if isinstance(arg, bool) or not isinstance(arg, int | float | str):
        raise ConfigError(f"field {field!r}: {op!r} takes a number or a string")
    return ("match", path, op, _scalar(field, arg))


def _scalar(field: str, value: Any) -> Scalar:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"field {field!r}: numbers must be finite")
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise ConfigError(f"field {field!r}: compare with a string, number, boolean or null")


# -- SQL ------------------------------------------------------------------------------------------


class _Params(dict[str, Any]):
    """Named SQL parameters: each value gets its own ``:pN``."""

    def add(self, value: Any) -> str:
        name = f"p{len(self)}"
        self[name] = value
        return f":{name}"


def _sql(node: Node, params: _Params) -> str:
    kind = node[0]
    if kind in ("and", "or"):
        return "(" + f" {kind.upper()} ".join(_sql(n, params) for n in node[1]) + ")"
    if kind == "not":
        return f"(NOT {_sql(node[1], params)})"
    _, path, op, arg = node
    at = params.add("$" + "".join(f'."{name}"' for name in path))
    kind_of = f"json_type(items.metadata, {at})"
    if op == "exists":
        present = f"coalesce({kind_of} != 'null', 0)"
        return f"({present})" if arg else f"(NOT {present})"
    if op in ("ne", "nin"):
        return f"(NOT {_sql(('match', path, 'eq' if op == 'ne' else 'in', arg), params)})"
    values = arg if op == "in" else (arg,)
    # json_extract on the common case (a scalar field) is ~10x cheaper than json_each, which
    # only lists run through; an object's members are not elements.
    scalar = _elements(op, values, kind_of, f"json_extract(items.metadata, {at})", params)
    element = _elements(op, values, "e.type", "e.value", params)
    return (
        f"(coalesce({scalar}, 0) OR ({kind_of} = 'array' AND EXISTS "
        f"(SELECT 1 FROM json_each(items.metadata, {at}) AS e WHERE {element})))"
    )


def _elements(op: str, values: tuple[Scalar, ...], kind: str, content: str, params: _Params) -> str:
    """The condition on one element for ``op`` and any of ``values``: one SQL ``IN`` per type
    (a long ``in`` list stays one comparison per row, not one per value)."""
    if op not in ("eq", "in") or len(values) == 1:
        return " OR ".join(_element(op, v, kind, content, params) for v in values)
    texts = [v for v in values if isinstance(v, str)]
    numbers = [v for v in values if not isinstance(v, bool | str) and v is not None]
    others = [v for v in values if v is None or isinstance(v, bool)]
    parts = [_element(op, v, kind, content, params) for v in dict.fromkeys(others)]
    for group, kinds in ((texts, "('text')"), (numbers, "('integer', 'real')")):
        if group:
            marks = ", ".join(params.add(v) for v in group)
            parts.append(f"({content} IN ({marks}) AND {kind} IN {kinds})")
    return " OR ".join(parts)


def _element(op: str, value: Scalar, kind: str, content: str, params: _Params) -> str:
    """The condition on one element (its JSON ``kind`` and SQL ``content``) for ``op``."""
    if value is None:
        return f"{kind} = 'null'"
    if isinstance(value, bool):
        return f"{kind} = '{'true' if value else 'false'}'"
    compare = "=" if op in ("eq", "in") else RANGES[op]
    kinds = "('text')" if isinstance(value, str) else "('integer', 'real')"
    # The comparison first: it rules most rows out before their type is looked at.
    return f"({content} {compare} {params.add(value)} AND {kind} IN {kinds})"


# -- Python (the reference) ------------------------------------------------------------------


_MISSING = object()


def _matches(node: Node, metadata: dict[str, Any]) -> bool:
    kind = node[0]
    if kind == "and":
        return all(_matches(n, metadata) for n in node[1])
    if kind == "or":
        return any(_matches(n, metadata) for n in node[1])
    if kind == "not":
        return not _matches(node[1], metadata)
    _, path, op, arg = node
    value: Any = metadata
    for name in path:
        value = value.get(name, _MISSING) if isinstance(value, dict) else _MISSING
    if op == "exists":
        return (value is not _MISSING and value is not None) == arg
    if op == "ne":
        return not _matches(("match", path, "eq", arg), metadata)
    if op == "nin":
        return not _matches(("match", path, "in", arg), metadata)
    if value is _MISSING or isinstance(value, dict):
        return False
    elements = value if isinstance(value, list) else [value]
    wanted = arg if op == "in" else (arg,)
    return any(_element_matches(op, e, w) for e in elements for w in wanted)


def _element_matches(op: str, element: Any, wanted: Scalar) -> bool:
    if wanted is None or isinstance(wanted, bool):
        return element is wanted
    if isinstance(wanted, str):
        if not isinstance(element, str):
            return False
    elif isinstance(element, bool) or not isinstance(element, int | float):
        return False
    if op in ("eq", "in"):
        return bool(element == wanted)
    if op == "gt":
        return bool(element > wanted)
    if op == "gte":
        return bool(element >= wanted)
    if op == "lt":
        return bool(element < wanted)
    return bool(element <= wanted)
