"""Settings, read once at the entrypoint from ``CX_*`` environment variables.

Nested fields use ``__``: ``CX_KAFKA__BROKERS=host:9092``,
``CX_TOPICS__NBA=prod.cx.nba``, ``CX_REDIS__PASSWORD=...``.
The object is frozen and passed down; nothing reads the environment later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from flows.api_settings import ApiSettings
from flows.insights.settings import InsightsSettings
from flows.step_settings import DEFAULT_STAGE_MAP, NbaSettings, NpsSettings, SlaSettings
from online_models.settings import ModelSettings
from schemas.envelope import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_TEXT_CHARS,
    DEFAULT_MAX_VALUES,
    MAX_IDENTIFIERS,
    MAX_JSON_DEPTH,
)
from schemas.identifiers import KNOWN_IDENTIFIER_TYPES
from sinks.webhook_config import WebhookSettings
from state.store import (
    DEFAULT_BLOCKED_PATTERNS,
    DEFAULT_BLOCKED_VALUES,
    DEFAULT_LIMITS,
    DEFAULT_SHARED_AFTER,
    DEFAULT_WEAK_TYPES,
)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    """Kafka brokers, security, batching and message limits (``CX_KAFKA__*``)."""

    brokers: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    # Client certificate (mutual TLS): files, or the key inline (PEM) from a secret store.
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_pem: SecretStr | None = None
    ssl_key_password: SecretStr | None = None
    # "https" checks the broker's name against its certificate (librdkafka's default).
    ssl_endpoint_identification: Literal["https", "none"] | None = None
    batch_size: int = Field(default=1000, ge=1)
    # Tailing only: an input partition silent this long (wall time) stops holding back
    # the NPS and SLA clocks of the others (flows.steps.ticks); 0 never waits for a silent one.
    idle_partition_seconds: float = Field(default=30.0, ge=0)
    # Largest message the producer sends: dead letters carry the original bytes.
    max_message_bytes: int = Field(default=16_000_000, ge=1024)

    def client_config(self) -> dict[str, str]:
        """Return the librdkafka settings shared by consumers, producers and the admin client."""
        config = {
            "bootstrap.servers": self.brokers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            config["ssl.ca.location"] = self.ssl_ca_location
        if self.ssl_certificate_location:
            config["ssl.certificate.location"] = self.ssl_certificate_location
        if self.ssl_key_location:
            config["ssl.key.location"] = self.ssl_key_location
        if self.ssl_key_pem is not None:
            config["ssl.key.pem"] = self.ssl_key_pem.get_secret_value()
        if self.ssl_key_password is not None:
            config["ssl.key.password"] = self.ssl_key_password.get_secret_value()
        if self.ssl_endpoint_identification is not None:
            config["ssl.endpoint.identification.algorithm"] = self.ssl_endpoint_identification
        return config


class TopicSettings(_Section):
    """Input and output topic names, and how new topics are created (``CX_TOPICS__*``)."""

    events: str = "cx.events"
    nba: str = "cx.nba"
    alerts: str = "cx.alerts"
    nps: str = "cx.nps"
    insights: str = "cx.insights"
    identity: str = "cx.identity"
    profiles: str = "cx.profiles"
    dlq: str = "cx.dlq"
    partitions: int = Field(default=2, ge=1)
    replication_factor: int = Field(default=1, ge=1)

    def output_topics(self) -> dict[str, str]:
        """Output kind -> topic name."""
        return {
            "nba": self.nba,
            "alerts": self.alerts,
            "nps": self.nps,
            "insights": self.insights,
            "identity": self.identity,
            "profiles": self.profiles,
            "dlq": self.dlq,
        }


class RedisSettings(_Section):
    """The profile store's Redis; a ``rediss://`` URL turns TLS on.

    Credentials written into the URL are moved into ``username`` / ``password``
    (the URL shows in logs and errors, the secret never does):

    >>> conf = RedisSettings(url="redis://ann:s3cret@db:6380/1")
    >>> conf.url, conf.username, conf.password
    ('redis://db:6380/1', 'ann', SecretStr('**********'))
    """

    url: str = "redis://127.0.0.1:6379/0"
    username: str | None = None
    password: SecretStr | None = None
    prefix: str = "cx:"
    # A Redis Cluster at url (any node; a redis+cluster:// URL says so too): docs/SCALING.md
    cluster: bool = False
    # TLS (rediss:// only): CA bundle, client certificate (mutual TLS), checks.
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_key_password: SecretStr | None = None
    ssl_cert_reqs: Literal["required", "optional", "none"] = "required"
    ssl_check_hostname: bool = True

    @model_validator(mode="before")
    @classmethod
    def _credentials_out_of_url(cls, data: Any) -> Any:
        # Never raises: an error here would print its input, secrets included.
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return data
        parts = urlsplit(data["url"])
        userinfo, at, hostport = parts.netloc.rpartition("@")
        if not at:
            return data
        user, colon, secret = userinfo.partition(":")
        moved = {**data, "url": urlunsplit(parts._replace(netloc=hostport))}
        if user and data.get("username") is None:
            moved["username"] = unquote(user)
        if colon and secret and data.get("password") is None:
            moved["password"] = unquote(secret)
        return moved

    @field_validator("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
    @classmethod
    def _tls_needs_rediss(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not str(info.data.get("url", "")).startswith("rediss://"):
            msg = "TLS settings need a rediss:// URL (CX_REDIS__URL=rediss://host:port/0)"
            raise ValueError(msg)
        return value

    def connection_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``redis.Redis.from_url(self.url, ...)``: credentials and TLS.

        >>> sorted(RedisSettings(url="rediss://db:6380/0").connection_kwargs())
        ['password', 'ssl_cert_reqs', 'ssl_check_hostname', 'username']
        """
        kwargs: dict[str, Any] = {
            "username": self.username,
            "password": self.password.get_secret_value() if self.password is not None else None,
        }
        if self.url.startswith("rediss://"):
            kwargs["ssl_cert_reqs"] = self.ssl_cert_reqs
            kwargs["ssl_check_hostname"] = self.ssl_check_hostname
            optional = {
                "ssl_ca_certs": self.ssl_ca_certs,
                "ssl_certfile": self.ssl_certfile,
                "ssl_keyfile": self.ssl_keyfile,
                "ssl_password": (
                    self.ssl_key_password.get_secret_value()
                    if self.ssl_key_password is not None
                    else None
                ),
            }
            kwargs.update({k: v for k, v in optional.items() if v is not None})
        return kwargs


class IdentitySettings(_Section):
    """Identity resolution: which store, which guards, and PII hashing."""

    # "memory" or "redis"; unset: `run` uses Redis, offline runs (demo, replay) memory.
    store: Literal["memory", "redis"] | None = None
    priority: tuple[str, ...] = KNOWN_IDENTIFIER_TYPES
    # Most values of a type one customer may hold (a merge over a limit is refused).
    limits: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_LIMITS))
    default_limit: int = Field(default=20, ge=1)
    # Placeholders that never link anyone (compared case-insensitively), and patterns.
    blocked_values: tuple[str, ...] = tuple(sorted(DEFAULT_BLOCKED_VALUES))
    blocked_patterns: tuple[str, ...] = DEFAULT_BLOCKED_PATTERNS
    # Types that may attach to a customer but never merge two known ones (e.g. a
    # family's shared device); none by default.
    weak_types: tuple[str, ...] = DEFAULT_WEAK_TYPES
    # Types whose value becomes *shared* (a kiosk, a till: detached, never resolves an
    # event again) once more than this many distinct customers presented it in refused
    # merges; types not listed never become shared. A JSON object in the environment:
    # CX_IDENTITY__SHARED_AFTER='{"device_id": 3, "cookie_id": 3}' (state/store.py
    # "Shared identifiers").
    shared_after: dict[str, PositiveInt] = Field(default_factory=lambda: dict(DEFAULT_SHARED_AFTER))
    # Wall-clock seconds each resolve outcome (and each applied-event mark of the
    # profile step) is kept after it was recorded: a restore within it re-processes
    # every event with its first decisions (merges reported again, same customers),
    # however much event time its backlog spans; 0: nothing recorded. Must exceed the
    # longest expected outage plus snapshot interval; Redis memory is about 400 bytes
    # per event processed within it (state/store.py "Re-processing").
    outcome_retention_seconds: float = Field(default=3600.0, ge=0)
    # Keyed hashing (HMAC-SHA256) of identifier values before they reach Redis or outputs.
    hash_identifiers: bool = False
    hash_key: SecretStr | None = None
    privacy_topic: str = "cx.privacy"


class JourneySettings(_Section):
    """Journey stages, sentiment windows and sentiment alerts."""

    # event action ("order.placed") or full type -> stage; "resolved" leaves service
    stage_map: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_STAGE_MAP))
    window_hours: tuple[float, ...] = (24.0, 168.0)
    ewma_alpha: float = Field(default=0.3, gt=0, le=1)
    max_samples: int = Field(default=200, ge=1)
    drop_threshold: float = Field(default=-0.4, ge=-1, le=1)
    drop_delta: float = Field(default=0.5, gt=0)
    drop_min_samples: int = Field(default=2, ge=1)
    detractor_sla_hours: float = Field(default=48.0, gt=0)
    text_max_chars: int = Field(default=2000, ge=1)
    text_max_symbols: int = Field(default=20, ge=0)
    # Park a customer idle this long (wall seconds) in the store, out of Bytewax state
    # (flows.steps.parking): active customers in memory = those seen in this window.
    # 0: never (every customer ever seen stays in memory).
    park_idle_seconds: float = Field(default=0.0, ge=0)
    # how long a parked journey stays in Redis without being read back or rewritten
    park_ttl_seconds: int = Field(default=30 * 86400, ge=1)


class LimitSettings(_Section):
    """Bounds on one input message (``CX_LIMITS__*``).

    An event over any of them becomes a dead letter whose reason names the limit
    (see flows/steps/decode.py).
    """

    max_message_bytes: int = Field(default=1_000_000, ge=1)
    max_text_chars: int = Field(default=DEFAULT_MAX_TEXT_CHARS, ge=1)
    # The store refuses more than 1000 identifiers in one request.
    max_identifiers: int = Field(default=MAX_IDENTIFIERS, ge=1, le=1000)
    # JSON nesting of the whole message (the event object is depth 1, data 2).
    max_depth: int = Field(default=DEFAULT_MAX_DEPTH, ge=3, le=MAX_JSON_DEPTH)
    # JSON values (objects, arrays, strings, numbers, ...) in one message, counted
    # before parsing: building millions of tiny objects is what costs time.
    max_values: int = Field(default=DEFAULT_MAX_VALUES, ge=100)
    # A dead letter carries at most this much of its original (base64 grows it by 4/3,
    # and it must fit CX_KAFKA__MAX_MESSAGE_BYTES); original_size keeps the full size.
    max_dead_letter_bytes: int = Field(default=10_000_000, ge=1)
    phone_country_code: str = Field(default="1", pattern=r"^[1-9]\d{0,2}$")


class DedupeSettings(_Section):
    """Duplicate-event detection by event id (``CX_DEDUPE__*``)."""

    ttl_seconds: float = Field(default=7 * 86400, gt=0)
    # per lane (input partition): dedupe runs keyed by lane (flows.steps.dedupe)
    max_ids_per_shard: int = Field(default=100_000, ge=1)


class ProfileSettings(_Section):
    """Profile publication and idempotence (``CX_PROFILES__*``)."""

    # A profile is sent to cx.profiles at most once per this much event time per customer.
    emit_interval_seconds: float = Field(default=60.0, ge=0)
    recent_interactions: int = Field(default=10, ge=0)
    # Event time before a customer's latest event during which applied event ids are
    # remembered, so a replayed or retried event does not count twice (0: off, the
    # wall-clock marks of identity.outcome_retention_seconds too). Same default as
    # dedupe.ttl_seconds: a duplicate older than both passes both.
    idempotence_window_seconds: float = Field(default=7 * 86400, ge=0)


class MetricsSettings(_Section):
    """The Prometheus metrics endpoint (``CX_METRICS__*``)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)


class RecoverySettings(_Section):
    """Bytewax recovery for ``cxstream run``: state and Kafka offsets survive a crash.

    The directory holds ``partitions`` SQLite files, created on first use; that count is
    fixed for good and bounds the worker processes you can ever run against it. Every
    process of a cluster must see the same directory (a local disk for ``-p N``, a shared
    one across machines). A snapshot is taken at the end of each epoch
    (``epoch_interval_seconds``).
    """

    enabled: bool = True
    directory: Path = Path(".cxstream/recovery")
    partitions: int = Field(default=8, ge=1)
    # Keep superseded snapshots this long (time to copy the directory to a backup).
    backup_interval_seconds: float = Field(default=0.0, ge=0)


class RetrySettings(_Section):
    """Retries of profile-store calls while Redis is unreachable (capped exponential backoff)."""

    initial_backoff_seconds: float = Field(default=0.1, gt=0)
    max_backoff_seconds: float = Field(default=5.0, gt=0)
    # Stop the flow after this long without Redis; None retries until it comes back.
    give_up_after_seconds: float | None = Field(default=None, gt=0)


class Settings(BaseSettings):
    """Everything configurable in cxstream."""

    model_config = SettingsConfigDict(
        env_prefix="CX_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,  # inputs may hold secrets
    )

    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    redis: RedisSettings = RedisSettings()
    identity: IdentitySettings = IdentitySettings()
    journey: JourneySettings = JourneySettings()
    nps: NpsSettings = NpsSettings()
    insights: InsightsSettings = InsightsSettings()
    sla: SlaSettings = SlaSettings()
    models: ModelSettings = ModelSettings()
    nba: NbaSettings = NbaSettings()
    limits: LimitSettings = LimitSettings()
    dedupe: DedupeSettings = DedupeSettings()
    profiles: ProfileSettings = ProfileSettings()
    metrics: MetricsSettings = MetricsSettings()
    recovery: RecoverySettings = RecoverySettings()
    retry: RetrySettings = RetrySettings()
    webhooks: WebhookSettings = WebhookSettings()
    api: ApiSettings = ApiSettings()
    epoch_interval_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _hash_key_when_hashing(self) -> Settings:
        if self.identity.hash_identifiers and self.identity.hash_key is None:
            msg = "identity.hash_identifiers needs CX_IDENTITY__HASH_KEY (a secret key)"
            raise ValueError(msg)
        return self
