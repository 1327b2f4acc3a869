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


@pytest.fixture
def no_work(monkeypatch):
    """The demo's work, replaced by a failure: a bad option must be refused before any work starts."""

    def must_not_run(*args, **kwargs):
        raise AssertionError("run_demo started although an option was bad")

    monkeypatch.setattr(cli, "run_demo", must_not_run)


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--clients", "0", "--clients: must be a positive integer, got 0"),
        ("--clients", "ten", "--clients: expected a whole number, got 'ten'"),
        ("--fraction", "1.5", "--fraction: must be in (0.0, 1.0], got 1.5"),
        ("--fraction", "0", "--fraction: must be in (0.0, 1.0], got 0.0"),
        ("--rounds", "-3", "--rounds: must be a positive integer, got -3"),
        ("--epochs", "0", "--epochs: "),
        ("--batch", "0", "--batch-size: must be a positive integer or None (full batch), got 0"),
        (
            "--partition",
            "weird",
            "--partition: Unknown partition 'weird'; choose one of ['iid', 'shards', 'dirichlet']",
        ),
        ("--model", "3nn", "--model: Unknown model '3nn'"),
        ("--seed", "x", "--seed: expected a whole number, got 'x'"),
        ("--seed", "-1", "--seed: must be a whole number from 0 to 2**64 - 1, got -1"),
        ("--seed", "1" * 25, "--seed: must be a whole number from 0 to 2**64 - 1, got " + "1" * 25),
        ("--alpha", "-1", "--alpha: "),
        ("--alpha", "inf", "--alpha: expected a finite number, got 'inf'"),
        ("--lr", "inf", "--lr: expected a finite number, got 'inf'"),
        ("--lr", "nan", "--lr: expected a finite number, got 'nan'"),
        ("--lr", "0", "--lr: "),
        ("--target", "2", "--target: must be an accuracy in (0, 1], got 2.0"),
        ("--out", "", "--out: must be a folder you can write to: the path is empty"),
        ("--output", "x", "unrecognized arguments: --output x (did you mean --out?)"),
        ("--seeds", "1", "(did you mean --seed?)"),
    ],
)
def test_bad_option_values_exit_2_with_one_clear_error_line(option, value, message, capsys, no_work):
    assert cli.main(["demo", option, value]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if "error" in line]
    assert len(error_lines) == 1, err
    assert error_lines[0].startswith("fedtutor demo: error: --") or "unrecognized" in error_lines[0]
    assert message in error_lines[0], error_lines[0]


def test_out_under_a_file_is_refused_before_any_work(tmp_path, capsys, no_work):
    a_file = tmp_path / "taken.txt"
    a_file.write_text("mine")
    assert cli.main(["demo", "--out", str(a_file / "runs")]) == 2
    err = capsys.readouterr().err
    assert f"{a_file} is a file, not a folder, so {a_file / 'runs'} cannot be made under it" in err
    assert a_file.read_text() == "mine"


def test_options_are_generated_from_the_fedavg_and_demo_dataclasses():
    """One source of truth: every command-line value field of FedAvg and DemoOptions is an option."""
    import dataclasses

    from fedtutor.federated import FedAvg

    demo = cli.build_parser().commands["demo"]
    flags = {s for action in demo._actions for s in action.option_strings}
    for cls in (FedAvg, cli.DemoOptions):
        for field in dataclasses.fields(cls):
            if field.type in ("int", "float", "str") or field.type in (int, float, str):
                assert "--" + field.name.replace("_", "-") in flags, field.name
    defaults = demo.parse_args([])
    assert defaults.lr == FedAvg().lr and defaults.clients == cli.DemoOptions().clients


def test_demo_rejects_a_file_as_output_folder_and_too_many_clients(tmp_path, capsys):
    a_file = tmp_path / "taken.txt"
    a_file.write_text("mine")
    assert cli.main([*SMALL, "--out", str(a_file)]) == 2
    assert "is a file, not a folder; give a folder" in capsys.readouterr().err
    assert a_file.read_text() == "mine"
    assert cli.main(["demo", "--clients", "4000", "--partition", "shards", "--out", str(tmp_path)]) == 2
    assert "needs 2 examples per client" in capsys.readouterr().err
