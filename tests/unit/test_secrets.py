"""The secrets registry: which part of a URL is its password, and what masking does."""

from __future__ import annotations

import logging

import pytest

from dagctl import secrets


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://etl:hunter2@db:5432/x", ["hunter2"]),
        ("postgresql://etl:p%40ss%2Fw@db/x", ["p%40ss%2Fw", "p@ss/w"]),
        ("postgresql://etl:hunter2@db:notaport/x", ["hunter2"]),  # urllib would refuse it
        ("postgresql://etl@db/x", []),
        ("postgresql://etl:@db/x", []),
        ("postgresql://db/x", []),
        ("sqlite:////tmp/state.db", []),
        ("etl:hunter2@db/x", []),  # not a URL
        ("", []),
        (None, []),
    ],
)
def test_url_passwords(url: str | None, expected: list[str]) -> None:
    assert secrets.url_passwords(url) == sorted(expected)


def test_masking_hides_every_value_whatever_its_length_longest_first() -> None:
    mask = secrets.masking(["x", "", "secret", "secret-longer"])
    assert mask("a secret-longer secret x y") == "a *** *** *** y"
    assert secrets.masking([])("unchanged") == "unchanged"


def test_registered_values_are_masked_in_log_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "_registered", set())
    monkeypatch.setattr(secrets, "_mask_registered", None)
    secrets.register_url("postgresql://etl:Unit-pw-1@db/x")
    assert secrets.mask("password Unit-pw-1 here") == "password *** here"
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, "could not use %s", ("Unit-pw-1",), None)
    assert secrets.MaskingFormatter("%(message)s").format(record) == "could not use ***"
