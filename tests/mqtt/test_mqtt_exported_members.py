"""Pins the public API of pumpops.mqtt, and that it stays at the bottom (no other part, no paho on import)."""

from __future__ import annotations

import json
import subprocess
import sys

import pumpops.mqtt

PUBLIC = {
    "CLIENT_USERNAME",
    "Backoff",
    "ClientOptions",
    "Connection",
    "DrivenConnection",
    "LastWill",
    "Message",
    "PublishInfo",
    "TlsOptions",
    "backoff_delay",
    "make_client",
    "open_socket",
}


def test_mqtt_exported_members_are_pinned() -> None:
    assert set(pumpops.mqtt.__all__) == PUBLIC
    for name in PUBLIC:
        assert hasattr(pumpops.mqtt, name), name


def test_mqtt_imports_only_errors_from_pumpops() -> None:
    code = (
        "import json, sys, pumpops.mqtt\n"
        "print(json.dumps(['paho.mqtt.client' in sys.modules]))\n"
        "from pumpops.mqtt import Connection, Backoff, ClientOptions, DrivenConnection\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('pumpops'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    first, second = out.splitlines()
    assert json.loads(first) == [False]
    loaded = set(json.loads(second))
    assert loaded <= {"pumpops", "pumpops.errors", "pumpops._lazy", "pumpops.mqtt"} | {
        f"pumpops.mqtt.{m}" for m in ("_backoff", "_client", "_driven", "_options")
    }
