"""Tests for lm/tokenizer.py: lossless byte-level BPE, the END_OF_TEXT rule, training, persistence."""

import hashlib
import random
import sysconfig
from pathlib import Path

import pytest
from tokenizers import pre_tokenizers

from lm.tokenizer import END_OF_TEXT, Tokenizer, bytes_to_unicode, train_tokenizer

STDLIB = Path(sysconfig.get_paths()["stdlib"])
TRAIN_FILES = ["argparse.py", "dataclasses.py", "enum.py", "inspect.py", "typing.py", "pathlib.py"]
HELDOUT_FILES = ["shutil.py", "textwrap.py"]

MIXED_TEXT = (
    "ASCII, café, naïve, Ελληνικά, Русский, 中文字符, 日本語のテキスト, 한국어, "
    "emoji 😀🎉👩‍👩‍👧‍👦 🇫🇷, combining e\u0301 a\u0308 \u0915\u094d\u0937, RTL שלום مرحبا \u200f, "
    "NUL \x00 and controls \x01\x7f, CRLF\r\nLF\n tabs\t\t, BOM \ufeff, max \U0010ffff"
)


def _read(names):
    return [(STDLIB / n).read_text(encoding="utf-8") for n in names]


@pytest.fixture(scope="module")
def trained() -> Tokenizer:
    return train_tokenizer(_read(TRAIN_FILES), 512)


@pytest.fixture(scope="module", params=["trained", "byte_level"])
def any_tokenizer(request, trained) -> Tokenizer:
    return trained if request.param == "trained" else Tokenizer.byte_level()


def test_byte_table_is_hf_bytelevel_alphabet():
    """Our byte->char table covers exactly HF ByteLevel's 256 characters, one per byte."""
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256))
    assert set(table.values()) == set(pre_tokenizers.ByteLevel.alphabet())


def test_random_bytes_round_trip(any_tokenizer):
    """Any byte string (random, mostly invalid UTF-8), lengths 0..2000, decodes to exactly itself."""
    for seed in range(40):
        rng = random.Random(seed)
        for n in (0, 1, 2, 3, 7, rng.randrange(2001), 2000):
            data = rng.randbytes(n)
            ids = any_tokenizer.encode(data)
            assert all(0 <= i < any_tokenizer.eot_id for i in ids)
            assert any_tokenizer.decode(ids) == data


def test_invalid_utf8_inside_text_round_trips(any_tokenizer):
    """Text with truncated sequences, stray continuation bytes and encoded surrogates round-trips."""
    data = b"def f():\n    return 1\xff\xfe  # caf\xc3\xa9 \xc3 \x80\x80 \xed\xa0\x80 \xf0\x9f\x98 end\xe4\xb8"
    assert any_tokenizer.decode(any_tokenizer.encode(data)) == data


def test_mixed_unicode_round_trips(any_tokenizer):
    """Emoji, CJK, combining marks, RTL, NUL and CRLF: decode_text(encode(s)) == s, bytes == UTF-8 of s."""
    ids = any_tokenizer.encode(MIXED_TEXT)
    assert any_tokenizer.decode(ids) == MIXED_TEXT.encode("utf-8")
    assert any_tokenizer.decode_text(ids) == MIXED_TEXT


def test_str_with_lone_surrogate_is_encoded_as_surrogatepass_bytes(trained):
    """A str holding a lone surrogate is encoded as its 'surrogatepass' bytes, not dropped or an error."""
    text = "a\ud800b"
    assert trained.decode(trained.encode(text)) == text.encode("utf-8", errors="surrogatepass")


def test_literal_end_of_text_is_plain_text(any_tokenizer):
    """Text containing '<|endoftext|>' round-trips and never yields eot_id; eot_id is the last id."""
    text = f"before {END_OF_TEXT} after{END_OF_TEXT}"
    ids = any_tokenizer.encode(text)
    assert any_tokenizer.eot_id not in ids
    assert any_tokenizer.decode_text(ids) == text
    assert any_tokenizer.eot_id == any_tokenizer.vocab_size - 1
    assert any_tokenizer.decode([any_tokenizer.eot_id]) == END_OF_TEXT.encode()


def test_every_single_byte_is_a_token(any_tokenizer):
    """The 256 single-byte tokens are always in the vocabulary (so nothing is ever unknown)."""
    singles = {any_tokenizer.token_bytes(i) for i in range(any_tokenizer.vocab_size)}
    assert {bytes([b]) for b in range(256)} <= singles


def test_encode_batch_matches_encode(trained):
    """encode_batch gives what encode gives for each text, for str and bytes inputs alike."""
    texts = [MIXED_TEXT, b"\xff\x00abc", "", "x = 1\r\n", b"", END_OF_TEXT]
    assert trained.encode_batch(texts) == [trained.encode(t) for t in texts]


def test_vocab_size_below_257_raises_naming_field():
    """vocab_size < 257 (256 bytes + END_OF_TEXT) is rejected with a message naming vocab_size."""
    for bad in (256, 0, -5, True, 300.0):
        with pytest.raises(ValueError, match="vocab_size"):
            train_tokenizer(["abc"], bad)


def test_trained_tokenizer_has_requested_vocab_and_merges(trained):
    """Training to 512 on ~300 KB of code yields exactly 512 ids, 255 of them multi-byte merges."""
    assert trained.vocab_size == 512
    assert sum(len(trained.token_bytes(i)) > 1 for i in range(trained.eot_id)) == 512 - 257


def test_trained_tokenizer_compresses_heldout_text(trained):
    """On files not seen in training, the tokenizer needs well under one token per byte."""
    heldout = "".join(_read(HELDOUT_FILES)).encode()
    n_tokens = len(trained.encode(heldout))
    assert n_tokens < 0.6 * len(heldout), (n_tokens, len(heldout))


def test_training_is_deterministic_and_data_dependent():
    """The same documents give the same tokenizer (fingerprint); different documents a different one."""
    docs = _read(TRAIN_FILES[:2])
    a, b = train_tokenizer(docs, 400), train_tokenizer(list(docs), 400)
    assert a.fingerprint == b.fingerprint
    assert train_tokenizer(_read(HELDOUT_FILES), 400).fingerprint != a.fingerprint


def test_byte_level_tokenizer_has_257_ids_and_maps_bytes_to_themselves():
    """byte_level(): vocab 257, id == byte value, END_OF_TEXT = 256; training at 257 gives the same."""
    tok = Tokenizer.byte_level()
    assert (tok.vocab_size, tok.eot_id) == (257, 256)
    data = bytes(range(256))
    assert tok.encode(data) == list(data)
    assert train_tokenizer(["any text at all"], 257).fingerprint == tok.fingerprint


def test_save_load_preserves_encodings_and_fingerprint(trained, tmp_path):
    """save -> load gives identical encodings; fingerprint is the sha256 of the one saved file."""
    path = trained.save(tmp_path / "sub" / "tok.json")
    assert [p.name for p in path.parent.iterdir()] == ["tok.json"]  # atomic write leaves no temp file
    loaded = Tokenizer.load(path)
    assert loaded.fingerprint == trained.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (loaded.vocab_size, loaded.eot_id) == (trained.vocab_size, trained.eot_id)
    rng = random.Random(0)
    samples = [MIXED_TEXT, rng.randbytes(3000), *_read(HELDOUT_FILES)]
    assert loaded.encode_batch(samples) == trained.encode_batch(samples)


def test_load_missing_or_corrupt_file_names_the_file(tmp_path):
    """A missing, non-JSON or foreign JSON file raises an error naming that file."""
    missing = tmp_path / "nope.json"
    with pytest.raises(FileNotFoundError, match="nope.json"):
        Tokenizer.load(missing)
    for name, content in (("garbage.json", b"{not json"), ("foreign.json", b'{"model": {}}'),
                          ("truncated.json", Tokenizer.byte_level()._serialize()[:-40])):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=name):
            Tokenizer.load(tmp_path / name)


def test_decode_rejects_out_of_range_ids(trained):
    """decode refuses ids outside [0, vocab_size) instead of wrapping negative indices."""
    for bad in ([-1], [trained.vocab_size], [0, 10**9]):
        with pytest.raises(ValueError, match="out of range"):
            trained.decode(bad)
