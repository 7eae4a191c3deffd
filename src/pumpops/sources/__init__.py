"""Where readings come from: the simulator, CSV replay of the SKAB format (later Modbus TCP, OPC UA).

Every source implements :class:`Source` and yields :class:`Frame` objects in
the device's own sensor names and units. May import: schema, fleet, sim, errors, numpy.

Besides :meth:`Source.frames`, the sources here expose ``devices`` (the
:class:`pumpops.fleet.Device` records they produce frames for), so a
publisher knows each device's site and profile before the first frame.
"""

from typing import TYPE_CHECKING

from pumpops._lazy import lazy_exports

if TYPE_CHECKING:
    from pumpops.sources._base import Channel, Frame, Source
    from pumpops.sources._simulator import SimulatorSource
    from pumpops.sources._skab import (
        LABEL_COLUMNS,
        SKAB_PROFILE_ID,
        SkabCsvSource,
        SkabLabels,
        SkabTable,
        read_skab_csv,
        skab_files,
    )

#: Where each public name lives: loaded on first use, so that ``pumpops --help`` (which
#: imports this package's ``_cli``) does not load numpy and the simulator.
_LAZY: dict[str, str] = {
    "Channel": "pumpops.sources._base",
    "Frame": "pumpops.sources._base",
    "Source": "pumpops.sources._base",
    "SimulatorSource": "pumpops.sources._simulator",
    "LABEL_COLUMNS": "pumpops.sources._skab",
    "SKAB_PROFILE_ID": "pumpops.sources._skab",
    "SkabCsvSource": "pumpops.sources._skab",
    "SkabLabels": "pumpops.sources._skab",
    "SkabTable": "pumpops.sources._skab",
    "read_skab_csv": "pumpops.sources._skab",
    "skab_files": "pumpops.sources._skab",
}


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)


__all__ = [
    "LABEL_COLUMNS",
    "SKAB_PROFILE_ID",
    "Channel",
    "Frame",
    "SimulatorSource",
    "SkabCsvSource",
    "SkabLabels",
    "SkabTable",
    "Source",
    "read_skab_csv",
    "skab_files",
]
