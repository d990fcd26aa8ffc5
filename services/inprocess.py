"""Direct calls to a servicer in the same process, shaped like a gRPC stub method.

`serve --all` can route the gateway's three stage calls straight to the servicers: no
serialisation and no extra gRPC legs competing for one GIL. Errors come back as
`grpc.RpcError` with the mapped status code, so the gateway degrades exactly as it
does over the network. The per-call deadline is not enforced (a Python call cannot be
cancelled); the stage still counts against the client's deadline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from prometheus_client import Histogram

from newsrec.errors import NewsrecError

log = logging.getLogger("services.inprocess")


class InProcessRpcError(grpc.RpcError):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class _Context:
    """The part of `grpc.ServicerContext` the servicers use."""

    def __init__(self, timeout: float | None) -> None:
        self._deadline = None if timeout is None else time.monotonic() + timeout

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise InProcessRpcError(code, details)


def in_process(
    method: Callable[[Any, Any], Any], histogram: Histogram | None, name: str, variant: str
) -> Callable[..., Any]:
    """`method(request, context)` as `call(request, timeout=None)`, timed like an RPC."""

    def call(request: Any, timeout: float | None = None) -> Any:
        start = time.perf_counter()
        code = "OK"
        try:
            return method(request, _Context(timeout))
        except NewsrecError as exc:
            code = exc.grpc_code
            status = getattr(grpc.StatusCode, code, grpc.StatusCode.INTERNAL)
            raise InProcessRpcError(status, str(exc)) from exc
        except InProcessRpcError as exc:
            code = exc.code().name
            raise
        except Exception as exc:
            code = "INTERNAL"
            log.exception("unexpected error in in-process call", extra={"method": name})
            raise InProcessRpcError(grpc.StatusCode.INTERNAL, "internal error") from exc
        finally:
            if histogram is not None:
                histogram.labels(method=name, code=code, variant=variant).observe(time.perf_counter() - start)

    return call
