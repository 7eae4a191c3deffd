"""Publishing bundles into the hub's TUF repository, with audit entries and events.

The thin layer between the CLI and :mod:`pumpops.release._tuf`: finds the
bundles under a folder (one bundle, or a release's ``<group>/<target>/<version>``
tree), verifies each with :func:`~pumpops.schema.read_bundle`, turns
them into :class:`~pumpops.release._tuf.PublishedTarget`, publishes, then
records ``release.published`` in the audit trail and as an event.
:func:`sign_intent` signs the hub's intent for a group (a pinned version, a
rollback floor) into the same repository with the same online keys and
records ``release.intent_signed``; :class:`SignedIntentWriter` is that, shaped
as the rollout service's :class:`~pumpops.rollout.IntentSigner` port.
May import: errors, settings, store, registry events, ``_bundle``, ``_keys``, ``_intent``, ``_tuf``.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pumpops.errors import NotFoundError
from pumpops.release._intent import UpdateIntent
from pumpops.release._keys import ONLINE_ROLES, KeyStore
from pumpops.release._tuf import ExpiryDays, PublishedFile, PublishedTarget, TufRepository
from pumpops.schema import MANIFEST_FILE, read_bundle
from pumpops.settings import Settings

__all__ = [
    "SignedIntentWriter",
    "bundles_of",
    "bundles_under",
    "export_repository",
    "keystore",
    "online_signers",
    "open_repository",
    "publish_bundles",
    "repository_folder",
    "sign_intent",
]


def repository_folder(settings: Settings) -> Path:
    """``<workspace>/tuf/repository``."""
    return settings.workspace / "tuf" / "repository"


def keystore(settings: Settings) -> KeyStore:
    """The workspace's key store (``<workspace>/keys``)."""
    return KeyStore(settings.workspace / "keys")


def expiry_from(settings: Settings) -> ExpiryDays:
    """Signature lifetimes from the settings' ``[tuf]`` section."""
    tuf = settings.tuf
    return ExpiryDays(
        root=tuf.root_expiry_days,
        targets=tuf.targets_expiry_days,
        snapshot=tuf.snapshot_expiry_days,
        timestamp=tuf.timestamp_expiry_days,
    )


def open_repository(settings: Settings) -> TufRepository:
    """The workspace's repository.

    Raises:
        NotFoundError: ``pumpops keys init`` has not been run.
    """
    repo = TufRepository(repository_folder(settings), expiry=expiry_from(settings))
    if not repo.exists():
        raise NotFoundError(f"no TUF repository in {repo.folder}: run 'pumpops keys init'")
    return repo


def online_signers(keys: KeyStore) -> dict[str, list[Any]]:
    """The online signers of targets, snapshot and timestamp."""
    return {role: keys.online_signers(role) for role in ONLINE_ROLES}


def bundles_under(folder: Path) -> list[PublishedTarget]:
    """Every bundle under ``folder`` (itself a bundle, or a tree of them), verified.

    Raises:
        NotFoundError: no ``manifest.json`` under ``folder``.
        IntegrityError: a bundle's files do not match its manifest.
    """
    manifests = sorted(folder.rglob(MANIFEST_FILE)) if folder.is_dir() else []
    if not manifests:
        raise NotFoundError(f"no bundle ({MANIFEST_FILE}) under {folder}")
    found = []
    for path in manifests:
        bundle = read_bundle(path.parent)
        m = bundle.manifest
        names = [MANIFEST_FILE, *sorted(m.files)]
        found.append(
            PublishedTarget(
                group=m.group,
                target=m.target.id,
                version=str(m.model_version),
                minimum_agent_version=m.min_agent_version,
                files=tuple(PublishedFile(n, bundle.folder / n) for n in names),
                custom={"model_name": m.model_name, "manifest_sha256": bundle.manifest_sha256},
            )
        )
    return found


def bundles_of(settings: Settings, ref: str) -> list[PublishedTarget]:
    """The bundles of a release number (from ``pumpops release list``) or under a folder.

    Raises:
        NotFoundError: no such release or folder, or no bundle in it.
        IntegrityError: a bundle's files do not match its manifest.
    """
    path = Path(ref)
    if path.exists() or not ref.isdigit():
        return bundles_under(path)
    from pumpops.store import open_store  # noqa: PLC0415 - SQLAlchemy only for a release number

    with open_store(settings.resolved_database_url) as store:
        release = store.get_release(int(ref))
    if release is None:
        raise NotFoundError(f"no release {ref}: see 'pumpops release list'")
    found: list[PublishedTarget] = []
    for target in release.targets:
        found.extend(bundles_under(Path(release.bundle_root) / release.group / target / str(release.version)))
    return found


def publish_bundles(
    settings: Settings, bundles: Sequence[PublishedTarget], *, actor: str, store: Any | None = None
) -> dict[str, int]:
    """Publish bundles with the workspace's online keys; audit and emit ``release.published``.

    Args:
        settings: the workspace settings.
        bundles: what to publish.
        actor: who publishes (audit trail).
        store: an open store to record in; None opens the workspace's.

    Returns:
        The metadata files written and their sizes in bytes.
    """
    repo = open_repository(settings)
    head = {"audit_head": _audit_head(settings, store)}  # the audit trail's head, anchored (ADR 0013)
    bundles = [replace(b, custom={**b.custom, **head}) for b in bundles]
    sizes = repo.publish(bundles, online_signers(keystore(settings)))
    payload = {
        "targets": [f"models/{b.group}/{b.target}/{b.version}" for b in bundles],
        "snapshot_version": repo.timestamp().signed.snapshot_meta.version,
        "metadata_bytes": sizes,
    }
    subject = ",".join(sorted({f"{b.group}/{b.version}" for b in bundles}))
    _record(settings, store, actor, subject, payload)
    return sizes


def sign_intent(
    settings: Settings,
    group: str,
    intent: UpdateIntent,
    *,
    actor: str,
    store: Any | None = None,
) -> UpdateIntent | None:
    """Sign the hub's intent for ``group`` with the workspace's online keys; audit and emit it.

    The intent goes into the group's targets role, then snapshot and
    timestamp are re-signed: devices read it at their next update check.

    Args:
        settings: the workspace settings.
        group: the device group.
        intent: the pinned version (None: the newest signed) and the rollback floor.
        actor: who decides (audit trail).
        store: an open store to record in; None opens the workspace's.

    Returns:
        The intent as signed, or None: the repository already said the same (nothing written).

    Raises:
        NotFoundError: no repository, or the pinned version is not published for the group.
        ConfigError: a bad group name, version, or a pin below the floor.
    """
    repo = open_repository(settings)
    sizes = repo.set_intent(group, intent, online_signers(keystore(settings)))
    if sizes is None:
        return None
    signed = repo.intent(group)
    payload = {
        **signed.to_dict(),
        "group": group,
        "snapshot_version": repo.timestamp().signed.snapshot_meta.version,
        "metadata_bytes": sizes,
    }
    _record(settings, store, actor, f"group/{group}", payload, action="release.intent_signed")
    return signed


class SignedIntentWriter:
    """Pins a group through the signed repository: the rollout service's ``IntentSigner``.

    Args:
        settings: the workspace settings (its repository and online keys).
        store: the open store the audit entries and events go to.
    """

    def __init__(self, settings: Settings, store: Any) -> None:
        self._settings = settings
        self._store = store

    def pin(self, group: str, version: str | None, *, actor: str, reason: str) -> bool:
        """Sign that ``group`` runs ``version`` (None: lift the pin); keep the rollback floor.

        Returns:
            Whether the repository changed.

        Raises:
            NotFoundError: no repository, or ``version`` is not published for the group.
        """
        floor = open_repository(self._settings).intent(group).rollback_floor
        intent = UpdateIntent(pinned=version, rollback_floor=floor, reason=reason)
        return sign_intent(self._settings, group, intent, actor=actor, store=self._store) is not None


def _audit_head(settings: Settings, store: Any | None) -> dict[str, Any]:
    from pumpops.audit import current_anchor, workspace_signer  # noqa: PLC0415 - cryptography on first use
    from pumpops.store import open_store  # noqa: PLC0415

    key = workspace_signer(settings.workspace).key
    if store is not None:
        return current_anchor(store, key)
    with open_store(settings.resolved_database_url) as opened:
        return current_anchor(opened, key)


def _record(
    settings: Settings,
    store: Any | None,
    actor: str,
    subject: str,
    payload: dict[str, Any],
    *,
    action: str = "release.published",
) -> None:
    from pumpops.audit import workspace_signer  # noqa: PLC0415
    from pumpops.registry import EventSink  # noqa: PLC0415 - store loads only when recording
    from pumpops.store import open_store  # noqa: PLC0415

    if store is not None:
        store.append_audit(actor, action, subject, payload)
        EventSink(store, topic_prefix=settings.topic_prefix).emit(action, subject, payload)
        return
    signer = workspace_signer(settings.workspace)  # audit entries are signed (ADR 0013)
    with open_store(settings.resolved_database_url, audit_signer=signer) as opened:
        opened.append_audit(actor, action, subject, payload)
        EventSink(opened, topic_prefix=settings.topic_prefix).emit(action, subject, payload)


def export_repository(settings: Settings, dest: Path) -> int:
    """Copy the repository (metadata and targets) to ``dest`` for a site mirror or removable media.

    The timestamp is copied last, so a mirror read while copying still sees a
    consistent older repository.

    Returns:
        The number of files copied.
    """
    repo = open_repository(settings)
    count = 0
    dest.mkdir(parents=True, exist_ok=True)
    for sub in ("targets", "metadata"):
        for path in sorted((repo.folder / sub).rglob("*")):
            if path.is_file() and not path.name.startswith(".") and path.name != "timestamp.json":
                out = dest / path.relative_to(repo.folder)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, out)
                count += 1
    shutil.copy2(repo.metadata_dir / "timestamp.json", dest / "metadata" / "timestamp.json")
    return count + 1
