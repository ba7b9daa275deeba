"""Shared fixtures: one small prepared corpus for the whole session, in a private cache."""

import pytest

from lm.data import CorpusConfig, prepare_corpus


@pytest.fixture(scope="session")
def stdlib_corpus(tmp_path_factory):
    """~400 kB of the Python standard library, byte-pair encoded to 512 tokens."""
    config = CorpusConfig(source="stdlib", vocab_size=512, max_bytes=400_000)
    return prepare_corpus(config, cache_dir=tmp_path_factory.mktemp("corpus-cache"))
