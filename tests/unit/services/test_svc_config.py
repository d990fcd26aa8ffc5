from __future__ import annotations

from pathlib import Path

import pytest

from newsrec.errors import InvalidInput
from services.config import load_config

YAML = """
service: gateway
gateway:
  salt: s1
  variants:
    - name: a
      model_version: v1
      weight: 90
      user_encoder: "dns:///a-ue:50052"
      retrieval: "dns:///a-rt:50053"
      ranker: "dns:///a-rk:50054"
    - name: b
      model_version: v2
      weight: 10
      user_encoder: "dns:///b-ue:50052"
      retrieval: "dns:///b-rt:50053"
      ranker: "dns:///b-rk:50054"
"""


def test_yaml_then_env_overrides(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(YAML)
    cfg = load_config(
        env={
            "NEWSREC_CONFIG": str(path),
            "NEWSREC_GRPC_PORT": "6000",
            "NEWSREC_REDIS_URL": "redis://r:6379/0",
        }
    )
    assert cfg.service == "gateway"
    assert cfg.port() == 6000
    assert cfg.cache.redis_url == "redis://r:6379/0"
    assert [v.weight for v in cfg.gateway.variants] == [90, 10]


def test_default_port_per_service() -> None:
    assert load_config(env={"NEWSREC_SERVICE": "ranker"}).port() == 50054
    assert load_config(env={"NEWSREC_SERVICE": "user-encoder"}).port() == 50052


def test_unknown_field_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("service: gateway\ncache:\n  redis_ur1: x\n")
    with pytest.raises(InvalidInput, match=r"cfg\.yaml.*cache\.redis_ur1"):
        load_config(path, env={})


def test_bad_values_are_clear(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="grpc_port"):
        load_config(env={"NEWSREC_GRPC_PORT": "99999"})
    with pytest.raises(InvalidInput, match="service"):
        load_config(env={"NEWSREC_SERVICE": "nope"})
    path = tmp_path / "dup.yaml"
    path.write_text(YAML.replace("name: b", "name: a"))
    with pytest.raises(InvalidInput, match="unique"):
        load_config(path, env={})
    with pytest.raises(InvalidInput, match="not found"):
        load_config(tmp_path / "missing.yaml", env={})


def test_milvus_timeouts_and_mirror_refresh(tmp_path: Path) -> None:
    defaults = load_config(env={})
    assert defaults.milvus_timeout_seconds == 2.0 and defaults.milvus_build_timeout_seconds == 600.0
    assert defaults.index_mirror_refresh_seconds == 5.0 and defaults.index_mirror_stale_after_seconds is None
    path = tmp_path / "cfg.yaml"
    path.write_text(
        "milvus_timeout_seconds: 0.5\nmilvus_build_timeout_seconds: 120\n"
        "index_mirror_refresh_seconds: 1\nindex_mirror_stale_after_seconds: 10\n"
    )
    cfg = load_config(path, env={})
    assert cfg.milvus_timeout_seconds == 0.5 and cfg.milvus_build_timeout_seconds == 120
    assert cfg.index_mirror_refresh_seconds == 1 and cfg.index_mirror_stale_after_seconds == 10
    for key, bad in (
        ("milvus_timeout_seconds", 0),
        ("milvus_timeout_seconds", 61),  # a serving call must fail in seconds, not minutes
        ("milvus_build_timeout_seconds", -1),
        ("index_mirror_refresh_seconds", 0),
        ("index_mirror_stale_after_seconds", 0),
    ):
        path.write_text(f"{key}: {bad}\n")
        with pytest.raises(InvalidInput, match=rf"cfg\.yaml: invalid config: {key}: "):
            load_config(path, env={})
