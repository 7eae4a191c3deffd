"""``/metrics``: Prometheus text from the store and the process; a store outage is reported, not raised."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pumpops.hub import create_app
from pumpops.schema import DeadLetter
from pumpops.web import StoreWriteTimer, mount_api

from .conftest import Api, TestClient

pytestmark = [pytest.mark.mosquitto]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_report_devices_dead_letters_alarms_tokens_and_request_times(api: Api) -> None:
    api.state("p-0")
    api.alarm("p-0", int(time.time() * 1000))
    api.store.write_dead_letters(
        [
            DeadLetter(
                received_at_us=1,
                topic="t",
                device_id=None,
                msg_id=None,
                reason="bad_json",
                detail="x",
                payload=b"{",
            )
        ]
    )
    assert api.get("/api/fleet").status_code == 200
    response = api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    assert samples[("pumpops_store_up", ())] == 1
    assert samples[("pumpops_devices", (("condition", "ok"),))] == 1
    assert samples[("pumpops_devices", (("condition", "never_seen"),))] == 3
    assert samples[("pumpops_dead_letters_total", (("reason", "bad_json"),))] == 1
    assert samples[("pumpops_agent_messages_total", (("kind", "alarm"),))] == 1
    assert samples[("pumpops_api_tokens_active", (("role", "admin"),))] == 1
    route = (("method", "GET"), ("route", "/api/fleet"), ("status", "200"))
    assert samples[("pumpops_api_request_seconds_count", route)] == 1


def test_metrics_store_write_timer_times_ingest_writes(api: Api, tmp_path: Path) -> None:
    metrics = mount_api(create_app(tmp_path / "other"), api.context)
    timed = StoreWriteTimer(api.store, metrics.store_writes)
    timed.write_dead_letters([])
    assert timed.devices() == api.store.devices()  # everything else passes through
    samples = _samples(metrics.render().decode())
    assert samples[("pumpops_store_write_seconds_count", (("operation", "write_dead_letters"),))] == 1


def test_metrics_with_the_store_down_answer_store_up_zero(api: Api, tmp_path: Path) -> None:
    from pumpops.store import open_store

    context = api.context
    dead = open_store("postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=1")
    context.store, saved = dead, context.store
    try:
        app = create_app(tmp_path / "repo", api=lambda a: mount_api(a, context))
        with TestClient(app) as client:
            response = client.get("/metrics")
    finally:
        context.store = saved
        dead.close()
    assert response.status_code == 200
    assert _samples(response.text)[("pumpops_store_up", ())] == 0
