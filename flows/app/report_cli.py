"""The ``cxstream report`` sub-command: arguments and what it does with them."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flows.settings import Settings


def add_report(sub: Any, settings: Callable[[], Settings], usage: type[Exception]) -> None:
    """Add ``report --from OUT_DIR | --kafka [--since TIME] --out REPORT_DIR`` to ``sub``."""
    rep = sub.add_parser("report", help="write an HTML report (CX lead, CEO, CMO) from the outputs")
    source = rep.add_mutually_exclusive_group(required=True)
    source.add_argument("--from", dest="from_dir", help="output directory of `replay run`/`demo`")
    source.add_argument("--kafka", action="store_true", help="read the output topics instead")
    rep.add_argument("--since", help="only records of event time from this RFC 3339 time")
    rep.add_argument("--out", required=True, help="directory for report.html")

    def run(args: argparse.Namespace) -> int:
        from flows.app import report_data
        from flows.app.report import write_report

        if args.from_dir:
            out_dir = Path(args.from_dir)
            if not (out_dir / "insights.jsonl").is_file():
                msg = (
                    f"no insights.jsonl in {out_dir}; run `cxstream replay run LOG --out {out_dir}`"
                )
                raise usage(msg)
            outputs, source = report_data.read_dir(out_dir), str(out_dir)
        else:
            conf = settings()
            topics = conf.topics.output_topics()
            try:
                outputs = report_data.read_kafka(conf.kafka.client_config(), topics)
            except RuntimeError as exc:
                msg = f"{exc}; is Kafka up at {conf.kafka.brokers} (CX_KAFKA__BROKERS)?"
                raise usage(msg) from exc
            source = f"Kafka at {conf.kafka.brokers}"
        if args.since:
            outputs, source = (
                report_data.since(outputs, args.since),
                f"{source}, since {args.since}",
            )
        path = write_report(report_data.figures(outputs), source, Path(args.out))
        print(f"wrote {path}")
        return 0

    rep.set_defaults(func=run)
