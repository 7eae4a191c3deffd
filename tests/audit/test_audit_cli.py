"""``pumpops audit verify|export|show`` through ``pumpops.cli.app``, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pumpops.audit import AuditEntry, chain_entry, resolve_actor
from pumpops.cli import app
from pumpops.errors import ConfigError, InputError, IntegrityError
from pumpops.settings import Settings, init_workspace
from pumpops.store import TelemetryStore

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
DAY = 86_400 * 1_000_000

Raw = Callable[[str], None]


@pytest.fixture(autouse=True)
def _workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The current directory is an empty workspace; no PUMPOPS_* variables leak in."""
    init_workspace(tmp_path)
    monkeypatch.chdir(tmp_path)
    for name in ("PUMPOPS_DATABASE_URL", "PUMPOPS_WORKSPACE", "PUMPOPS_ACTOR"):
        monkeypatch.delenv(name, raising=False)


def run(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output, result.exception


@pytest.fixture
def filled(store: TelemetryStore, db_url: str) -> str:
    """Five entries, one a day from 2026-01-01, alternating subjects ``m/1`` and ``m/0``."""
    for i in range(1, 6):
        store.append_audit("ann@hq", "model.promoted", f"m/{i % 2}", {"i": i}, time_us=T0 + (i - 1) * DAY)
    return db_url


def test_cli_audit_verify_empty_database_is_ok(store: TelemetryStore, db_url: str) -> None:
    code, output, _ = run("audit", "verify", "--db", db_url)
    assert code == 0, output
    assert "OK: 0 entries" in output


def test_cli_audit_verify_intact_prints_count_and_head(filled: str, store: TelemetryStore) -> None:
    head = store.audit_entries()[-1].hash
    code, output, _ = run("audit", "verify", "--db", filled)
    assert code == 0, output
    assert "OK: 5 entries" in output
    assert head in output
    code, output, _ = run("audit", "verify", "--db", filled, "--head", head)
    assert code == 0, output


def test_cli_audit_verify_tampered_database_fails_naming_entry(filled: str, raw: Raw) -> None:
    raw("""UPDATE audit SET payload = '{"i":30}' WHERE seq = 3""")
    code, _, exc = run("audit", "verify", "--db", filled)
    assert code != 0
    assert isinstance(exc, IntegrityError)
    assert "entry seq 3" in str(exc)
    assert "modified" in str(exc)


def test_cli_audit_verify_unknown_head_reports_deleted(filled: str) -> None:
    code, _, exc = run("audit", "verify", "--db", filled, "--head", "ab" * 32)
    assert code != 0
    assert isinstance(exc, IntegrityError)
    assert "deleted" in str(exc)


def test_cli_audit_show_lists_newest_entries(filled: str) -> None:
    code, output, _ = run("audit", "show", "--db", filled, "--limit", "2")
    assert code == 0, output
    assert "model.promoted" in output
    assert "2026-01-05" in output
    assert "2026-01-03" not in output


def test_cli_audit_show_empty_says_so(store: TelemetryStore, db_url: str) -> None:
    code, output, _ = run("audit", "show", "--db", db_url)
    assert code == 0, output
    assert "empty" in output


def _export(url: str, path: Path, *extra: str) -> list[str]:
    code, output, _ = run("audit", "export", "--db", url, "--out", str(path), *extra)
    assert code == 0, output
    return path.read_text(encoding="utf-8").splitlines()


def test_cli_audit_export_then_verify_file_round_trip(filled: str, tmp_path: Path) -> None:
    lines = _export(filled, tmp_path / "audit.jsonl")
    header = json.loads(lines[0])
    assert (header["pumpops_audit_export"], header["count"], header["chain_head_seq"]) == (1, 5, 5)
    assert [json.loads(line)["seq"] for line in lines[1:]] == [1, 2, 3, 4, 5]
    assert set(json.loads(lines[1])) == {
        "seq", "time_us", "actor", "action", "subject", "payload", "prev_hash", "hash",
    }  # fmt: skip
    code, output, _ = run("audit", "verify", "--file", str(tmp_path / "audit.jsonl"))
    assert code == 0, output
    assert "OK: 5 entries" in output


def test_cli_audit_export_to_stdout_is_json_lines(filled: str) -> None:
    code, output, _ = run("audit", "export", "--db", filled)
    assert code == 0, output
    assert [json.loads(line).get("seq") for line in output.splitlines()] == [None, 1, 2, 3, 4, 5]


def _edit_payload(lines: list[str]) -> list[str]:
    entry = json.loads(lines[3])
    entry["payload"]["i"] = 99
    lines[3] = json.dumps(entry)
    return lines


def _drop_line(lines: list[str]) -> list[str]:
    del lines[3]
    return lines


def _swap_lines(lines: list[str]) -> list[str]:
    lines[3], lines[4] = lines[4], lines[3]
    return lines


def _garble_line(lines: list[str]) -> list[str]:
    lines[3] = lines[3][:-5]
    return lines


def _cut_tail(lines: list[str]) -> list[str]:
    return lines[:-1]


def _append_forged(lines: list[str]) -> list[str]:
    last = AuditEntry.from_json(lines[-1])
    forged = chain_entry(last.seq + 1, last.time_us, "mallory@x", "model.promoted", "m/evil", {}, last.hash)
    return [*lines, forged.to_json()]


# (name, edit of the file's lines, words the error must contain)
FILE_SCENARIOS = [
    ("edit-payload", _edit_payload, ("seq 3", "modified")),
    ("drop-line", _drop_line, ("seq 4", "deleted")),
    ("swap-lines", _swap_lines, ("seq 4", "reordered")),
    ("garble-line", _garble_line, ("line 4", "modified")),
    ("cut-tail", _cut_tail, ("deleted",)),
    ("append-forged", _append_forged, ("seq 6", "inserted")),
]


@pytest.mark.parametrize(
    ("edit", "words"), [s[1:] for s in FILE_SCENARIOS], ids=[s[0] for s in FILE_SCENARIOS]
)
def test_cli_audit_verify_file_tampered_line_detected(
    filled: str, tmp_path: Path, edit: Callable[[list[str]], list[str]], words: tuple[str, ...]
) -> None:
    path = tmp_path / "audit.jsonl"
    lines = edit(_export(filled, path))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, _, exc = run("audit", "verify", "--file", str(path))
    assert code != 0
    assert isinstance(exc, IntegrityError)
    for word in words:
        assert word in str(exc)


def test_cli_audit_verify_file_with_unknown_head_reports_deleted(filled: str, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _export(filled, path)
    code, _, exc = run("audit", "verify", "--file", str(path), "--head", "cd" * 32)
    assert code != 0
    assert isinstance(exc, IntegrityError)
    assert "deleted" in str(exc)


def test_cli_audit_verify_file_since_export_checks_segment(filled: str, tmp_path: Path) -> None:
    path = tmp_path / "since.jsonl"
    lines = _export(filled, path, "--since", "2026-01-03")
    assert [json.loads(line)["seq"] for line in lines[1:]] == [3, 4, 5]
    code, output, _ = run("audit", "verify", "--file", str(path))
    assert code == 0, output
    assert "OK: 3 entries" in output
    path.write_text("\n".join([lines[0], *lines[2:]]) + "\n", encoding="utf-8")
    code, _, exc = run("audit", "verify", "--file", str(path))
    assert isinstance(exc, IntegrityError)
    assert "deleted" in str(exc)


def test_cli_audit_verify_file_subject_export_is_refused(filled: str, tmp_path: Path) -> None:
    path = tmp_path / "m1.jsonl"
    lines = _export(filled, path, "--subject", "m/1")
    assert [json.loads(line)["seq"] for line in lines[1:]] == [1, 3, 5]
    code, _, exc = run("audit", "verify", "--file", str(path))
    assert code != 0
    assert isinstance(exc, InputError)
    assert "not a chain" in str(exc)


def test_cli_audit_verify_file_without_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.jsonl"
    path.write_text('{"seq": 1}\n', encoding="utf-8")
    _, _, exc = run("audit", "verify", "--file", str(path))
    assert isinstance(exc, InputError)


def test_cli_audit_export_bad_since_is_config_error(store: TelemetryStore, db_url: str) -> None:
    _, _, exc = run("audit", "export", "--db", db_url, "--since", "yesterday")
    assert isinstance(exc, ConfigError)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cli_audit_verify_tampered_exits_with_code_1_and_message(
    filled: str, raw: Raw, tmp_path: Path
) -> None:
    raw("DELETE FROM audit WHERE seq = 2")
    proc = subprocess.run(
        [sys.executable, "-m", "pumpops", "-w", str(tmp_path), "audit", "verify", "--db", filled],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "TAMPERED: entry seq 3" in proc.stderr
    assert "deleted" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_resolve_actor_flag_wins_and_blank_flag_is_refused() -> None:
    settings = Settings(actor="ops@hq")
    assert resolve_actor(settings, None) == "ops@hq"
    assert resolve_actor(settings, "ann@hq") == "ann@hq"
    with pytest.raises(ConfigError):
        resolve_actor(settings, " ")


def _main(
    *args: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """Run ``pumpops`` as its console script does (errors become exit codes), in this process."""
    from pumpops.cli import main

    monkeypatch.setattr(sys, "argv", ["pumpops", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


def test_cli_audit_export_not_an_export_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "notes.jsonl"
    bad.write_text('{"hello": 1}\n', encoding="utf-8")
    code, _, err = _main("audit", "verify", "--file", str(bad), monkeypatch=monkeypatch, capsys=capsys)
    assert code == 3, err
    assert "not a pumpops audit export" in err


def test_cli_audit_verify_bad_since_names_the_flag_and_exits_2(
    filled: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _main(
        "audit",
        "export",
        "--database-url",
        filled,
        "--since",
        "last week",
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert code == 2, err
    assert "--since" in err


def test_cli_audit_export_since_relative_duration(filled: str, store: TelemetryStore) -> None:
    store.append_audit("bob@hq", "model.archived", "m/9", {"i": 9})  # now, on the wall clock
    code, output, _ = run("audit", "export", "--database-url", filled, "--since", "1h")
    assert code == 0, output
    lines = output.splitlines()
    assert [json.loads(line)["subject"] for line in lines[1:]] == ["m/9"]


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_cli_audit_show_output_formats(filled: str, store: TelemetryStore, fmt: str) -> None:
    long_subject = "dataset/" + "f" * 100  # longer than 80 columns on its own
    store.append_audit("ann@hq", "dataset.snapshot", long_subject, {"rows": 12345})
    head = store.audit_entries()[-1].hash
    code, output, _ = run("audit", "show", "--database-url", filled, "--limit", "3", "--output", fmt)
    assert code == 0, output
    if fmt == "json":
        rows = json.loads(output)
        assert [r["seq"] for r in rows] == [4, 5, 6]
        assert rows[-1]["payload"] == {"rows": 12345}
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(output)))
        assert list(rows[0]) == ["seq", "time", "actor", "action", "subject", "payload", "hash"]
        assert rows[-1]["subject"] == long_subject
    else:
        assert long_subject in output  # whole, on one line
        assert head in output


def test_cli_audit_show_json_flag_same_as_output_json(filled: str) -> None:
    _, by_flag, _ = run("audit", "show", "--db", filled, "--json")
    _, by_output, _ = run("audit", "show", "--db", filled, "-o", "json")
    assert json.loads(by_flag) == json.loads(by_output)
    assert len(json.loads(by_flag)) == 5


def test_cli_audit_verify_output_json_record(filled: str, store: TelemetryStore) -> None:
    code, output, _ = run("audit", "verify", "--database-url", filled, "--output", "json")
    assert code == 0, output
    record = json.loads(output)
    assert (record["ok"], record["count"], record["head_hash"]) == (True, 5, store.audit_entries()[-1].hash)


def test_cli_audit_verify_empty_trail_says_nothing_recorded(store: TelemetryStore, db_url: str) -> None:
    code, output, _ = run("audit", "verify", "--db", db_url)
    assert code == 0, output
    assert "the audit trail is empty" in output


def test_audit_cli_module_imports_no_heavy_library() -> None:
    """Friction 8: the command module loads typer and the CLI support only; the rest loads in the commands."""
    import subprocess
    import sys

    code = (
        "import sys, pumpops.cli.audit\n"
        "heavy = ('mlflow', 'sklearn', 'sqlalchemy', 'onnx', 'onnxruntime', 'tuf', 'pint', 'numpy',"
        " 'pydantic', 'paho')\n"
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""
