"""Reading YAML into plain typed values, each error a SweepConfigError naming the key path.

yaml.safe_load's rules, with three amendments a sweep file needs: numbers YAML 1.1 reads as strings
(1e-3, 1e11: no dot) are numbers; a key given twice in one mapping is an error (safe_load keeps the last);
and a mapping is read through `MappingReader`, which reports the keys nobody took as unknown. Lists of
values may be a log range, rounded to 12 significant digits so that extending a range reproduces the
shared points (and the run ids) exactly. What the values mean is sweeps/config.py's business.
"""

from __future__ import annotations

import math

import numpy as np
import yaml

from sweeps.errors import SweepConfigError

REQUIRED = object()


def number(v, key: str) -> float:
    if isinstance(v, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            v = float(v.strip())
        except ValueError:
            raise SweepConfigError(key, f"expected a number, got {v!r}") from None
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise SweepConfigError(key, f"expected a number, got {v!r}")
    if not math.isfinite(v):
        raise SweepConfigError(key, f"expected a finite number, got {v!r}")
    return float(v)


def integer(v, key: str) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    x = number(v, key)
    if not x.is_integer():
        raise SweepConfigError(key, f"expected an integer, got {v!r}")
    return int(x)


def string(v, key: str) -> str:
    if not isinstance(v, str):
        raise SweepConfigError(key, f"expected a string, got {v!r}")
    return v


def boolean(v, key: str) -> bool:
    if not isinstance(v, bool):
        raise SweepConfigError(key, f"expected true or false, got {v!r}")
    return v


def optional(convert):
    return lambda v, key: None if v is None else convert(v, key)


class MappingReader:
    """One YAML mapping being read: remembers the keys taken so leftovers are reported as unknown."""

    def __init__(self, data, key: str):
        if not isinstance(data, dict):
            raise SweepConfigError(key or None, f"expected a mapping of keys, got {data!r}")
        self.data, self.key, self.taken = data, key, []

    def path(self, k: str) -> str:
        return f"{self.key}.{k}" if self.key else k

    def get(self, k: str, convert, default=REQUIRED):
        self.taken.append(k)
        if k not in self.data:
            if default is REQUIRED:
                raise SweepConfigError(self.path(k), "missing required key")
            return default
        return convert(self.data[k], self.path(k))

    def has(self, k: str) -> bool:
        return k in self.data

    def finish(self) -> None:
        unknown = sorted(str(k) for k in self.data if k not in self.taken)
        if unknown:
            raise SweepConfigError(self.path(unknown[0]), f"unknown key{'s' if len(unknown) > 1 else ''} "
                                   f"{', '.join(unknown)} (allowed here: {', '.join(self.taken)})")


def values(v, key: str, convert=number) -> tuple:
    """A number, a list of numbers, or {log_range: [low, high], num: k}."""
    if isinstance(v, dict):
        m = MappingReader(v, key)
        bounds = m.get("log_range", lambda x, k: x)
        num = m.get("num", integer)
        m.finish()
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise SweepConfigError(f"{key}.log_range", f"expected [low, high], got {bounds!r}")
        low, high = (number(b, f"{key}.log_range[{i}]") for i, b in enumerate(bounds))
        if not 0 < low < high:
            raise SweepConfigError(f"{key}.log_range", f"needs 0 < low < high, got [{low:g}, {high:g}]")
        if num < 2:
            raise SweepConfigError(f"{key}.num", f"must be >= 2, got {num}")
        points = np.logspace(math.log10(low), math.log10(high), num).tolist()
        return tuple(convert(float(f"{x:.12g}"), key) for x in points)
    if isinstance(v, list):
        return tuple(convert(x, f"{key}[{i}]") for i, x in enumerate(v))
    return (convert(v, key),)


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that rejects a key given twice in one mapping (safe_load keeps the last silently)."""


def _mapping_without_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise SweepConfigError(str(key), f"key given twice in one mapping (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def read_yaml(text: str):
    """The parsed YAML document; SweepConfigError (no file named yet) for invalid YAML or a duplicated key."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise SweepConfigError(None, f"not valid YAML: {getattr(e, 'problem', None) or e}{where}") from None
