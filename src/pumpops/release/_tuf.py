"""The hub's TUF repository on disk: create, publish bundles as targets, rotate keys.

Layout under ``<workspace>/tuf/repository/`` (consistent snapshots)::

    metadata/1.root.json, 2.root.json, ...   every root version, kept forever
    metadata/<N>.targets.json                top-level targets (delegates one role per group)
    metadata/<N>.<group>.json                the targets of one device group
    metadata/<N>.snapshot.json
    metadata/timestamp.json                  the only file overwritten in place
    targets/models/<group>/<target>/<version>/<sha256>.<file>

Publishing writes target files first, then the changed targets roles, then
snapshot, then timestamp (each with ``os.replace``), so a client reading while
the hub publishes sees the old or the new repository, never a mix. The current
state is always read back from ``timestamp.json``: there is no second index.
Per-group delegation (``DelegatedRole(name=group, terminating=True,
paths=["models/<group>/*/*/*"])``) keeps what a device downloads after a
publish to its own group's list instead of the whole fleet's.

The hub's *intent* for a group (:class:`UpdateIntent`: a pinned version, a
rollback floor) is signed into the same targets role, as the custom field
``x-pumpops-intent`` (``{"<group>": {...}}``), and published through
snapshot and timestamp like a release: a device installs a version older
than the one it runs only when this signed field names it, never because an
MQTT ``desired`` message asked (see docs/security.md, "Signed intent for updates").
May import: errors, ``_keys``, ``_intent``, python-tuf, securesystemslib, the stdlib.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from pumpops._atomic import write_atomic
from pumpops.errors import ConfigError, IntegrityError, NotFoundError
from pumpops.release._intent import INTENT_FIELD, UpdateIntent

__all__ = [
    "ExpiryDays",
    "PublishedFile",
    "PublishedTarget",
    "TufRepository",
    "target_path",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SERIALIZER = JSONSerializer(compact=True)  # devices download these: no indentation


@dataclass(frozen=True)
class ExpiryDays:
    """How long each role's signature is valid, in days (the clients refuse expired metadata)."""

    root: int = 365
    targets: int = 90
    snapshot: int = 7
    timestamp: int = 1


@dataclass(frozen=True)
class PublishedFile:
    """One file of a bundle to publish: its name inside the bundle and where it is now."""

    name: str
    source: Path


@dataclass(frozen=True)
class PublishedTarget:
    """One bundle to publish as targets ``models/<group>/<target>/<version>/<file>``.

    Attributes:
        group: the device group.
        target: the target platform profile.
        version: the model version (the bundle folder's name).
        minimum_agent_version: the oldest agent that can run it.
        files: the bundle's files (``manifest.json`` and the model).
        custom: extra custom metadata (model name, ...), merged into every file's.
    """

    group: str
    target: str
    version: str
    minimum_agent_version: str
    files: tuple[PublishedFile, ...]
    custom: Mapping[str, Any] = field(default_factory=dict)


def _loose_version(text: str) -> tuple[int, ...]:
    """A sort key for any published version name (dotted integers sort as numbers)."""
    return tuple(int(part) if part.isdigit() else -1 for part in text.split("."))


def target_path(group: str, target: str, version: str, name: str) -> str:
    """The TUF target path of one bundle file.

    Raises:
        ConfigError: a part is empty or contains characters other than letters, digits, ``._-``.

    >>> target_path("north-sea", "x86-64-ipc", "7", "model.onnx")
    'models/north-sea/x86-64-ipc/7/model.onnx'
    """
    for label, part in (("group", group), ("target", target), ("version", version), ("file", name)):
        if not _NAME.match(part):
            raise ConfigError(f"{label} {part!r} must be 1-64 letters, digits, '.', '_' or '-'")
    return f"models/{group}/{target}/{version}/{name}"


class TufRepository:
    """A TUF repository in a folder, written with ``tuf.api.metadata``.

    Args:
        folder: the repository folder (``metadata/`` and ``targets/`` inside).
        expiry: signature lifetimes per role.
        now: the clock (tests pass a fixed or shifted one).
    """

    def __init__(
        self, folder: Path, *, expiry: ExpiryDays | None = None, now: datetime | None = None
    ) -> None:
        self.folder = folder
        self.metadata_dir = folder / "metadata"
        self.targets_dir = folder / "targets"
        self.expiry = expiry or ExpiryDays()
        self._now = now

    # ----- reading the current state -------------------------------------------------

    def exists(self) -> bool:
        """Whether the repository has been created."""
        return (self.metadata_dir / "timestamp.json").exists()

    def _clock(self) -> datetime:
        return (self._now or datetime.now(UTC)).replace(microsecond=0)

    def _expires(self, role: str) -> datetime:
        return self._clock() + timedelta(days=getattr(self.expiry, role))

    def _read(self, filename: str) -> Metadata[Any]:
        path = self.metadata_dir / filename
        if not path.exists():
            raise NotFoundError(f"no TUF repository metadata {path}: run 'pumpops keys init'")
        try:
            return Metadata.from_bytes(path.read_bytes())
        except Exception as exc:  # tuf raises DeserializationError and friends
            raise IntegrityError(f"{path} is not valid TUF metadata: {exc}") from exc

    def root_version(self) -> int:
        """The newest root version on disk."""
        versions = [int(p.name.split(".", 1)[0]) for p in self.metadata_dir.glob("*.root.json")]
        if not versions:
            raise NotFoundError(f"no root metadata in {self.metadata_dir}: run 'pumpops keys init'")
        return max(versions)

    def root_bytes(self, version: int = 1) -> bytes:
        """The bytes of ``<version>.root.json``: what a device is provisioned with (its trust anchor)."""
        return (self.metadata_dir / f"{version}.root.json").read_bytes()

    def root(self) -> Metadata[Root]:
        """The newest root."""
        return self._read(f"{self.root_version()}.root.json")

    def timestamp(self) -> Metadata[Timestamp]:
        """The current timestamp."""
        return self._read("timestamp.json")

    def snapshot(self) -> Metadata[Snapshot]:
        """The current snapshot (the one the timestamp names)."""
        return self._read(f"{self.timestamp().signed.snapshot_meta.version}.snapshot.json")

    def targets(self, role: str = "targets") -> Metadata[Targets]:
        """The current version of a targets role (top-level or a group's)."""
        meta = self.snapshot().signed.meta.get(f"{role}.json")
        if meta is None:
            raise NotFoundError(f"the repository has no role {role!r}")
        return self._read(f"{meta.version}.{role}.json")

    def list_targets(self) -> dict[str, TargetFile]:
        """Every target path the repository signs, over all roles."""
        top = self.targets()
        found = dict(top.signed.targets)
        if top.signed.delegations and top.signed.delegations.roles:
            for name in top.signed.delegations.roles:
                found.update(self.targets(name).signed.targets)
        return found

    # ----- writing -------------------------------------------------------------------

    def _write(self, md: Metadata[Any], filename: str) -> int:
        data = md.to_bytes(_SERIALIZER)
        write_atomic(self.metadata_dir / filename, data)
        return len(data)

    @staticmethod
    def _sign(md: Metadata[Any], signers: Sequence[Signer]) -> None:
        md.signatures.clear()
        for signer in signers:
            md.sign(signer, append=True)

    @classmethod
    def create(
        cls,
        folder: Path,
        *,
        root_signers: Sequence[Signer],
        online_signers: Mapping[str, Sequence[Signer]],
        thresholds: Mapping[str, int] | None = None,
        delegate_per_group: bool = True,
        expiry: ExpiryDays | None = None,
        now: datetime | None = None,
    ) -> TufRepository:
        """Create an empty repository: root v1, targets, snapshot and timestamp v1.

        Args:
            folder: the repository folder; must not hold a repository yet.
            root_signers: the root keys (all sign root v1).
            online_signers: the keys of targets, snapshot and timestamp.
            thresholds: signatures required per role (default 1; at most the number of keys).
            delegate_per_group: delegate one targets role per device group (recommended).
            expiry: signature lifetimes.
            now: the clock.

        Raises:
            ConfigError: the repository exists, or a threshold exceeds the keys given.
        """
        repo = cls(folder, expiry=expiry, now=now)
        if repo.exists():
            raise ConfigError(f"a TUF repository already exists in {folder}")
        thresholds = dict(thresholds or {})
        root = Root(expires=repo._expires("root"), consistent_snapshot=True)
        for role, signers in (("root", root_signers), *online_signers.items()):
            threshold = thresholds.get(role, 1)
            if not 1 <= threshold <= len(signers):
                raise ConfigError(f"threshold {threshold} for {role} needs as many keys; got {len(signers)}")
            root.roles[role].threshold = threshold
            for signer in signers:
                root.add_key(signer.public_key, role)
        root_md = Metadata(root)
        repo._sign(root_md, root_signers)
        targets_md = Metadata(Targets(expires=repo._expires("targets")))
        if delegate_per_group:
            targets_md.signed.delegations = Delegations(keys={}, roles={})
        repo._sign(targets_md, online_signers["targets"])
        snapshot_md = Metadata(Snapshot(expires=repo._expires("snapshot")))
        repo._sign(snapshot_md, online_signers["snapshot"])
        timestamp_md = Metadata(Timestamp(expires=repo._expires("timestamp")))
        repo._sign(timestamp_md, online_signers["timestamp"])
        repo.targets_dir.mkdir(parents=True, exist_ok=True)
        repo._write(root_md, "1.root.json")
        repo._write(targets_md, "1.targets.json")
        repo._write(snapshot_md, "1.snapshot.json")
        repo._write(timestamp_md, "timestamp.json")
        return repo

    def _commit(
        self,
        changed: Mapping[str, Metadata[Targets]],
        signers: Mapping[str, Sequence[Signer]],
        *,
        root: Metadata[Root] | None = None,
    ) -> dict[str, int]:
        """Bump, sign and write changed targets roles, then snapshot, then timestamp."""
        snapshot = self.snapshot()
        timestamp = self.timestamp()
        sizes: dict[str, int] = {}
        # Delegated roles first: top-level targets may list their keys, snapshot lists their versions.
        for name, md in sorted(changed.items(), key=lambda item: item[0] == "targets"):
            if f"{name}.json" in snapshot.signed.meta:  # a new group's role starts at version 1
                md.signed.version += 1
            md.signed.expires = self._expires("targets")
            self._sign(md, signers["targets"])
            sizes[f"{md.signed.version}.{name}.json"] = self._write(md, f"{md.signed.version}.{name}.json")
            snapshot.signed.meta[f"{name}.json"] = MetaFile(version=md.signed.version)
        if root is not None:
            self._write(root, f"{root.signed.version}.root.json")
        snapshot.signed.version += 1
        snapshot.signed.expires = self._expires("snapshot")
        self._sign(snapshot, signers["snapshot"])
        name = f"{snapshot.signed.version}.snapshot.json"
        sizes[name] = self._write(snapshot, name)
        timestamp.signed.snapshot_meta = MetaFile(version=snapshot.signed.version)
        timestamp.signed.version += 1
        timestamp.signed.expires = self._expires("timestamp")
        self._sign(timestamp, signers["timestamp"])
        sizes["timestamp.json"] = self._write(timestamp, "timestamp.json")
        return sizes

    def publish(
        self, bundles: Sequence[PublishedTarget], signers: Mapping[str, Sequence[Signer]]
    ) -> dict[str, int]:
        """Add bundles' files as targets with custom metadata and re-sign targets → snapshot → timestamp.

        Args:
            bundles: what to publish.
            signers: the online signers per role (targets, snapshot, timestamp).

        Returns:
            The metadata files written and their sizes in bytes.

        Raises:
            ConfigError: a path part is invalid, or the same path is already published with other bytes.
        """
        top = self.targets()
        delegated = top.signed.delegations is not None
        changed: dict[str, Metadata[Targets]] = {}
        for bundle in bundles:
            role = bundle.group if delegated else "targets"
            if role not in changed:
                changed[role] = self._role_for_group(top, bundle.group) if delegated else top
            md = changed[role]
            for item in bundle.files:
                path = target_path(bundle.group, bundle.target, bundle.version, item.name)
                custom = {
                    **bundle.custom,
                    "group": bundle.group,
                    "target": bundle.target,
                    "model_version": bundle.version,
                    "minimum_agent_version": bundle.minimum_agent_version,
                }
                hashed = TargetFile.from_file(path, str(item.source), ["sha256"])
                info = TargetFile(hashed.length, hashed.hashes, path, unrecognized_fields={"custom": custom})
                old = md.signed.targets.get(path)
                if old is not None and old.hashes != info.hashes:
                    raise ConfigError(
                        f"{path} is already published with other bytes: publish a new model version"
                    )
                digest = info.hashes["sha256"]
                dest = self.targets_dir / Path(path).parent / f"{digest}.{item.name}"
                if not dest.exists():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    tmp = dest.with_name(f".{dest.name}.tmp")
                    shutil.copyfile(item.source, tmp)
                    os.replace(tmp, dest)
                md.signed.targets[path] = info
        known = top.signed.delegations.roles if top.signed.delegations else None
        if delegated and any(name not in (known or {}) for name in changed):
            changed["targets"] = top
        if delegated:
            for name in list(changed):
                if name != "targets":
                    self._delegate(top, name, signers["targets"])
        return self._commit(changed, signers)

    # ----- the hub's signed intent per group ------------------------------------------

    def _intent_role(self, group: str) -> tuple[Metadata[Targets], Metadata[Targets], str]:
        """(top-level targets, the role that signs ``group``'s targets, its name); a new role if none."""
        target_path(group, "t", "1", "f")  # checks the group's name
        top = self.targets()
        if top.signed.delegations is None:
            return top, top, "targets"
        return top, self._role_for_group(top, group), group

    def intent(self, group: str) -> UpdateIntent:
        """The signed intent for ``group`` (an empty one if the hub never signed any).

        Raises:
            ConfigError: the group's name is invalid.
            IntegrityError: the stored intent is malformed.
        """
        _, md, role = self._intent_role(group)
        stored = md.signed.unrecognized_fields.get(INTENT_FIELD) or {}
        if not isinstance(stored, dict):
            raise IntegrityError(f"the role {role} holds a malformed {INTENT_FIELD}: {stored!r}")
        found = stored.get(group)
        return UpdateIntent() if found is None else UpdateIntent.from_dict(found)

    def published_versions(self, group: str) -> set[str]:
        """The model versions published for ``group`` (over all its targets)."""
        _, md, _ = self._intent_role(group)
        prefix = f"models/{group}/"
        return {p.split("/")[3] for p in md.signed.targets if p.startswith(prefix) and p.count("/") == 4}

    def set_intent(
        self, group: str, intent: UpdateIntent, signers: Mapping[str, Sequence[Signer]]
    ) -> dict[str, int] | None:
        """Sign ``intent`` into the group's targets role and publish it through snapshot and timestamp.

        Args:
            group: the device group.
            intent: the new intent (its ``issued`` is set to now).
            signers: the online signers per role (targets, snapshot, timestamp).

        Returns:
            The metadata files written and their sizes, or None: the signed intent
            already pins the same version (or none) with the same floor (nothing written).

        Raises:
            ConfigError: the group's name is invalid.
            NotFoundError: the pinned version is not published for the group.
        """
        top, md, role = self._intent_role(group)
        stored = md.signed.unrecognized_fields.get(INTENT_FIELD) or {}
        if not isinstance(stored, dict):
            raise IntegrityError(f"the role {role} holds a malformed {INTENT_FIELD}: {stored!r}")
        fields = dict(stored)
        old = fields.get(group)
        current = UpdateIntent() if old is None else UpdateIntent.from_dict(old)
        if (current.pinned, current.rollback_floor) == (intent.pinned, intent.rollback_floor):
            return None
        if intent.pinned is not None:
            published = self.published_versions(group)
            if intent.pinned not in published:
                have = ", ".join(sorted(published, key=_loose_version)) or "none"
                raise NotFoundError(
                    f"version {intent.pinned} is not published for group {group} (published: {have}); "
                    "a device can only be pinned to a signed bundle: publish it first"
                )
        issued = self._clock().isoformat().replace("+00:00", "Z")
        fields[group] = UpdateIntent(intent.pinned, intent.rollback_floor, issued, intent.reason).to_dict()
        md.signed.unrecognized_fields[INTENT_FIELD] = fields
        changed = {role: md}
        if role != "targets":
            delegations = top.signed.delegations
            if delegations is None or delegations.roles is None or group not in delegations.roles:
                self._delegate(top, group, signers["targets"])
                changed["targets"] = top
        return self._commit(changed, signers)

    def _role_for_group(self, top: Metadata[Targets], group: str) -> Metadata[Targets]:
        roles = top.signed.delegations.roles if top.signed.delegations else None
        if roles and group in roles:
            return self.targets(group)
        return Metadata(Targets(version=1, expires=self._expires("targets")))

    @staticmethod
    def _delegate(top: Metadata[Targets], group: str, signers: Sequence[Signer]) -> None:
        delegations = top.signed.delegations
        if delegations is None or delegations.roles is None:
            raise ConfigError("this repository does not delegate per group")
        if group in delegations.roles:
            return
        role = DelegatedRole(
            name=group,
            keyids=[],
            threshold=1,
            terminating=True,
            paths=[f"models/{group}/*/*/*"],
        )
        delegations.roles[group] = role
        for signer in signers:
            top.signed.add_key(signer.public_key, group)
        role.threshold = len(signers) if signers else 1

    def refresh_timestamp(self, signers: Mapping[str, Sequence[Signer]]) -> None:
        """Re-sign snapshot and timestamp with new expiry dates (run well before the timestamp expires)."""
        self._commit({}, signers)

    def rotate_online_key(
        self,
        role: str,
        new_signers: Sequence[Signer],
        *,
        root_signers: Sequence[Signer],
        signers: Mapping[str, Sequence[Signer]],
    ) -> int:
        """Replace an online role's keys: a new root version signed by the root key, then re-sign.

        Args:
            role: targets, snapshot or timestamp.
            new_signers: the role's new keys.
            root_signers: the (offline) root keys that sign the new root.
            signers: the current online signers of every role (the rotated role's old ones are unused).

        Returns:
            The new root version.
        """
        root = self.root()
        for keyid in list(root.signed.roles[role].keyids):
            root.signed.revoke_key(keyid, role)
        for signer in new_signers:
            root.signed.add_key(signer.public_key, role)
        root.signed.roles[role].threshold = min(root.signed.roles[role].threshold, len(new_signers))
        root.signed.version += 1
        root.signed.expires = self._expires("root")
        self._sign(root, root_signers)
        current = {**signers, role: new_signers}
        changed: dict[str, Metadata[Targets]] = {}
        if role == "targets":
            top = self.targets()
            changed["targets"] = top
            delegations = top.signed.delegations
            if delegations is not None and delegations.roles:
                for name in delegations.roles:
                    for keyid in list(delegations.roles[name].keyids):
                        top.signed.revoke_key(keyid, name)
                    for signer in new_signers:
                        top.signed.add_key(signer.public_key, name)
                    changed[name] = self.targets(name)
        self._commit(changed, current, root=root)
        return root.signed.version

    def rotate_root(
        self,
        old_signers: Sequence[Signer],
        new_signers: Sequence[Signer],
        *,
        threshold: int | None = None,
    ) -> int:
        """Write root N+1 with new root keys, signed by the old and the new keys.

        A device that trusts root N accepts N+1 because a threshold of N's keys
        signed it, and N+1 is self-consistent because its own keys signed it.

        Returns:
            The new root version.
        """
        root = self.root()
        for keyid in list(root.signed.roles["root"].keyids):
            root.signed.revoke_key(keyid, "root")
        for signer in new_signers:
            root.signed.add_key(signer.public_key, "root")
        root.signed.roles["root"].threshold = threshold or len(new_signers)
        root.signed.version += 1
        root.signed.expires = self._expires("root")
        self._sign(root, [*old_signers, *new_signers])
        self._write(root, f"{root.signed.version}.root.json")
        return root.signed.version
