"""With no source and no mirror configured, the pipeline never touches the network: a registry
set missing from the OpenML cache fails at once, naming the fix."""

import socket
import time

import pytest

from pipeline.data.sources import DatasetUnavailable, OpenMLSource, source_from_config


def test_default_source_without_mirror_is_offline(monkeypatch, tmp_path):
    monkeypatch.delenv("PIPELINE_DATA_MIRROR", raising=False)
    source = source_from_config({"source": None, "mirror": None, "openml_cache": str(tmp_path)})
    assert isinstance(source, OpenMLSource) and source.offline

    def no_network(*args, **kwargs):
        raise AssertionError("the offline default source opened a connection")

    import openml  # noqa: F401  (its first import is slow; time the lookup only)

    monkeypatch.setattr(socket, "create_connection", no_network)
    started = time.perf_counter()
    with pytest.raises(DatasetUnavailable) as err:
        source.load("electricity")
    assert time.perf_counter() - started < 2
    message = str(err.value)
    assert "'electricity'" in message and "data.source: openml" in message and "data.mirror" in message


def test_asking_for_openml_is_explicit(monkeypatch):
    monkeypatch.delenv("PIPELINE_DATA_MIRROR", raising=False)
    assert not source_from_config({"source": "openml"}).offline
