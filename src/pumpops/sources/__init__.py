"""Where readings come from: the simulator, CSV replay of the SKAB format (later Modbus TCP, OPC UA).

Every source implements :class:`Source` and yields :class:`Frame` objects in
the device's own sensor names and units. May import: schema, fleet, sim, errors, numpy.

Besides :meth:`Source.frames`, the sources here expose ``devices`` (the
:class:`pumpops.fleet.Device` records they produce frames for), so a
publisher knows each device's site and profile before the first frame.
"""

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
