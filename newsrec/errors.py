"""One error hierarchy for the whole project.

Each error knows the gRPC status code it maps to (by name, so this module does
not import grpc); the services map them in one interceptor.
"""

from __future__ import annotations


class NewsrecError(Exception):
    """Base class: an expected failure with a message a person can act on."""

    grpc_code: str = "INTERNAL"


class InvalidInput(NewsrecError):
    """Bad input from a user or a file (maps to INVALID_ARGUMENT)."""

    grpc_code = "INVALID_ARGUMENT"


class NotFound(NewsrecError):
    """A named thing (model version, news id, file) does not exist."""

    grpc_code = "NOT_FOUND"


class Unavailable(NewsrecError):
    """A dependency (Redis, Milvus, embedding API) cannot be reached."""

    grpc_code = "UNAVAILABLE"


class DataError(InvalidInput):
    """A data file is unusable; the message names the file and, if known, the line."""
