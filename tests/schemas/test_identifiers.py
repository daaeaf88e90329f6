from __future__ import annotations

import pytest

from schemas.identifiers import (
    IdentifierError,
    normalise_identifier,
    normalise_phone,
    normalise_type,
)


@pytest.mark.parametrize(
    ("id_type", "value", "expected"),
    [
        ("email", "  Ann.Lee@Example.COM ", "ann.lee@example.com"),
        ("email", "ann @example.com", "ann@example.com"),
        ("phone", "+44 20 7946 0958", "+442079460958"),
        ("phone", "0044-20-7946-0958", "+442079460958"),
        ("phone", "(415) 555-0100", "+14155550100"),
        ("social_handle", " @AnnLee ", "annlee"),
        ("crm_id", " C-1001\t", "C-1001"),
        ("cookie_id", "Ck-AbC", "Ck-AbC"),  # opaque ids keep their case
    ],
)
def test_values_are_normalised(id_type: str, value: str, expected: str) -> None:
    assert normalise_identifier(id_type, value) == expected


def test_national_numbers_take_the_default_country_code() -> None:
    assert normalise_phone("020 7946 0958", default_country_code="44") == "+442079460958"


@pytest.mark.parametrize(
    ("id_type", "value", "message"),
    [
        ("email", "not-an-email", "is not an email address"),
        ("phone", "12ab", "is not a valid number"),
        ("phone", "+1234567890123456", "8 to 15 digits"),
        ("crm_id", "   ", "is empty"),
        ("crm_id", "x" * 300, "longer than 256"),
    ],
)
def test_bad_values_say_what_is_wrong(id_type: str, value: str, message: str) -> None:
    with pytest.raises(IdentifierError, match=message):
        normalise_identifier(id_type, value)


def test_types_are_lower_cased_and_checked() -> None:
    assert normalise_type(" Loyalty_ID ") == "loyalty_id"
    with pytest.raises(IdentifierError, match="must match"):
        normalise_type("bad type!")
