"""Secrets never reach logs or errors; Kafka and Redis security settings map to the clients.

Every test plants known secret values and searches everything a user or a log
collector could see for them: settings reprs and dumps, validation errors, the
CLI's stderr, the /readyz body, Redis connection errors, librdkafka's own log
lines (with its debug logging on) and Python logging.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import pytest
from pydantic import ValidationError

from flows.app.cli import main
from flows.app.health import Health, dependency_checks
from flows.app.run import free_ports
from flows.app.stores import StoreUnavailableError, make_store
from flows.settings import KafkaSettings, RedisSettings, Settings

SECRETS = {
    "CX_KAFKA__SASL_PASSWORD": "kafka-Secret-1b7e",
    "CX_KAFKA__SSL_KEY_PASSWORD": "keypass-Secret-93aa",
    "CX_KAFKA__SSL_KEY_PEM": "-----BEGIN PRIVATE KEY-----pem-Secret-5c0f",
    "CX_REDIS__PASSWORD": "redis-Secret-7d21",
    "CX_REDIS__SSL_KEY_PASSWORD": "rediskey-Secret-2e44",
    "CX_IDENTITY__HASH_KEY": "hash-Secret-c3f9",
}
URL_SECRET = "url-Secret-66ab"


def assert_no_secret(*texts: str) -> None:
    seen = "\n".join(texts)
    for secret in [*SECRETS.values(), URL_SECRET]:
        assert secret not in seen, f"a secret leaked: {secret}"


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CX_IDENTITY__HASH_IDENTIFIERS", "true")
    monkeypatch.setenv("CX_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("CX_KAFKA__SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("CX_KAFKA__SASL_USERNAME", "cx")


def test_client_config_maps_every_kafka_security_setting() -> None:
    conf = KafkaSettings(
        brokers="b1:9093,b2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="cx",
        sasl_password="pw",
        ssl_ca_location="/etc/ca.pem",
        ssl_certificate_location="/etc/client.pem",
        ssl_key_location="/etc/client.key",
        ssl_key_password="kp",
        ssl_endpoint_identification="none",
    )
    assert conf.client_config() == {
        "bootstrap.servers": "b1:9093,b2:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "cx",
        "sasl.password": "pw",
        "ssl.ca.location": "/etc/ca.pem",
        "ssl.certificate.location": "/etc/client.pem",
        "ssl.key.location": "/etc/client.key",
        "ssl.key.password": "kp",
        "ssl.endpoint.identification.algorithm": "none",
    }
    assert KafkaSettings().client_config() == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "PLAINTEXT",
    }


def test_redis_tls_settings_become_client_arguments() -> None:
    conf = RedisSettings(
        url="rediss://cx:pw@db:6380/0",
        ssl_ca_certs="/etc/ca.pem",
        ssl_certfile="/etc/c.pem",
        ssl_keyfile="/etc/c.key",
        ssl_key_password="kp",
        ssl_cert_reqs="optional",
    )
    assert conf.url == "rediss://db:6380/0"
    assert conf.connection_kwargs() == {
        "username": "cx",
        "password": "pw",
        "ssl_cert_reqs": "optional",
        "ssl_check_hostname": True,
        "ssl_ca_certs": "/etc/ca.pem",
        "ssl_certfile": "/etc/c.pem",
        "ssl_keyfile": "/etc/c.key",
        "ssl_password": "kp",
    }
    plain = RedisSettings(url="redis://db:6379/0", password="pw")
    assert plain.connection_kwargs() == {"username": None, "password": "pw"}


def test_an_explicit_password_wins_over_one_in_the_url() -> None:
    conf = RedisSettings(url="redis://:inurl@db/0", password="explicit")
    assert conf.password is not None
    assert (conf.url, conf.password.get_secret_value()) == ("redis://db/0", "explicit")


def test_tls_files_need_a_rediss_url() -> None:
    with pytest.raises(ValidationError, match="rediss://"):
        RedisSettings(url="redis://db:6379/0", ssl_ca_certs="/etc/ca.pem")


def test_settings_never_show_secrets(secret_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CX_REDIS__URL", f"redis://cx:{URL_SECRET}@db:6379/0")
    monkeypatch.delenv("CX_REDIS__PASSWORD")
    settings = Settings()
    assert settings.redis.password is not None
    assert settings.redis.password.get_secret_value() == URL_SECRET  # moved, not lost
    assert_no_secret(
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        json.dumps(settings.model_dump(mode="json")),
        repr(settings.kafka),
        repr(settings.redis),
    )
    # and the clients still get them
    assert settings.kafka.client_config()["sasl.password"] == SECRETS["CX_KAFKA__SASL_PASSWORD"]


def test_the_cli_reports_bad_settings_without_secrets(
    secret_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("CX_KAFKA__BATCH_SIZE", "0")
    monkeypatch.setenv("CX_REDIS__URL", f"redis://:{URL_SECRET}@db:6379/0")
    assert main(["replay", "record", "--out", str(tmp_path / "log.jsonl")]) == 2
    out, err = capsys.readouterr()
    assert "invalid CX_* setting: kafka.batch_size" in err
    assert_no_secret(out, err)


def test_the_cli_reports_a_model_level_settings_error_without_secrets(
    secret_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("CX_IDENTITY__HASH_KEY")  # hashing on without a key
    assert main(["replay", "record", "--out", str(tmp_path / "log.jsonl")]) == 2
    out, err = capsys.readouterr()
    assert "CX_IDENTITY__HASH_KEY" in err
    assert_no_secret(out, err)


def test_field_validation_errors_do_not_echo_secrets() -> None:
    # a secret is only ever an input to SecretStr fields, which accept any string:
    # the errors of the fields around it carry their own input, never the secret
    with pytest.raises(ValidationError) as info:
        RedisSettings(
            url=f"redis://:{URL_SECRET}@db/0",
            password=SECRETS["CX_REDIS__PASSWORD"],
            ssl_ca_certs="/etc/ca.pem",
        )
    assert_no_secret(str(info.value), repr(info.value.errors()))


def test_redis_connection_errors_hide_the_url_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    (closed,) = free_ports(1)
    settings = Settings(
        redis=RedisSettings(url=f"redis://cx:{URL_SECRET}@127.0.0.1:{closed}/0"),
        identity={"store": "redis"},
    )
    with pytest.raises(StoreUnavailableError) as info:
        make_store(settings, default="redis")
    assert f"cannot reach Redis at redis://127.0.0.1:{closed}/0" in str(info.value)
    assert_no_secret("".join(traceback.format_exception(info.value)), caplog.text)


def test_readyz_names_failures_without_secrets(
    secret_env: None,
    kafka_brokers: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # nothing listens on the Redis port; the broker is plaintext, so SASL fails
    (closed,) = free_ports(1)
    monkeypatch.setenv("CX_REDIS__URL", f"redis://:{URL_SECRET}@127.0.0.1:{closed}/0")
    monkeypatch.setenv("CX_KAFKA__BROKERS", kafka_brokers)
    health = Health(dependency_checks(Settings(), timeout=1.5), timeout=3.0)
    health.started()
    ready, body = health.readiness()
    assert not ready
    assert body["failed"] == ["kafka", "redis"]
    assert_no_secret(json.dumps(body), caplog.text)


def test_kafka_clients_never_log_or_raise_the_sasl_password(kafka_brokers: str) -> None:
    # In a child process: librdkafka logs to the process's own stderr, from C.
    script = textwrap.dedent(
        f"""
        from confluent_kafka import Producer
        from flows.settings import Settings
        from flows.app.topics import KafkaUnavailableError, ensure_topics
        settings = Settings(kafka={{
            "brokers": "{kafka_brokers}", "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN", "sasl_username": "cx",
            "sasl_password": "{SECRETS["CX_KAFKA__SASL_PASSWORD"]}"}})
        try:
            ensure_topics(settings, timeout=3)
        except KafkaUnavailableError as exc:
            print("admin error:", exc)
        errors = []
        config = {{**settings.kafka.client_config(), "debug": "security,broker,conf",
                  "message.timeout.ms": 2000}}
        producer = Producer(config)
        producer.produce("cx.security-test", b"x",
                         on_delivery=lambda err, _msg: errors.append(str(err)))
        producer.flush(5)
        print("delivery errors:", errors)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "admin error: cannot reach Kafka" in result.stdout
    assert "delivery errors: ['KafkaError" in result.stdout
    assert "SASL" in result.stderr  # librdkafka did log the failing handshake
    assert_no_secret(result.stdout, result.stderr)
