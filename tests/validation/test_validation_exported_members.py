"""The public API of pumpops.validation, pinned."""

import pumpops.validation


def test_validation_exported_members() -> None:
    assert sorted(pumpops.validation.__all__) == sorted(
        [
            "NO_CHAMPION",
            "BehaviourBudgets",
            "BehaviourMeasurement",
            "CandidateRegistry",
            "CandidateValidation",
            "ChampionTolerances",
            "DetectionMetrics",
            "GateResult",
            "HeldOut",
            "HoldoutDevice",
            "MeasurementSection",
            "ParityMeasurement",
            "ParityTolerance",
            "PostDriftData",
            "PostDriftDevice",
            "PostDriftMeasurement",
            "ResourceBudgets",
            "ResourceMeasurement",
            "ValidationConfig",
            "ValidationReport",
            "check_behaviour",
            "check_budgets",
            "check_champion",
            "check_parity",
            "check_post_drift",
            "decide",
            "load_validation_config",
            "measure_post_drift",
            "parse_validation_config",
            "reset_peak_rss",
            "rival_champion",
            "rss_kib",
            "simulated_holdout",
            "skab_holdout",
            "validate_candidate",
            "validate_model",
        ]
    )
    for name in pumpops.validation.__all__:
        assert getattr(pumpops.validation, name) is not None


def test_validation_imports_no_mlflow_store_or_registry() -> None:
    import ast
    from pathlib import Path

    for path in Path(pumpops.validation.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        for name in names:
            assert not name.startswith(("mlflow", "pumpops.store", "pumpops.registry")), (path, name)
    # the decisions import nothing that does I/O
    tree = ast.parse((Path(pumpops.validation.__file__).parent / "_gates.py").read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert names <= {"__future__", "json", "math", "collections.abc", "dataclasses", "typing"}, names


def test_validation_import_loads_no_mlflow_or_sqlalchemy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pumpops.validation; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'sqlalchemy')"
        " or m.startswith('pumpops.registry')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
