"""`fedtutor demo`: runs, writes a PNG and a JSON history, never overwrites, rejects bad options."""

from __future__ import annotations

import json

import pytest

from fedtutor.course import cli

SMALL = ["demo", "--clients", "10", "--fraction", "0.2", "--rounds", "2", "--epochs", "1", "--batch", "50"]


def test_demo_writes_plot_and_history_and_never_overwrites(tmp_path, capsys):
    out = tmp_path / "runs"
    assert cli.main([*SMALL, "--out", str(out), "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    json_path = out / "fedavg-2nn-iid-K10-seed3.json"
    png_path = out / "fedavg-2nn-iid-K10-seed3.png"
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = json.loads(json_path.read_text())
    assert [r["round"] for r in history["rounds"]] == [1, 2]
    assert all(len(r["clients"]) == 2 for r in history["rounds"])  # C=0.2 of K=10
    assert history["config"]["epochs"] == 1 and history["config"]["batch_size"] == 50
    final = history["rounds"][-1]["test_acc"]
    assert f"final test accuracy         {final:.2%}" in printed
    assert "MB uploaded" in printed and str(png_path) in printed

    before = json_path.read_bytes()
    assert cli.main([*SMALL, "--out", str(out), "--seed", "3"]) == 0
    assert json_path.read_bytes() == before  # untouched
    again = json.loads((out / "fedavg-2nn-iid-K10-seed3-2.json").read_text())
    assert again["rounds"] == history["rounds"]  # same seed, same numbers
    assert (out / "fedavg-2nn-iid-K10-seed3-2.png").exists()


def test_demo_full_batch_and_partitions(tmp_path, capsys):
    args = ["--batch", "inf", "--partition", "shards", "--out", str(tmp_path)]
    assert cli.main([*SMALL[:-2], *args]) == 0
    history = json.loads((tmp_path / "fedavg-2nn-shards-K10-seed0.json").read_text())
    assert history["config"]["batch_size"] is None
    assert "classes per client: median 2" in capsys.readouterr().out


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--clients", "0", "argument --clients: expected a positive integer, got 0"),
        ("--clients", "ten", "argument --clients: expected a positive integer, got 'ten'"),
        ("--fraction", "1.5", "argument --fraction: expected a number in (0, 1], got 1.5"),
        ("--fraction", "0", "argument --fraction: expected a number in (0, 1], got 0.0"),
        ("--rounds", "-3", "argument --rounds: expected a positive integer, got -3"),
        ("--epochs", "0", "argument --epochs: expected a positive integer, got 0"),
        ("--batch", "0", "argument --batch: expected a positive integer or 'inf' (full batch), got '0'"),
        ("--partition", "weird", "argument --partition: invalid choice: 'weird'"),
        ("--dropout", "1", "argument --dropout: expected a number in [0, 1), got 1.0"),
        ("--seed", "x", "argument --seed: invalid int value: 'x'"),
        ("--alpha", "-1", "argument --alpha: expected a positive number, got -1.0"),
    ],
)
def test_bad_option_values_exit_2_with_one_clear_error_line(option, value, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", option, value])
    assert exit_info.value.code == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(error_lines) == 1
    assert error_lines[0].startswith("fedtutor demo: error: ")
    assert message in error_lines[0]


def test_demo_rejects_a_file_as_output_folder_and_too_many_clients(tmp_path, capsys):
    a_file = tmp_path / "taken.txt"
    a_file.write_text("mine")
    assert cli.main([*SMALL, "--out", str(a_file)]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err
    assert a_file.read_text() == "mine"
    assert cli.main(["demo", "--clients", "4000", "--partition", "shards", "--out", str(tmp_path)]) == 2
    assert "needs 2 examples per client" in capsys.readouterr().err
