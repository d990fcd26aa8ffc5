"""Transport security and a shared-token check for the gRPC services (both off by default).

TLS: server certificate and key, optionally a client CA (mutual TLS); the gateway dials its
backends with the same settings. Token: every `newsrec.v1` call must carry
`authorization: Bearer <token>`; health (Kubernetes probes) and reflection stay open.
Files are read once at start; a missing or empty one is a one-line error naming the field.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from newsrec.errors import InvalidInput
from services.config import AuthConfig, ServeConfig, TlsConfig

log = logging.getLogger("services.security")
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
AUTH_HEADER = "authorization"


def _read(path: Path, field: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{field}: cannot read {path} ({exc.strerror or exc})") from exc
    if not data.strip():
        raise InvalidInput(f"{field}: {path} is empty")
    return data


def auth_token(auth: AuthConfig) -> str | None:
    """The shared token, from the config (env NEWSREC_AUTH_TOKEN) or its file; None when off."""
    if auth.token is not None:
        return auth.token.get_secret_value().strip()
    if auth.token_file is not None:
        return _read(auth.token_file, "auth.token_file").decode().strip()
    return None


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials | None:
    """TLS credentials of the server, or None for plaintext."""
    if not tls.enabled:
        return None
    assert tls.cert_file is not None and tls.key_file is not None
    pair = (_read(tls.key_file, "tls.key_file"), _read(tls.cert_file, "tls.cert_file"))
    client_ca = _read(tls.client_ca_file, "tls.client_ca_file") if tls.client_ca_file else None
    return grpc.ssl_server_credentials(
        [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def channel_factory(config: ServeConfig) -> Callable[[str, Sequence[tuple[str, Any]]], grpc.Channel]:
    """`make(target, options)` for the gateway's backend channels: TLS when the config has
    it (its own certificate as the client certificate, for mutual TLS), and the token."""
    tls = config.tls
    token = auth_token(config.auth)
    creds = None
    override: list[tuple[str, Any]] = []
    if tls.enabled:
        assert tls.cert_file is not None and tls.key_file is not None
        creds = grpc.ssl_channel_credentials(
            root_certificates=_read(tls.ca_file, "tls.ca_file") if tls.ca_file else None,
            private_key=_read(tls.key_file, "tls.key_file"),
            certificate_chain=_read(tls.cert_file, "tls.cert_file"),
        )
        if tls.server_name:
            override = [("grpc.ssl_target_name_override", tls.server_name)]

    def make(target: str, options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
        opts = [*options, *override]
        ch = (
            grpc.secure_channel(target, creds, options=opts) if creds else grpc.insecure_channel(target, opts)
        )
        return grpc.intercept_channel(ch, BearerToken(token)) if token else ch

    return make


class BearerToken(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Adds `authorization: Bearer <token>` to every unary call of a channel."""

    def __init__(self, token: str) -> None:
        self._header = (AUTH_HEADER, f"Bearer {token}")

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        metadata = [*(details.metadata or ()), self._header]
        return continuation(details._replace(metadata=metadata), request)


class TokenAuthInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Answers UNAUTHENTICATED to a call without the right bearer token (compared in constant
    time), before any request is decoded; health and reflection stay open."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()
        self._deny = grpc.unary_unary_rpc_method_handler(_deny)

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        if details.method.startswith(OPEN_PREFIXES):
            return continuation(details)
        given = next((v for k, v in details.invocation_metadata or () if k == AUTH_HEADER), "")
        if hmac.compare_digest(str(given).encode(), self._expected):
            return continuation(details)
        return self._deny


def _deny(_request: Any, context: grpc.ServicerContext) -> None:
    context.abort(grpc.StatusCode.UNAUTHENTICATED, "authorization: missing or wrong bearer token")
