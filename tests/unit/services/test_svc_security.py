"""Exposure (issue 15 defect 8) over real loopback gRPC: metrics bound to the configured
host, a shared bearer token, TLS and mutual TLS with certificates made in the test."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from svc_fakes import FakeModel, fake_variant

from newsrec.errors import InvalidInput
from services import ranker
from services.config import ServeConfig, load_config
from services.generated.newsrec.v1 import ranking_pb2, ranking_pb2_grpc, recommend_pb2, recommend_pb2_grpc
from services.stack import start_stack

TOKEN = "s3cret-token-for-tests"


@dataclass
class Pki:
    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path

    def read(self, name: str) -> bytes:
        return Path(getattr(self, name)).read_bytes()


def _issue(subject: str, issuer: Any, issuer_key: Any, ca: bool) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256()), key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import serialization

    root = tmp_path_factory.mktemp("pki")
    ca_cert, ca_key = _issue("newsrec test CA", None, None, ca=True)
    files = {}
    for who in ("server", "client"):
        cert, key = _issue(f"newsrec {who}", ca_cert.subject, ca_key, ca=False)
        files[f"{who}.crt"] = cert.public_bytes(serialization.Encoding.PEM)
        files[f"{who}.key"] = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    files["ca.crt"] = ca_cert.public_bytes(serialization.Encoding.PEM)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return Pki(
        root / "ca.crt", root / "server.crt", root / "server.key", root / "client.crt", root / "client.key"
    )


def _ranker(extra: dict[str, Any]) -> tuple[Any, int]:
    cfg = ServeConfig.model_validate({"grpc_port": 0, "metrics_port": 0, "host": "127.0.0.1", **extra})
    server, port = ranker.create_server(cfg, ranker.RankerDeps(FakeModel()))
    assert server.ready.wait(10)
    return server, port


@pytest.fixture
def served() -> Iterator[list[Any]]:
    servers: list[Any] = []
    yield servers
    for s in servers:
        s.stop(0).wait()


def _rank(channel: grpc.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> ranking_pb2.RankResponse:
    req = ranking_pb2.RankRequest(user_id="U", user_vector=[0.25] * 16, candidate_ids=["N1", "N2"])
    return ranking_pb2_grpc.RankingServiceStub(channel).Rank(req, timeout=5, metadata=metadata)


def _health(channel: grpc.Channel) -> int:
    return int(health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status)


def test_metrics_bind_to_the_configured_host(served: list[Any]) -> None:
    server, _port = _ranker({})
    served.append(server)
    assert server._httpd.server_address[0] == "127.0.0.1"
    cfg = ServeConfig.model_validate({"grpc_port": 0, "metrics_port": 0, "host": "127.0.0.1"})
    stack = start_stack(cfg, {"a": fake_variant()}, host="127.0.0.1")
    try:
        assert stack._httpd.server_address[0] == "127.0.0.1"
    finally:
        stack.stop(0)


@pytest.mark.parametrize(
    ("metadata", "ok"),
    [
        ((), False),
        ((("authorization", "Bearer wrong"),), False),
        ((("authorization", TOKEN),), False),  # no scheme
        ((("authorization", f"Bearer {TOKEN}"),), True),
    ],
    ids=["none", "wrong", "no-scheme", "right"],
)
def test_token_is_required_on_every_call_but_health(
    served: list[Any], metadata: tuple[tuple[str, str], ...], ok: bool
) -> None:
    server, port = _ranker({"auth": {"token": TOKEN}})
    served.append(server)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        assert _health(ch) == health_pb2.HealthCheckResponse.SERVING  # probes need no token
        if ok:
            assert len(_rank(ch, metadata).candidates) == 2
        else:
            with pytest.raises(grpc.RpcError) as info:
                _rank(ch, metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert TOKEN not in (info.value.details() or "")


def test_token_from_a_file_and_from_the_environment(tmp_path: Path) -> None:
    from services.security import auth_token

    (tmp_path / "token").write_text(TOKEN + "\n")
    cfg = load_config(env={"NEWSREC_AUTH_TOKEN_FILE": str(tmp_path / "token")})
    assert auth_token(cfg.auth) == TOKEN
    cfg = load_config(env={"NEWSREC_AUTH_TOKEN": TOKEN})
    assert auth_token(cfg.auth) == TOKEN and TOKEN not in repr(cfg)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(InvalidInput, match="auth.token_file: .*empty"):
        auth_token(load_config(env={"NEWSREC_AUTH_TOKEN_FILE": str(tmp_path / "empty")}).auth)


def test_tls_client_works_and_plaintext_fails(served: list[Any], pki: Pki) -> None:
    server, port = _ranker({"tls": {"cert_file": str(pki.cert), "key_file": str(pki.key)}})
    served.append(server)
    creds = grpc.ssl_channel_credentials(root_certificates=pki.read("ca"))
    with grpc.secure_channel(f"127.0.0.1:{port}", creds) as ch:
        assert len(_rank(ch).candidates) == 2
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch, pytest.raises(grpc.RpcError) as info:
        _rank(ch)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_needs_a_client_certificate(served: list[Any], pki: Pki) -> None:
    tls = {"cert_file": str(pki.cert), "key_file": str(pki.key), "client_ca_file": str(pki.ca)}
    server, port = _ranker({"tls": tls})
    served.append(server)
    anonymous = grpc.ssl_channel_credentials(root_certificates=pki.read("ca"))
    with grpc.secure_channel(f"127.0.0.1:{port}", anonymous) as ch, pytest.raises(grpc.RpcError) as info:
        _rank(ch)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    mutual = grpc.ssl_channel_credentials(pki.read("ca"), pki.read("client_key"), pki.read("client_cert"))
    with grpc.secure_channel(f"127.0.0.1:{port}", mutual) as ch:
        assert len(_rank(ch).candidates) == 2


def test_gateway_dials_its_backends_with_the_same_tls_and_token(pki: Pki) -> None:
    """Every server of the stack requires mutual TLS and the token; the gateway's own
    channels to the backends must carry both, or every answer would be a fallback."""
    tls = {"cert_file": str(pki.cert), "key_file": str(pki.key), "client_ca_file": str(pki.ca)}
    cfg = ServeConfig.model_validate(
        {
            "grpc_port": 0,
            "metrics_port": None,
            "host": "127.0.0.1",
            "tls": {**tls, "ca_file": str(pki.ca)},
            "auth": {"token": TOKEN},
            "gateway": {"in_process": False, "timeouts": {"encode_user": 5, "retrieve": 5, "rank": 5}},
        }
    )
    stack = start_stack(cfg, {"a": fake_variant()}, host="127.0.0.1")
    try:
        stack.wait_ready(30)
        creds = grpc.ssl_channel_credentials(pki.read("ca"), pki.read("client_key"), pki.read("client_cert"))
        with grpc.secure_channel(f"127.0.0.1:{stack.ports['gateway']}", creds) as ch:
            resp = recommend_pb2_grpc.RecommendServiceStub(ch).Recommend(
                recommend_pb2.RecommendRequest(user_id="U1", history_ids=["N1"], k=3),
                timeout=10,
                metadata=(("authorization", f"Bearer {TOKEN}"),),
            )
        assert not resp.degraded, list(resp.degraded_reasons)
        assert len(resp.items) == 3
    finally:
        stack.stop(0)


def test_half_a_tls_config_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="tls: .*cert_file and key_file go together"):
        load_config(env={"NEWSREC_TLS_CERT_FILE": "/x.crt"})


def test_healthcheck_speaks_tls_when_the_service_does(
    served: list[Any], pki: Pki, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from services import healthcheck

    tls = {"cert_file": str(pki.cert), "key_file": str(pki.key), "client_ca_file": str(pki.ca)}
    server, port = _ranker({"tls": tls})
    served.append(server)
    assert healthcheck.main(["--port", str(port), "--timeout", "2"]) == 1  # plaintext: refused
    env = {"CERT": pki.client_cert, "KEY": pki.client_key, "CA": pki.ca}
    for name, path in env.items():
        monkeypatch.setenv(f"NEWSREC_TLS_{name}_FILE", str(path))
    monkeypatch.setenv("NEWSREC_TLS_SERVER_NAME", "localhost")
    assert healthcheck.main(["--port", str(port)]) == 0
    assert "SERVING" in capsys.readouterr().out


def test_recommend_cli_talks_tls_with_the_token(pki: Pki, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from services.cli import register

    cfg = ServeConfig.model_validate(
        {
            "grpc_port": 0,
            "metrics_port": None,
            "host": "127.0.0.1",
            "tls": {"cert_file": str(pki.cert), "key_file": str(pki.key), "ca_file": str(pki.ca)},
            "auth": {"token": TOKEN},
        }
    )
    stack = start_stack(cfg, {"a": fake_variant()}, host="127.0.0.1")
    app = typer.Typer()
    register(app)
    (tmp_path / "token").write_text(TOKEN)
    base = ["recommend", "--user", "U1", "--history", "N1", "--k", "3", "--timeout", "10"]
    base += ["--target", f"127.0.0.1:{stack.ports['gateway']}", "--tls-ca", str(pki.ca)]
    try:
        stack.wait_ready(30)
        out = CliRunner().invoke(
            app, [*base, "--token-file", str(tmp_path / "token")], env={"COLUMNS": "200"}
        )
        assert out.exit_code == 0 and "degraded no" in out.output, out.output
        out = CliRunner().invoke(app, base, env={"NEWSREC_AUTH_TOKEN_FILE": ""})
        assert out.exit_code == 1 and "UNAUTHENTICATED" in out.output, out.output
    finally:
        stack.stop(0)
