"""Result objects to JSON and back, exactly: one generic rule driven by each dataclass's own type hints.

Every fit result in `analysis/` is a frozen dataclass of floats, ints, strings, tuples, numpy arrays,
intervals and other such dataclasses. `to_tree` turns one into plain JSON types (NaN and ±inf as null) and
`from_tree(cls, tree)` rebuilds it from its field types, so a fit written by `scaling fit --format json`
loads back into the very objects the fit returned: every command that predicts from a file computes with
the same methods as the one that fitted (nothing re-derives a law from a dict). A field added to a result
class is serialised without touching this module.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from functools import cache

import numpy as np

from analysis.powerlaw import Interval


def to_tree(value):
    """Plain JSON types for a result object (dataclasses by field name; non-finite floats as None)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_tree(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Interval):
        return {"lo": _float(value.lo), "hi": _float(value.hi), "n_finite": value.n_finite,
                "n_total": value.n_total, "level": value.level}
    if isinstance(value, dict):
        return {str(k): to_tree(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return to_tree(value.tolist())
    if isinstance(value, (list, tuple)):
        return [to_tree(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _float(value)
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"cannot serialise {type(value).__name__}: {value!r}")


def _float(value) -> float | None:
    return float(value) if math.isfinite(value) else None


@cache
def _hints(cls) -> dict[str, object]:
    return typing.get_type_hints(cls)


def from_tree(cls, tree):
    """Rebuild an object of type `cls` (a dataclass or a type hint) from `to_tree`'s output.

    Raises ValueError naming the field when the tree does not fit the type."""
    return _build(cls, tree, cls.__name__ if isinstance(cls, type) else str(cls))


def _build(hint, tree, where: str):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if tree is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _build(inner, tree, where)
    if dataclasses.is_dataclass(hint):
        if not isinstance(tree, dict):
            raise ValueError(f"{where}: expected an object, got {type(tree).__name__}")
        hints = _hints(hint)
        # a field with a default may be absent: it was added after the file was written
        missing = [f.name for f in dataclasses.fields(hint) if f.name not in tree
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
        return hint(**{f.name: _build(hints[f.name], tree[f.name], f"{where}.{f.name}")
                       for f in dataclasses.fields(hint) if f.name in tree})
    if hint is Interval or (origin is tuple and isinstance(tree, dict)):  # an Interval where a pair is declared
        return Interval(_number(tree["lo"]), _number(tree["hi"]), n_finite=tree["n_finite"],
                        n_total=tree["n_total"], level=tree["level"])
    if hint is np.ndarray:
        return _array(tree)
    if origin is tuple:
        if not isinstance(tree, list):
            raise ValueError(f"{where}: expected a list, got {type(tree).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], v, f"{where}[{i}]") for i, v in enumerate(tree))
        return tuple(_build(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, tree, strict=True)))
    if origin is dict:
        return {k: _build(args[1], v, f"{where}.{k}") for k, v in tree.items()}
    if hint is float:
        return _number(tree)
    if hint in (int, str, bool):
        if not isinstance(tree, hint):
            raise ValueError(f"{where}: expected {hint.__name__}, got {tree!r}")
        return tree
    raise TypeError(f"{where}: no rule to rebuild {hint!r}")


def _number(value) -> float:
    return math.nan if value is None else float(value)


def _array(tree) -> np.ndarray:
    """Lists (nested or not) back to an array; None back to NaN; booleans stay booleans."""
    flat = np.asarray(tree, dtype=object).ravel()
    if flat.size and all(isinstance(v, bool) for v in flat):
        return np.asarray(tree, dtype=bool)
    if flat.size and all(isinstance(v, int) and not isinstance(v, bool) for v in flat):
        return np.asarray(tree, dtype=np.int64)
    return np.asarray(_nan_for_none(tree), dtype=float)


def _nan_for_none(tree):
    if isinstance(tree, list):
        return [_nan_for_none(v) for v in tree]
    return math.nan if tree is None else tree
