"""Settings: each declared once, validated at load, and documented in the README from the
same declaration."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from chalicelib import config

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_settings_table_is_the_declared_one() -> None:
    text = README.read_text()
    between = text.split("<!-- settings:start -->\n", 1)[1].split("<!-- settings:end -->", 1)[0]
    assert between == config.markdown_table(), "run `python -m chalicelib.config` into README"


def test_defaults_load_without_any_variable() -> None:
    loaded = config.load({})
    assert loaded.tags_table == "stratus-tags"
    assert loaded.max_request_bytes == 0
    assert loaded.referrers_api is True
    assert loaded.auth is False


def test_table_names_follow_the_prefix_unless_named() -> None:
    loaded = config.load({"STRATUS_TABLE_PREFIX": "x-", "STRATUS_TAGS_TABLE": "mine"})
    assert (loaded.manifests_table, loaded.tags_table) == ("x-manifests", "mine")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STRATUS_MAX_REQUEST_BYTES", "4.5MB"),
        ("STRATUS_MAX_REQUEST_BYTES", "-1"),
        ("STRATUS_TOKEN_SECONDS", "5"),
        ("STRATUS_AUTH", "maybe"),
        ("FEATURE_REFERRERS_API", "enabled"),
        ("STRATUS_REQUEST_TIMEOUT_SECONDS", "soon"),
    ],
)
def test_a_value_that_does_not_parse_or_is_out_of_range_stops_the_load(
    name: str, value: str
) -> None:
    with pytest.raises(config.ConfigError, match=name):
        config.load({name: value})


def test_auth_cannot_be_switched_off_in_lambda() -> None:
    loaded = config.load({"STRATUS_AUTH": "0", "AWS_LAMBDA_FUNCTION_NAME": "stratus-dev"})
    assert loaded.auth is True


def test_an_unknown_stratus_variable_is_reported_as_a_likely_typo(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="stratus.config"):
        config.load({"STRATUS_MAX_REQEST_BYTES": "10", "STRATUS_DATA_DIR": "/tmp/x"})
    assert "STRATUS_MAX_REQEST_BYTES (did you mean STRATUS_MAX_REQUEST_BYTES?)" in caplog.text
    assert "STRATUS_DATA_DIR" not in caplog.text


def test_observability_reads_the_same_flag_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATUS_OBSERVABILITY", "yes")
    assert config.current("STRATUS_OBSERVABILITY") is True
    monkeypatch.setenv("STRATUS_OBSERVABILITY", "off")
    assert config.current("STRATUS_OBSERVABILITY") is False


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_each_stages_environment_loads_with_no_unknown_variable(stage: str) -> None:
    import json

    chalice = json.loads((README.parent / ".chalice" / "config.json").read_text())
    environment = {
        **chalice.get("environment_variables", {}),
        **chalice["stages"][stage].get("environment_variables", {}),
    }
    loaded = config.load(environment)
    assert loaded.max_request_bytes == 4_500_000
    assert config.unknown_variables(environment) == []
