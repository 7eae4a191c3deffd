"""The store fakes in other parts' tests implement the Protocols their code is typed against.

Each fake is checked against its Protocol by method names and signatures
(parameter names, kinds and defaults; ``inspect.signature``), since mypy runs
on ``src`` only. The real SQL store is checked against the same Protocols, so
a fake and the store cannot drift apart without this test failing.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import pytest

from pumpops.monitoring._service import MonitoringStore
from pumpops.rollout import RolloutStore
from pumpops.store import (
    AgentMessageStore,
    AlertStore,
    ApiTokenStore,
    AuditStore,
    DeadLetterStore,
    DeviceStore,
    ReadingStore,
    RegistryRecordStore,
    RetentionStore,
    RolloutRecordStore,
    SqlTelemetryStore,
    TelemetryStore,
)

TESTS = Path(__file__).resolve().parents[1]

CONCERNS: tuple[type[Any], ...] = (
    DeviceStore,
    ReadingStore,
    DeadLetterStore,
    AgentMessageStore,
    RolloutRecordStore,
    AlertStore,
    AuditStore,
    RegistryRecordStore,
    ApiTokenStore,
    RetentionStore,
)


def _load(relative: str) -> ModuleType:
    """Import a test helper module by path (the other parts' test folders are not on ``sys.path`` here)."""
    name = "_store_fakes_" + relative.replace("/", "_").removesuffix(".py")
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TESTS / relative)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _fake(relative: str, name: str) -> type[Any]:
    fake: type[Any] = getattr(_load(relative), name)
    return fake


def protocol_methods(protocol: type[Any]) -> set[str]:
    """The public methods a Protocol declares, its Protocol bases' included."""
    names: set[str] = set()
    for cls in protocol.__mro__:
        if cls in (Protocol, object) or not getattr(cls, "_is_protocol", False):
            continue
        names.update(n for n, v in vars(cls).items() if callable(v) and not n.startswith("_"))
    return names


def parameters(function: Any) -> list[tuple[str, Any, Any]]:
    """``(name, kind, default)`` of each parameter but ``self``: what a caller may pass."""
    return [
        (p.name, p.kind, p.default)
        for p in inspect.signature(function).parameters.values()
        if p.name != "self"
    ]


def mismatches(implementation: type[Any], protocol: type[Any]) -> list[str]:
    """What ``implementation`` lacks, or takes differently, of ``protocol``'s methods."""
    found = []
    for name in sorted(protocol_methods(protocol)):
        method = getattr(implementation, name, None)
        if method is None:
            found.append(f"{name}: missing")
        elif parameters(method) != parameters(getattr(protocol, name)):
            found.append(
                f"{name}: {inspect.signature(method)} != {inspect.signature(getattr(protocol, name))}"
            )
    return found


FAKES = {
    "telemetry MemoryStore": (
        ("telemetry/fakes.py", "MemoryStore"),
        (DeviceStore, ReadingStore, DeadLetterStore, AgentMessageStore, RolloutRecordStore, AlertStore),
    ),
    "monitoring FakeMonitoringStore": (
        ("monitoring/_monitoring_fake.py", "FakeMonitoringStore"),
        (MonitoringStore,),
    ),
    "rollout FakeStore": (("rollout/fakes.py", "FakeStore"), (RolloutStore,)),
}


@pytest.mark.parametrize("fake_name", sorted(FAKES))
def test_store_fake_implements_its_protocols(fake_name: str) -> None:
    (path, class_name), protocols = FAKES[fake_name]
    fake = _fake(path, class_name)
    for protocol in protocols:
        assert mismatches(fake, protocol) == [], (fake_name, protocol.__name__)
        if getattr(protocol, "_is_runtime_protocol", False):
            assert issubclass(fake, protocol), (fake_name, protocol.__name__)


@pytest.mark.parametrize("protocol", [*CONCERNS, MonitoringStore, RolloutStore], ids=lambda p: p.__name__)
def test_store_sql_implements_every_protocol(protocol: type[Any]) -> None:
    assert mismatches(SqlTelemetryStore, protocol) == []


def test_store_telemetry_store_is_every_concern_and_nothing_is_left_abstract() -> None:
    for concern in CONCERNS:
        assert issubclass(TelemetryStore, concern), concern.__name__
    declared = set().union(*(protocol_methods(c) for c in CONCERNS)) | {"upgrade", "counts", "close"}
    assert TelemetryStore.__abstractmethods__ == declared
    # The SQL store implements every concern; an engine module supplies only its bulk paths and upsert.
    assert SqlTelemetryStore.__abstractmethods__ == {"_claim_messages", "_insert_readings", "_upsert"}


def test_store_concerns_do_not_overlap() -> None:
    seen: dict[str, str] = {}
    for concern in CONCERNS:
        for name in protocol_methods(concern):
            assert name not in seen, f"{name} is in {seen[name]} and {concern.__name__}"
            seen[name] = concern.__name__
