"""What the issue-13 checks of agent messages cost the hub: the depth limit and the seq-jump bound.

Run: ``.venv/bin/python benchmarks/agent_checks.py`` (about a minute).

Two measurements, each against its baseline in the same run:

- **decode**: :func:`pumpops.schema.decode_agent_message` (parse, depth limit,
  strict envelope) on real ``pumpops.agent/1`` summaries of about 650 bytes,
  against the same parse and validation without the depth walk
  (``json.loads`` + ``AgentMessage.model_validate``): µs per message.
- **store**: ``put_agent_messages`` of batches of 500 messages from 100
  devices (``ingest.batch_max_messages``), with ``max_seq_jump`` (one
  ``SELECT device_id, max(seq) ... GROUP BY`` in the writing transaction)
  against without, on a fresh SQLite file and a fresh PostgreSQL schema
  (``$PUMPOPS_BENCH_PG``, dropped afterwards): ms per batch, median and p95.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from pumpops.schema import AgentMessage, decode_agent_message, encode_agent_message, with_msg_id
from pumpops.store import AgentRecord, open_store
from pumpops.telemetry._agent import decode_agent

PG_URL = os.environ.get("PUMPOPS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
T0_MS = 1_767_225_600_000
BATCH = 500
DEVICES = 100


def envelope(device: int, seq: int) -> bytes:
    body = {
        "period_s": 600,
        "windows_scored": 120,
        "alarms_raised": seq % 3,
        "model_name": "acme-ansi-if",
        "model_version": 3,
        "score": {"p50": 0.21, "p95": 0.48, "max": 0.93, "mean": 0.25},
        "sensors": {"suction_pressure": {"mean": 150000.0, "std": 1200.0}},
    }
    message = AgentMessage(
        device_id=f"d-{device}",
        site="site-a",
        kind="summary",
        ts_ms=T0_MS + seq * 600_000,
        agent_version="0.1.0",
        body=body,
    )
    return with_msg_id(encode_agent_message(message), f"d-{device}:{seq}")


def per_call_us(call: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeat):
            call()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best * 1e6


def bench_decode() -> tuple[float, float]:
    payload = envelope(1, 42)

    def baseline() -> object:
        return AgentMessage.model_validate(json.loads(payload))

    return per_call_us(lambda: decode_agent_message(payload, topic_kind="summaries"), 5000), per_call_us(
        baseline, 5000
    )


def records(rounds: int) -> list[list[AgentRecord]]:
    """``rounds`` batches of 500: every device's next five messages per batch."""
    topic = "pumpops/v1/site-a/d-{}/summaries"
    out = []
    for r in range(rounds):
        batch = []
        for d in range(DEVICES):
            for k in range(BATCH // DEVICES):
                seq = r * (BATCH // DEVICES) + k + 1
                result = decode_agent(topic.format(d), envelope(d, seq), now_us=(T0_MS + 10**10) * 1000)
                assert result.record is not None
                batch.append(result.record)
        out.append(batch)
    return out


def bench_store(url: str, batches: list[list[AgentRecord]], max_seq_jump: int | None) -> list[float]:
    times = []
    with open_store(url) as store:
        store.upgrade()
        for batch in batches:
            start = time.perf_counter()
            put = store.put_agent_messages(batch, max_seq_jump=max_seq_jump)
            times.append((time.perf_counter() - start) * 1000)
            assert put.stored == len(batch), put
    return times


def _remove(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)


def _p95(values: Sequence[float]) -> float:
    return sorted(values)[int(0.95 * (len(values) - 1))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="batches of 500 per configuration")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args, _ = parser.parse_known_args(argv)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}"
    )
    checked, plain = bench_decode()
    print("\n| decode (650-byte summary) | µs/message |\n|---|---:|")
    print(f"| decode_agent_message (depth limit) | {checked:.1f} |")
    print(f"| baseline: json.loads + model_validate | {plain:.1f} |")
    print(f"| ratio | {checked / plain:.2f} |")

    batches = records(args.rounds)
    engines: list[tuple[str, Callable[[], str], Callable[[str], None]]] = []
    folder = Path(tempfile.mkdtemp(prefix="bench-agent-checks-"))
    engines.append(
        (
            "sqlite",
            lambda: f"sqlite:///{folder / f'{uuid.uuid4().hex[:8]}.db'}",
            lambda url: _remove(url[10:]),
        )
    )
    if not args.no_postgres:
        import sqlalchemy as sa

        def pg_url() -> str:
            return f"{PG_URL}?options=-csearch_path%3Dbench_{uuid.uuid4().hex[:10]}"

        def pg_drop(url: str) -> None:
            schema = url.rsplit("%3D", 1)[1]
            engine = sa.create_engine(PG_URL)
            with engine.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            engine.dispose()

        engines.append(("postgresql", pg_url, pg_drop))
    print(f"\n| store | batches of {BATCH} | seq check | p50 ms/batch | p95 ms/batch | ratio p50 |")
    print("|---|---:|---|---:|---:|---:|")
    for name, make_url, drop in engines:
        medians = {}
        for bound in (None, 1_000_000):
            url = make_url()
            try:
                times = bench_store(url, batches, bound)
            finally:
                drop(url)
            medians[bound] = statistics.median(times)
            ratio = medians[bound] / medians[None]
            label = "off (baseline)" if bound is None else f"max_seq_jump={bound:,}"
            row = (
                name,
                str(len(times)),
                label,
                f"{medians[bound]:.1f}",
                f"{_p95(times):.1f}",
                f"{ratio:.2f}",
            )
            print("| " + " | ".join(row) + " |")
    folder.rmdir()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
