"""Which corpus to read (`CorpusConfig`), and reading each kind of source into (name, bytes) documents.

Sources (`CorpusConfig.source`, kind decided from the string alone, in this order):
- "stdlib": the `.py` files of the running Python's standard library: real text on every machine,
  nothing downloaded. Left out: test suites (any `test/`, `tests/` or `idle_test/` folder),
  `site-packages/`, `__pycache__/`, and the build-specific `config-*/` and `_sysconfigdata_*` files.
  idlelib and turtledemo stay in (ordinary application code). Python 3.11.7: 729 non-empty files, 12.1 MB.
- a path or glob ending in `.parquet`: Parquet files (as Hugging Face dataset shards are stored
  locally, e.g. `data/train-*.parquet`), one document per row, the string column `text_field`;
  files in sorted order, rows in file order. Null texts are dropped like empty ones.
- another glob pattern (contains * ? or [): the matching files, recursively (`**`), sorted.
- a path ending in `.jsonl`: one document per line, the string in field `text_field`.
- a path ending in `.bin` (raw uint16, nanoGPT style) or `.npy` (1-D integer array): token ids
  already (`open_pretokenized`). There is no tokenizer and no document boundary.
- otherwise a directory: every file under it, recursively, sorted by relative path.
For globs and directories, hidden files/folders (name starts with ".") and binary files (a NUL byte in
the first 8 KiB, git's heuristic) are skipped; a document is one file. Empty documents are dropped.
Every text source reads documents in order until `max_bytes` (the last one truncated so the total is exact).
"""

from __future__ import annotations

import json
import os
import sysconfig
from dataclasses import dataclass
from glob import glob, has_magic
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lm.field_error import FieldError
from lm.tokenizer import MIN_VOCAB_SIZE

PRETOKENIZED_KINDS = ("bin", "npy")


class CorpusError(ValueError):
    """A corpus cannot be read, prepared or sampled; the message names the file or field and why."""


def is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


@dataclass(frozen=True, kw_only=True)
class CorpusConfig:
    """Which text to tokenize and how. Frozen; a bad field raises ValueError naming it."""

    source: str = "stdlib"  # "stdlib" | directory | glob | file.jsonl | *.parquet | tokens.bin | tokens.npy
    text_field: str = "text"  # JSONL field / Parquet column holding a document's text
    vocab_size: int = 1024  # tokenizer size incl. END_OF_TEXT (text sources; >= 257)
    max_bytes: int | None = None  # cap on text bytes read (text sources only)
    val_fraction: float = 0.05  # share of bytes in held-out documents (text) / tail of tokens (pre-tokenized)
    seed: int = 0  # seeds the train/val document split
    pretokenized_vocab_size: int | None = None  # .bin/.npy only; None -> max id + 1

    def __post_init__(self):
        if not isinstance(self.source, str) or not self.source:
            raise FieldError("CorpusConfig", "source", f"must be a non-empty string, got {self.source!r}")
        if not isinstance(self.text_field, str) or not self.text_field:
            raise FieldError("CorpusConfig", "text_field", f"must be a non-empty string, got {self.text_field!r}")
        if not is_int(self.vocab_size) or not MIN_VOCAB_SIZE <= self.vocab_size <= 2**32:
            raise FieldError("CorpusConfig", "vocab_size", f"must be an int in [{MIN_VOCAB_SIZE}, 2**32] (256 byte "
                             f"tokens + END_OF_TEXT), got {self.vocab_size!r}")
        if self.max_bytes is not None and (not is_int(self.max_bytes) or self.max_bytes < 1):
            raise FieldError("CorpusConfig", "max_bytes", f"must be None or an int >= 1, got {self.max_bytes!r}")
        if not isinstance(self.val_fraction, (int, float)) or not 0.0 < self.val_fraction < 1.0:
            raise FieldError("CorpusConfig", "val_fraction", f"must be a number in (0, 1), got {self.val_fraction!r}")
        if not is_int(self.seed) or self.seed < 0:
            raise FieldError("CorpusConfig", "seed", f"must be an int >= 0, got {self.seed!r}")
        p = self.pretokenized_vocab_size
        if p is not None and (not is_int(p) or not 1 <= p <= 2**32):
            raise FieldError("CorpusConfig", "pretokenized_vocab_size",
                             f"must be None or an int in [1, 2**32], got {p!r}")
        pretokenized = self.kind in PRETOKENIZED_KINDS
        if pretokenized and self.max_bytes is not None:
            raise FieldError("CorpusConfig", "max_bytes",
                             "applies to text sources only; it must be None for a .bin/.npy source")
        if not pretokenized and p is not None:
            raise FieldError("CorpusConfig", "pretokenized_vocab_size",
                             "applies to .bin/.npy sources only; it must be None here")

    @property
    def kind(self) -> str:
        """'stdlib' | 'parquet' | 'glob' | 'jsonl' | 'bin' | 'npy' | 'dir', from the source string alone."""
        if self.source == "stdlib":
            return "stdlib"
        suffix = Path(self.source).suffix.lower()
        if suffix == ".parquet":  # a file or a glob of shards
            return "parquet"
        if has_magic(self.source):
            return "glob"
        return {".jsonl": "jsonl", ".bin": "bin", ".npy": "npy"}.get(suffix, "dir")


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


# ---- listing files ----------------------------------------------------------------------------

_STDLIB_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "__pycache__"}


def _stdlib_files() -> list[tuple[str, Path]]:
    root, out = stdlib_root(), []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        dirnames[:] = [d for d in dirnames if d not in _STDLIB_SKIP_DIRS and not d.startswith("config-")]
        out += [((rel / f).as_posix(), Path(dirpath) / f) for f in filenames
                if f.endswith(".py") and not f.startswith("_sysconfigdata_")]
    return sorted(out)


def _tree_files(root: Path) -> list[tuple[str, Path]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = Path(dirpath).relative_to(root)
        out += [((rel / f).as_posix(), Path(dirpath) / f) for f in filenames if not f.startswith(".")]
    return sorted(out)


def _glob_files(pattern: str) -> list[tuple[str, Path]]:
    matches = glob(os.path.expanduser(pattern), recursive=True)  # hidden names excluded, as in a shell
    return sorted((m, Path(m)) for m in matches if not os.path.isdir(m))


def existing_file(source: str) -> Path:
    path = Path(source).expanduser()
    if not path.exists():
        raise CorpusError(f"source path {path} does not exist")
    if not path.is_file():
        raise CorpusError(f"source {path} is not a file")
    return path


# ---- reading documents ------------------------------------------------------------------------

class _Capped:
    """Collects (name, bytes) documents until max_bytes, truncating the last; drops empty ones."""

    def __init__(self, max_bytes: int | None):
        self.docs: list[tuple[str, bytes]] = []
        self.total, self.max_bytes = 0, max_bytes

    @property
    def full(self) -> bool:
        return self.max_bytes is not None and self.total >= self.max_bytes

    def add(self, name: str, data: bytes) -> None:
        if self.max_bytes is not None:
            data = data[: self.max_bytes - self.total]
        if data:
            self.docs.append((name, data))
            self.total += len(data)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise CorpusError(f"cannot read corpus file {path}: {e.strerror or e}") from e


def _file_documents(files: list[tuple[str, Path]], max_bytes: int | None, skip_binary: bool):
    """(name, bytes) of each non-empty text file in order, until max_bytes; and the number skipped."""
    out, skipped = _Capped(max_bytes), 0
    for name, path in files:
        if out.full:
            break
        data = _read(path)
        if skip_binary and b"\0" in data[:8192]:
            skipped += 1
            continue
        out.add(name, data)
    return out.docs, skipped


def _jsonl_documents(path: Path, text_field: str, max_bytes: int | None) -> list[tuple[str, bytes]]:
    out = _Capped(max_bytes)
    try:
        f = path.open("rb")
    except OSError as e:
        raise CorpusError(f"cannot read corpus file {path}: {e.strerror or e}") from e
    with f:
        for lineno, line in enumerate(f, start=1):
            if out.full:
                break
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
                raise CorpusError(f"{path} line {lineno}: not valid JSON ({e})") from None
            if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
                raise CorpusError(f"{path} line {lineno}: expected a JSON object with a string field "
                                  f"text_field={text_field!r}")
            out.add(f"line {lineno}", record[text_field].encode("utf-8", errors="surrogatepass"))
    return out.docs


def _parquet_file(path: Path, text_field: str) -> pq.ParquetFile:
    """Open one Parquet file and check that `text_field` is a string column; CorpusError naming both if not."""
    try:
        parquet = pq.ParquetFile(path)
    except OSError as e:
        raise CorpusError(f"cannot read corpus file {path}: {e.strerror or e}") from e
    except (pa.ArrowException, ValueError) as e:  # ArrowInvalid: "Parquet magic bytes not found ..."
        raise CorpusError(f"{path}: not a readable Parquet file ({e})") from None
    schema = parquet.schema_arrow
    if text_field not in schema.names:
        raise CorpusError(f"{path}: no column text_field={text_field!r} (columns: {schema.names})")
    column_type = schema.field(text_field).type
    if not (pa.types.is_string(column_type) or pa.types.is_large_string(column_type)):
        raise CorpusError(f"{path}: column text_field={text_field!r} has type {column_type}, expected a string")
    return parquet


def _parquet_documents(files: list[Path], text_field: str, max_bytes: int | None) -> list[tuple[str, bytes]]:
    out = _Capped(max_bytes)
    for path in files:
        parquet = _parquet_file(path, text_field)
        row = 0
        try:
            for batch in parquet.iter_batches(columns=[text_field], batch_size=1024):
                for text in batch.column(0).to_pylist():
                    if out.full:
                        return out.docs
                    if text is not None:
                        out.add(f"{path.name} row {row}", text.encode("utf-8", errors="surrogatepass"))
                    row += 1
        except (OSError, pa.ArrowException) as e:
            raise CorpusError(f"{path}: cannot read column {text_field!r} ({e})") from None
    return out.docs


def _parquet_sources(source: str) -> list[Path]:
    if not has_magic(source):
        return [existing_file(source)]
    files = [p for _, p in _glob_files(source)]
    if not files:
        raise CorpusError(f"source glob {source!r} matches no files")
    return files


def read_documents(config: CorpusConfig) -> tuple[list[tuple[str, bytes]], int]:
    """The (name, bytes) documents of a text source, in order and capped; and how many files were skipped."""
    kind, source, skipped = config.kind, config.source, 0
    if kind == "stdlib":
        docs, skipped = _file_documents(_stdlib_files(), config.max_bytes, skip_binary=False)
    elif kind == "parquet":
        docs = _parquet_documents(_parquet_sources(source), config.text_field, config.max_bytes)
    elif kind == "glob":
        files = _glob_files(source)
        if not files:
            raise CorpusError(f"source glob {source!r} matches no files")
        docs, skipped = _file_documents(files, config.max_bytes, skip_binary=True)
    elif kind == "jsonl":
        docs = _jsonl_documents(existing_file(source), config.text_field, config.max_bytes)
    elif kind == "dir":
        path = Path(source).expanduser()
        if not path.exists():
            raise CorpusError(f"source path {path} does not exist")
        if not path.is_dir():
            raise CorpusError(f"source {path} is neither a directory, a glob, nor a "
                              ".jsonl/.parquet/.bin/.npy file")
        files = _tree_files(path)
        if not files:
            raise CorpusError(f"source directory {path} contains no files")
        docs, skipped = _file_documents(files, config.max_bytes, skip_binary=True)
    else:
        raise CorpusError(f"source {source!r} is pre-tokenized ({kind}); it has no text documents")
    if not docs:
        raise CorpusError(f"source {source!r} yields an empty corpus (no non-empty text documents)")
    if len(docs) < 2:
        raise CorpusError(f"source {source!r} yields 1 document ({docs[0][0]}); the by-document "
                          "train/val split needs at least 2")
    return docs, skipped


def open_pretokenized(path: Path) -> np.ndarray:
    """A .bin (raw uint16) or .npy (1-D integer) token file as a read-only array; CorpusError if unusable."""
    if path.suffix.lower() == ".bin":
        size = path.stat().st_size
        if size % 2:
            raise CorpusError(f"{path}: size {size} bytes is not a whole number of uint16 tokens "
                              "(.bin must be raw uint16)")
        if size == 0:
            raise CorpusError(f"{path}: empty token file")
        return np.memmap(path, dtype=np.uint16, mode="r")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise CorpusError(f"{path}: not a readable .npy array ({e})") from e
    if arr.ndim != 1:
        raise CorpusError(f"{path}: token array must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise CorpusError(f"{path}: token array must have an integer dtype, got {arr.dtype}")
    if arr.size == 0:
        raise CorpusError(f"{path}: empty token array")
    return arr
