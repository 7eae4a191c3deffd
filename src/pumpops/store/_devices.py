"""Devices in the SQL store: registration (an upsert) and look-ups.

Owns the ``devices`` table's reads and writes (:class:`SqlDevices`, a mixin of
:class:`~pumpops.store._sql.SqlTelemetryStore`) and :func:`existing_devices`,
which the readings' writer uses to refuse unregistered devices.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.engine import Connection

from pumpops.fleet import Device
from pumpops.store import _plan
from pumpops.store import _tables as tables
from pumpops.store._core import KEYS_PER_QUERY, SqlCore, build_select, now_us

_COLUMNS = (
    tables.devices.c.device_id,
    tables.devices.c.site,
    tables.devices.c.profile_id,
    tables.devices.c.group_name,
)


def existing_devices(conn: Connection, ids: Iterable[str]) -> set[str]:
    """Return those of ``ids`` that are registered (read in ``conn``'s transaction)."""
    wanted = sorted(set(ids))
    column = tables.devices.c.device_id
    found: set[str] = set()
    for start in range(0, len(wanted), KEYS_PER_QUERY):
        chunk = wanted[start : start + KEYS_PER_QUERY]
        found.update(conn.scalars(build_select([column], where=[column.in_(chunk)])))
    return found


class SqlDevices(SqlCore):
    """:class:`~pumpops.store.DeviceStore` on SQL."""

    def register_devices(self, devices: Iterable[Device]) -> int:
        """Insert or update devices; return how many were new.

        A device already registered keeps its registration time; its site,
        profile and group are updated. If the same id appears twice, the last wins.

        Raises:
            InputError: an id, site, profile or group is not a valid identifier.
            StoreError: the database failed; nothing was registered.
        """
        wanted: dict[str, Device] = {}
        for device in devices:
            _plan.check_ident("device id", device.device_id)
            _plan.check_ident("site", device.site)
            _plan.check_ident("profile id", device.profile_id)
            _plan.check_ident("group", device.group)
            wanted[device.device_id] = device
        if not wanted:
            return 0
        registered_at = now_us()
        rows = [
            {
                "device_id": d.device_id,
                "site": d.site,
                "profile_id": d.profile_id,
                "group_name": d.group,
                "registered_at_us": registered_at,
            }
            for d in wanted.values()
        ]
        with self._guard("register devices in"), self._writer.begin() as conn:
            existing = existing_devices(conn, wanted)
            stmt = self._upsert(tables.devices)
            stmt = stmt.on_conflict_do_update(
                index_elements=[tables.devices.c.device_id],
                set_={
                    "site": stmt.excluded.site,
                    "profile_id": stmt.excluded.profile_id,
                    "group_name": stmt.excluded.group_name,
                },
            )
            conn.execute(stmt, rows)
        return len(wanted.keys() - existing)

    def devices(self) -> list[Device]:
        """Return every registered device, sorted by id.

        Raises:
            StoreError: the database failed.
        """
        rows = self._select("list devices in", _COLUMNS, order_by=[tables.devices.c.device_id])
        return [Device(*row) for row in rows]

    def device(self, device_id: str) -> Device | None:
        """Return one device, or None if it is not registered.

        Raises:
            StoreError: the database failed.
        """
        where = [tables.devices.c.device_id == device_id]
        row = self._select_one("read a device from", _COLUMNS, where=where)
        return None if row is None else Device(*row)
