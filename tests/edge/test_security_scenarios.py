"""Every attack of issues 5 and 13 on the update path, against a real repository on disk.

Each scenario starts from the same state: the hub published bundle 1 for the
device's (group, target) and the device installed it. The scenario then does
what an attacker (or a broken hub) would, and the next update cycle must
raise the named :mod:`pumpops.errors` class with a readable message, leave
``CURRENT`` at 1, and leave no other version or staging folder behind.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _lab import GROUP, Lab
from tuf.api.metadata import Metadata

from pumpops import errors
from pumpops.release import INTENT_FIELD, UpdateIntent, generate_signer


def _tampered_bundle_bytes(lab: Lab) -> None:
    lab.publish(lab.bundle("2"))
    path = lab.target_file("2", "model.onnx")
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF  # same length, other bytes
    path.write_bytes(bytes(data))


def _tampered_manifest(lab: Lab) -> None:
    lab.publish(lab.bundle("2"))
    path = lab.target_file("2", "manifest.json")
    path.write_bytes(path.read_bytes().replace(b'"1.0.0"', b'"0.0.0"'))


def _bundle_for_another_target(lab: Lab) -> None:
    # Correctly signed, but the bundle at our path was built for another target.
    other = lab.bundle("9", target="arm-gateway")
    wrong = lab.bundle("2")
    wrong = type(wrong)(wrong.group, wrong.target, "2", "1.0.0", other.files)
    lab.publish(wrong)


def _bundle_for_another_group(lab: Lab) -> None:
    other = lab.bundle("8", group="gulf")
    wrong = lab.bundle("2")
    lab.publish(type(wrong)(wrong.group, wrong.target, "2", "1.0.0", other.files))


def _rollback(lab: Lab) -> None:
    old_timestamp = lab.metadata("timestamp.json").read_bytes()
    lab.publish(lab.bundle("1", group="gulf"))  # the repository moves on ...
    lab.device().update()  # ... and the device sees it
    lab.publish(lab.bundle("2"))
    lab.serve("metadata/timestamp.json", old_timestamp)  # then a mirror replays the old state


def _freeze(lab: Lab) -> None:
    # The last timestamp the mirror has was signed three days ago and expired after one.
    lab.publish(lab.bundle("2"), now=datetime.now(UTC) - timedelta(days=3))


def _mix_and_match(lab: Lab) -> None:
    lab.publish(lab.bundle("2"))
    # The new snapshot names the group's role version 2; the mirror serves version 1's bytes under its name.
    lab.serve(f"metadata/2.{GROUP}.json", lab.metadata(f"1.{GROUP}.json").read_bytes())


def _unknown_key(lab: Lab) -> None:
    lab.publish(lab.bundle("2"))
    path = lab.metadata("timestamp.json")
    md = Metadata.from_bytes(path.read_bytes())
    md.signed.version += 1
    md.sign(generate_signer())  # replaces the signatures: only the attacker's key
    path.write_bytes(md.to_bytes())


def _compromised_key_after_rotation(lab: Lab) -> None:
    old = lab.signers["timestamp"]
    new = [generate_signer()]
    lab.repo.rotate_online_key("timestamp", new, root_signers=lab.root_signers, signers=lab.signers)
    lab.device().update()  # the device learns root 2, which names only the new timestamp key
    lab.signers = {**lab.signers, "timestamp": old}  # the attacker holds the old key
    lab.publish(lab.bundle("2"))


def _endless_data(lab: Lab) -> None:
    lab.publish(lab.bundle("2"))
    lab.fetcher.overrides["metadata/timestamp.json"] = lambda: itertools.repeat(b"{" * 65536)


def _agent_too_old(lab: Lab) -> None:
    lab.publish(lab.bundle("2", min_agent="2.0.0"))


def _installed_newer_than_repository(lab: Lab) -> None:
    # A (correctly signed) repository whose newest bundle is older than what runs: never downgrade.
    (lab.tmp / "device" / "models" / "CURRENT").write_text("5")
    (lab.tmp / "device" / "models" / "5").mkdir()


def _forged_intent(lab: Lab) -> None:
    # The hub publishes 2; an outsider edits the group's new targets role to pin 1 and signs with his key.
    lab.publish(lab.bundle("2"))
    path = lab.metadata(f"2.{GROUP}.json")
    md = Metadata.from_bytes(path.read_bytes())
    md.signed.unrecognized_fields[INTENT_FIELD] = {GROUP: {"pinned": "1", "rollback_floor": None}}
    md.sign(generate_signer())
    path.write_bytes(md.to_bytes())


def _unsigned_intent_edit(lab: Lab) -> None:
    # The same edit, signatures left as the hub wrote them: they no longer match the content.
    lab.publish(lab.bundle("2"))
    path = lab.metadata(f"2.{GROUP}.json")
    md = Metadata.from_bytes(path.read_bytes())
    md.signed.unrecognized_fields[INTENT_FIELD] = {GROUP: {"pinned": "1", "rollback_floor": None}}
    path.write_bytes(md.to_bytes())


def _replayed_intent(lab: Lab) -> None:
    # The hub pinned 1 (a rollback), then lifted the pin; a mirror replays the metadata of the pin.
    lab.publish(lab.bundle("2"))
    lab.repo.set_intent(GROUP, UpdateIntent(pinned="1"), lab.signers)
    pinned_timestamp = lab.metadata("timestamp.json").read_bytes()
    lab.repo.set_intent(GROUP, UpdateIntent(pinned=None), lab.signers)
    assert lab.device().update().version == "2"  # the device saw the pin lifted
    lab.serve("metadata/timestamp.json", pinned_timestamp)


def _replayed_intent_role(lab: Lab) -> None:
    # The same, one level down: the pinned group role served under the name of the unpinned one.
    lab.publish(lab.bundle("2"))
    lab.repo.set_intent(GROUP, UpdateIntent(pinned="1"), lab.signers)
    pinned_role = lab.metadata(f"3.{GROUP}.json").read_bytes()
    lab.repo.set_intent(GROUP, UpdateIntent(pinned=None), lab.signers)
    lab.serve(f"metadata/4.{GROUP}.json", pinned_role)


@dataclass(frozen=True)
class Scenario:
    attack: Callable[[Lab], None]
    error: type[errors.PumpopsError]
    says: str
    installed: str = "1"


SCENARIOS = {
    "tampered_bundle_bytes": Scenario(_tampered_bundle_bytes, errors.TamperedArtifactError, "model.onnx"),
    "tampered_manifest": Scenario(_tampered_manifest, errors.TamperedArtifactError, "manifest.json"),
    "bundle_for_another_target": Scenario(_bundle_for_another_target, errors.BundleMismatchError, "target"),
    "bundle_for_another_group": Scenario(_bundle_for_another_group, errors.BundleMismatchError, "group"),
    "rollback_to_older_metadata": Scenario(_rollback, errors.RollbackError, "older metadata"),
    "rollback_below_installed": Scenario(
        _installed_newer_than_repository, errors.RollbackError, "older than the installed", installed="5"
    ),
    "freeze_expired_timestamp": Scenario(_freeze, errors.StaleMetadataError, "expired"),
    "mix_and_match": Scenario(_mix_and_match, errors.MixAndMatchError, "different moments"),
    "signed_by_unknown_key": Scenario(_unknown_key, errors.UntrustedSignatureError, "timestamp"),
    "compromised_key_after_rotation": Scenario(
        _compromised_key_after_rotation, errors.UntrustedSignatureError, "timestamp"
    ),
    "endless_data": Scenario(_endless_data, errors.OversizedDownloadError, "more data than allowed"),
    "minimum_agent_above_device": Scenario(
        _agent_too_old, errors.IncompatibleBundleError, "needs agent 2.0.0"
    ),
    "intent_signed_by_unknown_key": Scenario(_forged_intent, errors.UntrustedSignatureError, GROUP),
    "intent_edited_without_signing": Scenario(_unsigned_intent_edit, errors.UntrustedSignatureError, GROUP),
    "intent_replayed_after_unpin": Scenario(
        _replayed_intent, errors.RollbackError, "older metadata", installed="2"
    ),
    "intent_role_replayed_under_new_name": Scenario(
        _replayed_intent_role, errors.MixAndMatchError, "different moments"
    ),
}


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    lab = Lab(tmp_path)
    lab.publish(lab.bundle("1"))
    assert lab.device().update().version == "1"
    return lab


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_update_rejects_attack_and_installs_nothing(lab: Lab, name: str) -> None:
    scenario = SCENARIOS[name]
    scenario.attack(lab)
    device = lab.device()
    with pytest.raises(scenario.error, match=scenario.says) as caught:
        device.update()
    assert len(str(caught.value)) > 20  # a sentence, not a code
    installed = device.installed()
    assert installed is not None
    assert installed.version == scenario.installed
    models = lab.tmp / "device" / "models"
    assert sorted(p.name for p in models.iterdir()) == sorted(
        ["CURRENT", scenario.installed, *(["1"] if scenario.installed != "1" else [])]
    )


def test_update_installs_newer_bundle_after_a_clean_publish(lab: Lab) -> None:
    lab.publish(lab.bundle("2"))
    installed = lab.device().update()
    assert (installed.version, installed.changed) == ("2", True)
    assert (installed.folder / "model.onnx").read_bytes() == b"onnx model north-sea x86-64-ipc 2"


def test_update_offline_keeps_the_installed_model(lab: Lab) -> None:
    device = lab.device()
    lab.fetcher.overrides["metadata/timestamp.json"] = _unreachable
    with pytest.raises(errors.DownloadError, match="retry later"):
        device.update()
    assert device.installed() is not None
    assert (lab.tmp / "device" / "models" / "1" / "model.onnx").exists()


def _unreachable() -> itertools.repeat[bytes]:
    from tuf.api.exceptions import SlowRetrievalError

    raise SlowRetrievalError("connection timed out")


def test_update_to_an_older_desired_version_only_when_the_hub_signs_it(lab: Lab) -> None:
    lab.publish(lab.bundle("2"), lab.bundle("3"))
    device = lab.device()
    assert device.update().version == "3"
    hinted = device.update("2")  # an MQTT desired naming an older release: not the hub's signed word
    assert (hinted.version, hinted.changed) == ("3", False)
    assert hinted.hint_refused is not None
    assert "downgrade to 2 not signed by the hub" in hinted.hint_refused
    lab.repo.set_intent(GROUP, UpdateIntent(pinned="2", reason="rollout r-1 rolls back"), lab.signers)
    back = device.update("2")  # the same hint, now that the hub signed the rollback
    assert (back.version, back.changed, back.hint_refused) == ("2", True, None)
    assert (back.folder / "model.onnx").read_bytes() == b"onnx model north-sea x86-64-ipc 2"
    nine = device.update("9")  # a version that does not exist: reported, the pin still holds
    assert (nine.version, nine.changed) == ("2", False)
    assert nine.hint_refused is not None
    assert "signed intent pins group north-sea, target x86-64-ipc to 2" in nine.hint_refused
