"""gRPC services of newsrec: user encoder, retrieval (+ news upsert), ranker, gateway.

Contracts live in `protos/newsrec/v1/`; generated code in `services/generated/`.
This package imports the `newsrec` library, never the other way round.
"""
