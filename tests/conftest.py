"""Shared fixtures: where the services and the SKAB data are, chosen by environment variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def skab_dir() -> Path:
    """The SKAB data folder (``$PUMPOPS_SKAB_DIR``, default ``<repo>/../shared/datasets/skab``)."""
    folder = Path(os.environ.get("PUMPOPS_SKAB_DIR", REPO.parent / "shared" / "datasets" / "skab"))
    if not folder.is_dir():
        pytest.skip(f"SKAB data not found at {folder}; set PUMPOPS_SKAB_DIR")
    return folder
