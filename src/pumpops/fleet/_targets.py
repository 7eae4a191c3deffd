"""Target platform profiles: what a class of edge computer can run, and its budgets.

Profiles are TOML files shipped in ``pumpops/fleet/targets/`` plus any in the
workspace's ``targets/`` folder (which win on equal ids), validated at load.
Packaging (``pumpops release create``) builds one bundle per target from them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from pumpops.fleet._toml import load_toml_model, pick_profile, profiles_by_id, shipped_files

__all__ = ["TargetBudgets", "TargetProfile", "get_target", "load_target", "load_targets", "version_tuple"]

_Ident = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
_Version = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+){0,2}$")]
_Name = Annotated[str, StringConstraints(min_length=1, max_length=64)]

#: CPU architectures as ``uname -m`` names them
ARCHES = frozenset({"x86_64", "aarch64", "armv7l", "armv6l", "i686", "riscv64"})
#: what the agent knows how to use when a device has it
SECURITY_FEATURES = frozenset(
    {"hardware_key_storage", "tpm_key_storage", "secure_boot", "read_only_root", "secure_element"}
)


def version_tuple(text: str) -> tuple[int, ...]:
    """``"1.10"`` -> ``(1, 10, 0)``, for comparing versions.

    >>> version_tuple("1.8") < version_tuple("1.10")
    True
    """
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


class TargetBudgets(BaseModel):
    """What a bundle may cost on the device (units in the names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_model_bytes: int = Field(gt=0, le=10_000_000_000)
    max_latency_ms: float = Field(gt=0, le=60_000)
    max_peak_memory_mb: float = Field(gt=0, le=1_000_000)


class TargetProfile(BaseModel):
    """One target platform.

    Attributes:
        id: the name used on the command line and in bundle paths.
        arch: CPU architecture (``uname -m``).
        onnxruntime_min: oldest onnxruntime release on such devices.
        onnxruntime_max: newest onnxruntime release on such devices.
        max_opset: highest ONNX opset (default domain) their runtime loads.
        max_ir_version: highest ONNX IR version their runtime loads.
        execution_providers: in order of preference; CPU last as the fallback.
        int8_allowed: whether an int8 (quantised) model may be shipped.
        float32_preferred: ship float32 instead of float64 when the scores stay within tolerance.
        security_features: features the agent should use when the device has them.
        min_agent_version: the oldest agent a bundle for this target is built for.
        budgets: size, latency and memory budgets.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: _Ident
    description: str = ""
    arch: str
    onnxruntime_min: _Version
    onnxruntime_max: _Version
    max_opset: int = Field(ge=1, le=100)
    max_ir_version: int = Field(ge=3, le=100)
    execution_providers: tuple[_Name, ...] = Field(min_length=1)
    int8_allowed: bool = False
    float32_preferred: bool = False
    security_features: tuple[str, ...] = ()
    min_agent_version: _Version = "0.1.0"
    budgets: TargetBudgets

    @model_validator(mode="after")
    def _check(self) -> TargetProfile:
        if self.arch not in ARCHES:
            raise ValueError(f"arch {self.arch!r} is unknown; known: {', '.join(sorted(ARCHES))}")
        if version_tuple(self.onnxruntime_min) > version_tuple(self.onnxruntime_max):
            raise ValueError(
                f"onnxruntime_min {self.onnxruntime_min} is above onnxruntime_max {self.onnxruntime_max}"
            )
        if self.execution_providers[-1] != "CPUExecutionProvider":
            raise ValueError("execution_providers must end with CPUExecutionProvider (the fallback)")
        for label, names in (
            ("execution_providers", self.execution_providers),
            ("security", self.security_features),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{label} repeat: {', '.join(dupes)}")
        unknown = sorted(set(self.security_features) - SECURITY_FEATURES)
        if unknown:
            raise ValueError(
                f"unknown security features {unknown}; known: {', '.join(sorted(SECURITY_FEATURES))}"
            )
        for ep in self.execution_providers:
            if not re.match(r"^[A-Za-z]+ExecutionProvider$", ep):
                raise ValueError(f"{ep!r} is not an onnxruntime execution provider name")
        return self

    def digest(self) -> str:
        """SHA-256 of the profile's canonical JSON: names exactly what a bundle was built for."""
        doc = self.model_dump(mode="json")
        return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def load_target(path: Path) -> TargetProfile:
    """Load and validate one target profile file.

    Raises:
        ConfigError: the file is not valid TOML or not a valid target profile.
    """
    return load_toml_model(path, TargetProfile, "target profile")


def load_targets(extra_dirs: Iterable[Path] = ()) -> dict[str, TargetProfile]:
    """Return the shipped target profiles plus those in ``extra_dirs`` (which win on equal ids).

    Raises:
        ConfigError: a profile file is invalid.
    """
    return profiles_by_id(shipped_files("targets", load_target), extra_dirs, load_target)


def get_target(target_id: str, extra_dirs: Iterable[Path] = ()) -> TargetProfile:
    """Return the target profile ``target_id``.

    Raises:
        NotFoundError: no such target.
        ConfigError: a profile file is invalid.
    """
    return pick_profile(load_targets(extra_dirs), target_id, "target")
