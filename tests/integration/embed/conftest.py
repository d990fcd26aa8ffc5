"""Fixtures: the local model (loaded once), a real embedding server per test, news files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from newsrec.embed.local import LocalProvider


@pytest.fixture(scope="session")
def local_provider() -> LocalProvider:
    import torch

    torch.set_num_threads(1)
    from newsrec.embed.config import ProviderConfig

    return LocalProvider.from_config(ProviderConfig())


@pytest.fixture()
def embedding_server(local_provider: LocalProvider) -> Iterator[tuple[object, int]]:
    from faulty_server import start_faulty_server

    # the test-only subclass with a fault plan; "my-embedder" is a model outside the size table
    server, port = start_faulty_server(
        local_provider, model_name="text-embedding-3-small", aliases=("my-embedder",)
    )
    yield server, port
    server.stop()


@pytest.fixture(scope="session")
def synth_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from newsrec.data.synth import generate

    out = tmp_path_factory.mktemp("synth")
    generate("tiny", 7, out)
    return out


@pytest.fixture()
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = "sk-test-" + "c0ffee" * 6
    monkeypatch.setenv("OPENAI_API_KEY", key)
    return key
