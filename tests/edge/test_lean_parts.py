"""The agent's light copies of hub contracts read and write exactly what the hub's own code does.

The device process leaves pydantic and pint out (issue 16), so it reads profiles
(``_device.py``), writes the message envelope (``_envelope.py``) and converts units
with the bundle's hub-computed pairs (``RowMapper``). Each is held here against the
hub's implementation: ``pumpops.fleet``, ``pumpops.schema``'s envelope, pint.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from test_slots import onnx_model

from pumpops.edge._device import read_profile, read_target
from pumpops.edge._envelope import RAW_SCHEMA_ID, TOPIC_OF_KIND, encode_envelope, with_msg_id
from pumpops.edge._resample import RowMapper
from pumpops.edge._usage import release_library_pages
from pumpops.errors import IncompatibleBundleError, MessageRejected, NotFoundError
from pumpops.fleet import load_profiles, load_targets
from pumpops.release._package import unit_pairs
from pumpops.schema import (
    CANONICAL_SENSORS,
    SCHEMA_ID,
    AgentMessage,
    BundleSensor,
    affine_to,
    decode_agent_message,
    encode_agent_message,
    parse_manifest,
)
from pumpops.schema import TOPIC_OF_KIND as HUB_TOPIC_OF_KIND
from pumpops.schema import with_msg_id as hub_with_msg_id
from pumpops.sources import Channel

# ------------------------------------------------------------------ profiles


@pytest.mark.parametrize("profile_id", sorted(load_profiles()))
def test_every_shipped_profile_reads_as_the_fleet_reads_it(profile_id: str) -> None:
    hub = load_profiles()[profile_id]
    edge = read_profile(profile_id)
    assert edge.id == hub.id
    assert edge.sample_period_s == hub.sample_period_s
    assert [(s.native, s.canonical, s.unit) for s in edge.sensors] == [
        (s.native, s.canonical, s.unit) for s in hub.sensors
    ]
    for s in hub.sensors:
        assert edge.sensor(s.native) == edge.sensor(s.canonical) is not None
    assert edge.sensor("no-such-sensor") is None


@pytest.mark.parametrize("target_id", sorted(load_targets()))
def test_every_shipped_target_reads_as_the_fleet_reads_it(target_id: str) -> None:
    hub = load_targets()[target_id]
    edge = read_target(target_id)
    assert edge.execution_providers == hub.execution_providers
    assert edge.max_peak_memory_mb == hub.budgets.max_peak_memory_mb
    assert edge.max_latency_ms == hub.budgets.max_latency_ms


def test_the_smallest_target_budget_is_64_mb() -> None:
    assert read_target("armv7-controller").max_peak_memory_mb == 64.0


@pytest.mark.parametrize(("read", "name"), [(read_profile, "acme"), (read_target, "x86")])
def test_an_unknown_profile_is_not_found_with_the_known_ones_listed(read: object, name: str) -> None:
    with pytest.raises(NotFoundError, match="known: "):
        read(name)  # type: ignore[operator]


# ------------------------------------------------------------------ the envelope


BODIES = [
    {},
    {"status": "detecting", "counts": {"rows": 3}, "ratio": 0.1, "none": None, "list": [1, 2.5, "x"]},
    {"text": 'ünïcode ✓ and "quotes"', "nested": {"deep": [{"a": True}]}},
]


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("kind", sorted(TOPIC_OF_KIND))
def test_the_envelope_bytes_are_the_schemas(kind: str, body: dict[str, object]) -> None:
    fields = {
        "device_id": "p-1",
        "site": "s1",
        "kind": kind,
        "ts_ms": 1_764_100_000_123,
        "agent_version": "0.1.0",
    }
    hub = encode_agent_message(AgentMessage(**fields, body=body))  # type: ignore[arg-type]
    assert encode_envelope(**fields, body=body) == hub  # type: ignore[arg-type]
    numbered = with_msg_id(hub, "p-1:42")
    assert numbered == hub_with_msg_id(hub, "p-1:42")
    decoded = decode_agent_message(numbered, topic_kind=TOPIC_OF_KIND[kind])
    assert (decoded.msg_id, decoded.kind, decoded.body) == ("p-1:42", kind, body)


def test_the_envelope_constants_are_the_schemas() -> None:
    assert TOPIC_OF_KIND == HUB_TOPIC_OF_KIND
    assert RAW_SCHEMA_ID == SCHEMA_ID


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_the_envelope_refuses_what_json_has_not(bad: float) -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        encode_envelope(device_id="p", site="s", kind="state", ts_ms=1, agent_version="0", body={"x": bad})


def test_the_envelope_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown agent message kind"):
        encode_envelope(device_id="p", site="s", kind="telemetry", ts_ms=1, agent_version="0", body={})


def test_a_forged_envelope_from_another_device_is_refused_by_the_hub() -> None:
    payload = encode_envelope(device_id="p-1", site="s", kind="state", ts_ms=1, agent_version="0", body={})
    with pytest.raises(MessageRejected):
        decode_agent_message(with_msg_id(payload, "p-2:1"))


# ------------------------------------------------------------------ units without pint


@pytest.mark.parametrize("sensor", sorted(CANONICAL_SENSORS))
def test_unit_pairs_are_pints_for_every_unit_a_profile_uses(sensor: str) -> None:
    si = CANONICAL_SENSORS[sensor].unit
    pairs = unit_pairs(sensor, si)
    units = {s.unit for p in load_profiles().values() for s in p.sensors if s.canonical == sensor}
    assert units | {si} <= set(pairs)
    for unit, (scale, offset) in pairs.items():
        assert (scale, offset) == affine_to(unit, si)


def test_the_row_mapper_converts_with_the_bundles_pairs() -> None:
    profile = read_profile("skab-testbed")
    sensors = [("discharge_pressure", "Pa"), ("motor_temperature", "K")]
    pairs = [unit_pairs(n, u) for n, u in sensors]
    mapper = RowMapper(profile, sensors, pairs)
    channels = (Channel("Temperature", "degC"), Channel("Pressure", "bar"))
    rows = mapper.rows(channels, np.array([[20.0, 1.5]]))
    assert rows.tolist() == [[150_000.0, 293.15]]


def test_a_unit_the_bundle_cannot_convert_makes_the_model_incompatible() -> None:
    mapper = RowMapper(
        read_profile("skab-testbed"), [("discharge_pressure", "Pa")], [{"psi": (6894.76, 0.0)}]
    )
    with pytest.raises(IncompatibleBundleError, match=r"'discharge_pressure'.*'bar'.*rebuild the release"):
        mapper.rows((Channel("Pressure", "bar"),), np.array([[1.0]]))


def test_a_reading_in_the_models_unit_needs_no_pair() -> None:
    mapper = RowMapper(read_profile("skab-testbed"), [("discharge_pressure", "bar")])
    assert mapper.rows((Channel("Pressure", "bar"),), np.array([[2.0]])).tolist() == [[2.0]]


def test_a_manifest_without_unit_pairs_keeps_its_canonical_bytes() -> None:
    """Bundles built before ``from_units`` read and re-serialise unchanged (no new key appears)."""
    sensor = BundleSensor(name="flow_rate", unit="m**3/s")
    assert "from_units" not in sensor.model_dump()
    assert BundleSensor.model_validate({"name": "flow_rate", "unit": "m**3/s"}) == sensor


def test_a_manifest_with_a_bad_pair_is_refused() -> None:
    doc = json.loads('{"name": "flow_rate", "unit": "m**3/s", "from_units": {"L/min": [1.0]}}')
    with pytest.raises(Exception, match="Expected `array` of length 2"):
        BundleSensor.model_validate(doc)
    with pytest.raises(Exception, match="not valid"):
        parse_manifest(b'{"format": "pumpops.bundle/1"}')


# ------------------------------------------------------------------ onnxruntime's start-up pages

_PAGED_OUT_SCRIPT = """
import json, sys
import numpy as np
import onnxruntime as ort
from pumpops.edge._health import session_options
from pumpops.edge._usage import release_library_pages

def rss_file_kib():
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1])

options = session_options()
session = ort.InferenceSession(sys.argv[1], sess_options=options, providers=["CPUExecutionProvider"])
windows = np.random.default_rng(7).normal(size=(64, 4, 2))
feeds = {"window": windows, "center": np.zeros(2), "scale": np.ones(2)}
before = session.run(None, feeds)[0].tolist()
file_before = rss_file_kib()
advised, refused = release_library_pages()
after = session.run(None, feeds)[0].tolist()
print(json.dumps({"advised": advised, "refused": refused, "equal": before == after,
                  "file_before": file_before, "file_after": rss_file_kib()}))
"""


def test_onnxruntime_pages_released_after_opening_leave_the_scores_unchanged(tmp_path: Path) -> None:
    """A real session on its own copy of onnxruntime (as on a device: no other process maps it).

    After the release its resident file pages drop by megabytes, and it scores the same
    windows bit for bit.
    """
    shutil.copytree(Path(onnxruntime.__file__).parent, tmp_path / "own" / "onnxruntime")
    model = tmp_path / "model.onnx"
    model.write_bytes(onnx_model())
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "own"))
    out = subprocess.run(
        [sys.executable, "-c", _PAGED_OUT_SCRIPT, str(model)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["equal"] is True
    assert got["advised"] >= 2  # at least the pybind module's code and read-only data
    assert got["refused"] == 0
    assert got["file_after"] < got["file_before"] - 4 * 1024, got  # KiB: onnxruntime's start-up code


def _maps_line(start: int, end: int, perms: str, path: str) -> str:
    return f"{start:x}-{end:x} {perms} 00000000 fe:00 1234 {path}"


def test_release_library_pages_touches_only_the_libraries_read_only_file_mappings(tmp_path: Path) -> None:
    """Writable mappings, other libraries and anonymous memory are never advised; bad lines are skipped."""
    maps = tmp_path / "maps"
    maps.write_text(
        "\n".join(
            [
                _maps_line(0x1000, 0x2000, "rw-p", "/x/onnxruntime/capi/onnxruntime_pybind11_state.so"),
                _maps_line(0x3000, 0x4000, "rw-s", "/root/.cache/onnxruntime.db-shm"),
                _maps_line(0x5000, 0x6000, "r-xp", "/x/numpy/_core/_multiarray_umath.so"),
                "7f0000000000-7f0000001000 rw-p 00000000 00:00 0",
                "not a maps line",
                "",
            ]
        )
    )
    assert release_library_pages(maps=maps) == (0, 0)


def test_release_library_pages_counts_a_refusal_and_carries_on(tmp_path: Path) -> None:
    """An address range that is not mapped (madvise refuses: ENOMEM) is counted, not raised."""
    maps = tmp_path / "maps"
    maps.write_text(_maps_line(0x10000, 0x11000, "r-xp", "/x/onnxruntime/capi/libonnxruntime.so") + "\n")
    assert release_library_pages(maps=maps) == (0, 1)


def test_release_library_pages_without_proc_does_nothing(tmp_path: Path) -> None:
    assert release_library_pages(maps=tmp_path / "absent") == (0, 0)
