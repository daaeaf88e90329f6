"""``CX_API__TOKENS``: digests and scopes only, checked at start, never shown."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from api.auth import token_digest
from flows.api_settings import ApiSettings
from flows.app.cli import main

DIGEST = token_digest("agent-secret")


def test_tokens_are_kept_secret_and_parsed() -> None:
    conf = ApiSettings(tokens=SecretStr(f'{{"{DIGEST.upper()}": ["stream:read"]}}'))
    assert conf.token_scopes() == {DIGEST: frozenset({"stream:read"})}
    assert DIGEST not in repr(conf)
    assert DIGEST not in str(conf.model_dump())


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("not json", "must be a JSON object"),
        ('["x"]', "must be a JSON object"),
        ('{"agent-secret": ["stream:read"]}', "key #1 is not a SHA-256 hex digest"),
        (f'{{"{DIGEST}": ["admin"]}}', "scopes must be a list of profiles:read"),
    ],
)
def test_bad_tokens_are_refused_without_echoing_them(value: str, says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ApiSettings(tokens=SecretStr(value))
    assert says in str(caught.value)
    assert "agent-secret" not in str(caught.value)


def test_the_cli_refuses_bad_tokens_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CX_API__TOKENS", '{"agent-secret": ["stream:read"]}')
    assert main(["serve", "--port", "18999"]) == 2
    err = capsys.readouterr().err
    assert "CX_API__TOKENS" in err
    assert "agent-secret" not in err
