"""The detector registry: every kind by name (:data:`DETECTORS`), built by :func:`build_detector`."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pumpops.errors import ConfigError

if TYPE_CHECKING:
    from pumpops.pipeline.detectors._base import Detector

__all__ = ["DETECTORS", "build_detector", "register_detector"]

DETECTORS: dict[str, type[Detector]] = {}


def register_detector(cls: type[Detector]) -> type[Detector]:
    """Class decorator: make ``cls`` buildable by its ``kind``."""
    DETECTORS[cls.kind] = cls
    return cls


def build_detector(kind: str, *, sensors: Sequence[str], seed: int = 0, **hyper: Any) -> Detector:
    """Build an unfitted detector by kind.

    Raises:
        ConfigError: unknown kind or unknown / invalid hyper-parameter.

    >>> build_detector("nope", sensors=["motor_current"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pumpops.errors.ConfigError: unknown detector kind 'nope'; known: ...
    """
    import pumpops.pipeline.detectors  # noqa: F401, PLC0415 - registers the built-in kinds

    try:
        cls = DETECTORS[kind]
    except KeyError:
        raise ConfigError(f"unknown detector kind {kind!r}; known: {', '.join(sorted(DETECTORS))}") from None
    allowed = _hyper_names(cls)
    unknown = sorted(set(hyper) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown hyper-parameter(s) {unknown} for detector {kind!r}; known: {', '.join(sorted(allowed))}"
        )
    try:
        return cls(sensors=sensors, seed=seed, **hyper)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid hyper-parameters for detector {kind!r}: {exc}") from exc


def _hyper_names(cls: type[Detector]) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind is inspect.Parameter.KEYWORD_ONLY:
                names.add(p.name)
    return names - {"sensors", "seed"}
