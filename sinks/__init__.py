"""Bytewax sinks: Kafka (idempotent producer) and JSON-lines files."""

from sinks.jsonl import OFFLINE_FILES, JsonlDirSink, write_profiles
from sinks.kafka import KafkaDeliveryError, KafkaOutputSink, producer_config

__all__ = [
    "OFFLINE_FILES",
    "JsonlDirSink",
    "KafkaDeliveryError",
    "KafkaOutputSink",
    "producer_config",
    "write_profiles",
]
