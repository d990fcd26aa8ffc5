"""Test helpers shared by the unit and integration service tests: ask a running stack's
services directly what the gateway's stages would answer, and find a Milvus Lite server
process. (tests/ is on sys.path through the rootdir conftest.)"""

from __future__ import annotations

import os
from pathlib import Path

import grpc

from services.generated.newsrec.v1 import (
    common_pb2,
    ranking_pb2,
    ranking_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
    user_encoder_pb2,
    user_encoder_pb2_grpc,
)
from services.stack import Stack


def stage_answers(
    stack: Stack, variant: str, user: str, history: list[str], k: int = 10, rank: bool = True
) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """What the gateway's stages answer for this request, asked of each service directly:
    (retrieval's candidates, the ranker's top k of them) as (news id, score) pairs. The
    ranker's list is empty when `rank` is False or the ranker is down."""
    ports = stack.ports
    with grpc.insecure_channel(f"127.0.0.1:{ports[f'user-encoder/{variant}']}") as ch:
        user_vector = list(
            user_encoder_pb2_grpc.UserEncoderServiceStub(ch)
            .EncodeUser(user_encoder_pb2.EncodeUserRequest(user_id=user, history_ids=history), timeout=5)
            .vector
        )
    with grpc.insecure_channel(f"127.0.0.1:{ports[f'retrieval/{variant}']}") as ch:
        got = retrieval_pb2_grpc.RetrievalServiceStub(ch).Retrieve(
            retrieval_pb2.RetrieveRequest(
                vector=user_vector, k=200, filters=common_pb2.RetrievalFilters(exclude_ids=history)
            ),
            timeout=5,
        )
    retrieved = list(zip(got.news_ids, got.scores, strict=True))
    if not rank:
        return retrieved, []
    with grpc.insecure_channel(f"127.0.0.1:{ports[f'ranker/{variant}']}") as ch:
        try:
            ranked = ranking_pb2_grpc.RankingServiceStub(ch).Rank(
                ranking_pb2.RankRequest(
                    user_id=user,
                    user_vector=user_vector,
                    history_ids=history,
                    candidate_ids=got.news_ids,
                    top_k=k,
                ),
                timeout=5,
            )
        except grpc.RpcError:  # the ranker-down tests
            return retrieved, []
    return retrieved, [(c.news_id, c.score) for c in ranked.candidates]


def lite_pid(db_file: Path) -> int:
    """Pid of the Milvus Lite server serving `db_file`: a child of this process whose
    command line names the file (milvus-lite starts `milvus <db file> <socket> ...`)."""
    want = str(db_file.resolve()).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
        if ppid == os.getpid() and want in argv:
            return int(entry.name)
    raise AssertionError(f"no Milvus Lite server process for {want.decode()}")
