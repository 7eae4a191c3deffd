"""Pins the public API: a change to these lists is a change users see."""

from __future__ import annotations

import importlib

import pytest

_PUBLIC = {
    "pumpops.errors": {
        "BrokerError",
        "BundleMismatchError",
        "CheckFailed",
        "ConfigError",
        "DownloadError",
        "IncompatibleBundleError",
        "InputError",
        "IntegrityError",
        "MessageRejected",
        "MixAndMatchError",
        "NotFoundError",
        "OversizedDownloadError",
        "PumpopsError",
        "RollbackError",
        "ServiceError",
        "StaleMetadataError",
        "StoreError",
        "TamperedArtifactError",
        "UnitError",
        "UntrustedSignatureError",
    },
    "pumpops.schema": {
        "AGENT_SCHEMA",
        "BUNDLE_FORMAT",
        "KIND_OF_TOPIC",
        "MANIFEST_FILE",
        "MAX_AGENT_MESSAGE_BYTES",
        "MODEL_FILE",
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
        "bundle_dir",
        "decode_agent_message",
        "encode_agent_message",
        "manifest_bytes",
        "parse_manifest",
        "read_bundle",
        "with_msg_id",
        "write_bundle",
        "CANONICAL_SENSORS",
        "IDENT_PATTERN",
        "MAX_ROWS_PER_MESSAGE",
        "MAX_SENSORS_PER_MESSAGE",
        "SCHEMA_ID",
        "CanonicalSensor",
        "DeadLetter",
        "ReadingBatch",
        "Rejection",
        "TelemetryMessage",
        "WireSensor",
        "affine_to",
        "canonical_sensor",
        "check_unit",
        "convert",
    },
    "pumpops.fleet": {
        "Device",
        "ManufacturerProfile",
        "ProfileSensor",
        "PumpRating",
        "TargetBudgets",
        "TargetProfile",
        "get_profile",
        "get_target",
        "load_profile",
        "load_profiles",
        "load_target",
        "load_targets",
        "version_tuple",
    },
    "pumpops.store": {
        "AGENT_KINDS",
        "FEEDBACK_VERDICTS",
        "ROLLOUT_ACTIVE_STATUSES",
        "AgentPut",
        "AgentRecord",
        "BatchOutcome",
        "FeedbackRecord",
        "FleetAlertRecord",
        "ReadingsFrame",
        "RolloutRecord",
        "TelemetryStore",
        "open_store",
    },
}


@pytest.mark.parametrize("module_name", sorted(_PUBLIC))
def test_exported_members_are_pinned(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == _PUBLIC[module_name]
    for name in module.__all__:
        assert hasattr(module, name), name
