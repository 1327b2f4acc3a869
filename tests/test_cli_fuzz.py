"""Random argument lists to every subcommand: exit status 0 or 2, never a traceback.

The work of each command (training, starting processes, copying notebooks, starting JupyterLab)
is replaced by a no-op, so only what happens before the work is exercised: parsing and the
checks of every option. Nothing here starts a process or writes a file.
"""

from __future__ import annotations

import types

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedtutor.course import cli, doctor, edition, launcher, student
from fedtutor.course import workspace as ws

PARSER = cli.build_parser()
SUBCOMMANDS = sorted(PARSER.commands)
OPTIONS = {name: sorted(s for a in sub._actions for s in a.option_strings) for name, sub in PARSER.commands.items()}
VALUES = st.one_of(
    st.sampled_from(["0", "1", "-1", "2.5", "inf", "-inf", "nan", "1e400", "", " ", "none", "x", "1" * 25]),
    st.sampled_from(["127.0.0.1", "::1", "iid", "shards", "dirichlet", "2nn", "cnn", "/", "/dev/null", "~nobody_x"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12),
)


@st.composite
def command_lines(draw) -> list[str]:
    command = draw(st.sampled_from(SUBCOMMANDS))
    words = [command]
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["option", "option", "value", "typo"]))
        if kind == "option":
            words += [draw(st.sampled_from(OPTIONS[command])), draw(VALUES)]
        elif kind == "value":
            words.append(draw(VALUES))
        else:
            words.append("--" + draw(st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)))
    return words


@pytest.fixture
def no_work(monkeypatch, tmp_path):
    """Every command's work is a no-op; the current folder is an empty scratch folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(launcher, "run_deployment", lambda *a, **k: None)
    monkeypatch.setattr(cli, "run_demo", lambda *a, **k: 0)
    monkeypatch.setattr(doctor, "run_doctor", lambda *a, **k: [])
    monkeypatch.setattr(ws, "start_workspace", lambda *a, **k: [])
    monkeypatch.setattr(ws, "running_server", lambda *a, **k: None)
    monkeypatch.setattr(ws, "launch_jupyter", lambda *a, **k: 0)
    nothing = types.SimpleNamespace(conflicts=[], written=[], unchanged=[])
    monkeypatch.setattr(student, "write_student_versions", lambda *a, **k: nothing)
    monkeypatch.setattr(edition, "build_edition", lambda *a, **k: [])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=command_lines())
def test_any_command_line_exits_0_or_2_without_a_traceback(argv, no_work, capsys, tmp_path):
    status = cli.main(argv)
    captured = capsys.readouterr()
    assert status in (0, 2), (argv, status, captured.err)
    assert "Traceback" not in captured.out + captured.err, argv
    if status == 2:
        errors = [line for line in captured.err.splitlines() if ": error: " in line]
        assert len(errors) == 1 and errors[0].startswith(f"fedtutor {argv[0]}: error: "), (argv, captured.err)
    assert list(tmp_path.iterdir()) == [], "a command wrote into the current folder"
