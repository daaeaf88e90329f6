"""The profile store over TLS with a password, against a real redis-server.

The test starts its own ``redis-server`` (Debian's build speaks TLS) on a free
port, TLS only, with a throwaway CA and server certificate made by ``openssl``
in a temporary directory, a password for the default user and an ACL user.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flows.app.cli import main
from flows.app.run import free_ports
from flows.app.stores import StoreUnavailableError, make_store
from flows.settings import RedisSettings, Settings

# throwaway secrets, searched for in every message below
PASSWORD = "tls-Secret-7f3a9"
USER_PASSWORD = "acl-Secret-91c2"


@dataclass(frozen=True)
class TlsRedis:
    port: int
    ca: Path
    other_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_certificates(tmp: Path) -> None:
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("ca", "other-ca"):
        _openssl(
            "req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.crt",
            "-days", "1", "-subj", f"/CN=cxstream test {ca}", cwd=tmp,
        )  # fmt: skip
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1",
             cwd=tmp)  # fmt: skip
    (tmp / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "1", "-extfile", "san.ext", cwd=tmp,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    for tool in ("openssl", "redis-server"):
        if shutil.which(tool) is None:
            pytest.fail(
                f"{tool} is missing: `bash scripts/services.sh start` installs redis-server"
            )
    tmp = tmp_path_factory.mktemp("redis-tls")
    _make_certificates(tmp)
    (port,) = free_ports(1)
    # a config file rather than arguments: passwords stay out of the process list
    (tmp / "redis.conf").write_text(
        "\n".join(
            [
                "bind 127.0.0.1",
                "port 0",
                f"tls-port {port}",
                f"tls-cert-file {tmp / 'server.crt'}",
                f"tls-key-file {tmp / 'server.key'}",
                f"tls-ca-cert-file {tmp / 'ca.crt'}",
                "tls-auth-clients no",
                f"requirepass {PASSWORD}",
                f"user cx on >{USER_PASSWORD} ~* &* +@all",
                'save ""',
                "appendonly no",
                f"dir {tmp}",
                "",
            ]
        )
    )
    server = subprocess.Popen(
        ["redis-server", str(tmp / "redis.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"redis-server with TLS did not start on port {port}")
                time.sleep(0.1)
        yield TlsRedis(port, tmp / "ca.crt", tmp / "other-ca.crt")
    finally:
        server.terminate()
        server.wait(timeout=10)


def settings_for(url: str, **redis: object) -> Settings:
    return Settings(
        redis=RedisSettings(url=url, prefix="test:tls:", **redis),
        identity={"store": "redis"},
    )


def unavailable(settings: Settings) -> str:
    with pytest.raises(StoreUnavailableError) as info:
        make_store(settings, default="redis")
    message = str(info.value)
    # the driver's error is not chained: a traceback shows nothing of it
    shown = "".join(traceback.format_exception(info.value))
    assert info.value.__suppress_context__
    for secret in (PASSWORD, USER_PASSWORD):
        assert secret not in shown
    return message


def test_the_store_connects_over_tls_with_a_password(tls_redis: TlsRedis) -> None:
    settings = settings_for(
        f"rediss://127.0.0.1:{tls_redis.port}/0", password=PASSWORD, ssl_ca_certs=str(tls_redis.ca)
    )
    store = make_store(settings, default="redis")
    try:
        result = store.resolve_batch([])
        assert result == []
        assert store.lookup("email", "nobody@example.com") is None
    finally:
        store.close()


def test_an_acl_user_in_the_url_connects_and_stays_out_of_the_settings(
    tls_redis: TlsRedis,
) -> None:
    settings = settings_for(
        f"rediss://cx:{USER_PASSWORD}@127.0.0.1:{tls_redis.port}/0", ssl_ca_certs=str(tls_redis.ca)
    )
    assert USER_PASSWORD not in repr(settings) + settings.model_dump_json()
    store = make_store(settings, default="redis")
    try:
        assert store.lookup("email", "nobody@example.com") is None
    finally:
        store.close()


def test_a_wrong_password_is_a_clear_error_without_the_secret(tls_redis: TlsRedis) -> None:
    wrong = PASSWORD + "-wrong"
    message = unavailable(
        settings_for(
            f"rediss://127.0.0.1:{tls_redis.port}/0", password=wrong, ssl_ca_certs=str(tls_redis.ca)
        )
    )
    assert "refused the credentials" in message
    assert "CX_REDIS__PASSWORD" in message
    assert wrong not in message


def test_no_password_names_the_setting(tls_redis: TlsRedis) -> None:
    message = unavailable(
        settings_for(f"rediss://127.0.0.1:{tls_redis.port}/0", ssl_ca_certs=str(tls_redis.ca))
    )
    assert "CX_REDIS__PASSWORD" in message


def test_plain_redis_against_a_tls_port_is_a_clear_error(tls_redis: TlsRedis) -> None:
    message = unavailable(settings_for(f"redis://:{PASSWORD}@127.0.0.1:{tls_redis.port}/0"))
    assert f"cannot reach Redis at redis://127.0.0.1:{tls_redis.port}/0" in message


def test_an_untrusted_certificate_is_a_clear_error(tls_redis: TlsRedis) -> None:
    message = unavailable(
        settings_for(
            f"rediss://127.0.0.1:{tls_redis.port}/0",
            password=PASSWORD,
            ssl_ca_certs=str(tls_redis.other_ca),
        )
    )
    assert "TLS failed" in message
    assert "CX_REDIS__SSL_CA_CERTS" in message


def test_the_cli_reports_a_wrong_password_without_it(
    tls_redis: TlsRedis, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "cli-Wrong-Secret-5d1e"
    monkeypatch.setenv("CX_REDIS__URL", f"rediss://cx:{wrong}@127.0.0.1:{tls_redis.port}/0")
    monkeypatch.setenv("CX_REDIS__SSL_CA_CERTS", str(tls_redis.ca))
    assert main(["profile", "get", "email:ann@example.com"]) == 2
    out, err = capsys.readouterr()
    assert "refused the credentials" in err
    assert wrong not in out + err
