"""BrokerWatch: telling a librdkafka client stranded without brokers from one in an outage."""

from __future__ import annotations

import json

from sinks.kafka_clients import BrokerWatch, lists_a_broker

# the "brokers" of librdkafka statistics documents seen during tests/integration/test_outages.py
STARTING = {
    "127.0.0.1:9092/bootstrap": {"source": "configured", "state": "INIT", "nodeid": -1},
    "GroupCoordinator": {"source": "logical", "state": "INIT", "nodeid": -1},
}
RUNNING = {
    "127.0.0.1:9092/1": {"source": "learned", "state": "UP", "nodeid": 1},
    "GroupCoordinator": {"source": "logical", "state": "UP", "nodeid": -1},
}
BROKER_DOWN = {
    "127.0.0.1:9092/1": {"source": "learned", "state": "TRY_CONNECT", "nodeid": 1},
    "GroupCoordinator": {"source": "logical", "state": "DOWN", "nodeid": -1},
}
REBOOTSTRAPPING = {
    "127.0.0.1:9092/bootstrap": {"source": "configured", "state": "CONNECT", "nodeid": -1},
    "GroupCoordinator": {"source": "logical", "state": "DOWN", "nodeid": -1},
}
STRANDED = {"GroupCoordinator": {"source": "logical", "state": "DOWN", "nodeid": -1}}


def doc(brokers: dict[str, dict[str, object]]) -> str:
    return json.dumps({"name": "rdkafka#consumer-1", "type": "consumer", "brokers": brokers})


def test_a_client_that_can_reconnect_lists_a_broker() -> None:
    for brokers in (STARTING, RUNNING, BROKER_DOWN, REBOOTSTRAPPING):
        assert lists_a_broker(json.loads(doc(brokers)))
    assert not lists_a_broker(json.loads(doc(STRANDED)))
    assert not lists_a_broker({"brokers": {}})
    assert lists_a_broker({"name": "no brokers section"})  # unknown shape: healthy


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_stranded_only_after_the_grace_without_any_broker() -> None:
    clock = Clock()
    watch = BrokerWatch(stranded_after=5.0, clock=clock)
    watch.observe(doc(BROKER_DOWN))
    clock.now += 60
    assert not watch.stranded()  # an outage, however long, is not stranding
    watch.observe(doc(STRANDED))
    clock.now += 4.9
    assert not watch.stranded()
    watch.observe(doc(STRANDED))
    clock.now += 0.1
    assert watch.stranded()
    watch.observe(doc(REBOOTSTRAPPING))  # one document with a broker clears it
    assert not watch.stranded()
    watch.observe(doc(STRANDED))
    clock.now += 10
    assert watch.stranded()
    watch.reset()
    assert not watch.stranded()
