"""The agent desktop in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

Load the page, look a demo customer up, see the 360 card, the journey chart and the
NBAs, click Accept and see the NBA leave the list; an NBA produced to Kafka meanwhile
appears live. A screenshot is saved (``CX_SCREENSHOT`` names where, else the test's
temporary directory).
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer
from playwright.sync_api import expect, sync_playwright

from flows.settings import Settings
from state.actions import BoardItem
from state.redis_actions import board_for
from tests.api.conftest import DEMO_EMAIL, Demo, LiveServer

CHROMIUM = "/usr/bin/chromium"


def _chromium() -> str:
    path = shutil.which("chromium") or CHROMIUM
    if not Path(path).exists():
        pytest.fail("Debian's chromium is missing: run `bash scripts/chromium.sh install`")
    return path


def _live_nba(cid: str, at: datetime) -> dict[str, object]:
    return {
        "id": "nba-live-1",
        "customer_id": cid,
        "action": "service_recovery",
        "action_class": "service",
        "channel": "call_center",
        "priority": 120.0,
        "score": 1.0,
        "message": "Live: call back about the open return",
        "reason_codes": ["rule:service_recovery", "pushed live"],
        "trigger_event_ids": ["evt-live"],
        "time": at.isoformat().replace("+00:00", "Z"),
        "expires_at": None,
        "profile_excerpt": {},
    }


def test_desktop_lookup_chart_nbas_accept_and_live_push(
    demo: Demo, kafka_server: tuple[LiveServer, Settings], tmp_path: Path
) -> None:
    server, settings = kafka_server
    shot = Path(os.environ.get("CX_SCREENSHOT", tmp_path / "desktop.png"))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{server.url}/desktop/#token={server_token()}")
        assert "#token" not in page.url  # the token leaves the address bar at once
        page.select_option("#id-type", "email")
        page.fill("#id-value", "  " + DEMO_EMAIL.upper())
        page.click("#search")
        expect(page.locator("#card")).to_be_visible()
        cid = page.locator("#customer-id").inner_text()
        profile = demo.store.profile(cid)
        assert profile is not None
        assert profile.segment is not None
        expect(page.locator("#facts")).to_contain_text(profile.segment)
        expect(page.locator("#facts")).to_contain_text(f"{profile.lifetime_value:.2f}")
        ticks = page.locator("#journey svg rect.stage-tick")
        expect(ticks).to_have_count(profile.event_count)
        assert page.locator("#journey svg circle.sentiment-point").count() >= 1
        assert page.locator("#journey svg path").count() == 1
        expect(page.locator("#stage-legend")).to_contain_text("service")
        nbas = page.locator("#nbas li[data-nba-id]")
        expect(nbas).to_have_count(2)
        expect(page.locator("#nbas .reasons li").first).to_contain_text("rule:")
        expect(page.locator("#live")).to_have_text("live")

        # a new NBA: on the board (as the flow writes it) and on cx.nba -> pushed live
        at = datetime.fromtimestamp(server.services.clock(cid), tz=UTC)
        nba = _live_nba(cid, at)
        ms = round(at.timestamp() * 1000)
        board_for(demo.store).record([BoardItem("n", cid, "nba-live-1", ms, nba)])
        producer = Producer({"bootstrap.servers": settings.kafka.brokers})
        producer.produce(settings.topics.nba, orjson.dumps(nba), key=cid.encode())
        assert producer.flush(10) == 0
        expect(nbas).to_have_count(3)
        expect(page.locator("#nbas li").first).to_contain_text("Live: call back")
        page.screenshot(path=str(shot), full_page=True)

        first = nbas.first
        answered = first.get_attribute("data-nba-id")
        assert answered == "nba-live-1"  # the highest priority comes first
        first.locator("button.accept").click()
        expect(nbas).to_have_count(2)
        expect(page.locator(f'#nbas li[data-nba-id="{answered}"]')).to_have_count(0)
        expect(page.locator("#status")).to_contain_text("accepted")
        assert not errors, errors
        browser.close()
    deadline = time.monotonic() + 5
    responses = demo.out_dir / "responses.jsonl"
    while not responses.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    published = [orjson.loads(line) for line in responses.read_bytes().splitlines()]
    assert [(e["data"]["nba_id"], e["data"]["outcome"]) for e in published] == [
        ("nba-live-1", "accepted")
    ]
    listed = board_for(demo.store).actions(cid, server.services.now_ms(cid)).nbas
    assert "nba-live-1" not in [n["id"] for n in listed]
    assert shot.stat().st_size > 10_000


def server_token() -> str:
    """The demo server's token (the fixtures give it every scope)."""
    from tests.api.conftest import TOKEN

    return TOKEN
