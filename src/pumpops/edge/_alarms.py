"""Streaming alarm logic: the bundle's alarm rule applied one score at a time.

The pipeline decides alarms in batch (``smooth_alarms`` in
``pumpops.pipeline.detectors``); the bundle manifest carries its parameters
under ``alarm.smoothing`` and the threshold in the device's calibration.
:class:`AlarmLogic` applies the same rule to a stream of scores, in O(1) time
and O(n) memory per score, and gives the same on/off sequence row for row
(a property test holds this):

1. a row *exceeds* when ``score > threshold`` (a NaN score does not);
2. the alarm is *raised* when ``k`` of the last ``n`` rows exceed;
3. hysteresis (``release < 1``): once on, it stays on while
   ``score > release * threshold``;
4. off-delay: an alarm that ends stays on ``hold_rows`` more rows.

May import: the standard library and ``pumpops.errors`` only.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pumpops.errors import IncompatibleBundleError, InputError

__all__ = ["ALARM_RULES", "AlarmLogic", "AlarmStep"]

#: The alarm rules this agent can apply (``alarm.smoothing.rule`` in the manifest).
ALARM_RULES = ("k_of_n_hysteresis",)


@dataclass(frozen=True)
class AlarmStep:
    """The alarm state after one score.

    Attributes:
        on: the alarm is on at this row.
        raised: it turned on at this row (it was off at the previous one).
        cleared: it turned off at this row (it was on at the previous one).
    """

    on: bool
    raised: bool
    cleared: bool


class AlarmLogic:
    """``k``-of-``n`` alarms with hysteresis and an off-delay, one score at a time.

    Args:
        threshold: alarm threshold on the score (the calibration's ``threshold``).
        k: exceeding rows needed ...
        n: ... among the last ``n`` rows to raise the alarm (``1 <= k <= n``).
        release: a raised alarm stays on while ``score > release * threshold``
            (``0 < release <= 1``; 1: no hysteresis).
        hold_rows: an ending alarm stays on this many more rows (``>= 0``).

    Raises:
        InputError: a parameter is out of range or the threshold is not finite.

    >>> logic = AlarmLogic(threshold=1.0, k=2, n=2, release=0.5)
    >>> [int(logic.update(s).on) for s in [0.0, 2.0, 2.0, 0.8, 0.8, 0.3, 2.0]]
    [0, 0, 1, 1, 1, 0, 0]
    """

    def __init__(self, threshold: float, k: int, n: int, release: float = 1.0, hold_rows: int = 0) -> None:
        problems = []
        if not math.isfinite(threshold):
            problems.append(f"threshold must be finite, got {threshold}")
        if not 1 <= k <= n:
            problems.append(f"need 1 <= k <= n, got k={k}, n={n}")
        if not 0.0 < release <= 1.0:
            problems.append(f"release must be in (0, 1], got {release}")
        if hold_rows < 0:
            problems.append(f"hold_rows must be >= 0, got {hold_rows}")
        if problems:
            raise InputError("invalid alarm rule: " + "; ".join(problems))
        self.threshold = float(threshold)
        self.k = int(k)
        self.n = int(n)
        self.release = float(release)
        self.hold_rows = int(hold_rows)
        self.reset()

    @classmethod
    def from_manifest(cls, smoothing: Mapping[str, Any], threshold: float) -> AlarmLogic:
        """Build the logic from a bundle manifest's ``alarm.smoothing`` and the device's threshold.

        Missing keys take the plain rule: ``k = n = 1``, ``release = 1``,
        ``hold_rows = 0`` (every score above threshold is an alarm). Keys the
        agent does not use (``meaning``) are ignored.

        Args:
            smoothing: the manifest's ``alarm.smoothing`` mapping (may be empty).
            threshold: the device calibration's ``threshold``.

        Raises:
            IncompatibleBundleError: the rule is not one this agent knows
                (:data:`ALARM_RULES`), or its parameters are of the wrong type
                or out of range.

        >>> AlarmLogic.from_manifest({}, 2.5).k, AlarmLogic.from_manifest({"k": 3, "n": 5}, 2.5).n
        (1, 5)
        """
        rule = smoothing.get("rule", ALARM_RULES[0])
        if rule not in ALARM_RULES:
            raise IncompatibleBundleError(
                f"the bundle's alarm rule {rule!r} is not supported by this agent "
                f"(it knows {', '.join(ALARM_RULES)}): update the agent before installing this bundle"
            )
        try:
            k = _integer(smoothing.get("k", 1), "k")
            n = _integer(smoothing.get("n", 1), "n")
            hold = _integer(smoothing.get("hold_rows", 0), "hold_rows")
            release = _number(smoothing.get("release", 1.0), "release")
            return cls(float(threshold), k, n, release=release, hold_rows=hold)
        except (InputError, TypeError, ValueError) as exc:
            raise IncompatibleBundleError(f"the bundle's alarm smoothing {dict(smoothing)!r}: {exc}") from exc

    def reset(self) -> None:
        """Forget every past score (the alarm is off; after a model or calibration change)."""
        self._exceed: deque[bool] = deque(maxlen=self.n)
        self._count = 0  # exceeding rows among the last n
        self._latched = False  # the alarm before the off-delay
        self._since_latched: int | None = None  # rows since the alarm was last latched on
        self._on = False

    @property
    def on(self) -> bool:
        """Whether the alarm is on after the last score."""
        return self._on

    def state(self) -> dict[str, Any]:
        """What the logic remembers, as JSON-ready values (saved across a restart).

        >>> a = AlarmLogic(1.0, k=2, n=3); _ = [a.update(s) for s in (2.0, 2.0)]
        >>> b = AlarmLogic(1.0, k=2, n=3); b.restore(a.state()); b.on, b.update(0.0).on
        (True, True)
        """
        return {
            "exceed": list(self._exceed),
            "latched": self._latched,
            "since_latched": self._since_latched,
            "on": self._on,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back a :meth:`state` of the same rule (the last ``n`` kept); a malformed one resets.

        Raises:
            InputError: ``state`` is not a state of this logic (it is reset first).
        """
        self.reset()
        try:
            exceed = [bool(x) for x in state["exceed"]][-self.n :]
            since = state["since_latched"]
            if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
                raise TypeError(f"since_latched {since!r}")
            latched, on = bool(state["latched"]), bool(state["on"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"not a saved alarm state: {exc}") from None
        self._exceed.extend(exceed)
        self._count = sum(exceed)
        self._latched = latched
        self._since_latched = since
        self._on = on

    def update(self, score: float) -> AlarmStep:
        """Take the next score and return the alarm state at its row.

        Args:
            score: the model's score for this row; NaN counts as not exceeding
                (the caller counts NaN scores).
        """
        exceeds = bool(score > self.threshold)
        if len(self._exceed) == self.n and self._exceed[0]:
            self._count -= 1
        self._exceed.append(exceeds)
        self._count += exceeds
        raised = self._count >= self.k
        if self.release < 1.0:
            self._latched = raised or (self._latched and bool(score > self.release * self.threshold))
        else:
            self._latched = raised
        if self._latched:
            self._since_latched = 0
        elif self._since_latched is not None:
            self._since_latched += 1
        on = self._since_latched is not None and self._since_latched <= self.hold_rows
        step = AlarmStep(on=on, raised=on and not self._on, cleared=self._on and not on)
        self._on = on
        return step


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise InputError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{name} must be a number, got {value!r}")
    return float(value)
