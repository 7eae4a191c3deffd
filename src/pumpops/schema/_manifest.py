"""The detector manifest, typed: the ``detector`` section of a bundle manifest.

The training pipeline writes it (``Detector.manifest()`` plus ``group``,
``model_sha256`` and ``sampling`` at export, ``pumpops.pipeline``); packaging
copies it into the bundle unchanged (``BundleManifest.detector``); the agent
reads the parts it needs from it: the grid it resamples readings onto
(``sampling``) and the threshold rule it commissions with (``params``). The
section stays a plain JSON object on the wire and in ``manifest.json`` —
:meth:`DetectorManifest.from_dict` parses it, checks the types of every key
the edge reads (naming a bad one), and :meth:`DetectorManifest.to_dict` gives
back the very same dict, so bundle bytes do not change. Keys this version
does not know are kept and ignored; a missing section takes the defaults the
agent has always used.

Shape (every section optional)::

    {"format": 1, "kind": "pca_t2q", "onnx_opset": 17, "group": "...", "model_sha256": "...",
     "inputs": {"sensors": [{"name", "unit"}], "window_rows": W, "padding": "repeat_first",
                "onnx": [...]},
     "outputs": [...],
     "alarm": {"threshold": "calibration.threshold", "compare": "score > threshold",
               "smoothing": {"rule", "k", "n", "release", "hold_rows", "meaning"}},
     "calibration": {"center": "...", "scale": "...", "threshold": "..."},
     "params": {"threshold_quantile", "threshold_factor", "trim_z", ...hyper-parameters},
     "sampling": {"period_s", "max_gap_fill_s"}}

May import: ``pumpops.errors`` and the standard library (the agent reads it).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pumpops.errors import IncompatibleBundleError

__all__ = [
    "DetectorAlarm",
    "DetectorInputs",
    "DetectorManifest",
    "SamplingRule",
    "SmoothingRule",
    "ThresholdRule",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _bad(where: str, what: str, value: Any) -> IncompatibleBundleError:
    return IncompatibleBundleError(f"the bundle's detector manifest: {where} must be {what}, got {value!r}")


def _section(doc: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = doc.get(key)
    if value is None:
        return _EMPTY
    if not isinstance(value, Mapping):
        raise _bad(f"{where}{key}", "an object", value)
    return value


def _number(doc: Mapping[str, Any], key: str, where: str, default: float | None) -> float | None:
    value = doc.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"{where}{key}", "a number", value)
    return float(value)


def _number_or(doc: Mapping[str, Any], key: str, where: str, default: float) -> float:
    value = _number(doc, key, where, None)
    return default if value is None else value


def _integer(doc: Mapping[str, Any], key: str, where: str) -> int | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        raise _bad(f"{where}{key}", "an integer", value)
    return int(value)


def _text(doc: Mapping[str, Any], key: str, where: str) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(f"{where}{key}", "a string", value)
    return value


@dataclass(frozen=True)
class SamplingRule:
    """The grid the model was trained on: readings are resampled onto it (``sampling``).

    Attributes:
        period_s: seconds between grid rows (``None``: not stated; the agent's own setting applies).
        max_gap_fill_s: the longest gap filled by holding the last row (``None``: not stated).
    """

    period_s: float | None = None
    max_gap_fill_s: float | None = None

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> SamplingRule:
        """Parse ``sampling``; raises :class:`IncompatibleBundleError` naming a bad key."""
        return cls(
            period_s=_number(doc, "period_s", "sampling.", None),
            max_gap_fill_s=_number(doc, "max_gap_fill_s", "sampling.", None),
        )


@dataclass(frozen=True)
class ThresholdRule:
    """How a device's alarm threshold follows from its normal period's scores (from ``params``).

    ``threshold = threshold_factor * quantile(threshold_quantile)`` of the
    normal-period scores, after trimming rows beyond ``trim_z`` (0: no trimming).
    """

    threshold_quantile: float = 0.99
    threshold_factor: float = 1.0
    trim_z: float = 0.0

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ThresholdRule:
        """Read the rule from the detector's ``params``; missing keys take the defaults."""
        d = cls()
        return cls(
            threshold_quantile=_number_or(params, "threshold_quantile", "params.", d.threshold_quantile),
            threshold_factor=_number_or(params, "threshold_factor", "params.", d.threshold_factor),
            trim_z=_number_or(params, "trim_z", "params.", d.trim_z),
        )

    def as_kwargs(self) -> dict[str, float]:
        """The rule as keyword arguments of ``pumpops.edge.commission``."""
        return {
            "threshold_quantile": self.threshold_quantile,
            "threshold_factor": self.threshold_factor,
            "trim_z": self.trim_z,
        }


@dataclass(frozen=True)
class SmoothingRule:
    """The alarm's smoothing rule as stated (``alarm.smoothing``); ``None``: not stated.

    The agent's :class:`pumpops.edge.AlarmLogic` applies it (and its defaults)
    from the bundle's ``alarm`` section, which carries the same mapping.
    """

    rule: str | None = None
    k: int | None = None
    n: int | None = None
    release: float | None = None
    hold_rows: int | None = None
    meaning: str | None = None

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> SmoothingRule:
        """Parse ``alarm.smoothing``; raises :class:`IncompatibleBundleError` naming a bad key."""
        w = "alarm.smoothing."
        return cls(
            rule=_text(doc, "rule", w),
            k=_integer(doc, "k", w),
            n=_integer(doc, "n", w),
            release=_number(doc, "release", w, None),
            hold_rows=_integer(doc, "hold_rows", w),
            meaning=_text(doc, "meaning", w),
        )


@dataclass(frozen=True)
class DetectorAlarm:
    """How scores become alarms (``alarm``): the comparison, the threshold's source, the smoothing."""

    threshold: str | None = None
    compare: str | None = None
    smoothing: SmoothingRule = field(default_factory=SmoothingRule)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> DetectorAlarm:
        """Parse ``alarm``; raises :class:`IncompatibleBundleError` naming a bad key."""
        return cls(
            threshold=_text(doc, "threshold", "alarm."),
            compare=_text(doc, "compare", "alarm."),
            smoothing=SmoothingRule.from_dict(_section(doc, "smoothing", "alarm.")),
        )


@dataclass(frozen=True)
class DetectorInputs:
    """What the model takes (``inputs``): sensors with their SI units, window rows, padding."""

    sensors: tuple[tuple[str, str], ...] = ()
    window_rows: int | None = None
    padding: str | None = None

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> DetectorInputs:
        """Parse ``inputs``; raises :class:`IncompatibleBundleError` naming a bad key."""
        raw = doc.get("sensors") or []
        if not isinstance(raw, list | tuple):
            raise _bad("inputs.sensors", "a list", raw)
        sensors = []
        for i, s in enumerate(raw):
            where = f"inputs.sensors[{i}]."
            if not isinstance(s, Mapping):
                raise _bad(f"inputs.sensors[{i}]", "an object", s)
            name, unit = _text(s, "name", where), _text(s, "unit", where)
            if not name or not unit:
                raise _bad(where + ("name" if not name else "unit"), "a non-empty string", s)
            sensors.append((name, unit))
        return cls(
            sensors=tuple(sensors),
            window_rows=_integer(doc, "window_rows", "inputs."),
            padding=_text(doc, "padding", "inputs."),
        )


@dataclass(frozen=True)
class DetectorManifest:
    """The ``detector`` section of a bundle manifest, typed; :meth:`to_dict` re-emits it unchanged.

    Attributes:
        kind: the detector kind (``pca_t2q``, ``iforest``, ...).
        format: the detector manifest's format number.
        group: the device group the model was trained for.
        model_sha256: SHA-256 of the ONNX model as the pipeline exported it.
        inputs: sensors, window and padding.
        alarm: the alarm rule.
        sampling: the training grid.
        threshold: the threshold rule (from ``params``).
        calibration: what each calibration field means (centre, scale, threshold), as text.
        params: the detector's hyper-parameters (kind-specific; read-only).
    """

    kind: str | None = None
    format: int | None = None
    group: str | None = None
    model_sha256: str | None = None
    inputs: DetectorInputs = field(default_factory=DetectorInputs)
    alarm: DetectorAlarm = field(default_factory=DetectorAlarm)
    sampling: SamplingRule = field(default_factory=SamplingRule)
    threshold: ThresholdRule = field(default_factory=ThresholdRule)
    calibration: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    params: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    _raw: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, repr=False, compare=False)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> DetectorManifest:
        """Parse and check a ``detector`` section.

        Raises:
            IncompatibleBundleError: a key the edge reads has the wrong type (the message names it).

        >>> m = DetectorManifest.from_dict({"kind": "pca", "sampling": {"period_s": 1}})
        >>> m.sampling.period_s, m.threshold.threshold_quantile, m.to_dict()
        (1.0, 0.99, {'kind': 'pca', 'sampling': {'period_s': 1}})
        >>> DetectorManifest.from_dict({"params": {"trim_z": "x"}})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        pumpops.errors.IncompatibleBundleError: ...: params.trim_z must be a number, got 'x'
        """
        if not isinstance(doc, Mapping):
            raise _bad("detector", "an object", doc)
        params = _section(doc, "params", "")
        calibration = _section(doc, "calibration", "")
        for key, value in calibration.items():
            if not isinstance(value, str):
                raise _bad(f"calibration.{key}", "a string", value)
        return cls(
            kind=_text(doc, "kind", ""),
            format=_integer(doc, "format", ""),
            group=_text(doc, "group", ""),
            model_sha256=_text(doc, "model_sha256", ""),
            inputs=DetectorInputs.from_dict(_section(doc, "inputs", "")),
            alarm=DetectorAlarm.from_dict(_section(doc, "alarm", "")),
            sampling=SamplingRule.from_dict(_section(doc, "sampling", "")),
            threshold=ThresholdRule.from_params(params),
            calibration=MappingProxyType(dict(calibration)),
            params=MappingProxyType(copy.deepcopy(dict(params))),
            _raw=MappingProxyType(copy.deepcopy(dict(doc))),
        )

    def to_dict(self) -> dict[str, Any]:
        """The section exactly as it was parsed (a fresh copy): the bundle's JSON does not change."""
        return copy.deepcopy(dict(self._raw))
