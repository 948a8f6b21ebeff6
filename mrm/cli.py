"""The ``mrm`` command: ``up`` runs the platform, ``demo`` plays the other systems,
``publish`` sends one event as another internal system would."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from shared.settings import CommonSettings


def _up(args: argparse.Namespace) -> int:
    from mrm.supervisor import Platform, run_until_signal

    settings = CommonSettings()
    platform = Platform(settings)
    after_start = None
    if args.demo:
        from mrm.demo import Demo

        def after_start(runtime):  # type: ignore[no-untyped-def]
            Demo(runtime).run(days=args.days, pause_s=args.pause)
            print("The platform keeps running; Ctrl-C stops it.")

    return run_until_signal(platform, after_start=after_start)


def _demo(args: argparse.Namespace) -> int:
    from mrm import runtime
    from mrm.demo import Demo

    Demo(runtime.load(Path(CommonSettings().data_dir))).run(days=args.days, pause_s=args.pause)
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
    bootstrap = runtime.load(Path(CommonSettings().data_dir)).kafka_bootstrap
    with EventPublisher(bootstrap, source=args.source) as publisher:
        envelope = publisher.publish(data)
    print(envelope.model_dump_json())
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

    demo = commands.add_parser("demo", help="play the other internal systems against `mrm up`")
    demo.add_argument("--days", type=int, default=30, help="simulated days")
    demo.add_argument("--pause", type=float, default=1.0, help="seconds between days")
    demo.set_defaults(func=_demo)

    publish = commands.add_parser("publish", help="publish one event (validated first)")
    publish.add_argument("event_type", help="e.g. spend.recorded")
    publish.add_argument("data", help="the event's data as JSON")
    publish.add_argument("--source", default="cli", help="the publishing system's name")
    publish.set_defaults(func=_publish)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mrm`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
