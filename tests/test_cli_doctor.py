"""`fedtutor doctor` (one line per check, a fix for each problem, exit status 0 only when all pass)
and the command line's checks of `flower` and `start` options, made before any work starts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fedtutor import data
from fedtutor.course import cli, doctor, launcher
from fedtutor.course import workspace as ws

MINI = Path(data.__file__).parent / "_data" / "mnist-mini"


@pytest.fixture
def any_disk(monkeypatch):
    """The doctor's disk threshold at 0 GB: what it reports must not depend on this machine's free disk."""
    monkeypatch.setattr(doctor, "MIN_FREE_DISK_GB", 0.0)


def test_doctor_passes_on_this_machine(capsys, any_disk):
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    for name in ("python", "torch", "torchvision", "ipywidgets", "widgets ext", "matplotlib", "data", "disk", "mode"):
        assert f"] {name}" in out, name
    assert "FAIL" not in out


def test_python_module_entry_point_runs_doctor():
    result = subprocess.run([sys.executable, "-m", "fedtutor", "doctor"], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in result.stderr
    assert "] disk" in result.stdout
    # exit status follows the checks: this machine's free disk decides the disk line, so compare with it
    assert result.returncode == (1 if "[FAIL]" in result.stdout else 0), result.stdout + result.stderr


def test_old_python_fails_with_fix():
    check = doctor.check_python((3, 9, 18))
    assert not check.ok and "3.9.18" in check.detail and "Python 3.10 or newer" in check.line()


def test_missing_package_fails_with_pip_fix():
    check = doctor.check_package("definitely_not_a_module_xyz", "xyz-pkg", minimum=">=1.0")
    assert not check.ok and check.detail == "not installed"
    assert 'pip install "xyz-pkg>=1.0"' in check.line()


def test_too_old_package_is_reported():
    check = doctor.check_package("pytest", minimum=">=999.0")
    assert not check.ok and "too old" in check.detail and "pip install -U" in check.fix


def test_disk_check_follows_its_threshold(tmp_path):
    free_gb = shutil.disk_usage(tmp_path).free / 1e9
    low = doctor.check_disk(str(tmp_path), minimum_gb=free_gb * 2 + 1)
    assert not low.ok and f"free at least {free_gb * 2 + 1:.0f} GB" in low.fix and str(tmp_path) in low.fix
    assert doctor.check_disk(str(tmp_path), minimum_gb=0.0).ok
    assert all(c.ok for c in doctor.run_doctor(min_free_disk_gb=0.0) if c.name == "disk")


def test_doctor_exit_status_is_1_when_a_required_check_fails(monkeypatch, capsys):
    old_python = doctor.check_python((3, 8, 0))
    monkeypatch.setattr(doctor, "check_python", lambda: old_python)
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] python" in out and "fix:" in out and "1 problem(s) to fix: python" in out


def test_broken_data_folder_fails_the_doctor(tmp_path, monkeypatch, capsys, any_disk):
    monkeypatch.setenv("FEDTUTOR_DATA", str(tmp_path))
    data.forget_sources()
    assert cli.main(["doctor"]) == 1
    assert "[FAIL] data" in capsys.readouterr().out
    data.forget_sources()


def test_a_folder_in_place_of_a_data_file_is_a_failed_check_not_a_traceback(tmp_path, monkeypatch, capsys, any_disk):
    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(MINI / name, tmp_path / name)
    (tmp_path / "train-labels-idx1-ubyte").mkdir()  # a folder where a label file should be
    monkeypatch.setenv("FEDTUTOR_DATA", str(tmp_path))
    data.forget_sources()
    assert cli.main(["doctor"]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    line = next(line for line in captured.out.splitlines() if line.startswith("[FAIL] data"))
    assert "train-labels-idx1-ubyte" in line
    data.forget_sources()


def test_doctor_says_which_data_set_and_what_it_means_for_run_times(capsys, any_disk):
    source = data.mnist_source()
    check = doctor.check_data()
    assert check.ok and check.detail.startswith(source.describe())
    assert f"{source.n_train:,} train" in check.detail
    cli.main(["doctor"])
    assert source.describe() in capsys.readouterr().out


def _free_port() -> int:
    import socket

    with socket.create_server(("0.0.0.0", 0)) as probe:
        return probe.getsockname()[1]


def test_doctor_includes_the_classroom_check_and_it_is_optional(capsys, any_disk):
    pytest.importorskip("flwr")
    pytest.importorskip("cryptography")
    checks = {c.name: c for c in doctor.run_doctor(min_free_disk_gb=0.0)}
    assert "classroom" in checks and not checks["classroom"].required
    assert cli.main(["doctor"]) == 0
    assert "] classroom" in capsys.readouterr().out


def test_doctor_without_flower_warns_about_the_classroom_and_still_passes(monkeypatch, capsys, any_disk):
    monkeypatch.setitem(sys.modules, "flwr", None)  # `import flwr` now fails as if it were not installed
    check = next(c for c in doctor.run_doctor(min_free_disk_gb=0.0) if c.name == "classroom")
    assert not check.ok and not check.required
    assert check.detail == "flwr missing" and 'pip install "fedtutor[flower]"' in check.fix
    assert cli.main(["doctor"]) == 0  # an optional check never fails the doctor
    out = capsys.readouterr().out
    assert "[warn] classroom" in out and "[FAIL]" not in out


def test_classroom_check_names_a_port_in_use_and_another_to_use():
    pytest.importorskip("flwr")
    import socket

    from fedtutor.course import classroom

    with socket.create_server(("0.0.0.0", 0)) as busy:
        port = busy.getsockname()[1]
        check = classroom.check_classroom(port)
    assert not check.ok and not check.required
    assert check.detail == f"port {port} is in use here" and f"--port {port + 10}" in check.fix
    assert "[warn] classroom" in check.line()


@pytest.mark.parametrize(
    ("platform", "hint"),
    [("win32", "Windows asks once"), ("darwin", "macOS may ask"), ("linux", "sudo ufw allow {port}/tcp")],
)
def test_classroom_check_gives_the_firewall_hint_of_each_system(monkeypatch, platform, hint):
    pytest.importorskip("flwr")
    from fedtutor.course import classroom

    port = _free_port()
    monkeypatch.setattr(classroom.sys, "platform", platform)
    check = classroom.check_classroom(port)
    assert check.ok and f"port {port} free" in check.detail and hint.format(port=port) in check.detail


def test_quick_mode_is_reported(monkeypatch):
    monkeypatch.setenv("FEDTUTOR_QUICK", "1")
    assert "quick (FEDTUTOR_QUICK=1)" in doctor.check_mode().detail
    monkeypatch.delenv("FEDTUTOR_QUICK")
    monkeypatch.setenv("CI", "false")
    assert doctor.check_mode().detail.startswith("full")


# ----------------------------------------------------------------------------- flower and start options


@pytest.fixture
def no_deployment(monkeypatch):
    """`fedtutor flower`'s work, replaced by a failure: bad options must stop before any process starts."""

    def must_not_run(*args, **kwargs):
        raise AssertionError("run_deployment was called although an option was bad")

    monkeypatch.setattr(launcher, "run_deployment", must_not_run)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--clients", "10000"], "--clients: must be at most"),
        (["--clients", "0"], "--clients: "),
        (["--alpha", "inf"], "--alpha: expected a finite number, got 'inf'"),
        (["--lr", "inf"], "--lr: expected a finite number, got 'inf'"),
        (["--lr", "0"], "--lr: must be positive, got 0.0"),
        (["--seed", "-1"], "--seed: "),
        (["--seed", "1" * 25], "--seed: "),
        (["--host", "192.0.2.1"], "--host: '192.0.2.1' is not an address of this machine"),
        (["--model", "cnm"], "--model: Unknown model 'cnm'"),
        (["--rounds", "2.5"], "--rounds: expected a whole number, got '2.5'"),
        (["--client", "3"], "(did you mean --clients?)"),  # no abbreviations: it would start 3 clients
        (["--clinets", "3"], "(did you mean --clients?)"),
    ],
)
def test_bad_flower_options_exit_2_before_any_process_starts(argv, message, capsys, no_deployment):
    assert cli.main(["flower", *argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and lines[0].startswith("fedtutor flower: error: "), err
    assert message in lines[0], lines[0]


def test_flower_logs_pointing_at_a_file_is_refused(tmp_path, capsys, no_deployment):
    a_file = tmp_path / "log.txt"
    a_file.write_text("keep me")
    assert cli.main(["flower", "--logs", str(a_file)]) == 2
    assert f"--logs: {a_file} is a file, not a folder" in capsys.readouterr().err
    assert a_file.read_text() == "keep me"


def test_flower_options_are_the_deployment_config_fields():
    import dataclasses

    from fedtutor.flower import DeploymentConfig

    flower = cli.build_parser().commands["flower"]
    flags = {s for action in flower._actions for s in action.option_strings}
    names = {f.name for f in dataclasses.fields(DeploymentConfig)}
    assert {"--" + name.replace("_", "-") for name in names} <= flags
    defaults = flower.parse_args([])
    assert {name: getattr(defaults, name) for name in names} == dataclasses.asdict(DeploymentConfig())


def test_start_with_an_empty_folder_name_is_refused(capsys, monkeypatch):
    monkeypatch.setattr(ws, "start_workspace", lambda *a: pytest.fail("start_workspace ran"))
    assert cli.main(["start", ""]) == 2
    assert "fedtutor start: error: DIR: the path is empty" in capsys.readouterr().err


def test_start_on_a_workspace_with_a_running_server_prints_its_url(tmp_path, monkeypatch, capsys):
    import jupyter_server.serverapp as serverapp

    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(Path(cli.__file__).parents[2] / "notebooks" / "00-setup.ipynb", course)
    mine = tmp_path / "mine"
    servers = [
        {"url": "http://localhost:8890/", "token": "other", "root_dir": str(tmp_path / "elsewhere")},
        {"url": "http://localhost:8888/", "token": "abc", "root_dir": str(mine)},
    ]
    monkeypatch.setattr(serverapp, "list_running_servers", lambda: iter(servers))
    monkeypatch.setattr(ws, "launch_jupyter", lambda *a, **k: pytest.fail("a second server was started"))
    assert cli.main(["start", str(mine), "--course", str(course)]) == 0
    out = capsys.readouterr().out
    assert "already running for this workspace: http://localhost:8888/lab?token=abc" in out
    assert (mine / "00-setup.ipynb").is_file()
    assert ws.running_server(tmp_path / "elsewhere" / "x") is None
