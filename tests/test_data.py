"""Tests for lm/corpus_sources.py, lm/data.py and lm/batches.py: every source kind, the cache, the
by-document split, the sampler (windows without replacement per pass), errors."""

import dataclasses
import json
import os
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from lm import batches
from lm.batches import RepeatedDataWarning
from lm.data import CorpusConfig, CorpusError, TokenizedCorpus, prepare_corpus, split_documents
from lm.model import ModelConfig
from lm.tokenizer import END_OF_TEXT, train_tokenizer
from lm.train import TrainConfig, train

VOCAB = 300  # small vocabularies keep training instant


def _doc(i: int) -> bytes:
    """A document with a unique marker, so its tokens can be found again after decoding."""
    return (f"# document {i} marker<{i:04d}>\n" + "def function_%d(x):\n    return x * %d\n" % (i, i) * 20).encode()


@pytest.fixture
def text_dir(tmp_path):
    root = tmp_path / "corpus"
    for i in range(40):
        sub = root / f"part{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"doc{i:02d}.py").write_bytes(_doc(i))
    (root / "part0" / "bad_utf8.txt").write_bytes(b"caf\xc3\xa9 \xff\xfe broken \xc3 utf-8 <|endoftext|> literal")
    (root / ".hidden").write_bytes(b"hidden text that must not appear")
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    return root


def _config(source, **kw) -> CorpusConfig:
    return CorpusConfig(source=str(source), **{"vocab_size": VOCAB, **kw})


def _docs_of(corpus: TokenizedCorpus, split: str) -> list[bytes]:
    return corpus.tokenizer.decode(getattr(corpus, split)).split(END_OF_TEXT.encode())


# ---- sources ----------------------------------------------------------------------------------

def test_stdlib_source_prepares_capped_at_max_bytes(tmp_path):
    """'stdlib' reads the running Python's .py files, exactly max_bytes of them, without test suites."""
    corpus = prepare_corpus(CorpusConfig(max_bytes=150_000, vocab_size=400), tmp_path)
    meta = corpus.meta
    assert meta["train_bytes"] + meta["val_bytes"] == 150_000
    assert corpus.vocab_size == 400 and corpus.train.dtype == np.uint16
    assert meta["val_documents"] >= 1 and corpus.val.size > 0
    assert not any(n.startswith(("test/", "site-packages/")) for n in meta["val_document_names"])
    assert b"import" in corpus.tokenizer.decode(corpus.train[:5000])


def test_dir_source_stores_each_document_exactly(text_dir, tmp_path):
    """A directory: every visible text file is a document, stored byte-exactly, joined by END_OF_TEXT;
    hidden and binary files are skipped; the literal '<|endoftext|>' in a file is not a separator."""
    corpus = prepare_corpus(_config(text_dir), tmp_path)
    assert corpus.meta["skipped_files"] == 1  # image.png
    docs = _docs_of(corpus, "train") + _docs_of(corpus, "val")
    originals = [_doc(i) for i in range(40)]
    assert sorted(d for d in docs if d in originals) == sorted(originals)
    bad = (text_dir / "part0" / "bad_utf8.txt").read_bytes()  # invalid UTF-8 and a literal <|endoftext|>
    assert bad in corpus.tokenizer.decode(corpus.train) + corpus.tokenizer.decode(corpus.val)
    assert not any(b"hidden text" in d or b"IHDR" in d for d in docs)
    eot_count = int((corpus.train == corpus.eot_id).sum() + (corpus.val == corpus.eot_id).sum())
    assert eot_count == corpus.meta["train_documents"] + corpus.meta["val_documents"] - 2


def test_glob_source(text_dir, tmp_path):
    """A glob pattern selects its matching files only (here the 14 part0/*.py documents)."""
    corpus = prepare_corpus(_config(text_dir / "**" / "part0" / "*.py"), tmp_path)
    assert corpus.meta["train_documents"] + corpus.meta["val_documents"] == 14
    assert b"marker<0000>" in corpus.tokenizer.decode(np.concatenate([corpus.train, corpus.val]))


def test_jsonl_source(tmp_path):
    """A .jsonl file: one document per line from text_field; blank lines ignored."""
    path = tmp_path / "data.jsonl"
    lines = [json.dumps({"body": _doc(i).decode(), "id": i}) for i in range(10)]
    path.write_text("\n".join(lines[:5]) + "\n\n" + "\n".join(lines[5:]) + "\n")
    corpus = prepare_corpus(_config(path, text_field="body"), tmp_path / "cache")
    docs = _docs_of(corpus, "train") + _docs_of(corpus, "val")
    assert sorted(docs) == sorted(_doc(i) for i in range(10))


def test_npy_source_tail_split_and_vocab(tmp_path):
    """A .npy id array: no tokenizer, val is the tail val_fraction, vocab = max id + 1."""
    ids = np.arange(1000, dtype=np.int64) % 97
    np.save(tmp_path / "ids.npy", ids)
    corpus = prepare_corpus(_config(tmp_path / "ids.npy", val_fraction=0.1), tmp_path / "cache")
    assert corpus.tokenizer is None and corpus.eot_id is None and corpus.vocab_size == 97
    assert np.array_equal(corpus.train, ids[:900]) and np.array_equal(corpus.val, ids[900:])


def test_npy_source_with_large_vocab_uses_uint32(tmp_path):
    """Ids beyond 65535 are stored as uint32; pretokenized_vocab_size sets the vocab when given."""
    ids = np.array([0, 70_000, 5, 3, 69_999] * 10, dtype=np.uint32)
    np.save(tmp_path / "big.npy", ids)
    corpus = prepare_corpus(_config(tmp_path / "big.npy", pretokenized_vocab_size=100_000), tmp_path / "cache")
    assert corpus.vocab_size == 100_000 and corpus.train.dtype == np.uint32
    assert np.array_equal(np.concatenate([corpus.train, corpus.val]), ids)


def test_bin_source(tmp_path):
    """A raw uint16 .bin (nanoGPT layout) prepares, with the tail as validation."""
    ids = (np.arange(2000) * 7 % 5000).astype(np.uint16)
    ids.tofile(tmp_path / "train.bin")
    corpus = prepare_corpus(_config(tmp_path / "train.bin"), tmp_path / "cache")
    assert corpus.val.size == 100 and np.array_equal(np.concatenate([corpus.train, corpus.val]), ids)
    assert corpus.vocab_size == int(ids.max()) + 1


def _write_parquet(path, texts, **extra_columns):
    table = pa.table({"id": list(range(len(texts))), "text": texts, **extra_columns})
    pq.write_table(table, path, row_group_size=7)  # several row groups, as real shards have
    return path


def test_parquet_source_one_document_per_row(tmp_path):
    """A .parquet file: one document per row of the `text` column, other columns ignored, nulls dropped."""
    texts = [_doc(i).decode() for i in range(20)] + [None, ""]
    path = _write_parquet(tmp_path / "train-00000-of-00001.parquet", texts)
    corpus = prepare_corpus(_config(path), tmp_path / "cache")
    docs = _docs_of(corpus, "train") + _docs_of(corpus, "val")
    assert sorted(docs) == sorted(_doc(i) for i in range(20))
    assert corpus.meta["kind"] == "parquet"
    assert all(n.startswith("train-00000-of-00001.parquet row ") for n in corpus.meta["val_document_names"])


def test_parquet_glob_reads_shards_in_order_up_to_max_bytes(tmp_path):
    """A glob of Parquet shards (Hugging Face's local layout) reads them sorted, capped at max_bytes."""
    for shard in range(2):
        _write_parquet(tmp_path / f"train-{shard:05d}-of-00002.parquet",
                       [_doc(10 * shard + i).decode() for i in range(10)])
    whole = prepare_corpus(_config(tmp_path / "train-*.parquet"), tmp_path / "cache")
    assert whole.meta["train_documents"] + whole.meta["val_documents"] == 20
    first = sum(len(_doc(i)) for i in range(12))  # all of shard 0 and two rows of shard 1
    capped = prepare_corpus(_config(tmp_path / "train-*.parquet", max_bytes=first + 5), tmp_path / "cache")
    assert capped.meta["train_bytes"] + capped.meta["val_bytes"] == first + 5
    assert capped.meta["train_documents"] + capped.meta["val_documents"] == 13


@pytest.mark.parametrize("case, match", [
    ("missing_column", r"data.parquet: no column text_field='text' \(columns: \['id', 'body'\]\)"),
    ("not_parquet", r"data.parquet: not a readable Parquet file"),
    ("not_string", r"data.parquet: column text_field='text' has type int64, expected a string"),
    ("missing_file", r"data.parquet does not exist"),
    ("glob_no_match", r"source glob .*nothing-\*.parquet' matches no files"),
])
def test_bad_parquet_names_the_file_and_column(case, match, tmp_path):
    path = tmp_path / "data.parquet"
    if case == "missing_column":
        pq.write_table(pa.table({"id": [1, 2], "body": ["a", "b"]}), path)
    elif case == "not_parquet":
        path.write_text('{"text": "a JSON line, not Parquet"}\n')
    elif case == "not_string":
        pq.write_table(pa.table({"text": [1, 2]}), path)
    elif case == "glob_no_match":
        path = tmp_path / "nothing-*.parquet"
    with pytest.raises(CorpusError, match=match):
        prepare_corpus(_config(path), tmp_path / "cache")


def test_parquet_corpus_trains_and_resumes_across_a_pass_exactly(tmp_path):
    """A tiny train() on a Parquet corpus: it learns, reports its passes, warns that it repeats data
    (1.3 passes), and a run interrupted in its second pass resumes to the uninterrupted curve bit for bit."""
    path = _write_parquet(tmp_path / "data.parquet", [_doc(i).decode() for i in range(12)])
    corpus = prepare_corpus(_config(path, val_fraction=0.2), tmp_path / "cache")
    model = ModelConfig(vocab_size=corpus.vocab_size, context_length=16, n_layers=1, d_model=16, n_heads=1)
    n_windows = batches.windows_per_pass(corpus.train.size, 16)
    steps = int(1.3 * n_windows) // 4
    config = TrainConfig(model=model, tokens=steps * 4 * 16, batch_size=4, lr=1e-2, device="cpu", eval_tokens=256,
                         log_interval=5)
    with pytest.warns(RepeatedDataWarning, match=r"1\.\d\d passes over the training split"):
        full = train(config, corpus, peak_flops=1e11)
    assert full.status == "completed" and full.passes == pytest.approx(steps * 4 / n_windows)
    assert full.curve[-1].train_loss < full.curve[0].train_loss
    stop = 50  # a logging boundary in the second pass
    assert stop % 5 == 0 and n_windows < stop * 4 < steps * 4
    with pytest.warns(RepeatedDataWarning):
        train(config, corpus, checkpoint_dir=tmp_path / "ck", stop_after_step=stop, peak_flops=1e11)
        resumed = train(config, corpus, checkpoint_dir=tmp_path / "ck", peak_flops=1e11)
    assert resumed.resumed_from_step == stop and resumed.curve == full.curve
    with pytest.raises(ValueError, match="sampler"):
        dataclasses.replace(config, sampler="shuffle")


# ---- cache ------------------------------------------------------------------------------------

def test_second_prepare_is_a_cache_hit(text_dir, tmp_path):
    """Same inputs: the second call opens the cached arrays (no rewrite); load() opens them too."""
    cache = tmp_path / "cache"
    first = prepare_corpus(_config(text_dir), cache)
    mtime = (first.path / "train.bin").stat().st_mtime_ns
    # touching a file (new mtime, same content) must not invalidate the cache: contents are hashed
    os.utime(text_dir / "part0" / "doc00.py", ns=(1, 1))
    second = prepare_corpus(_config(text_dir), cache)
    assert (first.from_cache, second.from_cache) == (False, True)
    assert second.path == first.path and (second.path / "train.bin").stat().st_mtime_ns == mtime
    assert [p.name for p in cache.iterdir()] == [first.path.name]  # no temp folders left
    loaded = TokenizedCorpus.load(first.path)
    assert loaded.fingerprint == first.fingerprint and np.array_equal(loaded.train, first.train)
    assert loaded.tokenizer.fingerprint == first.tokenizer.fingerprint


def test_fingerprint_tracks_content_and_config(text_dir, tmp_path):
    """Changing a document's bytes, the vocab size or the split seed gives a new cache entry."""
    base = prepare_corpus(_config(text_dir), tmp_path)
    assert prepare_corpus(_config(text_dir, vocab_size=VOCAB + 1), tmp_path).fingerprint != base.fingerprint
    assert prepare_corpus(_config(text_dir, seed=1), tmp_path).fingerprint != base.fingerprint
    (text_dir / "part1" / "doc01.py").write_bytes(b"changed")
    assert prepare_corpus(_config(text_dir), tmp_path).fingerprint != base.fingerprint


def test_concurrent_prepares_agree(text_dir, tmp_path):
    """Two threads preparing the same corpus at once (HF releases the GIL, so both build) end with the
    one cache entry, both readable and identical; the loser's temp folder is gone."""
    cache, results, barrier = tmp_path / "cache", [], threading.Barrier(2)

    def work():
        barrier.wait()
        results.append(prepare_corpus(_config(text_dir), cache))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0].path == results[1].path
    assert [p.name for p in cache.iterdir()] == [results[0].path.name]
    assert np.array_equal(results[0].train, results[1].train)
    assert np.array_equal(results[0].val, results[1].val)


# ---- split ------------------------------------------------------------------------------------

def test_val_split_is_disjoint_from_train_by_document(text_dir, tmp_path):
    """Each document lies wholly in one split, and val holds exactly the documents meta.json names."""
    corpus = prepare_corpus(_config(text_dir, val_fraction=0.2), tmp_path)
    train, val = corpus.tokenizer.decode(corpus.train), corpus.tokenizer.decode(corpus.val)
    val_names = corpus.meta["val_document_names"]
    assert 0 < len(val_names) < 41
    for i in range(40):
        marker = f"marker<{i:04d}>".encode()
        in_val = f"part{i % 3}/doc{i:02d}.py" in val_names
        assert (marker in val, marker in train) == (in_val, not in_val)


def test_tokenizer_is_trained_on_the_train_split_only(tmp_path):
    """Text found only in held-out documents gets no merges: the tokenizer equals one trained on the
    train documents alone, and differs from one trained on all documents."""
    names = [f"doc{i:02d}.txt" for i in range(30)]
    is_val = split_documents(names, [600] * 30, val_fraction=0.2, seed=0)  # every document is 600 bytes
    root = tmp_path / "corpus"
    root.mkdir()
    texts = {n: ("HELDOUTONLY " * 50 if v else f"train text number {i:02d}\n" * 30)[:600]
             for i, (n, v) in enumerate(zip(names, is_val))}
    for name, text in texts.items():
        (root / name).write_text(text)
    corpus = prepare_corpus(_config(root, val_fraction=0.2), tmp_path / "cache")
    assert corpus.meta["val_document_names"] == [n for n, v in zip(names, is_val) if v]
    assert corpus.meta["val_documents"] == 6  # 20% of 30 equal documents
    assert len(corpus.tokenizer.encode("HELDOUTONLY")) == len("HELDOUTONLY")  # no merge learned from val
    train_only = [t for t, v in zip(texts.values(), is_val) if not v]
    assert train_tokenizer(train_only, VOCAB).fingerprint == corpus.tokenizer.fingerprint
    assert train_tokenizer(list(texts.values()), VOCAB).fingerprint != corpus.tokenizer.fingerprint


def test_split_documents_fills_the_byte_budget_deterministically():
    """Held-out documents total at most val_fraction of the bytes and miss it by less than one train
    document; the split is a function of (names, sizes, seed), independent of input order."""
    rng = np.random.default_rng(0)
    names = [f"doc{i}" for i in range(300)]
    sizes = [int(x) for x in rng.integers(1, 5000, size=300)]
    sizes[7] = 100_000  # larger than the whole budget (~85 kB): must stay in train
    is_val = split_documents(names, sizes, val_fraction=0.1, seed=3)
    assert split_documents(names, sizes, val_fraction=0.1, seed=3) == is_val
    budget = 0.1 * sum(sizes)
    val_bytes = sum(s for s, v in zip(sizes, is_val) if v)
    assert budget - min(s for s, v in zip(sizes, is_val) if not v) < val_bytes <= budget
    assert not is_val[7]
    assert split_documents(names, sizes, val_fraction=0.1, seed=4) != is_val
    perm = rng.permutation(300)
    permuted = split_documents([names[i] for i in perm], [sizes[i] for i in perm], val_fraction=0.1, seed=3)
    assert permuted == [is_val[i] for i in perm]


def test_split_documents_never_leaves_a_side_empty():
    """With two documents, any seed and any fraction, one is held out and one is trained on."""
    for seed in range(30):
        for sizes in ([5, 5], [1, 1000], [1000, 1]):
            for fraction in (0.01, 0.5, 0.99):
                assert sorted(split_documents(["a", "b"], sizes, val_fraction=fraction, seed=seed)) == [False, True]


# ---- batches ----------------------------------------------------------------------------------

@pytest.fixture
def npy_corpus(tmp_path):
    np.save(tmp_path / "ids.npy", np.random.default_rng(0).integers(0, 500, 20_000))
    return prepare_corpus(_config(tmp_path / "ids.npy", val_fraction=0.25), tmp_path / "cache")


def test_get_batch_is_a_function_of_seed_and_step(npy_corpus):
    """Same (seed, step): identical batch; another step or seed: different; y is x shifted by one."""
    kw = dict(batch_size=8, context_length=32)
    x, y = npy_corpus.get_batch("train", step=5, seed=1, **kw)
    assert x.shape == y.shape == (8, 32) and x.dtype == y.dtype == torch.int64
    x2, y2 = npy_corpus.get_batch("train", step=5, seed=1, **kw)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, npy_corpus.get_batch("train", step=6, seed=1, **kw)[0])
    assert not torch.equal(x, npy_corpus.get_batch("train", step=5, seed=2, **kw)[0])
    assert torch.equal(x[:, 1:], y[:, :-1])
    windows = np.lib.stride_tricks.sliding_window_view(np.asarray(npy_corpus.train, dtype=np.int64), 33)
    for row_x, row_y in zip(x.numpy(), y.numpy()):  # every row is a real window of the train split
        match = np.flatnonzero((windows[:, :32] == row_x).all(axis=1))
        assert match.size and np.array_equal(windows[match[0], 1:], row_y)


def _pass_starts(n_tokens, *, passes, batch_size, context_length, seed):
    """The window starts of enough steps to cover `passes` passes, in draw order."""
    steps = -(-passes * batches.windows_per_pass(n_tokens, context_length) // batch_size)
    return np.concatenate([batches.window_starts(n_tokens, step=s, batch_size=batch_size,
                                                 context_length=context_length, seed=seed) for s in range(steps)])


def test_permutation_sampler_reads_every_window_once_per_pass(npy_corpus):
    """Within each pass, every non-overlapping window is drawn exactly once (no repeats), passes may
    end inside a batch, and each pass has its own order."""
    n, T, B = npy_corpus.train.size, 32, 7  # 468 windows: passes end mid-batch
    W = batches.windows_per_pass(n, T)
    draws = _pass_starts(n, passes=3, batch_size=B, context_length=T, seed=4)
    for p in range(3):
        one_pass = draws[p * W:(p + 1) * W]
        assert sorted(one_pass) == list(range(0, W * T, T))  # each window once, none repeated
    assert not np.array_equal(draws[:W], draws[W:2 * W])
    assert npy_corpus.passes(steps=10, batch_size=B, context_length=T) == pytest.approx(70 / W)
    x, y = npy_corpus.get_batch("train", step=3, batch_size=B, context_length=T, seed=4)
    expected = batches.gather(np.asarray(npy_corpus.train), draws[3 * B:4 * B], T)
    assert torch.equal(x, expected[0]) and torch.equal(y, expected[1])


def test_permutation_batches_are_pure_functions_of_seed_and_step(npy_corpus):
    """A step computed alone, cold (as a resumed run does), equals the same step of a full walk; seeds
    give distinct batches and distinct pass orders."""
    kw = dict(batch_size=8, context_length=32)
    walk = [npy_corpus.get_batch("train", step=s, seed=1, **kw)[0] for s in range(120)]  # crosses pass 1 -> 2
    for s in (119, 58, 0, 60):
        batches._permutation.cache_clear()
        assert torch.equal(npy_corpus.get_batch("train", step=s, seed=1, **kw)[0], walk[s])
    seeds = [npy_corpus.get_batch("train", step=0, seed=seed, **kw)[0] for seed in range(5)]
    assert all(not torch.equal(a, b) for i, a in enumerate(seeds) for b in seeds[i + 1:])
    orders = {tuple(_pass_starts(npy_corpus.train.size, passes=1, seed=seed, **kw)) for seed in range(5)}
    assert len(orders) == 5


def test_replacement_sampler_repeats_windows_within_a_pass(npy_corpus):
    """The old sampler (kept for runs made with it) draws uniform offsets, so one pass's worth of draws
    repeats or overlaps windows; the permutation sampler's do not. Unknown samplers name the field."""
    n, T, B = npy_corpus.train.size, 32, 8
    steps = batches.windows_per_pass(n, T) // B
    old = np.concatenate([batches.window_starts(n, step=s, batch_size=B, context_length=T, seed=0,
                                                sampler="replacement") for s in range(steps)])
    new = _pass_starts(n, passes=1, batch_size=B, context_length=T, seed=0)[:steps * B]
    assert np.diff(np.sort(new)).min() >= T  # no two windows share a token position
    assert np.diff(np.sort(old)).min() < T
    with pytest.raises(ValueError, match="sampler"):
        npy_corpus.get_batch("train", step=0, batch_size=B, context_length=T, seed=0, sampler="shuffle")


def test_val_batches_are_fixed_non_overlapping_windows(npy_corpus):
    """val_batches returns the same windows every call, non-overlapping, at most max_tokens tokens."""
    a = npy_corpus.val_batches(batch_size=4, context_length=50, max_tokens=1000)
    b = npy_corpus.val_batches(batch_size=4, context_length=50, max_tokens=1000)
    assert len(a) == 5 and all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    xs = torch.cat([x for x, _ in a])
    assert xs.shape == (20, 50)
    val = np.asarray(npy_corpus.val, dtype=np.int64)
    starts = [next(i for i in range(0, val.size, 50) if np.array_equal(val[i:i + 50], row)) for row in xs.numpy()]
    assert starts == sorted(set(starts))  # distinct, ordered, 50-aligned: no overlap
    assert starts[-1] > val.size // 2  # spread over the split, not just its head
    whole = npy_corpus.val_batches(batch_size=1000, context_length=50, max_tokens=10**9)
    assert whole[0][0].shape == ((val.size - 1) // 50, 50)


def test_unigram_entropy_matches_closed_form(tmp_path):
    """Two equally frequent ids: ln 2 nats; one id only: 0."""
    np.save(tmp_path / "two.npy", np.tile([3, 7], 500))
    corpus = prepare_corpus(_config(tmp_path / "two.npy"), tmp_path / "c")
    assert corpus.unigram_entropy("train") == pytest.approx(np.log(2))
    np.save(tmp_path / "one.npy", np.zeros(100, dtype=np.int32))
    assert prepare_corpus(_config(tmp_path / "one.npy"), tmp_path / "c").unigram_entropy() == 0.0


# ---- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("field, kwargs", [
    ("vocab_size", {"vocab_size": 256}),
    ("vocab_size", {"vocab_size": True}),
    ("source", {"source": ""}),
    ("text_field", {"text_field": ""}),
    ("max_bytes", {"max_bytes": 0}),
    ("val_fraction", {"val_fraction": 0.0}),
    ("val_fraction", {"val_fraction": 1.0}),
    ("seed", {"seed": -1}),
    ("pretokenized_vocab_size", {"pretokenized_vocab_size": 10}),  # text source
    ("max_bytes", {"source": "x.bin", "max_bytes": 10}),
])
def test_config_rejects_bad_fields_naming_them(field, kwargs):
    """CorpusConfig validates at construction, naming the offending field."""
    with pytest.raises(ValueError, match=field):
        CorpusConfig(**kwargs)


def _write(path, content: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("case, match", [
    ("missing_dir", "does not exist"),
    ("missing_jsonl", "does not exist"),
    ("missing_npy", "does not exist"),
    ("no_files", "contains no files"),
    ("all_empty", "empty corpus"),
    ("one_document", "at least 2"),
    ("glob_no_match", "matches no files"),
    ("broken_symlink", "cannot read corpus file .*dangling"),
    ("jsonl_not_json", r"data.jsonl line 2: not valid JSON"),
    ("jsonl_missing_field", r"data.jsonl line 3: .*text_field='text'"),
    ("jsonl_no_texts", "empty corpus"),
    ("npy_float", r"ids.npy: .*integer dtype"),
    ("npy_2d", r"ids.npy: .*1-D"),
    ("npy_negative", r"ids.npy: .*>= 0"),
    ("npy_too_big_for_vocab", r"ids.npy: .*pretokenized_vocab_size"),
    ("bin_odd_size", r"ids.bin: .*uint16"),
])
def test_bad_sources_raise_naming_file_and_reason(case, match, tmp_path):
    """Each kind of bad source raises CorpusError whose message names the file (or glob) and why."""
    d, kw = tmp_path / "src", {}
    if case == "missing_dir":
        source = d / "missing"
    elif case == "missing_jsonl":
        source = d / "missing.jsonl"
    elif case == "missing_npy":
        source = d / "missing.npy"
    elif case == "no_files":
        (d / "empty").mkdir(parents=True)
        source = d / "empty"
    elif case == "all_empty":
        _write(d / "a.txt", b"")
        _write(d / "b.txt", b"")
        source = d
    elif case == "one_document":
        _write(d / "a.txt", b"only one")
        source = d
    elif case == "glob_no_match":
        source = d / "*.nothing"
    elif case == "broken_symlink":
        _write(d / "a.txt", b"fine")
        d.joinpath("dangling").symlink_to(d / "gone.txt")
        source = d
    elif case.startswith("jsonl"):
        body = {"jsonl_not_json": b'{"text": "ok"}\n{broken\n',
                "jsonl_missing_field": b'{"text": "ok"}\n{"text": "ok"}\n{"other": "x"}\n',
                "jsonl_no_texts": b'{"text": ""}\n{"text": ""}\n'}[case]
        source = _write(d / "data.jsonl", body)
    elif case == "bin_odd_size":
        source = _write(d / "ids.bin", b"\x01\x00\x02")
    else:
        source = d / "ids.npy"
        source.parent.mkdir(parents=True)
        arr = {"npy_float": np.ones(10), "npy_2d": np.ones((2, 5), dtype=np.int64),
               "npy_negative": np.array([1, -2, 3]), "npy_too_big_for_vocab": np.array([1, 50, 3])}[case]
        np.save(source, arr)
        if case == "npy_too_big_for_vocab":
            kw["pretokenized_vocab_size"] = 10
    with pytest.raises(CorpusError, match=match):
        prepare_corpus(_config(source, **kw), tmp_path / "cache")


def test_context_length_longer_than_split_names_it(npy_corpus):
    """A window longer than the split raises naming context_length, the split and its token count."""
    n = npy_corpus.val.size
    for call in (lambda: npy_corpus.get_batch("val", step=0, batch_size=1, context_length=n, seed=0),
                 lambda: npy_corpus.val_batches(batch_size=1, context_length=n, max_tokens=10 * n)):
        with pytest.raises(CorpusError, match=f"context_length {n} .* val split of {n} tokens"):
            call()


def test_load_of_a_non_corpus_folder_names_it(tmp_path):
    """TokenizedCorpus.load on a folder without meta.json says which file is missing."""
    with pytest.raises(CorpusError, match="meta.json does not exist"):
        TokenizedCorpus.load(tmp_path)
