"""The benchmark package's plumbing: which measurements `python -m bench` knows, and how each
rewrites only its own section of docs/benchmarks.md. (The measurements themselves run in
`make bench`, not here.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import __main__ as runner
from bench import report


def test_bench_runs_every_measurement_by_name_and_the_soak_last() -> None:
    names = runner.available()
    assert set(runner.OWN) <= set(names)
    assert names[-1] == "soak"


def test_bench_runs_optional_measurements_only_when_their_module_exists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    present = {"bench.hotkeys"}
    monkeypatch.setattr(
        runner.importlib.util,
        "find_spec",
        lambda name: object() if name in present else None,
    )
    assert "hotkeys" in runner.available()
    assert "gc" not in runner.available()


def test_bench_refuses_an_unknown_measurement() -> None:
    with pytest.raises(SystemExit):
        runner.main(["no-such-measurement"])


def test_bench_section_is_replaced_in_place_leaving_the_others(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    report.write_section("calls", "calls v1", path)
    report.write_section("soak", "soak v1", path)
    report.write_section("calls", "calls v2", path)
    text = path.read_text()
    assert "calls v2" in text
    assert "calls v1" not in text
    assert "soak v1" in text
    assert text.startswith("# Benchmarks")


def test_bench_new_section_goes_where_the_section_order_puts_it(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    report.write_section("soak", "soak", path)
    report.write_section("calls", "calls", path)
    report.write_section("package", "package", path)
    text = path.read_text()
    starts = [text.index(f"<!-- {name}:start -->") for name in ("calls", "package", "soak")]
    assert starts == sorted(starts)


def test_bench_targets_judge_a_number_over_its_limit_as_missed() -> None:
    assert report.verdict(1, report.CALLS["manifest GET by tag"]) == "met"
    assert report.verdict(2, report.CALLS["manifest GET by tag"]) == "**missed by 1**"
