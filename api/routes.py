"""The ``/v1`` endpoints: profiles, timeline, actions, the live stream, responses.

Every endpoint needs a bearer token with its scope (:mod:`api.auth`). A customer id is
followed through merges to its survivor; a customer without a profile (never seen, or
erased) is a 404 on every endpoint. Log lines name identifier *types*, never values.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.auth import AuthError, TokenAuth
from api.models import (
    CustomerActions,
    LookupRequest,
    LookupResult,
    Problem,
    ResponseAccepted,
    ResponseRequest,
    Sentiment,
    Timeline,
)
from api.publish import PublishError, ResponsePublisher
from api.stream import Filters, Hub, KafkaFeed, ResumeError, frames
from flows.api_settings import ApiSettings
from schemas.identifiers import IdentifierError, normalise_identifier, normalise_type
from schemas.outputs import ProfileSnapshot
from schemas.responses import NbaResponse
from state.actions import ActionBoard
from state.store import ProfileStore

log = logging.getLogger("cxstream.api")
_NOT_FOUND = "no such customer (never seen, merged into none, or erased)"


@dataclass
class Services:
    """What the endpoints read and write.

    ``clock`` is the board's now, in seconds, given the customer: the wall clock in
    ``cxstream serve``, the customer's last event time in the demo (its NBAs are
    current then, not today).
    """

    conf: ApiSettings
    store: ProfileStore
    board: ActionBoard
    hub: Hub
    publisher: ResponsePublisher
    phone_country_code: str = "1"
    clock: Callable[[str], float] = lambda _customer: time.time()
    feed: KafkaFeed | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def now_ms(self, customer_id: str) -> int:
        """Return the board's now for ``customer_id``, in milliseconds."""
        return round(self.clock(customer_id) * 1000)


class _ScopedBearer(HTTPBearer):
    """The bearer scheme of the OpenAPI document, checking the token and one scope.

    One dependency per endpoint, run on the event loop: a check is a hash and a few
    comparisons (no I/O), and FastAPI's cost grows with each level of dependencies.
    """

    def __init__(self, auth: TokenAuth, scope: str) -> None:
        super().__init__(
            scheme_name="HTTPBearer",
            auto_error=False,
            description="a token listed (as its SHA-256) in CX_API__TOKENS",
        )
        self.auth, self.scope = auth, scope

    async def __call__(self, request: Request) -> HTTPAuthorizationCredentials | None:  # type: ignore[override]
        try:
            self.auth.check(request.headers.get("authorization"), self.scope)
        except AuthError as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}  # noqa: PLR2004
            if exc.retry_after is not None:
                headers["Retry-After"] = str(exc.retry_after)
            raise HTTPException(exc.status, exc.message, headers=headers) from None
        return None


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Problem} for code in codes}


def build_router(services: Services, auth: TokenAuth) -> APIRouter:  # noqa: PLR0915 (one closure per endpoint)
    """Return the ``/v1`` router over ``services``."""
    router = APIRouter(prefix="/v1")

    def needs(scope: str) -> Any:
        return Depends(_ScopedBearer(auth, scope))

    read, stream_read, respond = (
        needs("profiles:read"),
        needs("stream:read"),
        needs("responses:write"),
    )
    store, board = services.store, services.board

    def profile_of(customer_id: str) -> ProfileSnapshot:
        profile = store.profile(store.canonical(customer_id))
        if profile is None:
            raise HTTPException(404, _NOT_FOUND)
        return profile

    @router.post(
        "/profiles/lookup",
        response_model=LookupResult,
        dependencies=[read],
        responses=_problems(401, 403, 404, 422, 429),
        summary="Look a customer up by any identifier (in the body)",
    )
    def lookup(body: LookupRequest) -> Response:
        try:
            id_type = normalise_type(body.type)
            value = normalise_identifier(id_type, body.value, services.phone_country_code)
        except IdentifierError:
            # the message would quote the value: say what is wrong without it
            raise HTTPException(422, "not a valid identifier of that type") from None
        customer_id = store.lookup(id_type, value)
        profile = store.profile(customer_id) if customer_id is not None else None
        log.debug("lookup by %s: %s", id_type, "found" if profile else "no customer")
        if customer_id is None or profile is None:
            raise HTTPException(404, "no customer has this identifier")
        # serialised here (pydantic's JSON, in Rust), not validated again by response_model
        found = LookupResult(customer_id=profile.customer_id, profile=profile)
        return Response(found.model_dump_json(), media_type="application/json")

    def customer_get(path: str, model: type[Any], summary: str) -> Callable[[Any], Any]:
        return router.get(
            "/customers/{customer_id}" + path,
            response_model=model,
            dependencies=[read],
            responses=_problems(401, 403, 404, 429),
            summary=summary,
        )

    @customer_get("", ProfileSnapshot, "A customer's 360 profile")
    def customer(customer_id: str) -> ProfileSnapshot:
        return profile_of(customer_id)

    @customer_get(
        "/timeline",
        Timeline,
        "The journey: interactions with stage, sentiment and touchpoint; sentiment",
    )
    def timeline(customer_id: str) -> Timeline:
        profile = profile_of(customer_id)
        # the board's timeline (with sentiment); the profile's recent list when it has none
        interactions = board.timeline(profile.customer_id) or profile.recent
        sentiment = Sentiment(
            current=profile.sentiment,
            windows=profile.sentiment_windows,
            trend=profile.sentiment_trend,
            by_stage=profile.sentiment_by_stage,
        )
        return Timeline(
            customer_id=profile.customer_id,
            journey_stage=profile.journey_stage,
            interactions=interactions,
            sentiment=sentiment,
        )

    @customer_get(
        "/actions", CustomerActions, "Current (unexpired, unanswered) NBAs and open alerts"
    )
    def actions(customer_id: str) -> CustomerActions:
        profile = profile_of(customer_id)
        held = board.actions(profile.customer_id, services.now_ms(profile.customer_id))
        return CustomerActions(customer_id=profile.customer_id, nbas=held.nbas, alerts=held.alerts)

    @router.get(
        "/stream",
        dependencies=[stream_read],
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "NBAs and alerts (SSE)"},
            **_problems(401, 403, 404, 410, 429),
        },
        summary="Live NBAs and alerts (Server-Sent Events), resumable with Last-Event-ID",
    )
    async def stream(  # noqa: PLR0913 (the filters)
        *,
        customer_id: str | None = None,
        channel: str | None = None,
        alert_kind: str | None = None,
        kinds: Annotated[str, Query(pattern=r"^(nba|alert)(,(nba|alert))?$")] = "nba,alert",
        queue: str | None = None,
        agent_id: str | None = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> StreamingResponse:
        if customer_id is not None:
            customer_id = (await run_in_threadpool(profile_of, customer_id)).customer_id
        filters = Filters(
            customer_id, channel, alert_kind, frozenset(kinds.split(",")), queue, agent_id
        )
        try:
            client = services.hub.subscribe(filters, last_event_id)
        except ResumeError as exc:
            raise HTTPException(410, str(exc)) from None
        return StreamingResponse(
            frames(services.hub, client, services.conf.stream_heartbeat_seconds),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @router.post(
        "/responses",
        status_code=202,
        response_model=ResponseAccepted,
        dependencies=[respond],
        responses=_problems(401, 403, 404, 409, 422, 429, 503),
        summary="An agent's response to an NBA, published to the flow",
    )
    def responses(body: ResponseRequest) -> ResponseAccepted:
        missing = (
            f"no NBA {body.nba_id} on the board (never issued, trimmed, or its customer erased)"
        )
        found = board.nba(body.nba_id)
        if found is None:
            raise HTTPException(404, missing)
        owner = profile_of(found[0]["customer_id"]).customer_id  # erased: no response taken
        answer = board.answer(body.nba_id, body.outcome, services.now_ms(owner))
        nba = answer.nba
        if answer.verdict == "missing" or nba is None:
            raise HTTPException(404, missing)
        if answer.verdict == "conflict":
            done = ", ".join(answer.outcomes)
            msg = f"NBA {body.nba_id} was already answered ({done}); {body.outcome} is refused"
            raise HTTPException(409, msg)
        if answer.verdict == "expired":
            raise HTTPException(409, f"NBA {body.nba_id} has expired; it takes no more responses")
        response = NbaResponse(
            nba_id=body.nba_id,
            decision_id=nba.get("decision_id") or nba["id"],
            customer_id=nba["customer_id"],
            action=nba["action"],
            channel=nba["channel"],
            outcome=body.outcome,
            agent_id=body.agent_id,
            time=body.time,
        )
        try:
            services.publisher.publish(response)  # a duplicate is published again: harmless
        except PublishError as exc:
            raise HTTPException(503, str(exc)) from None
        log.info("response %s to an NBA (%s)", body.outcome, answer.verdict)
        return ResponseAccepted(
            event_id=response.event_id,
            nba_id=body.nba_id,
            outcome=body.outcome,
            duplicate=answer.verdict == "duplicate",
            outcomes=list(answer.outcomes),
        )

    return router
