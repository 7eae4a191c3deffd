"""plan_waves: deterministic, stable wave assignment, and the checks on --waves."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pumpops.errors import ConfigError
from pumpops.rollout import DEFAULT_WAVES_PERCENT, parse_waves, plan_waves

DEVICES = [f"p-{i:04d}" for i in range(1000)]


@pytest.mark.parametrize(
    ("n", "waves", "sizes"),
    [
        pytest.param(1000, [1, 10, 50, 100], [10, 90, 400, 500], id="1000-default"),
        pytest.param(100, [1, 10, 50, 100], [1, 9, 40, 50], id="100-default"),
        pytest.param(20, [1, 10, 50, 100], [1, 1, 8, 10], id="20-default-1pct-rounds-up"),
        pytest.param(10, [1, 10, 50, 100], [1, 1, 3, 5], id="10-default-second-wave-raised-to-one"),
        pytest.param(4, [1, 10, 50, 100], [1, 1, 1, 1], id="4-one-each"),
        pytest.param(7, [100], [7], id="single-wave"),
        pytest.param(13, [50, 100], [7, 6], id="ceil-can-make-a-later-wave-smaller"),
        pytest.param(2, [51, 100], [1, 1], id="wave-capped-so-the-last-is-not-empty"),
    ],
)
def test_plan_waves_sizes(n: int, waves: list[int], sizes: list[int]) -> None:
    assert [len(w) for w in plan_waves(DEVICES[:n], waves, key="r-1")] == sizes


@pytest.mark.parametrize(
    ("devices", "waves", "message"),
    [
        pytest.param(DEVICES[:10], [], "at least one wave", id="no-waves"),
        pytest.param(DEVICES[:10], [0, 100], "0 is not a whole percentage", id="zero"),
        pytest.param(DEVICES[:10], [10, 101], "101 is not a whole percentage", id="over-100"),
        pytest.param(DEVICES[:10], [10.5, 100], "10.5 is not a whole percentage", id="float"),
        pytest.param(DEVICES[:10], [True, 100], "True is not a whole percentage", id="bool"),
        pytest.param(DEVICES[:10], [50, 10, 100], "10 follows 50", id="decreasing"),
        pytest.param(DEVICES[:10], [10, 10, 100], "10 follows 10", id="repeated"),
        pytest.param(DEVICES[:10], [10, 50], "last wave must be 100", id="not-ending-at-100"),
        pytest.param([], [100], "no devices", id="empty-group"),
        pytest.param(["a", "b", "a"], [100], "repeat in the group: a", id="repeated-device"),
        pytest.param(
            DEVICES[:3], [1, 10, 50, 100], "4 waves need at least 4 devices", id="fewer-devices-than-waves"
        ),
    ],
)
def test_plan_waves_refuses(devices: list[str], waves: list[int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_waves(devices, waves, key="r-1")


def test_plan_waves_is_stable_across_input_order_and_calls() -> None:
    first = plan_waves(DEVICES[:50], DEFAULT_WAVES_PERCENT, key="r-7")
    again = plan_waves(list(reversed(DEVICES[:50])), DEFAULT_WAVES_PERCENT, key="r-7")
    assert first == again


def test_plan_waves_differs_between_rollouts() -> None:
    canaries = {plan_waves(DEVICES[:100], DEFAULT_WAVES_PERCENT, key=f"r-{i}")[0][0] for i in range(20)}
    assert len(canaries) > 10  # not always the same pump first


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("1,10,50,100", (1, 10, 50, 100), id="default"),
        pytest.param(" 25 , 100 ", (25, 100), id="spaces"),
        pytest.param("100", (100,), id="one-wave"),
    ],
)
def test_parse_waves_reads(text: str, expected: tuple[int, ...]) -> None:
    assert parse_waves(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("1,ten,100", "whole percentages separated by commas", id="word"),
        pytest.param("", "whole percentages", id="empty"),
        pytest.param("50,10,100", "10 follows 50", id="decreasing"),
    ],
)
def test_parse_waves_refuses(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_waves(text)


@st.composite
def groups_and_waves(draw: st.DrawFn) -> tuple[list[str], list[int]]:
    waves = [*sorted(draw(st.sets(st.integers(1, 99), max_size=6))), 100]
    n = draw(st.integers(len(waves), 400))
    ids = draw(
        st.lists(
            st.text("abcdefghij0123456789-", min_size=1, max_size=8), min_size=n, max_size=n, unique=True
        )
    )
    return ids, waves


@settings(max_examples=300, deadline=None)
@given(groups_and_waves(), st.text(max_size=12))
def test_plan_waves_property_every_device_in_exactly_one_wave(
    case: tuple[list[str], list[int]], key: str
) -> None:
    devices, waves = case
    plan = plan_waves(devices, waves, key=key)
    flat = [d for wave in plan for d in wave]
    assert sorted(flat) == sorted(devices)  # each exactly once
    assert len(plan) == len(waves)
    assert all(plan)  # no empty wave
    n, k, ends = len(devices), len(waves), 0
    for i, (wave, p) in enumerate(zip(plan, waves, strict=True)):
        ends += len(wave)
        # never fewer than asked, unless a later wave would be left empty
        assert ends >= min(math.ceil(n * p / 100), n - (k - 1 - i))
    assert plan == plan_waves(list(reversed(devices)), waves, key=key)


@settings(max_examples=300, deadline=None)
@given(st.integers(4, 5000), st.text(max_size=12))
def test_plan_waves_property_default_waves_do_not_shrink(n: int, key: str) -> None:
    # Not true of every wave list (13 devices at 50,100 give 7 then 6), but of the default.
    sizes = [
        len(w)
        for w in plan_waves(
            DEVICES[:n] if n <= 1000 else [str(i) for i in range(n)], DEFAULT_WAVES_PERCENT, key=key
        )
    ]
    assert sizes == sorted(sizes)
