"""The contracts hub and device share: telemetry, the bundle format, the agent message envelope.

- canonical telemetry: sensor names, SI units, readings, batches and the wire
  message (``_sensors``, ``_units``, ``_wire``);
- the bundle format (``_bundle``): manifest, files, read and verify, write;
- the typed detector manifest (``_manifest``): the ``detector`` section of a
  bundle manifest as the pipeline writes it and the agent reads it;
- the agent message envelope (``_agent_messages``): what the agent tells the hub.

The wire, bundle, detector manifest and envelope names load on first use (PEP 562), so that
importing the package stays cheap (the device agent loads neither pydantic nor pint).
May import: ``pumpops.errors``, ``pumpops._atomic``, ``pumpops._digest``,
pydantic, pint, numpy and the standard library. Edge-safe: everything above
(hub and edge alike) may import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pumpops._lazy import lazy_exports
from pumpops.schema._sensors import CANONICAL_SENSORS, IDENT_PATTERN, CanonicalSensor, canonical_sensor
from pumpops.schema._units import affine_to, check_unit, convert

if TYPE_CHECKING:
    from pumpops.schema._agent_messages import (
        AGENT_SCHEMA,
        KIND_OF_TOPIC,
        MAX_AGENT_MESSAGE_BYTES,
        TOPIC_OF_KIND,
        AgentKind,
        AgentMessage,
        decode_agent_message,
        encode_agent_message,
        with_msg_id,
    )
    from pumpops.schema._bundle import (
        BUNDLE_FORMAT,
        MANIFEST_FILE,
        MODEL_FILE,
        Bundle,
        BundleAlarm,
        BundleBuild,
        BundleCalibration,
        BundleFile,
        BundleInputs,
        BundleLineage,
        BundleManifest,
        BundleSensor,
        BundleTarget,
        bundle_dir,
        manifest_bytes,
        parse_manifest,
        read_bundle,
        write_bundle,
    )
    from pumpops.schema._manifest import (
        DetectorAlarm,
        DetectorInputs,
        DetectorManifest,
        SamplingRule,
        SmoothingRule,
        ThresholdRule,
    )
    from pumpops.schema._wire import (
        MAX_ROWS_PER_MESSAGE,
        MAX_SENSORS_PER_MESSAGE,
        SCHEMA_ID,
        DeadLetter,
        ReadingBatch,
        Rejection,
        TelemetryMessage,
        WireSensor,
    )

_AGENT_MESSAGES = "pumpops.schema._agent_messages"
_WIRE = "pumpops.schema._wire"  # pydantic: loaded on first use, so the device agent does not load it
_BUNDLE = "pumpops.schema._bundle"
_MANIFEST = "pumpops.schema._manifest"

#: Where each lazily loaded public name lives.
_LAZY: dict[str, str] = {
    "MAX_ROWS_PER_MESSAGE": _WIRE,
    "MAX_SENSORS_PER_MESSAGE": _WIRE,
    "SCHEMA_ID": _WIRE,
    "DeadLetter": _WIRE,
    "ReadingBatch": _WIRE,
    "Rejection": _WIRE,
    "TelemetryMessage": _WIRE,
    "WireSensor": _WIRE,
    "AGENT_SCHEMA": _AGENT_MESSAGES,
    "KIND_OF_TOPIC": _AGENT_MESSAGES,
    "MAX_AGENT_MESSAGE_BYTES": _AGENT_MESSAGES,
    "TOPIC_OF_KIND": _AGENT_MESSAGES,
    "AgentKind": _AGENT_MESSAGES,
    "AgentMessage": _AGENT_MESSAGES,
    "decode_agent_message": _AGENT_MESSAGES,
    "encode_agent_message": _AGENT_MESSAGES,
    "with_msg_id": _AGENT_MESSAGES,
    "BUNDLE_FORMAT": _BUNDLE,
    "MANIFEST_FILE": _BUNDLE,
    "MODEL_FILE": _BUNDLE,
    "Bundle": _BUNDLE,
    "BundleAlarm": _BUNDLE,
    "BundleBuild": _BUNDLE,
    "BundleCalibration": _BUNDLE,
    "BundleFile": _BUNDLE,
    "BundleInputs": _BUNDLE,
    "BundleLineage": _BUNDLE,
    "BundleManifest": _BUNDLE,
    "BundleSensor": _BUNDLE,
    "BundleTarget": _BUNDLE,
    "bundle_dir": _BUNDLE,
    "manifest_bytes": _BUNDLE,
    "parse_manifest": _BUNDLE,
    "read_bundle": _BUNDLE,
    "write_bundle": _BUNDLE,
    "DetectorAlarm": _MANIFEST,
    "DetectorInputs": _MANIFEST,
    "DetectorManifest": _MANIFEST,
    "SamplingRule": _MANIFEST,
    "SmoothingRule": _MANIFEST,
    "ThresholdRule": _MANIFEST,
}


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)


__all__ = [
    "AGENT_SCHEMA",
    "BUNDLE_FORMAT",
    "CANONICAL_SENSORS",
    "IDENT_PATTERN",
    "KIND_OF_TOPIC",
    "MANIFEST_FILE",
    "MAX_AGENT_MESSAGE_BYTES",
    "MAX_ROWS_PER_MESSAGE",
    "MAX_SENSORS_PER_MESSAGE",
    "MODEL_FILE",
    "SCHEMA_ID",
    "TOPIC_OF_KIND",
    "AgentKind",
    "AgentMessage",
    "Bundle",
    "BundleAlarm",
    "BundleBuild",
    "BundleCalibration",
    "BundleFile",
    "BundleInputs",
    "BundleLineage",
    "BundleManifest",
    "BundleSensor",
    "BundleTarget",
    "CanonicalSensor",
    "DeadLetter",
    "DetectorAlarm",
    "DetectorInputs",
    "DetectorManifest",
    "ReadingBatch",
    "Rejection",
    "SamplingRule",
    "SmoothingRule",
    "TelemetryMessage",
    "ThresholdRule",
    "WireSensor",
    "affine_to",
    "bundle_dir",
    "canonical_sensor",
    "check_unit",
    "convert",
    "decode_agent_message",
    "encode_agent_message",
    "manifest_bytes",
    "parse_manifest",
    "read_bundle",
    "with_msg_id",
    "write_bundle",
]
