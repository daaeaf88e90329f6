"""Settings, read once at the entrypoint from ``CX_*`` environment variables.

Nested fields use ``__``: ``CX_KAFKA__BROKERS=host:9092``,
``CX_TOPICS__NBA=prod.cx.nba``, ``CX_REDIS__PASSWORD=...``.
The object is frozen and passed down; nothing reads the environment later.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flows.nps import NpsSettings
from flows.sla import SlaSettings
from flows.stages import DEFAULT_STAGE_MAP
from online_models.settings import ModelSettings
from schemas.identifiers import KNOWN_IDENTIFIER_TYPES
from state.store import (
    DEFAULT_BLOCKED_PATTERNS,
    DEFAULT_BLOCKED_VALUES,
    DEFAULT_LIMITS,
    DEFAULT_WEAK_TYPES,
)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    brokers: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    batch_size: int = Field(default=1000, ge=1)
    # Largest message the producer sends: dead letters carry the original bytes.
    max_message_bytes: int = Field(default=16_000_000, ge=1024)

    def client_config(self) -> dict[str, str]:
        """librdkafka settings shared by consumers, producers and the admin client."""
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
        return config


class TopicSettings(_Section):
    events: str = "cx.events"
    nba: str = "cx.nba"
    alerts: str = "cx.alerts"
    nps: str = "cx.nps"
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
            "identity": self.identity,
            "profiles": self.profiles,
            "dlq": self.dlq,
        }


class RedisSettings(_Section):
    url: str = "redis://127.0.0.1:6379/0"
    username: str | None = None
    password: SecretStr | None = None
    prefix: str = "cx:"


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


class LimitSettings(_Section):
    max_message_bytes: int = Field(default=1_000_000, ge=1)
    phone_country_code: str = Field(default="1", pattern=r"^[1-9]\d{0,2}$")


class DedupeSettings(_Section):
    ttl_seconds: float = Field(default=7 * 86400, gt=0)
    max_ids_per_shard: int = Field(default=100_000, ge=1)
    shards: int = Field(default=64, ge=1)


class ProfileSettings(_Section):
    # A profile is sent to cx.profiles at most once per this much event time per customer.
    emit_interval_seconds: float = Field(default=60.0, ge=0)
    recent_interactions: int = Field(default=10, ge=0)


class MetricsSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)


class Settings(BaseSettings):
    """Everything configurable in cxstream."""

    model_config = SettingsConfigDict(
        env_prefix="CX_", env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    redis: RedisSettings = RedisSettings()
    identity: IdentitySettings = IdentitySettings()
    journey: JourneySettings = JourneySettings()
    nps: NpsSettings = NpsSettings()
    sla: SlaSettings = SlaSettings()
    models: ModelSettings = ModelSettings()
    limits: LimitSettings = LimitSettings()
    dedupe: DedupeSettings = DedupeSettings()
    profiles: ProfileSettings = ProfileSettings()
    metrics: MetricsSettings = MetricsSettings()
    epoch_interval_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _hash_key_when_hashing(self) -> Settings:
        if self.identity.hash_identifiers and self.identity.hash_key is None:
            msg = "identity.hash_identifiers needs CX_IDENTITY__HASH_KEY (a secret key)"
            raise ValueError(msg)
        return self
