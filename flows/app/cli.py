"""The ``cxstream`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from flows.app.collector import tune_collector
from flows.app.recovery import RecoveryError
from flows.app.report_cli import add_report
from flows.app.stores import StoreUnavailableError
from flows.app.topics import KafkaUnavailableError
from flows.nba.catalogue import CatalogueError, load_catalogue
from flows.settings import Settings
from flows.steps.decode import describe_validation_error
from replay.log import LogFormatError


class UsageError(Exception):
    """A mistake the user can fix; the message says how."""


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        msg = f"invalid CX_* setting: {describe_validation_error(exc, show_input=False)}"
        raise UsageError(msg) from exc


def _cmd_run(args: argparse.Namespace) -> int:
    from flows.app.run import run_process, spawn_cluster

    settings = _settings()
    load_catalogue(settings.nba.catalogue)  # a malformed catalogue stops here, not in workers
    tail = not args.no_tail
    if args.processes > 1 and args.process_id is None:
        return spawn_cluster(settings, args.processes, tail=tail)
    addresses = args.addresses.split(";") if args.addresses else None
    if (addresses is None) != (args.process_id is None):
        msg = (
            "--process-id and --addresses go together "
            "(e.g. --process-id 0 --addresses 'h1:2101;h2:2101')"
        )
        raise UsageError(msg)
    run_process(settings, tail=tail, process_id=args.process_id, addresses=addresses)
    return 0


def _offline(logs: list[Path], out_dir: Path, processes: int = 1) -> int:
    from flows.app.offline import OfflineRunError, run_offline

    for log in logs:
        if not log.is_file():
            msg = f"no log file at {log}; record one with `cxstream replay record` or use the demo"
            raise UsageError(msg)
    settings = _settings()
    load_catalogue(settings.nba.catalogue)  # a malformed catalogue stops here, not in workers
    try:
        summary = run_offline(settings, logs, out_dir, processes=processes)
    except OfflineRunError as exc:
        raise UsageError(str(exc)) from exc
    print(summary.render())
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from flows.app.offline import SAMPLE_LOG

    print(f"cxstream demo: replaying the shipped sample {SAMPLE_LOG.name} with the in-memory store")
    if args.serve:
        return _demo_serve(Path(args.out), args.host, args.port)
    return _offline([SAMPLE_LOG], Path(args.out))


def _demo_serve(out_dir: Path, host: str, port: int) -> int:
    from api.server import demo_services, demo_token, run
    from flows.app.offline import SAMPLE_LOG, run_offline
    from flows.app.stores import make_store

    settings = _settings()
    store = make_store(settings, default="memory", publish=False)
    print(run_offline(settings, [SAMPLE_LOG], out_dir, store=store).render())
    token = demo_token()

    def ready() -> None:
        print(f"agent desktop: http://{host}:{port}/desktop/#token={token}  (Ctrl-C stops)")

    run(demo_services(settings, store, out_dir, token), host, port, on_ready=ready)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from api.server import serve

    serve(_settings(), args.host, args.port)
    return 0


def _cmd_replay_run(args: argparse.Namespace) -> int:
    return _offline([Path(p) for p in args.logs], Path(args.out), args.processes)


def _cmd_replay_loop(args: argparse.Namespace) -> int:
    from flows.app.loop import close_loop

    log, truth = Path(args.log), Path(args.truth)
    for path, what in ((log, "log"), (truth, "truth")):
        if not path.is_file():
            msg = f"no {what} file at {path}; `cxstream generate` writes both"
            raise UsageError(msg)
    settings = _settings()
    load_catalogue(settings.nba.catalogue)
    print(close_loop(settings, log, truth, Path(args.out), rounds=args.rounds).render())
    return 0


def _cmd_replay_record(args: argparse.Namespace) -> int:
    from replay.kafka_io import progress_printer, record

    settings = _settings()
    count = record(
        settings.kafka.client_config(),
        args.topic or settings.topics.events,
        Path(args.out),
        max_messages=args.max_messages,
        max_seconds=args.max_seconds,
        progress=progress_printer("recorded"),
    )
    print(f"recorded {count} messages to {args.out}")
    return 0


def _cmd_replay_play(args: argparse.Namespace) -> int:
    from replay.kafka_io import play, progress_printer
    from sinks.kafka import producer_config

    if not args.to_kafka:
        msg = "say where to play the log: --to-kafka (or use `cxstream replay run` for files)"
        raise UsageError(msg)
    log = Path(args.log)
    if not log.is_file():
        msg = f"no log file at {log}"
        raise UsageError(msg)
    settings = _settings()
    config = producer_config(settings.kafka.client_config(), settings.kafka.max_message_bytes)
    count = play(config, log, topic=args.topic, speed=args.speed, progress=progress_printer("sent"))
    print(f"sent {count} messages from {log}")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from replay.synthetic import generate_world, write_world

    if args.customers < 1 or args.days < 1:
        msg = "--customers and --days must be at least 1"
        raise UsageError(msg)

    def progress(done: int) -> None:
        print(f"generated {done}/{args.customers} customers", file=sys.stderr, flush=True)

    world = generate_world(args.customers, args.days, args.seed, progress=progress)
    events, truth = write_world(world, Path(args.out))
    print(f"wrote {events} and {truth}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import orjson

    from replay.evaluate import evaluate

    out_dir, truth = Path(args.dir), Path(args.truth)
    if not (out_dir / "profiles.jsonl").is_file():
        msg = f"no profiles.jsonl in {out_dir}; run `cxstream replay run LOG --out {out_dir}` first"
        raise UsageError(msg)
    if not truth.is_file():
        msg = f"no truth file at {truth}; `cxstream generate` writes truth.json"
        raise UsageError(msg)
    log = Path(args.log) if args.log else None
    if log is not None and not log.is_file():
        msg = f"no log file at {log}"
        raise UsageError(msg)
    baseline = Path(args.baseline) if args.baseline else None
    if baseline is not None and not (baseline / "nba.jsonl").is_file():
        msg = f"no nba.jsonl in {baseline}; run the fixed rules there first (see the README)"
        raise UsageError(msg)
    scores = evaluate(out_dir, truth, log, baseline)
    print(orjson.dumps(scores, option=orjson.OPT_INDENT_2).decode())
    return 0


def _identifier(text: str) -> tuple[str, str]:
    from schemas.identifiers import IdentifierError, normalise_identifier, normalise_type

    id_type, sep, value = text.partition(":")
    if not sep or not value:
        msg = f"{text!r} is not TYPE:VALUE (for example email:ann@example.com or crm_id:C-1)"
        raise UsageError(msg)
    try:
        id_type = normalise_type(id_type)
        return id_type, normalise_identifier(id_type, value, _settings().limits.phone_country_code)
    except IdentifierError as exc:
        raise UsageError(str(exc)) from exc


def _cmd_profile_get(args: argparse.Namespace) -> int:
    from flows.app.offline import with_household
    from flows.app.stores import make_households, make_store

    id_type, value = _identifier(args.identifier)
    settings = _settings()
    store = make_store(settings, default="redis")
    try:
        customer_id = store.lookup(id_type, value)
        profile = store.profile(customer_id) if customer_id is not None else None
        households = make_households(settings, store) if profile is not None else None
        if profile is not None:  # with its household's id and excerpt
            profile = with_household(profile, households)
        if households is not None:
            households.close()
    finally:
        store.close()
    if profile is None:
        print(f"no customer with {id_type}:{value}", file=sys.stderr)
        return 1
    print(profile.model_dump_json(indent=2))
    return 0


def _cmd_erase(args: argparse.Namespace) -> int:
    from flows.app.stores import make_store

    id_type, value = _identifier(args.identifier)
    store = make_store(_settings(), default="redis")
    try:
        customer_id = store.lookup(id_type, value)
        if customer_id is None:
            print(f"no customer with {id_type}:{value}; nothing erased", file=sys.stderr)
            return 1
        report = store.erase(customer_id)
    finally:
        store.close()
    print(
        f"erased {report.customer_id}: profile, {len(report.identifiers)} identifier links, "
        f"{len(report.aliases)} merged-away ids"
    )
    return 0


def _cmd_backtest(args: argparse.Namespace) -> int:
    import orjson

    from flows.app.backtest import backtest

    for path in (args.log, args.rules, args.current):
        if path is not None and not Path(path).is_file():
            msg = f"no file at {path}"
            raise UsageError(msg)
    current = Path(args.current) if args.current else None
    report = backtest(_settings(), Path(args.log), Path(args.rules), current)
    print(report.render())
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2))
        print(f"wrote {args.json}")
    return 0


def _cmd_schema_export(args: argparse.Namespace) -> int:
    from schemas.export import export_schemas

    for path in export_schemas(Path(args.dir)):
        print(path)
    return 0


def _cmd_schema_openapi(args: argparse.Namespace) -> int:
    from api.openapi import export_openapi

    print(export_openapi(Path(args.dir)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the ``cxstream`` argument parser with all its subcommands."""
    parser = argparse.ArgumentParser(
        prog="cxstream",
        description="Real-time customer-experience stream processor. "
        "Settings come from CX_* environment variables (see README).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="consume cx.events from Kafka and produce the output topics")
    run.add_argument("-p", "--processes", type=int, default=1, help="local worker processes")
    run.add_argument("--process-id", type=int, help="this process's index in a cluster")
    run.add_argument("--addresses", help="all cluster processes, 'host:port;host:port'")
    run.add_argument("--no-tail", action="store_true", help="stop at the end of the input topic")
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser("demo", help="run the flow over the shipped sample log (no servers)")
    demo.add_argument("--out", default="out/demo", help="output directory (default out/demo)")
    demo.add_argument(
        "--serve", action="store_true", help="then serve the agent desktop on the results"
    )
    demo.add_argument("--host", default="127.0.0.1", help="with --serve (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8080, help="with --serve (default 8080)")
    demo.set_defaults(func=_cmd_demo)

    serve = sub.add_parser("serve", help="the Experience API and the agent desktop (HTTP)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.set_defaults(func=_cmd_serve)

    _add_replay(sub)
    backtest = sub.add_parser(
        "backtest", help="replay a log with the current and a new NBA catalogue; diff the NBAs"
    )
    backtest.add_argument("--rules", required=True, help="the new catalogue (TOML)")
    backtest.add_argument("--log", required=True, help="a recorded log (JSON lines, .gz allowed)")
    backtest.add_argument(
        "--current", help="the current catalogue (default: CX_NBA__CATALOGUE or the shipped one)"
    )
    backtest.add_argument("--json", help="also write the report as JSON to this file")
    backtest.set_defaults(func=_cmd_backtest)
    _add_world(sub)
    add_report(sub, _settings, UsageError)
    _add_customer(sub)

    schema = sub.add_parser("schema", help="event schemas").add_subparsers(
        dest="schema_command", required=True, metavar="ACTION"
    )
    export = schema.add_parser("export", help="write the JSON Schema of every event to DIR")
    export.add_argument("dir")
    export.set_defaults(func=_cmd_schema_export)
    openapi = schema.add_parser("openapi", help="write the Experience API's openapi.json to DIR")
    openapi.add_argument("dir")
    openapi.set_defaults(func=_cmd_schema_openapi)
    return parser


if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]  # noqa: SLF001 (argparse has no public name for it)


def _add_replay(sub: Subparsers) -> None:
    replay = sub.add_parser("replay", help="recorded event logs").add_subparsers(
        dest="replay_command", required=True, metavar="ACTION"
    )
    replay_run = replay.add_parser("run", help="run logs through the flow into JSONL files")
    replay_run.add_argument("logs", nargs="+", help="log files (JSON lines, .gz allowed)")
    replay_run.add_argument("--out", required=True, help="output directory")
    replay_run.add_argument(
        "-p",
        "--processes",
        type=int,
        default=1,
        help="worker processes (more than 1 needs CX_IDENTITY__STORE=redis)",
    )
    replay_run.set_defaults(func=_cmd_replay_run)

    loop = replay.add_parser(
        "loop", help="replay a generated world with its answers to the flow's own NBAs"
    )
    loop.add_argument("log", help="the world's events.jsonl.gz")
    loop.add_argument("--truth", required=True, help="the world's truth.json")
    loop.add_argument("--out", required=True, help="output directory (and the answered log)")
    loop.add_argument("--rounds", type=int, default=6, help="at most this many answer rounds")
    loop.set_defaults(func=_cmd_replay_loop)

    rec = replay.add_parser("record", help="record a Kafka topic into a log, from its beginning")
    rec.add_argument("--topic", help="topic to record (default: the events topic)")
    rec.add_argument("--out", required=True, help="log file to write (.gz to compress)")
    rec.add_argument("--max-messages", type=int, help="stop after this many messages")
    rec.add_argument("--max-seconds", type=float, help="stop after this many seconds")
    rec.set_defaults(func=_cmd_replay_record)

    play = replay.add_parser("play", help="publish a log to Kafka")
    play.add_argument("log")
    play.add_argument("--to-kafka", action="store_true", help="publish to the Kafka brokers")
    play.add_argument("--topic", help="publish to this topic instead of the recorded one")
    play.add_argument(
        "--speed", type=float, help="keep the recorded pace, times this factor (default: max)"
    )
    play.set_defaults(func=_cmd_replay_play)


def _add_world(sub: Subparsers) -> None:
    gen = sub.add_parser("generate", help="write a synthetic CX world: event log + ground truth")
    gen.add_argument("--customers", type=int, default=1000)
    gen.add_argument("--days", type=int, default=30)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--out", required=True, help="directory for events.jsonl.gz and truth.json")
    gen.set_defaults(func=_cmd_generate)

    ev = sub.add_parser("evaluate", help="score an offline run against a world's ground truth")
    ev.add_argument("dir", help="output directory of `cxstream replay run`")
    ev.add_argument("--truth", required=True, help="truth.json from `cxstream generate`")
    ev.add_argument("--log", help="the world's events log: also report achievable recall")
    ev.add_argument("--baseline", help="a fixed-rules run's directory: the adaptive lift")
    ev.set_defaults(func=_cmd_evaluate)


def _add_customer(sub: Subparsers) -> None:
    profile = sub.add_parser("profile", help="the single customer view").add_subparsers(
        dest="profile_command", required=True, metavar="ACTION"
    )
    get = profile.add_parser("get", help="print a customer's 360 profile from Redis")
    get.add_argument("identifier", help="any identifier as TYPE:VALUE, e.g. email:ann@example.com")
    get.set_defaults(func=_cmd_profile_get)

    erase = sub.add_parser("erase", help="erase a customer (profile and identifier links)")
    erase.add_argument("identifier", help="any identifier as TYPE:VALUE")
    erase.set_defaults(func=_cmd_erase)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cxstream`` with ``argv`` (default: the command line); the exit code."""
    args = build_parser().parse_args(argv)
    tune_collector()  # a process of its own: the thresholds are the flow's (flows.app.collector)
    try:
        code: int = args.func(args)
    except (
        UsageError,
        KafkaUnavailableError,
        LogFormatError,
        StoreUnavailableError,
        RecoveryError,
        CatalogueError,
    ) as exc:
        print(f"cxstream: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
