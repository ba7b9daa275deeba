"""Shared fixtures: one small prepared corpus for the whole session, in a private cache; a local Ray per module."""

import pytest

from lm.data import CorpusConfig, prepare_corpus


@pytest.fixture(scope="session")
def stdlib_corpus(tmp_path_factory):
    """~400 kB of the Python standard library, byte-pair encoded to 512 tokens."""
    config = CorpusConfig(source="stdlib", vocab_size=512, max_bytes=400_000)
    return prepare_corpus(config, cache_dir=tmp_path_factory.mktemp("corpus-cache"))


@pytest.fixture(scope="module")
def local_ray():
    """A private local Ray of 2 CPUs for one test module, shut down after it (also when a test fails)."""
    import ray  # noqa: PLC0415  (only the Ray tests pay for importing it)

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
    yield ray
    ray.shutdown()
