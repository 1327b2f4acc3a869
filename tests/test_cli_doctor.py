"""`fedtutor doctor`: one line per check, a fix for each problem, exit status 0 only when all pass."""

from __future__ import annotations

import subprocess
import sys

from fedtutor.course import cli, doctor


def test_doctor_passes_on_this_machine(capsys):
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    for name in ("python", "torch", "torchvision", "ipywidgets", "widgets ext", "matplotlib", "data", "disk", "mode"):
        assert f"] {name}" in out, name
    assert "FAIL" not in out


def test_python_module_entry_point_runs_doctor():
    result = subprocess.run([sys.executable, "-m", "fedtutor", "doctor"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All required checks passed" in result.stdout


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


def test_low_disk_fails_with_fix(tmp_path):
    check = doctor.check_disk(str(tmp_path), minimum_gb=1e9)
    assert not check.ok and "free at least" in check.fix


def test_doctor_exit_status_is_1_when_a_required_check_fails(monkeypatch, capsys):
    old_python = doctor.check_python((3, 8, 0))
    monkeypatch.setattr(doctor, "check_python", lambda: old_python)
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] python" in out and "fix:" in out and "1 problem(s) to fix: python" in out


def test_broken_data_folder_fails_the_doctor(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FEDTUTOR_DATA", str(tmp_path))
    assert cli.main(["doctor"]) == 1
    assert "[FAIL] data" in capsys.readouterr().out


def test_quick_mode_is_reported(monkeypatch):
    monkeypatch.setenv("FEDTUTOR_QUICK", "1")
    assert "quick (FEDTUTOR_QUICK=1)" in doctor.check_mode().detail
    monkeypatch.delenv("FEDTUTOR_QUICK")
    monkeypatch.setenv("CI", "false")
    assert doctor.check_mode().detail.startswith("full")
