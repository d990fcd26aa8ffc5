"""The one server interceptor: maps errors to status codes and times every call.

`newsrec.errors.NewsrecError` carries its gRPC code by name; anything else is a bug,
logged here with its traceback and answered with INTERNAL and a generic message,
so no traceback ever reaches a client.
"""

from __future__ import annotations

import contextvars
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from prometheus_client import Histogram

from newsrec.errors import InvalidInput, NewsrecError

log = logging.getLogger("services.rpc")
MAX_MESSAGE = 1000


@dataclass
class CallState:
    """Per-call facts a handler can set for the interceptor (e.g. the variant it served)."""

    variant: str


_CALL: contextvars.ContextVar[CallState | None] = contextvars.ContextVar("newsrec_call", default=None)


def set_call_variant(variant: str) -> None:
    """Label the current call's metrics with `variant` (gateway: chosen per request)."""
    state = _CALL.get()
    if state is not None:
        state.variant = variant


@dataclass(frozen=True)
class _Undecodable:
    """Stands in for a request whose bytes did not decode (bad protobuf, invalid UTF-8 in a
    string field): grpc would answer INTERNAL "Exception deserializing request!"; the
    handler answers INVALID_ARGUMENT instead."""

    message: str


def _lenient(deserializer: Callable[[bytes], Any] | None, message_name: str) -> Callable[[bytes], Any]:
    """`deserializer`, with a decode failure turned into an `_Undecodable` value."""

    def deserialize(data: bytes) -> Any:
        if deserializer is None:
            return data
        try:
            return deserializer(data)
        except Exception as exc:  # protobuf DecodeError, UnicodeDecodeError, ...
            return _Undecodable(f"request: not a valid {message_name} ({type(exc).__name__})")

    return deserialize


def _status_code(name: str) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, name, grpc.StatusCode.INTERNAL)


class ErrorMetricsInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Wraps the unary handlers of `newsrec.v1` services; `histogram_for(service)` gives the
    request-latency histogram of a service name (e.g. "RecommendService")."""

    def __init__(
        self, histogram_for: Callable[[str], Histogram | None], variant: str, prefix: str = "/newsrec.v1."
    ) -> None:
        self._histogram_for = histogram_for
        self._variant = variant
        self._prefix = prefix
        # Wrapped handler per method path, built on its first call: grpc asks the
        # interceptor again on every call, and the handlers never change once serving.
        self._wrapped: dict[str, Any] = {}

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        wrapped_handler = self._wrapped.get(details.method)
        if wrapped_handler is not None:
            return wrapped_handler
        handler = continuation(details)
        if handler is None or handler.unary_unary is None or not details.method.startswith(self._prefix):
            return handler
        wrapped_handler = self._wrap(handler, details.method)
        self._wrapped[details.method] = wrapped_handler
        return wrapped_handler

    def _wrap(self, handler: Any, method_path: str) -> Any:
        service_name, method = method_path[len(self._prefix) :].split("/", 1)
        histogram = self._histogram_for(service_name)
        inner = handler.unary_unary
        default_variant = self._variant

        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            state = CallState(variant=default_variant)
            token = _CALL.set(state)
            start = time.perf_counter()
            code = "OK"
            try:
                if isinstance(request, _Undecodable):
                    raise InvalidInput(request.message)
                return inner(request, context)
            except NewsrecError as exc:
                code = exc.grpc_code
                message = str(exc)[:MAX_MESSAGE] or type(exc).__name__
                log.info("rpc error", extra={"method": method, "code": code, "error": message})
                context.abort(_status_code(code), message)
            except Exception:
                code = "INTERNAL"
                ref = uuid.uuid4().hex[:12]
                log.exception("unexpected error", extra={"method": method, "error_ref": ref})
                context.abort(
                    grpc.StatusCode.INTERNAL, f"internal error (reference {ref}; details in server logs)"
                )
            finally:
                _CALL.reset(token)
                if histogram is not None:
                    histogram.labels(method=method, code=code, variant=state.variant).observe(
                        time.perf_counter() - start
                    )

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=_lenient(handler.request_deserializer, method + "Request"),
            response_serializer=handler.response_serializer,
        )
