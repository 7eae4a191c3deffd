"""A model version as the registry sees it (:class:`ModelVersionInfo`), and the tags it reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["FAILED", "PASSED", "VALIDATION_ARTIFACT", "ModelVersionInfo"]

VALIDATION_ARTIFACT: Final = "validation-report.json"
PASSED: Final = "passed"
FAILED: Final = "failed"
_LINEAGE_TAGS: Final = {
    "dataset_digest": "pumpops.dataset_digest",
    "config_hash": "pumpops.config_hash",
    "code_commit": "pumpops.code_commit",
    "package_set_sha256": "pumpops.package_set_sha256",
    "seed": "pumpops.seed",
    "group": "pumpops.group",
    "detector_kind": "pumpops.detector_kind",
    "model_sha256": "pumpops.model_sha256",
}


@dataclass(frozen=True)
class ModelVersionInfo:
    """A model version as the registry sees it.

    Attributes:
        name: the registered model.
        version: the version number.
        run_id: the MLflow run that produced it.
        source: where MLflow keeps the model folder.
        tags: the version's tags (see the module docstring).
        aliases: aliases pointing at it now.
        created_ms: when it was registered (MLflow's milliseconds).
        reused: returned by :meth:`Registry.register` for a model it already had
            (same run, or the same model bytes from the same config and data).
    """

    name: str
    version: int
    run_id: str
    source: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    created_ms: int = 0
    reused: bool = field(default=False, compare=False)

    @property
    def ref(self) -> str:
        """``name/version``."""
        return f"{self.name}/{self.version}"

    @property
    def group(self) -> str:
        """The device group it was trained for."""
        return self.tags.get("pumpops.group", "")

    @property
    def validation(self) -> str:
        """``passed``, ``failed`` or ``none``."""
        return self.tags.get("pumpops.validation", "none")

    @property
    def archived(self) -> bool:
        """Whether it was archived."""
        return self.tags.get("pumpops.archived") == "true"

    def lineage(self) -> dict[str, Any]:
        """Run, data, config, code, parent and validation of this version, for ``models show``."""
        t = self.tags
        return {
            "model": self.ref,
            "run_id": self.run_id,
            "source": self.source,
            "group": self.group,
            "detector_kind": t.get("pumpops.detector_kind", ""),
            "dataset_digest": t.get("pumpops.dataset_digest", ""),
            "config_hash": t.get("pumpops.config_hash", ""),
            "code_commit": t.get("pumpops.code_commit", ""),
            "code_dirty": t.get("pumpops.code_dirty", ""),
            "package_set_sha256": t.get("pumpops.package_set_sha256", ""),
            "seed": t.get("pumpops.seed", ""),
            "model_sha256": t.get("pumpops.model_sha256", ""),
            "parent": t.get("pumpops.parent", "none"),
            "validation": self.validation,
            "validation_sha256": t.get("pumpops.validation_sha256", ""),
            "validation_against": t.get("pumpops.validation_against", ""),
            "archived": self.archived,
            "aliases": list(self.aliases),
            "metrics": {
                k.removeprefix("pumpops.metric."): v
                for k, v in sorted(t.items())
                if k.startswith("pumpops.metric.")
            },
            "releases": [],
        }
