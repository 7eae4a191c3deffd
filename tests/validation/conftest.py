"""Fixtures for the validation tests: small models trained by the real pipeline on simulated data."""

from __future__ import annotations

from pathlib import Path

import pytest
from _valhelpers import train


@pytest.fixture(scope="session")
def good_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(tmp_path_factory.mktemp("good"), faulty=False)


@pytest.fixture(scope="session")
def bad_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Trained on data full of faults (no hygiene), without benign drift and without detrending."""
    return train(tmp_path_factory.mktemp("bad"), faulty=True, careless=True)


@pytest.fixture(scope="session")
def faulty_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The good recipe, but trained on data full of faults (no hygiene)."""
    return train(tmp_path_factory.mktemp("faulty"), faulty=True)
