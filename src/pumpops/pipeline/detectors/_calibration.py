"""Per-device statistics (:class:`Calibration`) and a core's part of the graph (:class:`OnnxCore`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from pumpops.errors import InputError
from pumpops.pipeline.detectors._numerics import _QUANTILES

__all__ = ["Calibration", "OnnxCore"]


@dataclass(frozen=True)
class Calibration:
    """A device's reference statistics and alarm threshold, from its own normal period.

    Attributes:
        sensors: the sensors, in the detector's order.
        center: shape ``(S,)``, per-sensor median of the normal period (canonical units).
        scale: shape ``(S,)``, per-sensor robust spread (canonical units).
        threshold: alarm threshold on the score.
        quantiles: shape ``(S, 11)``, per-sensor deciles of the normal period,
            the reference bins for drift statistics.
        n_rows: number of normal rows it was computed from.
    """

    sensors: tuple[str, ...]
    center: np.ndarray
    scale: np.ndarray
    threshold: float
    quantiles: np.ndarray
    n_rows: int
    extra: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (lists of floats)."""
        return {
            "sensors": list(self.sensors),
            "center": [float(v) for v in self.center],
            "scale": [float(v) for v in self.scale],
            "threshold": float(self.threshold),
            "quantiles": [[float(v) for v in row] for row in self.quantiles],
            "n_rows": int(self.n_rows),
            "extra": {k: float(v) for k, v in sorted(self.extra.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict`.

        Raises:
            InputError: a field is missing or has the wrong shape.
        """
        try:
            sensors = tuple(str(s) for s in data["sensors"])
            center = np.asarray(data["center"], dtype=np.float64)
            scale = np.asarray(data["scale"], dtype=np.float64)
            quantiles = np.asarray(data["quantiles"], dtype=np.float64)
            calibration = cls(
                sensors=sensors,
                center=center,
                scale=scale,
                threshold=float(data["threshold"]),
                quantiles=quantiles,
                n_rows=int(data["n_rows"]),
                extra={str(k): float(v) for k, v in dict(data.get("extra", {})).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"invalid calibration: {exc}") from exc
        s = len(sensors)
        if center.shape != (s,) or scale.shape != (s,) or quantiles.shape != (s, _QUANTILES.size):
            raise InputError(f"invalid calibration: arrays do not match {s} sensors")
        return calibration


@dataclass(frozen=True)
class OnnxCore:
    """The model-specific part of the ONNX graph.

    Its nodes read ``features`` ``(N, S)`` float64 and must write
    ``core_score`` ``(N,)`` float64. Names of nodes and initializers must be
    unique and fixed (deterministic bytes).
    """

    nodes: list[onnx.NodeProto]
    initializers: list[onnx.TensorProto]
    opsets: dict[str, int] = field(default_factory=dict)
