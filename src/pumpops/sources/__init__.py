"""Where readings come from: the simulator, CSV replay of the SKAB format (later Modbus TCP, OPC UA).

Every source implements :class:`Source` and yields :class:`Frame` objects in
the device's own sensor names and units. May import: schema, fleet, sim, errors, numpy.
"""

from pumpops.sources._base import Channel, Frame, Source

__all__ = ["Channel", "Frame", "Source"]
