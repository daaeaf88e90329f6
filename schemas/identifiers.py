"""Normalisation of customer identifiers.

Identity resolution only works if the same person's identifier is spelled the
same way everywhere, so every identifier value is normalised before use:

>>> normalise_identifier("email", "  Ann.Lee@Example.COM ")
'ann.lee@example.com'
>>> normalise_identifier("phone", "(415) 555-0100")
'+14155550100'
>>> normalise_identifier("phone", "0044 20 7946 0958")
'+442079460958'
>>> normalise_identifier("social_handle", "@AnnLee")
'annlee'
>>> normalise_identifier("crm_id", "  C-1001 ")
'C-1001'
"""

from __future__ import annotations

import re

# E.164: a full number (country code included) has 8 to 15 digits.
_E164_MIN, _E164_MAX = 8, 15
# A North American number with its country code: 1 + 10 digits.
_NANP_DIGITS = 11


KNOWN_IDENTIFIER_TYPES: tuple[str, ...] = (
    "crm_id",
    "loyalty_id",
    "email",
    "phone",
    "social_handle",
    "device_id",
    "cookie_id",
)

#: Identifier types that are household evidence only (state.household_rules): identity
#: resolution never sees them, so a shared home never merges the people living there.
HOUSEHOLD_ONLY_TYPES: tuple[str, ...] = ("address", "payment_token")

MAX_IDENTIFIER_CHARS = 256

_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE_STRIP_RE = re.compile(r"[\s().\-/]")
_DIGITS_RE = re.compile(r"^\d+$")
_WHITESPACE_RE = re.compile(r"\s+")


class IdentifierError(ValueError):
    """An identifier type or value that cannot be used."""


def normalise_type(id_type: str) -> str:
    """Lower-case and check an identifier type name.

    >>> normalise_type(" Email ")
    'email'
    """
    norm = id_type.strip().lower()
    if not _TYPE_RE.match(norm):
        msg = f"identifier type {id_type!r} must match {_TYPE_RE.pattern}"
        raise IdentifierError(msg)
    return norm


def normalise_phone(value: str, default_country_code: str = "1") -> str:
    """Return a phone number in E.164 form (``+`` and 8 to 15 digits).

    Numbers without an international prefix (``+`` or ``00``) get the default
    country calling code; a single national trunk ``0`` is dropped first.

    >>> normalise_phone("020 7946 0958", default_country_code="44")
    '+442079460958'
    >>> normalise_phone("1-415-555-0100")
    '+14155550100'
    """
    compact = _PHONE_STRIP_RE.sub("", value)
    if compact.startswith("+"):
        digits = compact[1:]
    elif compact.startswith("00"):
        digits = compact[2:]
    elif default_country_code == "1" and len(compact) == _NANP_DIGITS and compact.startswith("1"):
        digits = compact  # North American "1-415-555-0100": the 1 is the country code
    else:
        national = compact[1:] if compact.startswith("0") else compact
        digits = default_country_code + national
    if not _DIGITS_RE.match(digits) or not _E164_MIN <= len(digits) <= _E164_MAX:
        msg = f"phone {value!r} is not a valid number (E.164 allows 8 to 15 digits)"
        raise IdentifierError(msg)
    return "+" + digits


def normalise_identifier(id_type: str, value: str, default_country_code: str = "1") -> str:
    """Normalise one identifier value of a (normalised) type."""
    stripped = value.strip()
    if not stripped:
        msg = f"identifier {id_type} is empty"
        raise IdentifierError(msg)
    if len(stripped) > MAX_IDENTIFIER_CHARS:
        msg = f"identifier {id_type} is longer than {MAX_IDENTIFIER_CHARS} characters"
        raise IdentifierError(msg)
    if id_type == "email":
        email = _WHITESPACE_RE.sub("", stripped).lower()
        if not _EMAIL_RE.match(email):
            msg = f"email {value!r} is not an email address"
            raise IdentifierError(msg)
        return email
    if id_type == "phone":
        return normalise_phone(stripped, default_country_code)
    if id_type == "social_handle":
        return stripped.lstrip("@").lower()
    return stripped
