"""The loop demo's figures and report from stored agent messages (a fake store: pure logic)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pumpops.demo._report import _on_version, false_alarm_phases, fault_detection, write_report
from pumpops.fleet import Device
from pumpops.store import ReadingsFrame

H = 3_600_000


@dataclass
class _Rec:
    device_id: str
    kind: str
    ts_ms: int
    payload: dict[str, Any]

    def body(self) -> dict[str, Any]:
        return self.payload


class _Store:
    def __init__(self, records: list[_Rec]) -> None:
        self.records = records

    def devices(self) -> list[Device]:
        return [Device("p-1", "s", "acme-ansi", "g"), Device("p-2", "s", "acme-ansi", "g")]

    def agent_messages(self, *, device_id: str | None = None, kind: str | None = None) -> list[_Rec]:
        return [r for r in self.records if device_id in (None, r.device_id) and kind in (None, r.kind)]

    def query(self, device_id: str) -> ReadingsFrame:
        ts = np.arange(0, 4 * H, 60_000, dtype=np.int64) * 1000
        return ReadingsFrame(device_id, ts, ("a", "b"), np.ones((ts.size, 2)))


def _summary(device: str, start_h: float, version: int, rows: int, alarmed: int) -> _Rec:
    body = {
        "period_start_ms": int(start_h * H),
        "period_end_ms": int((start_h + 1) * H),
        "rows": rows,
        "alarm_rows": alarmed,
        "model_version": version,
        "score": {"p95": 1.0},
        "threshold": 2.0,
    }
    return _Rec(device, "summary", body["period_end_ms"], body)


def test_phases_fault_detection_progress_and_report(tmp_path: Path) -> None:
    records = [
        _summary("p-1", 0, 1, 3600, 0),  # before the drift (at 1 h)
        _summary("p-1", 1, 1, 3600, 3600),  # stale model after the drift: all alarmed
        _summary("p-1", 2, 2, 3600, 36),  # retrained
        _summary("p-2", 1.5, 1, 3600, 0),  # overlaps the fault on p-2: left out
        _Rec("p-2", "alarm", 2 * H, {"event": "raised", "started_ms": 2 * H + 8000, "alarm_id": "p-2:1"}),
        _Rec("p-1", "state", 0, {"model_version": None}),
        _Rec("p-1", "state", 10, {"model_version": 1}),
        _Rec("p-2", "state", 10, {"model_version": 1}),
        _Rec("p-1", "state", 2 * H, {"model_version": 2}),
        _Rec("p-2", "state", 3 * H, {"model_version": 2}),
    ]
    store = _Store(records)
    faults = [{"device_id": "p-2", "kind": "cavitation", "start_s": 7200.0, "duration_s": 1800.0}]
    phases = {
        (p.group, p.phase): p.rate
        for p in false_alarm_phases(store, {"p-1": "g", "p-2": "g"}, "g", H, faults, 0)
    }
    assert phases == {
        ("g", "before drift"): 0.0,
        ("g", "stale model, after drift"): 1.0,
        ("g", "retrained model"): 0.01,
    }
    (hit,) = fault_detection(store, faults, 0)
    assert (hit["detected"], hit["delay_s"]) == (True, 8)
    xs, ys = _on_version(store, "g", 2, 0)
    assert ys[-2:] == [1.0, 2.0]
    assert xs[-1] == 3.0
    out = write_report(
        tmp_path / "r.html",
        store=store,
        timeline=[(0.0, "start")],
        phases=false_alarm_phases(store, {"p-1": "g", "p-2": "g"}, "g", H, faults, 0),
        detection=[hit],
        faulty={"device_id": "p-2", "kind": "cavitation", "start_h": 2.0, "end_h": 2.5},
        rollouts=[
            {
                "rollout_id": "r-1",
                "title": "m/2 → g",
                "group": "g",
                "version": 2,
                "wave_starts_h": [1.9],
                "steps": ["started"],
            }
        ],
        figures={"summary": "x"},
        t0_ms=0,
    )
    page = out.read_text()
    assert page.count("<svg") == 4
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")  # nothing fetched: it opens offline


def test_rows_while_a_pump_cools_after_a_fault_are_not_normal_rows() -> None:
    """The fault ends at 2.5 h; its heat leaves the bearing and motor over ~3 time constants (1 h)."""
    records = [
        _summary("p-2", 0, 1, 3600, 0),  # before the drift (at 1 h)
        _summary("p-2", 2.5, 2, 3600, 900),  # starts as the fault ends: still cooling, left out
        _summary("p-2", 3.5, 2, 3600, 36),  # one hour after the fault: a normal row again
    ]
    faults = [{"device_id": "p-2", "kind": "bearing_wear", "start_s": 7200.0, "duration_s": 1800.0}]
    phases = {
        (p.group, p.phase): (p.rows, p.alarm_rows)
        for p in false_alarm_phases(_Store(records), {"p-2": "g"}, "g", H, faults, 0)
    }
    assert phases == {("g", "before drift"): (3600, 0), ("g", "retrained model"): (3600, 36)}


def test_technicians_mark_each_alarm_once_and_not_those_during_a_fault(monkeypatch: Any) -> None:
    from types import SimpleNamespace

    import pumpops.demo._loop as loop

    marks: list[str] = []
    monkeypatch.setattr(loop, "record_feedback", lambda _s, _k, alarm_id, **kw: marks.append(alarm_id))
    fleet = [Device("p-1", "s", "acme-ansi", "g"), Device("p-2", "s", "acme-ansi", "g"),
             Device("p-3", "s", "acme-ansi", "other")]  # fmt: skip
    world = SimpleNamespace(
        fleet=fleet, t0_ms=0, faults=[{"device_id": "p-2", "start_s": 3600.0, "duration_s": 1800.0}]
    )

    def raised(device: str, at_h: float) -> _Rec:
        started = int(at_h * H)
        return _Rec(device, "alarm", started, {"event": "raised", "alarm_id": f"{device}:{started}",
                                               "started_ms": started})  # fmt: skip

    store = _Store([raised("p-1", 0.6), raised("p-2", 1.2), raised("p-3", 0.7)])
    marked: set[str] = set()
    loop._technicians_mark(world, store, None, "g", marked)  # type: ignore[arg-type]
    assert marks == [f"p-1:{int(0.6 * H)}"]  # p-2's alarm came during its fault: it was right
    store.records.append(raised("p-2", 2.0))  # a later alarm reaches the hub
    loop._technicians_mark(world, store, None, "g", marked)  # type: ignore[arg-type]
    assert marks == [f"p-1:{int(0.6 * H)}", f"p-2:{2 * H}"]  # each alarm judged once
