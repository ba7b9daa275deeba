"""Byte-level BPE tokenizer: trained with HF `tokenizers`, lossless on any byte string.

Notable choices:
- Tokens are byte strings. The 256 single-byte tokens are always in the vocabulary, so nothing is
  ever unknown and every input, including invalid UTF-8 and random bytes, round-trips exactly.
- HF's ByteLevel pre-tokenizer (GPT-2 regex split, bytes shown as printable characters; Radford et
  al. 2019) and its Rust BPE trainer/encoder do the heavy work; there is no Python merge loop.
  HF works on `str`, so `encode` splits bytes into maximal valid-UTF-8 runs (encoded by HF) and
  invalid bytes (each emitted as its single-byte token).
- Decoding does not use HF's ByteLevel decoder, which replaces invalid UTF-8: each id maps to the
  exact bytes of its token and `decode` concatenates them.
- One special token, END_OF_TEXT, with the last id (`eot_id == vocab_size - 1`). It is kept out of
  the HF tokenizer on purpose: text that contains the literal "<|endoftext|>" is encoded as plain
  text. Only code that explicitly appends `eot_id` (e.g. `lm/data.py` between documents) emits it.
- `vocab_size == 257` is the pure byte-level tokenizer (`Tokenizer.byte_level()`, id = byte value).
- `save` writes ONE JSON file (our header + HF's own serialization), atomically; `fingerprint` is
  the sha256 of exactly those bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import atomicio
import numpy as np
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, pre_tokenizers, trainers

END_OF_TEXT = "<|endoftext|>"
FORMAT = "scaling-lab-byte-bpe"
FORMAT_VERSION = 1
MIN_VOCAB_SIZE = 257  # 256 single bytes + END_OF_TEXT

# Python's "surrogateescape" decoding turns each byte that is not part of valid UTF-8 into the lone
# surrogate U+DC80..U+DCFF; valid UTF-8 never produces those, so they mark exactly the invalid bytes.
_ESCAPED_BYTES = re.compile("[\udc80-\udcff]+")
_ANY_SURROGATE = re.compile("[\ud800-\udfff]")


def bytes_to_unicode() -> dict[int, str]:
    """The GPT-2 table mapping each byte to a printable character (as HF's ByteLevel uses).

    Printable Latin-1 bytes map to themselves; the other 68 bytes map to U+0100 onwards, in byte order.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


_BYTE_TO_CHAR = bytes_to_unicode()
_CHAR_TO_BYTE = {c: b for b, c in _BYTE_TO_CHAR.items()}


def _new_hf_tokenizer(vocab: dict[str, int], merges: list[tuple[str, str]]) -> HFTokenizer:
    hf = HFTokenizer(models.BPE(vocab=vocab, merges=merges))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    return hf


class Tokenizer:
    """A byte-level BPE tokenizer. Build it with `train_tokenizer`, `Tokenizer.byte_level` or `Tokenizer.load`."""

    def __init__(self, hf: HFTokenizer):
        vocab = hf.get_vocab(with_added_tokens=False)
        missing = [b for b, c in _BYTE_TO_CHAR.items() if c not in vocab]
        if missing:
            raise ValueError(f"tokenizer lacks the single-byte tokens for bytes {missing[:8]}...; every byte must be a token")
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise ValueError("tokenizer ids must be 0..n-1 without gaps")
        self._hf = hf
        self.eot_id: int = len(vocab)
        self.vocab_size: int = len(vocab) + 1
        # id -> exact bytes of the token; END_OF_TEXT decodes to its literal text.
        id_to_bytes = [b""] * self.vocab_size
        for token, i in vocab.items():
            id_to_bytes[i] = bytes(_CHAR_TO_BYTE[c] for c in token)
        id_to_bytes[self.eot_id] = END_OF_TEXT.encode()
        self._id_to_bytes = id_to_bytes
        self._byte_ids = np.array([vocab[_BYTE_TO_CHAR[b]] for b in range(256)], dtype=np.int64)
        self._has_merges = self.vocab_size > MIN_VOCAB_SIZE

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def byte_level(cls) -> Tokenizer:
        """The 257-token tokenizer: id = byte value (0..255), END_OF_TEXT = 256. Needs no training."""
        return cls(_new_hf_tokenizer({_BYTE_TO_CHAR[b]: b for b in range(256)}, []))

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Read a file written by `save`. Raises FileNotFoundError / ValueError naming the file."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"tokenizer file {path} does not exist") from None
        except OSError as e:
            raise ValueError(f"tokenizer file {path} cannot be read: {e}") from e
        try:
            obj = json.loads(raw)
            if obj.get("format") != FORMAT or obj.get("version") != FORMAT_VERSION:
                raise ValueError(f"expected format {FORMAT!r} version {FORMAT_VERSION}, "
                                 f"found {obj.get('format')!r} version {obj.get('version')!r}")
            tok = cls(HFTokenizer.from_str(json.dumps(obj["hf_tokenizer"])))
            if obj["eot_id"] != tok.eot_id or obj["vocab_size"] != tok.vocab_size:
                raise ValueError("header eot_id/vocab_size disagree with the stored vocabulary")
        except Exception as e:  # json errors, HF parse errors, missing keys: all mean a corrupt file
            raise ValueError(f"tokenizer file {path} is corrupt or not a scaling-lab tokenizer: {e}") from e
        return tok

    # ---- encoding -----------------------------------------------------------------------------

    def encode(self, text: str | bytes) -> list[int]:
        """Token ids of `text` (str is taken as UTF-8; lone surrogates as their 'surrogatepass' bytes)."""
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: Sequence[str | bytes]) -> list[list[int]]:
        """Token ids of each text; the valid-UTF-8 parts of all texts go to HF in one parallel batch."""
        if not self._has_merges:  # byte level: the id of each byte, no HF call needed
            return [self._byte_ids[np.frombuffer(_as_bytes(t), dtype=np.uint8)].tolist() for t in texts]
        # Each text becomes a list of parts: str (valid UTF-8, for HF) or bytes (invalid bytes).
        plans: list[list[str | bytes]] = [_split_valid_utf8(t) for t in texts]
        strings = [p for plan in plans for p in plan if isinstance(p, str)]
        encoded = iter(self._hf_encode(strings))
        out = []
        for plan in plans:
            ids: list[int] = []
            for part in plan:
                if isinstance(part, str):
                    ids.extend(next(encoded))
                else:
                    ids.extend(self._byte_ids[np.frombuffer(part, dtype=np.uint8)].tolist())
            out.append(ids)
        return out

    def _hf_encode(self, strings: list[str]) -> list[list[int]]:
        if not strings:
            return []
        encode = getattr(self._hf, "encode_batch_fast", self._hf.encode_batch)  # _fast skips offsets (>= 0.20)
        return [e.ids for e in encode(strings, add_special_tokens=False)]

    # ---- decoding -----------------------------------------------------------------------------

    def decode(self, ids: Iterable[int]) -> bytes:
        """The exact bytes of `ids` (END_OF_TEXT decodes to the literal b'<|endoftext|>')."""
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        if ids and (min(ids) < 0 or max(ids) >= self.vocab_size):
            bad = next(i for i in ids if not 0 <= i < self.vocab_size)
            raise ValueError(f"token id {bad} is out of range for vocab_size {self.vocab_size}")
        return b"".join(map(self._id_to_bytes.__getitem__, ids))

    def decode_text(self, ids: Iterable[int]) -> str:
        """`decode` as UTF-8 text, invalid bytes replaced by U+FFFD."""
        return self.decode(ids).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes one token stands for."""
        return self.decode([token_id])

    # ---- persistence --------------------------------------------------------------------------

    def _serialize(self) -> bytes:
        header = {"format": FORMAT, "version": FORMAT_VERSION, "end_of_text": END_OF_TEXT,
                  "eot_id": self.eot_id, "vocab_size": self.vocab_size}
        return json.dumps({**header, "hf_tokenizer": json.loads(self._hf.to_str())},
                          ensure_ascii=False).encode("utf-8")

    @property
    def fingerprint(self) -> str:
        """sha256 hex of the saved file's content: equal fingerprints mean identical tokenizers."""
        return hashlib.sha256(self._serialize()).hexdigest()

    def save(self, path: str | Path) -> Path:
        """Write the tokenizer as one JSON file, atomically (temp file in the same dir, then os.replace)."""
        path = Path(path)
        atomicio.write_bytes(path, self._serialize())
        return path

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, eot_id={self.eot_id}, fingerprint={self.fingerprint[:12]})"


def train_tokenizer(documents: Iterable[str], vocab_size: int) -> Tokenizer:
    """Train byte-level BPE on `documents` to `vocab_size` ids (END_OF_TEXT included).

    vocab_size must be >= 257; 257 returns `Tokenizer.byte_level()` (no merges). Deterministic for the
    same documents. The result can be smaller than asked when the documents run out of pairs to merge.
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(f"vocab_size must be an int >= {MIN_VOCAB_SIZE} (256 byte tokens + END_OF_TEXT), "
                         f"got {vocab_size!r}")
    if vocab_size == MIN_VOCAB_SIZE:
        return Tokenizer.byte_level()
    hf = _new_hf_tokenizer({}, [])
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,  # the last id is END_OF_TEXT, added outside HF
        min_frequency=2,  # a merge seen once compresses nothing
        show_progress=False,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    hf.train_from_iterator(documents, trainer=trainer)
    return Tokenizer(hf)


def _as_bytes(text: str | bytes) -> bytes:
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text)
    if isinstance(text, str):
        return text.encode("utf-8", errors="surrogatepass")
    raise TypeError(f"expected str or bytes, got {type(text).__name__}")


def _split_valid_utf8(text: str | bytes) -> list[str | bytes]:
    """Split into maximal valid-UTF-8 runs (as str) and runs of invalid bytes (as bytes), in order."""
    if isinstance(text, str) and not _ANY_SURROGATE.search(text):
        return [text] if text else []
    decoded = _as_bytes(text).decode("utf-8", errors="surrogateescape")
    parts: list[str | bytes] = []
    pos = 0
    for m in _ESCAPED_BYTES.finditer(decoded):
        if m.start() > pos:
            parts.append(decoded[pos:m.start()])
        parts.append(m.group().encode("utf-8", errors="surrogateescape"))
        pos = m.end()
    if pos < len(decoded):
        parts.append(decoded[pos:])
    return parts
