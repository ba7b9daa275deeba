"""Tokenize-once caching: a `CorpusConfig`'s documents -> memory-mapped train/val token arrays.

Reading the kinds of sources is lm/corpus_sources.py; which windows a training step reads is
lm/batches.py. This module splits, tokenizes, caches and opens the result (`TokenizedCorpus`).

Text corpora: the documents (`read_documents`) are split into train/val BY DOCUMENT (documents in a
seeded hash order fill a validation budget of val_fraction of the bytes; see `split_documents`), the
tokenizer is trained on the train documents only, and each split is stored as its documents' tokens
joined with END_OF_TEXT between them. Pre-tokenized sources (.bin/.npy) have no tokenizer and no
document boundary: validation is the last `val_fraction` of the tokens, and the vocab size is
`pretokenized_vocab_size`, or max id + 1 when that is None.

Cache: `<cache_dir>/<first 16 hex of fingerprint>/{train.bin, val.bin, tokenizer.json, meta.json}`,
where the fingerprint is a sha256 of the format version, the config fields that change the result,
and every document's name and bytes (contents, never mtimes). It is built in a temp folder and
renamed into place, so readers never see a half-written corpus and concurrent builders do not clash.
Token files are raw little-endian uint16 when the vocab fits (<= 65536 ids), else uint32.

Training batches are functions of (seed, step) and read each window at most once per pass over the
train split (lm/batches.py): a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from lm import batches
from lm.corpus_sources import (PRETOKENIZED_KINDS, CorpusConfig, CorpusError, existing_file, is_int,
                               open_pretokenized, read_documents, stdlib_root)
from lm.tokenizer import Tokenizer, train_tokenizer

__all__ = ["FORMAT_VERSION", "PRETOKENIZED_KINDS", "CorpusConfig", "CorpusError", "TokenizedCorpus",
           "default_cache_dir", "prepare_corpus", "read_documents", "split_documents", "stdlib_root",
           "token_dtype"]

FORMAT_VERSION = 1
_ENCODE_CHUNK_BYTES = 8 << 20  # documents per HF batch call: big enough to keep all cores busy
_SPLITS = ("train", "val")


def default_cache_dir() -> Path:
    """`$SCALING_LAB_CACHE/corpora`, else `~/.cache/scaling-lab/corpora`."""
    root = os.environ.get("SCALING_LAB_CACHE") or "~/.cache/scaling-lab"
    return Path(root).expanduser() / "corpora"


def split_documents(names: list[str], sizes: list[int], *, val_fraction: float, seed: int) -> list[bool]:
    """is_val per document: a seeded random order of documents fills a byte budget of val_fraction.

    The order is sha256(seed, name), so it is deterministic and independent of file order. Walking it,
    a document joins validation when it still fits in val_fraction * total bytes (bigger ones stay in
    train), so validation holds about val_fraction of the text however unequal the documents are.
    With >= 2 documents neither side is empty: if no document fits, the first in the order is held out.
    """
    order = sorted(range(len(names)), key=lambda i: hashlib.sha256(f"{seed}\0{names[i]}".encode()).digest())
    budget = val_fraction * sum(sizes)
    is_val, used = [False] * len(names), 0
    for i in order:
        if used + sizes[i] <= budget:
            is_val[i], used = True, used + sizes[i]
    if len(names) >= 2 and not any(is_val):
        is_val[order[0]] = True
    return is_val


# ---- fingerprint and cache --------------------------------------------------------------------

def _header_hash(config: CorpusConfig):
    fields = {"format_version": FORMAT_VERSION, "kind": config.kind, "val_fraction": config.val_fraction}
    if config.kind in PRETOKENIZED_KINDS:
        fields["pretokenized_vocab_size"] = config.pretokenized_vocab_size
    else:
        fields |= {"vocab_size": config.vocab_size, "seed": config.seed}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode())


def _documents_fingerprint(config: CorpusConfig, docs: list[tuple[str, bytes]]) -> str:
    h = _header_hash(config)
    for name, data in docs:  # length prefixes keep (name, data) boundaries unambiguous
        n = name.encode("utf-8", errors="surrogatepass")
        h.update(len(n).to_bytes(8, "little") + n + len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _file_fingerprint(config: CorpusConfig, path: Path) -> str:
    h = _header_hash(config)
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 24):
                h.update(chunk)
    except OSError as e:
        raise CorpusError(f"cannot read corpus file {path}: {e.strerror or e}") from e
    return h.hexdigest()


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


def prepare_corpus(config: CorpusConfig, cache_dir: str | Path | None = None) -> TokenizedCorpus:
    """Tokenize `config`'s corpus once into `<cache_dir>/<hash>/`; later calls open the cached arrays."""
    cache_root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if config.kind in PRETOKENIZED_KINDS:
        path = existing_file(config.source)
        fingerprint, docs, skipped = _file_fingerprint(config, path), None, 0
    else:
        docs, skipped = read_documents(config)
        fingerprint = _documents_fingerprint(config, docs)
    final = cache_root / fingerprint[:16]
    if (final / "meta.json").exists():
        return TokenizedCorpus.load(final, from_cache=True)

    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = cache_root / f".tmp-{fingerprint[:16]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        if docs is None:
            meta = _build_pretokenized(config, Path(config.source).expanduser(), tmp)
        else:
            meta = _build_text(config, docs, tmp)
        meta |= {"format_version": FORMAT_VERSION, "fingerprint": fingerprint, "kind": config.kind,
                 "config": asdict(config), "skipped_files": skipped}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))  # the folder rename below is the atomic step
        try:
            os.rename(tmp, final)  # atomic; fails if another process published `final` first
        except OSError as e:
            if not (final / "meta.json").exists():  # not a lost race: a real failure
                raise CorpusError(f"cannot move the prepared corpus into {final}: {e}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return TokenizedCorpus.load(final, from_cache=False)


def _build_text(config: CorpusConfig, docs: list[tuple[str, bytes]], out: Path) -> dict:
    is_val = split_documents([n for n, _ in docs], [len(d) for _, d in docs], val_fraction=config.val_fraction,
                             seed=config.seed)
    splits = {"train": [d for d, v in zip(docs, is_val) if not v], "val": [d for d, v in zip(docs, is_val) if v]}
    # Train on the train split only so validation is honestly held out; HF needs str, and replacing
    # invalid bytes here only affects merge statistics (encoding below is exact on bytes).
    tok = train_tokenizer((d.decode("utf-8", errors="replace") for _, d in splits["train"]), config.vocab_size)
    tok.save(out / "tokenizer.json")
    dtype = token_dtype(tok.vocab_size)
    eot = np.array([tok.eot_id], dtype=dtype).tobytes()
    counts = {}
    for split, split_docs in splits.items():
        n_tokens = 0
        with open(out / f"{split}.bin", "wb") as f:
            for chunk in _chunks(split_docs):
                for ids in tok.encode_batch([d for _, d in chunk]):
                    if n_tokens:
                        f.write(eot)
                        n_tokens += 1
                    f.write(np.asarray(ids, dtype=dtype).tobytes())
                    n_tokens += len(ids)
        counts[split] = n_tokens
    return {"vocab_size": tok.vocab_size, "eot_id": tok.eot_id, "dtype": dtype.name,
            "train_tokens": counts["train"], "val_tokens": counts["val"],
            "train_documents": len(splits["train"]), "val_documents": len(splits["val"]),
            "train_bytes": sum(len(d) for _, d in splits["train"]), "val_bytes": sum(len(d) for _, d in splits["val"]),
            "val_document_names": [n for n, _ in splits["val"]], "tokenizer_fingerprint": tok.fingerprint}


def _chunks(docs: list[tuple[str, bytes]]):
    chunk, size = [], 0
    for doc in docs:
        chunk.append(doc)
        size += len(doc[1])
        if size >= _ENCODE_CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _build_pretokenized(config: CorpusConfig, path: Path, out: Path) -> dict:
    arr = open_pretokenized(path)
    step = 1 << 24
    lo = min(int(arr[i:i + step].min()) for i in range(0, arr.size, step))
    hi = max(int(arr[i:i + step].max()) for i in range(0, arr.size, step))
    if lo < 0:
        raise CorpusError(f"{path}: token ids must be >= 0, found {lo}")
    vocab = config.pretokenized_vocab_size or hi + 1
    if hi >= vocab:
        raise CorpusError(f"{path}: token id {hi} >= pretokenized_vocab_size {vocab}")
    if arr.size < 2:
        raise CorpusError(f"{path}: {arr.size} token(s); a train/val split needs at least 2")
    n_val = min(arr.size - 1, max(1, round(arr.size * config.val_fraction)))
    dtype = token_dtype(vocab)
    bounds = {"train": (0, arr.size - n_val), "val": (arr.size - n_val, arr.size)}
    for split, (a, b) in bounds.items():
        with open(out / f"{split}.bin", "wb") as f:
            for i in range(a, b, step):
                f.write(np.asarray(arr[i:min(i + step, b)]).astype(dtype).tobytes())
    return {"vocab_size": vocab, "eot_id": None, "dtype": dtype.name,
            "train_tokens": arr.size - n_val, "val_tokens": n_val, "source_tokens": int(arr.size)}


# ---- the prepared corpus ----------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class TokenizedCorpus:
    """A prepared corpus: memory-mapped train/val token arrays plus what produced them."""

    path: Path
    fingerprint: str
    vocab_size: int
    tokenizer: Tokenizer | None  # None for pre-tokenized sources
    train: np.ndarray
    val: np.ndarray
    meta: dict = field(repr=False)
    from_cache: bool = False  # True when this object was opened from an existing cache entry

    @classmethod
    def load(cls, path: str | Path, *, from_cache: bool = True) -> TokenizedCorpus:
        """Open a prepared corpus folder (e.g. on a shared path) without retokenizing."""
        path = Path(path)
        meta_path = path / "meta.json"
        try:
            meta = json.loads(meta_path.read_bytes())
        except FileNotFoundError:
            raise CorpusError(f"{meta_path} does not exist: {path} is not a prepared corpus") from None
        except (OSError, ValueError) as e:
            raise CorpusError(f"{meta_path} is unreadable or corrupt: {e}") from e
        if meta.get("format_version") != FORMAT_VERSION:
            raise CorpusError(f"{meta_path}: format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
        arrays = {}
        for split in _SPLITS:
            file = path / f"{split}.bin"
            try:
                arrays[split] = np.memmap(file, dtype=np.dtype(meta["dtype"]), mode="r")
            except (OSError, ValueError) as e:
                raise CorpusError(f"cannot open token file {file}: {e}") from e
            if arrays[split].size != meta[f"{split}_tokens"]:
                raise CorpusError(f"{file}: {arrays[split].size} tokens, meta.json says {meta[f'{split}_tokens']} "
                                  "(truncated copy?)")
        tok_path = path / "tokenizer.json"
        tokenizer = Tokenizer.load(tok_path) if tok_path.exists() else None
        return cls(path=path, fingerprint=meta["fingerprint"], vocab_size=meta["vocab_size"], tokenizer=tokenizer,
                   train=arrays["train"], val=arrays["val"], meta=meta, from_cache=from_cache)

    @property
    def eot_id(self) -> int | None:
        return self.meta["eot_id"]

    def split(self, name: str) -> np.ndarray:
        if name not in _SPLITS:
            raise ValueError(f"split must be 'train' or 'val', got {name!r}")
        return self.train if name == "train" else self.val

    def _check_window(self, split: str, context_length: int) -> np.ndarray:
        tokens = self.split(split)
        if not is_int(context_length) or context_length < 1:
            raise ValueError(f"context_length must be an int >= 1, got {context_length!r}")
        if context_length + 1 > tokens.size:
            raise CorpusError(f"context_length {context_length} is too long for the {split} split of "
                              f"{tokens.size} tokens (a window needs context_length + 1 tokens)")
        return tokens

    def get_batch(self, split: str, *, step: int, batch_size: int, context_length: int, seed: int,
                  sampler: str = "permutation") -> tuple[torch.Tensor, torch.Tensor]:
        """Step `step`'s windows, a pure function of (split, seed, step): x, y int64 (B, T), y = x shifted
        by one. "permutation" reads each window at most once per pass over the split (lm/batches.py)."""
        for name, value, low in (("step", step, 0), ("batch_size", batch_size, 1), ("seed", seed, 0)):
            if not is_int(value) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if sampler not in batches.SAMPLERS:
            raise ValueError(f"sampler must be one of {batches.SAMPLERS}, got {sampler!r}")
        tokens = self._check_window(split, context_length)
        starts = batches.window_starts(tokens.size, step=step, batch_size=batch_size,
                                       context_length=context_length, seed=seed, sampler=sampler)
        return batches.gather(tokens, starts, context_length)

    def passes(self, *, steps: int, batch_size: int, context_length: int, split: str = "train") -> float:
        """How many passes over the split `steps` steps of batch_size windows make (1.0 = every window once)."""
        tokens = self._check_window(split, context_length)
        return batches.passes(tokens.size, steps=steps, batch_size=batch_size, context_length=context_length)

    def val_batches(self, *, batch_size: int, context_length: int, max_tokens: int,
                    split: str = "val") -> list[tuple[torch.Tensor, torch.Tensor]]:
        """A fixed evaluation set: up to max_tokens // context_length non-overlapping windows, evenly
        spread over the split, in batches of batch_size (the last may be smaller). Same every call."""
        if not is_int(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        tokens = self._check_window(split, context_length)
        if not is_int(max_tokens) or max_tokens < context_length:
            raise ValueError(f"max_tokens must be an int >= context_length ({context_length}), got {max_tokens!r}")
        n_slots = batches.windows_per_pass(tokens.size, context_length)  # window k predicts tokens[kT+1 : kT+T+1]
        n_windows = min(n_slots, max_tokens // context_length)
        slots = np.round(np.linspace(0, n_slots - 1, n_windows)).astype(np.int64)  # spacing >= 1: distinct
        starts = slots * context_length
        return [batches.gather(tokens, starts[i:i + batch_size], context_length)
                for i in range(0, n_windows, batch_size)]

    def unigram_entropy(self, split: str = "val") -> float:
        """Entropy (nats/token) of the split's empirical unigram distribution: the loss of the best
        context-free predictor, a floor any trained model must beat."""
        tokens, step = self.split(split), 1 << 24
        counts = np.zeros(self.vocab_size, dtype=np.int64)
        for i in range(0, tokens.size, step):
            counts += np.bincount(tokens[i:i + step], minlength=self.vocab_size)
        p = counts[counts > 0] / tokens.size
        return float(-(p * np.log(p)).sum())

