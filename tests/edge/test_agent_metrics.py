"""The agent's Prometheus textfile: what the edge writes by hand, read back by the hub's own parser.

The edge formats the text itself (no ``prometheus_client`` on the device); these
tests parse every file with ``prometheus_client.parser.text_string_to_metric_families``
(the reference parser, hub side), so a malformed line, a bad escape or a counter
without ``_total`` fails here rather than in node_exporter.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pumpops.edge._config import load_agent_config, write_starting_agent_toml
from pumpops.edge._metrics import render_textfile, write_textfile
from pumpops.edge._reporting import ReportingRoom
from pumpops.errors import ConfigError

STATE: dict[str, Any] = {
    "status": "detecting",
    "agent_version": "1.2.0",
    "model_name": "pump-ae",
    "model_version": 7,
    "health": "ok",
    "stale": False,
    "last_update_ok_ms": 1_800_000_000_123,
    "outbox_depth": 12,
    "outbox_bytes": 4096,
    "outbox_dropped": {"raw": 3, "summary": 1},
    "drift_status": {"status": "drift"},
    "alarm_active": True,
    "counts": {
        "rows": 86_400,
        "windows_scored": 86_381,
        "alarms_raised": 4,
        "update_checks_ok": 5,
        "update_checks_failed": 2,
        "drift_verdicts_ok": 20,
        "drift_verdicts_drift": 3,
    },
    "process": {"rss_mib": 61.5, "peak_rss_mib": 80.25, "memory_budget_mib": 128},
}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _types(text: str) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def test_every_counter_of_the_state_report_is_read_back_by_the_reference_parser() -> None:
    text = render_textfile(STATE, device_id="p-0001", now_s=1_800_000_001.5)
    got = _samples(text)
    assert got["pumpops_agent_rows_total", ()] == 86_400
    assert got["pumpops_agent_windows_scored_total", ()] == 86_381
    assert got["pumpops_agent_alarms_raised_total", ()] == 4
    assert got["pumpops_agent_update_checks_total", (("result", "ok"),)] == 5
    assert got["pumpops_agent_update_checks_total", (("result", "failed"),)] == 2
    assert got["pumpops_agent_drift_verdicts_total", (("verdict", "ok"),)] == 20
    assert got["pumpops_agent_drift_verdicts_total", (("verdict", "drift"),)] == 3
    assert got["pumpops_agent_outbox_messages", ()] == 12
    assert got["pumpops_agent_outbox_bytes", ()] == 4096
    assert got["pumpops_agent_outbox_dropped_total", (("reason", "raw"),)] == 3
    assert got["pumpops_agent_resident_memory_bytes", ()] == 61.5 * 1024 * 1024
    assert got["pumpops_agent_memory_budget_bytes", ()] == 128 * 1024 * 1024
    assert got["pumpops_agent_drifting", ()] == 1
    assert got["pumpops_agent_stale", ()] == 0
    assert got["pumpops_agent_alarm_active", ()] == 1
    assert got["pumpops_agent_last_update_ok_timestamp_seconds", ()] == 1_800_000_000.123
    assert got["pumpops_agent_report_timestamp_seconds", ()] == 1_800_000_001.5
    info = (("agent_version", "1.2.0"), ("device_id", "p-0001"), ("health", "ok"), ("model_version", "7"),
            ("status", "detecting"))  # fmt: skip
    assert got["pumpops_agent_info", info] == 1
    types = _types(text)
    assert types["pumpops_agent_rows"] == "counter"  # the parser strips _total from a counter's family
    assert types["pumpops_agent_outbox_messages"] == "gauge"


def test_a_fresh_agent_with_no_model_writes_zeros_not_gaps() -> None:
    """An agent that has done nothing yet: every counter at 0, no memory line without a reading."""
    got = _samples(render_textfile({"status": "no_model"}, device_id="p-2", now_s=0))
    assert got["pumpops_agent_alarms_raised_total", ()] == 0
    assert got["pumpops_agent_update_checks_total", (("result", "failed"),)] == 0
    assert got["pumpops_agent_outbox_messages", ()] == 0
    assert not any(name == "pumpops_agent_resident_memory_bytes" for name, _ in got)
    assert not any(name == "pumpops_agent_last_update_ok_timestamp_seconds" for name, _ in got)


@pytest.mark.parametrize(
    "hostile",
    ['p"1', "p\\1", "p\n# TYPE pumpops_agent_rows_total gauge\npumpops_agent_rows_total 1e9", "p}1{"],
)
def test_label_values_from_the_device_cannot_forge_lines(hostile: str) -> None:
    """A device id or status with quotes, backslashes or newlines stays one escaped label value."""
    state = {**STATE, "status": hostile}
    got = _samples(render_textfile(state, device_id=hostile, now_s=1))
    (info,) = [labels for name, labels in got if name == "pumpops_agent_info"]
    assert dict(info)["device_id"] == hostile
    assert dict(info)["status"] == hostile
    assert got["pumpops_agent_rows_total", ()] == 86_400  # not the forged 1e9


def test_non_finite_memory_is_spelled_as_the_format_wants() -> None:
    state = {**STATE, "process": {"rss_mib": float("nan"), "memory_budget_mib": float("inf")}}
    got = _samples(render_textfile(state, device_id="p", now_s=1))
    assert got["pumpops_agent_resident_memory_bytes", ()] != got["pumpops_agent_resident_memory_bytes", ()]
    assert got["pumpops_agent_memory_budget_bytes", ()] == float("inf")


def test_the_file_is_replaced_whole_and_no_temporary_prom_file_is_left(tmp_path: Path) -> None:
    target = tmp_path / "textfile" / "pumpops.prom"
    assert write_textfile(target, render_textfile(STATE, device_id="p", now_s=1))
    assert write_textfile(target, render_textfile({**STATE, "outbox_depth": 99}, device_id="p", now_s=2))
    assert _samples(target.read_text())["pumpops_agent_outbox_messages", ()] == 99
    assert sorted(p.name for p in target.parent.iterdir()) == ["pumpops.prom"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)  # node_exporter runs as another user


def test_a_path_that_cannot_be_written_is_logged_and_the_agent_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    taken = tmp_path / "pumpops.prom"
    taken.mkdir()  # a folder where the file should be: os.replace refuses, even as root
    assert not write_textfile(taken, "x 1\n")
    assert "not written (the agent goes on)" in caplog.text
    assert list(tmp_path.iterdir()) == [taken]  # the temporary file is removed


def _config(tmp_path: Path, value: str | None) -> Path:
    path = write_starting_agent_toml(tmp_path / "conf" / "agent.toml")
    if value is not None:
        text = path.read_text()
        line = next(x for x in text.splitlines() if x.startswith("metrics_textfile ="))
        path.write_text(text.replace(line, f"metrics_textfile = {value}", 1))
    return path


def test_the_setting_is_off_by_default_and_must_name_a_prom_file(tmp_path: Path) -> None:
    assert load_agent_config(_config(tmp_path / "a", None)).agent.metrics_textfile == ""
    on = load_agent_config(_config(tmp_path / "b", '"/var/lib/node/pumpops.prom"'))
    assert on.agent.metrics_textfile == "/var/lib/node/pumpops.prom"
    for bad in ('"pumpops.txt"', "3"):
        with pytest.raises(ConfigError, match=r"metrics_textfile"):
            load_agent_config(_config(tmp_path / bad.strip('"'), bad))


class _Room(ReportingRoom):
    """The reporting room's state report with everything around it fixed (pure logic)."""

    def __init__(self, state_dir: Path, textfile: str) -> None:  # no AgentBase set-up: none is used
        agent = SimpleNamespace(metrics_textfile=textfile, device_id="p-9", state_interval_s=60.0)
        self.config = SimpleNamespace(agent=agent)  # type: ignore[assignment]
        self.state_dir = state_dir
        self.now_ms = 0
        fields = ("slot", "calibration", "last_update_error", "execution_provider", "desired_version")
        self.body: dict[str, Any] = {**STATE, **dict.fromkeys(fields), "outbox_depth": 0}
        self.sent: list[str] = []
        self.outbox = SimpleNamespace(  # type: ignore[assignment]  # what the report reads after queuing
            depth=lambda: (self.body["outbox_depth"], self.body.get("outbox_bytes", 0)),
            dropped=lambda: dict(self.body.get("outbox_dropped", {})),
        )
        self._last_state_key = None
        self._next_state_ms = 0

    def state_body(self) -> dict[str, Any]:
        return {**self.body, "counts": dict(self.body["counts"])}

    def process_usage(self) -> dict[str, Any]:
        return dict(STATE["process"])

    def _clock_ms(self) -> int:
        return self.now_ms

    def _message(self, kind: str, body: dict[str, Any]) -> None:
        self.sent.append(kind)


def test_the_counters_are_written_while_an_unchanged_state_is_not_resent(tmp_path: Path) -> None:
    room = _Room(tmp_path, "pumpops.prom")
    room._report_state()
    assert room.sent == ["state"]
    room.body["counts"]["rows"] = 99_999  # rows go on; status, model, health stand still
    room.now_ms = 61_000
    room._report_state()
    assert room.sent == ["state"]  # not re-sent: nothing the hub needs changed
    assert _samples((tmp_path / "pumpops.prom").read_text())["pumpops_agent_rows_total", ()] == 99_999


def test_no_file_when_the_setting_is_empty(tmp_path: Path) -> None:
    room = _Room(tmp_path, "")
    room._report_state()
    assert room.sent == ["state"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
