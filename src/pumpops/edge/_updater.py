"""The edge updater: find, download, verify (TUF) and atomically install the newest bundle.

Each update cycle builds a new ``tuf.ngclient.Updater`` (python-tuf refreshes
once per instance), refreshes the top-level metadata, lists the targets of the
device's group, picks the newest version for (group, target), downloads its
files into a staging folder, checks the manifest inside against the device
(group, target, minimum agent version, file hashes) and only then moves the
folder into ``<install_dir>/<version>`` and points ``CURRENT`` at it with
``os.replace``. Whatever fails, nothing is installed and the model already
installed stays: an expired timestamp while offline is an error to report,
never a reason to delete the running model.

Which version: :func:`choose_version` decides, without I/O, from the
versions the group's verified targets metadata signs, the hub's *signed
intent* in that same metadata (custom field ``x-pumpops-intent``: a pinned
version, a rollback floor), the running version and the MQTT ``desired``
hint. A hint may move the device to a signed version that is not older than
the one it runs; only the signed intent may move it back. A hint that names
a version the repository does not have, or an unsigned downgrade, is
refused with a reason (:attr:`Installed.hint_refused`) and the device takes
the newest signed version instead, so a bogus hint never freezes updates.

python-tuf's exceptions are converted at this boundary into
:mod:`pumpops.errors` classes (see :func:`convert_tuf_error`).
May import: schema, errors, ``_atomic``, ``_digest``, numpy, onnxruntime, python-tuf and the stdlib only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import Metadata, Targets
from tuf.ngclient import FetcherInterface, Updater, UpdaterConfig

from pumpops._atomic import write_atomic
from pumpops._digest import sha256_file
from pumpops.edge._fetchers import FOLDER_BASE_URL, FolderFetcher
from pumpops.edge._recalibration import RECALIBRATE_FIELD, signed_orders
from pumpops.errors import (
    BundleMismatchError,
    DownloadError,
    IncompatibleBundleError,
    IntegrityError,
    MixAndMatchError,
    NotFoundError,
    OversizedDownloadError,
    PumpopsError,
    RollbackError,
    StaleMetadataError,
    TamperedArtifactError,
    UntrustedSignatureError,
)

__all__ = [
    "CURRENT_FILE",
    "INTENT_FIELD",
    "BundleInfo",
    "Choice",
    "EdgeUpdater",
    "Installed",
    "SignedIntent",
    "choose_version",
    "convert_tuf_error",
    "parse_version",
]

#: The file in the install folder naming the installed version (replaced atomically).
CURRENT_FILE = "CURRENT"
#: The custom field where the hub signs its intent per group (= ``pumpops.release.INTENT_FIELD``).
INTENT_FIELD = "x-pumpops-intent"
_MANIFEST = "manifest.json"


def parse_version(text: str) -> tuple[int, ...]:
    """A version string as a comparable tuple of integers.

    >>> parse_version("1.10.2") > parse_version("1.9")
    True
    >>> parse_version("7")
    (7,)
    """
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        raise BundleMismatchError(f"version {text!r} is not dotted integers") from None


def convert_tuf_error(exc: Exception, during: str) -> PumpopsError:
    """The pumpops error for a python-tuf exception (raise it ``from exc``).

    Args:
        exc: what python-tuf raised.
        during: what was being done, for the message ("refreshing metadata", ...).

    >>> from tuf.api.exceptions import ExpiredMetadataError
    >>> type(convert_tuf_error(ExpiredMetadataError("timestamp.json is expired"), "refresh")).__name__
    'StaleMetadataError'
    """
    text = f"{during}: {exc}"
    if isinstance(exc, tuf_exc.BadVersionNumberError) and "must be >=" not in str(exc):
        return MixAndMatchError(f"{text} (metadata files from different moments of the repository)")
    for tuf_class, ours, hint in _CONVERSIONS:
        if isinstance(exc, tuf_class):
            return ours(f"{text} ({hint})")
    return DownloadError(text)


# First match wins: specific python-tuf classes before their bases.
_CONVERSIONS: tuple[tuple[type[Exception], type[PumpopsError], str], ...] = (
    (
        tuf_exc.ExpiredMetadataError,
        StaleMetadataError,
        "freeze attack, or the hub stopped re-signing; model kept",
    ),
    (
        tuf_exc.UnsignedMetadataError,
        UntrustedSignatureError,
        "signed by a key the trusted root does not name",
    ),
    (tuf_exc.BadVersionNumberError, RollbackError, "the repository replays older metadata"),
    (
        tuf_exc.LengthOrHashMismatchError,
        TamperedArtifactError,
        "bytes differ from what the repository signed",
    ),
    (
        tuf_exc.DownloadLengthMismatchError,
        OversizedDownloadError,
        "the repository sent more data than allowed",
    ),
    (tuf_exc.RepositoryError, IntegrityError, "the repository's metadata is invalid"),
    (tuf_exc.DownloadError, DownloadError, "repository unreachable or a file is missing; retry later"),
)


@dataclass(frozen=True)
class SignedIntent:
    """The hub's intent for this device's group, read from verified targets metadata.

    Attributes:
        pinned: run exactly this version (the hub signed a rollback or a hold), or None.
        rollback_floor: never install a version below this one, or None.
        issued: when the hub signed it (ISO 8601), for reports.
    """

    pinned: str | None = None
    rollback_floor: str | None = None
    issued: str = ""

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any], group: str) -> SignedIntent:
        """The intent for ``group`` in a targets role's custom fields (none signed: an empty one).

        Raises:
            IntegrityError: the signed field is not an intent (a hub bug: nothing installed).

        >>> SignedIntent.from_fields({INTENT_FIELD: {"g": {"pinned": "2"}}}, "g").pinned
        '2'
        """
        per_group = fields.get(INTENT_FIELD) if isinstance(fields, Mapping) else None
        if per_group is not None and not isinstance(per_group, Mapping):
            raise IntegrityError(f"the signed field {INTENT_FIELD} is not an object of groups: {per_group!r}")
        doc = None if per_group is None else per_group.get(group)
        if doc is None:
            return cls()
        if not isinstance(doc, Mapping):
            raise IntegrityError(f"the signed intent for group {group} is not an object: {doc!r}")
        pinned, floor = doc.get("pinned"), doc.get("rollback_floor")
        intent = cls(
            None if pinned is None else str(pinned),
            None if floor is None else str(floor),
            str(doc.get("issued", "")),
        )
        for value in (intent.pinned, intent.rollback_floor):
            if value is not None:
                try:
                    parse_version(value)
                except BundleMismatchError as exc:
                    raise IntegrityError(f"the signed intent for group {group}: {exc}") from exc
        return intent


@dataclass(frozen=True)
class Choice:
    """Which version to install, and why a hint was not followed.

    Attributes:
        version: the version to install (or keep).
        hint_refused: why the MQTT ``desired`` hint was not followed, or None.
    """

    version: str
    hint_refused: str | None = None


def choose_version(
    available: Iterable[str],
    *,
    running: str | None,
    hint: str | None,
    intent: SignedIntent,
    where: str = "this device's group",
) -> Choice:
    """Decide the version to install from signed facts; the MQTT hint only where it cannot harm.

    Args:
        available: the versions the verified metadata signs for (group, target).
        running: the version the device runs, or None.
        hint: the version an MQTT ``desired`` message names, or None.
        intent: the hub's signed intent for the group.
        where: the group and target, for messages.

    Raises:
        NotFoundError: nothing signed to install (none at all, or the pinned version is missing).
        IntegrityError: the signed intent pins a version below its own floor.

    >>> choose_version(["1", "2", "3"], running="3", hint="1", intent=SignedIntent()).version
    '3'
    >>> choose_version(["1", "2", "3"], running="3", hint="1", intent=SignedIntent(pinned="1")).version
    '1'
    >>> choose_version(["1", "2", "3"], running="1", hint="2", intent=SignedIntent()).version
    '2'
    """
    versions = sorted(set(available), key=parse_version)
    floor = intent.rollback_floor
    if intent.pinned is not None:
        pinned = intent.pinned
        if pinned not in versions:
            raise NotFoundError(
                f"the hub's signed intent pins {where} to {pinned}, but the repository has no bundle "
                f"{pinned} for it (it has {', '.join(versions) or 'none'}); keeping the installed model"
            )
        if floor is not None and parse_version(pinned) < parse_version(floor):
            raise IntegrityError(f"the hub's signed intent pins {where} to {pinned}, below its floor {floor}")
        refused = None
        if hint is not None and hint != pinned:
            refused = f"desired version {hint} refused: the hub's signed intent pins {where} to {pinned}"
        return Choice(pinned, refused)
    allowed = [v for v in versions if floor is None or parse_version(v) >= parse_version(floor)]
    if not allowed:
        raise NotFoundError(
            f"the repository has no bundle for {where}"
            + (f" at or above the signed rollback floor {floor}" if floor is not None and versions else "")
        )
    newest = allowed[-1]
    if hint is None or hint == newest:
        return Choice(newest)
    instead = f"; taking the newest signed version {newest}"
    if hint not in versions:
        why = f"the repository has no bundle {hint} for {where} (it has {', '.join(versions)})"
    elif floor is not None and parse_version(hint) < parse_version(floor):
        why = f"{hint} is below the signed rollback floor {floor} of {where}"
    elif running is not None and parse_version(hint) < parse_version(running):
        why = (
            f"downgrade to {hint} not signed by the hub ({running} runs; only a pin in the hub's "
            f"signed intent allows an older version)"
        )
    else:
        return Choice(hint)
    return Choice(newest, f"desired version {hint} refused: {why}{instead}")


@dataclass(frozen=True)
class BundleInfo:
    """The newest bundle the repository signs for (group, target).

    Attributes:
        group: device group.
        target: target platform.
        version: model version.
        minimum_agent_version: the oldest agent that can run it (from the signed custom metadata).
        files: target path per file name.
    """

    group: str
    target: str
    version: str
    minimum_agent_version: str
    files: dict[str, str]


@dataclass(frozen=True)
class Installed:
    """What an update cycle left installed.

    Attributes:
        version: the installed version.
        folder: its folder.
        changed: whether this cycle installed it (False: it was already installed).
        hint_refused: why this cycle did not follow the MQTT ``desired`` hint, or None.
        recalibrations: the hub's signed recalibration orders for the group's devices, by
            device id, from the same verified metadata (``_recalibration.py`` decides).
    """

    version: str
    folder: Path
    changed: bool
    hint_refused: str | None = None
    recalibrations: Mapping[str, Any] = field(default_factory=dict)


class EdgeUpdater:
    """Keeps one (group, target) model up to date from a TUF repository.

    Args:
        trusted_root: the root metadata bytes the device was provisioned with.
        repository: ``http(s)://host/tuf/`` or a folder (site mirror, removable media).
        state_dir: where TUF's metadata cache and downloads live (persist it across runs).
        install_dir: where versions are installed; ``CURRENT`` names the one to run.
        group: the device's group.
        target: the device's target platform.
        agent_version: this agent's version, compared with the bundle's minimum.
        fetcher: a custom fetcher (tests); default: HTTP or :class:`FolderFetcher`.
        config: python-tuf limits (lengths in bytes).
    """

    def __init__(
        self,
        *,
        trusted_root: bytes,
        repository: str | Path,
        state_dir: Path,
        install_dir: Path,
        group: str,
        target: str,
        agent_version: str,
        fetcher: FetcherInterface | None = None,
        config: UpdaterConfig | None = None,
    ) -> None:
        self._root = trusted_root
        text = str(repository)
        if not text.startswith(("http://", "https://")):  # a folder: its fetcher answers FOLDER_BASE_URL
            fetcher = fetcher or FolderFetcher(Path(text))
            text = FOLDER_BASE_URL
        self._base = text.rstrip("/") + "/"
        self._fetcher = fetcher
        self._config = config
        self.state_dir = state_dir
        self.install_dir = install_dir
        self.group = group
        self.target = target
        self.agent_version = agent_version
        self.recalibrations: dict[str, Any] = {}

    def _updater(self) -> Updater:
        metadata_dir = self.state_dir / "metadata"
        metadata_dir.mkdir(parents=True, exist_ok=True)
        return Updater(
            str(metadata_dir),
            self._base + "metadata/",
            str(self.state_dir / "downloads"),
            self._base + "targets/",
            self._fetcher,
            self._config,
            bootstrap=self._root,
        )

    def installed(self) -> Installed | None:
        """The installed version, or None."""
        current = self.install_dir / CURRENT_FILE
        if not current.exists():
            return None
        version = current.read_text(encoding="utf-8").strip()
        return Installed(version, self.install_dir / version, changed=False)

    def _refresh(self) -> Updater:
        updater = self._updater()
        try:
            updater.refresh()
        except (tuf_exc.RepositoryError, tuf_exc.DownloadError) as exc:
            raise convert_tuf_error(exc, "refreshing the repository metadata") from exc
        return updater

    def _group_roles(self, updater: Updater) -> list[Metadata[Targets]]:
        """The verified top-level targets and the group's delegated role (when the repository delegates)."""
        probe = f"models/{self.group}/{self.target}/0/{_MANIFEST}"
        try:
            updater.get_targetinfo(probe)  # loads and verifies the group's delegated role
        except (tuf_exc.RepositoryError, tuf_exc.DownloadError) as exc:
            raise convert_tuf_error(exc, f"loading the targets of group {self.group}") from exc
        # The updater persisted each role's metadata only after verifying it.
        roles: list[Metadata[Targets]] = []
        for name in ("targets", self.group):
            path = self.state_dir / "metadata" / f"{name}.json"
            if path.exists():
                roles.append(Metadata.from_bytes(path.read_bytes()))
        return roles

    def _signed(self, updater: Updater) -> tuple[dict[str, dict[str, str]], dict[str, Any], SignedIntent]:
        """Files per version and custom metadata per version for (group, target), and the signed intent.

        The group's signed recalibration orders are kept in ``self.recalibrations``.
        """
        prefix = f"models/{self.group}/{self.target}/"
        versions: dict[str, dict[str, str]] = {}
        customs: dict[str, dict[str, Any]] = {}
        intent = SignedIntent()
        self.recalibrations = {}
        for md in self._group_roles(updater):  # the group's role last: its intent wins
            for path, info in md.signed.targets.items():
                if not path.startswith(prefix):
                    continue
                found, _, name = path[len(prefix) :].partition("/")
                versions.setdefault(found, {})[name] = path
                customs[found] = dict(info.custom or {})
            signed = SignedIntent.from_fields(md.signed.unrecognized_fields, self.group)  # checks the shape
            if self.group in (md.signed.unrecognized_fields.get(INTENT_FIELD) or {}):
                intent = signed
            try:
                orders = signed_orders(md.signed.unrecognized_fields, self.group)
            except ValueError as exc:
                raise IntegrityError(f"{exc} (nothing recalibrated)") from exc
            if orders or self.group in (md.signed.unrecognized_fields.get(RECALIBRATE_FIELD) or {}):
                self.recalibrations = orders
        return versions, customs, intent

    def _bundle(
        self, version: str, versions: dict[str, dict[str, str]], customs: dict[str, Any]
    ) -> BundleInfo:
        return BundleInfo(
            group=self.group,
            target=self.target,
            version=version,
            minimum_agent_version=str(customs[version].get("minimum_agent_version", "0")),
            files=versions[version],
        )

    def signed_intent(self, updater: Updater | None = None) -> SignedIntent:
        """The hub's signed intent for this device's group, from freshly verified metadata."""
        return self._signed(updater or self._refresh())[2]

    def find_newest(self, updater: Updater | None = None, version: str | None = None) -> BundleInfo:
        """The newest bundle for this device's (group, target), from freshly verified metadata.

        Args:
            updater: a refreshed python-tuf updater (default: refresh now).
            version: this version instead of the newest.

        Raises:
            NotFoundError: the repository has no bundle for (group, target), or not that version.
            IntegrityError: a subclass naming what is wrong with the repository.
            DownloadError: the repository could not be read.
        """
        versions, customs, _ = self._signed(updater or self._refresh())
        if not versions:
            raise NotFoundError(f"the repository has no bundle for group {self.group}, target {self.target}")
        if version is not None and version not in versions:
            raise NotFoundError(
                f"the repository has no bundle {version} for group {self.group}, target {self.target} "
                f"(it has {', '.join(sorted(versions, key=parse_version))})"
            )
        return self._bundle(version or max(versions, key=parse_version), versions, customs)

    def update(self, hint: str | None = None, *, running: str | None = None) -> Installed:
        """One update cycle: refresh, choose the version (:func:`choose_version`), verify, install it.

        Args:
            hint: the version the hub's MQTT ``desired`` message names: followed when
                it is signed and not older than ``running``; an older one only when the
                hub's signed intent pins it. Otherwise refused (``hint_refused``) and
                the newest signed version is taken.
            running: the version the device runs (default: the installed one).

        Returns:
            What is installed afterwards.

        Raises:
            IntegrityError: a subclass naming the attack or fault; nothing installed.
            IncompatibleBundleError: the chosen bundle needs a newer agent; nothing installed.
            DownloadError: the repository could not be reached; nothing installed.
            NotFoundError: no bundle for (group, target), or the pinned version is missing.
        """
        updater = self._refresh()
        versions, customs, intent = self._signed(updater)
        current = self.installed()
        running = running if running is not None else (current.version if current else None)
        where = f"group {self.group}, target {self.target}"
        choice = choose_version(versions, running=running, hint=hint, intent=intent, where=where)
        bundle = self._bundle(choice.version, versions, customs)
        if (
            running is not None
            and choice.version != intent.pinned
            and parse_version(bundle.version) < parse_version(running)
        ):
            raise RollbackError(
                f"the repository's newest bundle {bundle.version} is older than the installed "
                f"{running}; keeping {running}"
            )
        if current is not None and bundle.version == current.version:
            return replace(current, hint_refused=choice.hint_refused, recalibrations=self.recalibrations)
        self._check_agent(bundle.minimum_agent_version)
        self.install_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.install_dir, prefix=".staging-"))
        try:
            for name, path in bundle.files.items():
                info = updater.get_targetinfo(path)
                if info is None:
                    raise BundleMismatchError(f"{path} vanished from the signed metadata")
                try:
                    updater.download_target(info, str(staging / name))
                except (tuf_exc.RepositoryError, tuf_exc.DownloadError) as exc:
                    raise convert_tuf_error(exc, f"downloading {path}") from exc
            self._check_manifest(staging, bundle)
            final = self.install_dir / bundle.version
            if final.exists():  # a leftover of an interrupted install: never trusted
                shutil.rmtree(final)
            os.replace(staging, final)
            write_atomic(self.install_dir / CURRENT_FILE, bundle.version.encode())
        finally:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(staging)
        return Installed(
            bundle.version, self.install_dir / bundle.version, True, choice.hint_refused, self.recalibrations
        )

    def _check_agent(self, minimum: str) -> None:
        if parse_version(minimum) > parse_version(self.agent_version):
            raise IncompatibleBundleError(
                f"the newest bundle for {self.group}/{self.target} needs agent {minimum} or newer; "
                f"this agent is {self.agent_version}: update the agent first (model kept)"
            )

    def _check_manifest(self, staging: Path, bundle: BundleInfo) -> None:
        path = staging / _MANIFEST
        if not path.exists():
            raise BundleMismatchError(f"bundle {bundle.version} has no {_MANIFEST}")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleMismatchError(f"{_MANIFEST} of bundle {bundle.version} is not JSON: {exc}") from exc
        target = manifest.get("target")
        if isinstance(target, dict):  # pumpops.bundle/1 keeps a summary of the target profile
            target = target.get("id")
        for key, found, expected in (
            ("group", manifest.get("group"), self.group),
            ("target", target, self.target),
            ("model_version", str(manifest.get("model_version")), bundle.version),
        ):
            if found != expected:
                raise BundleMismatchError(
                    f"bundle at models/{self.group}/{self.target}/{bundle.version} says {key} "
                    f"{found!r}, not {expected!r}: a bundle for another device or version"
                )
        minimum = manifest.get("min_agent_version", manifest.get("minimum_agent_version", "0"))
        self._check_agent(str(minimum))
        for name, expected_hash in _file_hashes(manifest).items():
            file = staging / name
            if not file.exists():
                raise BundleMismatchError(f"bundle {bundle.version} lacks {name}, which its manifest lists")
            if sha256_file(file) != expected_hash:
                raise TamperedArtifactError(
                    f"{name} of bundle {bundle.version} differs from its manifest hash"
                )


def _file_hashes(manifest: dict[str, Any]) -> dict[str, str]:
    files = manifest.get("files", {})
    out: dict[str, str] = {}
    if isinstance(files, dict):
        for name, value in files.items():
            out[str(name)] = str(value["sha256"] if isinstance(value, dict) else value)
    elif isinstance(files, list):
        for entry in files:
            out[str(entry["name"])] = str(entry["sha256"])
    return out
