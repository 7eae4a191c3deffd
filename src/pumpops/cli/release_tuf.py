"""Command-line commands of the TUF distribution: ``pumpops keys ...`` and ``pumpops tuf ...``.

``keys init`` creates the signing keys and the repository; ``keys rotate``
replaces an online role's keys (or the root keys); ``tuf publish`` adds
bundles as targets; ``tuf export`` copies the repository to a folder;
``tuf resign`` renews snapshot and timestamp before they expire; ``tuf
intent`` shows or signs the hub's intent for a group (a pinned version, a
rollback floor): the only way a device installs an older version; ``tuf
recalibrate`` signs a recalibration order for devices (they recommission at
their next update check; issue 15's first tier). The thin
shell over :mod:`pumpops.release._tuf` and :mod:`pumpops.release._publish`.
Only typer, the standard library and ``pumpops.cli._support`` load with this
module; python-tuf, the keys and the store load inside the commands.
May import: typer, rich, ``pumpops.cli._support``, settings, audit (actor), store, this package.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pumpops.audit import resolve_actor
from pumpops.cli._support import (
    JsonFlag,
    OutputFormat,
    OutputOption,
    console,
    emit_record,
    err_console,
    output_format,
    settings_from,
)
from pumpops.cli.audit import ActorOption
from pumpops.errors import ConfigError
from pumpops.hub import open_workspace_store

if TYPE_CHECKING:
    from pumpops.settings import Settings

__all__ = ["keys_app", "register", "tuf_app"]

keys_app = typer.Typer(help="Signing keys of the TUF repository: init, rotate.", no_args_is_help=True)
tuf_app = typer.Typer(
    help="The TUF repository devices pull models from: publish, export, resign.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add ``keys`` and ``tuf`` to the root command, and ``publish``/``export``/``intent`` to ``release``."""
    from pumpops.cli.release import release_app

    app.add_typer(keys_app, name="keys")
    app.add_typer(tuf_app, name="tuf")
    release_app.command("publish")(publish_cmd)
    release_app.command("export")(export_cmd)
    release_app.command("intent")(intent_cmd)


def _threshold(settings: Settings, role: str) -> int:
    return int(getattr(settings.tuf, f"{role}_threshold"))


def _audit(settings: Settings, actor: str, action: str, subject: str, payload: dict[str, Any]) -> None:

    with open_workspace_store(settings) as store:
        store.append_audit(actor, action, subject, payload)


@keys_app.command("init")
def keys_init_cmd(ctx: typer.Context, actor: ActorOption = None) -> None:
    """Create ed25519 keys for root, targets, snapshot and timestamp, and an empty repository.

    As many keys per role as its threshold in the settings ([tuf] <role>_threshold).
    """
    from pumpops.release import (
        ONLINE_ROLES,
        TufRepository,
        expiry_from,
        generate_signer,
        keystore,
        repository_folder,
        save_signer,
    )

    settings = settings_from(ctx)
    keys = keystore(settings)
    folder = repository_folder(settings)
    if keys.root_file.exists() or TufRepository(folder).exists():
        raise ConfigError(
            f"keys or a repository already exist under {settings.workspace}; refusing to replace"
        )
    signers = {role: [generate_signer() for _ in range(_threshold(settings, role))] for role in ONLINE_ROLES}
    root = [generate_signer() for _ in range(_threshold(settings, "root"))]
    save_signer(keys.root_file, root, role="root")
    for role, role_signers in signers.items():
        save_signer(keys.online_file(role), role_signers, role=role)
    repo = TufRepository.create(
        folder,
        root_signers=root,
        online_signers=signers,
        thresholds={r: _threshold(settings, r) for r in ("root", *ONLINE_ROLES)},
        delegate_per_group=settings.tuf.delegate_per_group,
        expiry=expiry_from(settings),
    )
    _audit(
        settings,
        resolve_actor(settings, actor),
        "tuf.keys_created",
        "tuf/root/1",
        {"keyids": {r: [s.public_key.keyid for s in ss] for r, ss in {"root": root, **signers}.items()}},
    )
    console.print(
        f"repository created in {repo.folder}; trusted root for devices: {repo.metadata_dir}/1.root.json"
    )
    console.print(f"online keys in {keys.folder / 'online'} (mode 0600)")
    err_console.print(
        f"[bold red]WARNING[/]: the root key is in {keys.root_file}. Move it to offline storage now "
        "(a safe, a hardware token) and bring it back only to rotate keys; whoever holds it controls "
        "every device."
    )


@keys_app.command("rotate")
def keys_rotate_cmd(
    ctx: typer.Context,
    role: Annotated[str, typer.Argument(help="targets, snapshot, timestamp, or root.")],
    actor: ActorOption = None,
) -> None:
    """Replace a role's keys: a new root version, signed by the offline root key, names the new keys.

    Needs the offline root key file back in place. Devices pick up the new
    root at their next update; metadata signed by the old key is then refused.
    """
    from pumpops.release import (
        ONLINE_ROLES,
        generate_signer,
        keystore,
        online_signers,
        open_repository,
        save_signer,
    )

    if role not in (*ONLINE_ROLES, "root"):
        raise ConfigError(f"keys rotate {role}: the role must be one of {', '.join((*ONLINE_ROLES, 'root'))}")
    settings = settings_from(ctx)
    keys = keystore(settings)
    repo = open_repository(settings)
    root_signers = keys.root_signers()
    new = [generate_signer() for _ in range(_threshold(settings, role if role != "root" else "root"))]
    if role == "root":
        staged = keys.root_file.with_name("OFFLINE-root-key.new.json")
        save_signer(staged, new, role="root")
        version = repo.rotate_root(root_signers, new)
        staged.replace(keys.root_file)
    else:
        target = keys.online_file(role)  # checks the role name
        staged = target.with_name(f"{role}.new.json")
        save_signer(staged, new, role=role)
        version = repo.rotate_online_key(role, new, root_signers=root_signers, signers=online_signers(keys))
        staged.replace(target)
    _audit(
        settings,
        resolve_actor(settings, actor),
        "tuf.key_rotated",
        f"tuf/root/{version}",
        {"role": role, "keyids": [s.public_key.keyid for s in new]},
    )
    console.print(
        f"{role} keys rotated; root is now version {version}; old {role} keys are no longer trusted"
    )


@tuf_app.command("publish")
def publish_cmd(
    ctx: typer.Context,
    release: Annotated[
        str,
        typer.Argument(help="A release number, a bundle folder, or a folder of <group>/<target>/<version>."),
    ],
    actor: ActorOption = None,
) -> None:
    """Publish bundles as targets models/<group>/<target>/<version>/<file>; re-sign up to timestamp."""
    from pumpops.release import bundles_of, publish_bundles

    settings = settings_from(ctx)
    found = bundles_of(settings, release)
    sizes = publish_bundles(settings, found, actor=resolve_actor(settings, actor))
    for bundle in found:
        console.print(f"published models/{bundle.group}/{bundle.target}/{bundle.version}")
    console.print("metadata written: " + ", ".join(f"{name} ({size} B)" for name, size in sizes.items()))


@tuf_app.command("export")
def export_cmd(
    ctx: typer.Context,
    dest: Annotated[Path, typer.Option("--dir", help="Folder to copy the repository to.")],
) -> None:
    """Copy the repository (metadata and targets) to a folder: a site mirror or removable media."""
    from pumpops.release import export_repository

    settings = settings_from(ctx)
    count = export_repository(settings, dest)
    console.print(f"copied {count} files to {dest}; devices read it with EdgeUpdater(repository={dest})")


@tuf_app.command("resign")
def resign_cmd(ctx: typer.Context) -> None:
    """Renew snapshot and timestamp signatures (run from a timer well within the timestamp's expiry)."""
    from pumpops.release import keystore, online_signers, open_repository

    settings = settings_from(ctx)
    repo = open_repository(settings)
    repo.refresh_timestamp(online_signers(keystore(settings)))
    console.print(
        f"timestamp version {repo.timestamp().signed.version}, expires {repo.timestamp().signed.expires}"
    )


@tuf_app.command("intent")
def intent_cmd(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    group: Annotated[str, typer.Argument(help="The device group.")],
    pin: Annotated[
        str | None,
        typer.Option(
            "--pin",
            help="Sign that the group runs exactly this published version (a rollback or a hold).",
            show_default=False,
        ),
    ] = None,
    unpin: Annotated[
        bool, typer.Option("--unpin", help="Lift the pin: devices take the newest signed version.")
    ] = False,
    floor: Annotated[
        str | None,
        typer.Option(
            "--floor", help="Sign a rollback floor: no device installs an older version.", show_default=False
        ),
    ] = None,
    no_floor: Annotated[bool, typer.Option("--no-floor", help="Remove the rollback floor.")] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the audit trail and the metadata.")] = "",
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
    actor: ActorOption = None,
) -> None:
    """Show, or sign, the hub's intent for a group: its pinned version and rollback floor.

    Signed into the group's TUF targets metadata with the online targets key and
    published through snapshot and timestamp; audited as release.intent_signed.
    Devices follow an MQTT desired version older than the one they run only when
    this intent pins it.
    """
    from pumpops.release import UpdateIntent, open_repository, sign_intent

    if pin is not None and unpin:
        raise ConfigError("--pin and --unpin: give one of them")
    if floor is not None and no_floor:
        raise ConfigError("--floor and --no-floor: give one of them")
    settings = settings_from(ctx)
    current = open_repository(settings).intent(group)
    change = pin is not None or unpin or floor is not None or no_floor
    if change:
        wanted = UpdateIntent(
            pinned=None if unpin else (pin if pin is not None else current.pinned),
            rollback_floor=None if no_floor else (floor if floor is not None else current.rollback_floor),
            reason=reason,
        )
        with open_workspace_store(settings) as store:
            signed = sign_intent(settings, group, wanted, actor=resolve_actor(settings, actor), store=store)
        if signed is None:
            err_console.print(f"group {group}: the repository already says so; nothing signed")
        current = signed or current
    repo = open_repository(settings)
    record = {
        "group": group,
        **current.to_dict(),
        "targets_role_version": repo.targets(group).signed.version if _delegated(repo, group) else None,
        "published_versions": sorted(repo.published_versions(group), key=_version_order),
    }
    emit_record(record, output=output_format(output, as_json), title=f"Signed intent of group {group}")


@tuf_app.command("recalibrate")
def recalibrate_cmd(  # noqa: PLR0917 - typer passes options by keyword; the order is the help's
    ctx: typer.Context,
    group: Annotated[str, typer.Argument(help="The devices' group.")],
    devices: Annotated[
        list[str] | None, typer.Argument(help="The devices to recalibrate (none: show the signed orders).")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the audit trail and the metadata.")] = "",
    output: OutputOption = OutputFormat.TABLE,
    as_json: JsonFlag = False,
    actor: ActorOption = None,
) -> None:
    """Show, or sign, recalibration orders: each named device gathers a new normal period.

    Signed into the group's TUF targets metadata (x-pumpops-recalibrate) with the
    online targets key; audited per device as release.recalibration_signed. A
    device follows each order number once, and never after it expires
    (retrain.recalibration_ttl_s); an MQTT message alone never recalibrates it.
    """
    from pumpops.release import open_repository, recalibration_orders, sign_recalibration

    settings = settings_from(ctx)
    if devices:
        with open_workspace_store(settings) as store:
            sign_recalibration(
                settings,
                group,
                devices,
                reason=reason or "recalibration requested from the command line",
                actor=resolve_actor(settings, actor),
                store=store,
            )
    orders = recalibration_orders(open_repository(settings), group)
    record = {
        "group": group,
        "orders": {d: o.to_dict() for d, o in sorted(orders.items())},
    }
    emit_record(record, output=output_format(output, as_json), title=f"Recalibration orders of group {group}")


def _delegated(repo: Any, group: str) -> bool:
    delegations = repo.targets().signed.delegations
    return bool(delegations is not None and delegations.roles and group in delegations.roles)


def _version_order(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())
