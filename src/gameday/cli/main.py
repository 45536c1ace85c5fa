"""The `gameday` command: run | local up | restore | report | provision | teardown.

Bad input: one line naming the argument and what was expected, exit 2, nothing changed.

Start-up is part of every run's cost, so this module imports only the standard library and
gameday.errors; each command imports what it uses, and `gameday run` imports the game-day
procedures only when a setting they parse has to be checked.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from gameday.errors import GamedayError, UsageError

#: Environment variables the game days under load read (besides their options).
LOAD_ENV_PREFIX = "GAMEDAY_LOAD_"
SLO_ENV = "GAMEDAY_SLO"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message}\n")


def new_run_id() -> str:
    """Sortable by start time, unique across runs starting in the same second."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + os.urandom(3).hex()


def load_settings_given(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> bool:
    """Whether any setting of the game days under load was given (option or environment)."""
    env = os.environ if env is None else env
    options = (args.load_acked_writes, args.load_rate, args.load_write_ratio, args.slo)
    return any(value is not None for value in options) or any(
        name.startswith(LOAD_ENV_PREFIX) or name == SLO_ENV for name in env)


def embedded_regions(args: argparse.Namespace) -> list[str]:
    """The embedded local cloud's regions (--regions, checked; default eu-west-1,us-east-1), its
    routing (--routing; default failover for two regions, latency for more, as failover records
    pair exactly two) and its table's consistency (--consistency, --witness: a layout AWS accepts).
    All describe the embedded cloud only: a --deployment names its own."""
    for option in ("regions", "routing", "pairs", "consistency", "witness"):
        if getattr(args, option, None) is not None and args.deployment:
            raise UsageError(f"--{option}: only for the embedded local cloud; {args.deployment} names its own")
    from gameday.deployment import FAILOVER_PAIRS, consistency_layout, embedded_layout, failover_pairs

    regions, routing = embedded_layout(args.regions, args.routing)
    pairs = getattr(args, "pairs", None)
    if pairs is not None:
        if routing != FAILOVER_PAIRS:
            raise UsageError(f"--pairs: only with --routing {FAILOVER_PAIRS}, not {routing}")
        failover_pairs(pairs, regions)
    consistency_layout(args.consistency, args.witness, regions)
    return list(regions)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the scenarios through pytest, then print the summary and build the report."""
    from gameday.cli.run import finish_run, loads_own_plugins, pytest_args_for_run, run_pytest

    regions = embedded_regions(args)
    deployment = None
    if args.deployment:
        from gameday.deployment import load_deployment

        # validate before pytest starts: exit 2, no AWS call
        deployment = load_deployment(args.deployment)
        from gameday.aws import refuse_endpoint_overrides

        refuse_endpoint_overrides(deployment)   # AWS_ENDPOINT_URL* must not redirect a target: aws run
        regions = [r.name for r in deployment.regions]
    if args.fail_region is not None and args.fail_region not in regions:
        raise UsageError(f"--fail-region: expected one of {', '.join(regions)}, got {args.fail_region!r}")
    for option, expression in (("-k", args.k), ("-m", args.m)):
        if expression is not None:
            check_selection(option, expression)
    if args.notify is not None:
        from gameday.report.notify import check_url

        check_url(args.notify)
    if args.wait_lock is not None and not args.wait_lock >= 0:
        raise UsageError(f"--wait-lock: expected a number of seconds >= 0, got {args.wait_lock}")
    if args.n is not None and args.n < 0:
        raise UsageError(f"-n: expected a number of workers >= 0, got {args.n}")
    if args.time_scale is not None and not (0 < args.time_scale <= 1):
        raise UsageError(f"--time-scale: expected a number in (0, 1], got {args.time_scale}")
    if load_settings_given(args):
        # The same parsers the scenarios use: a bad value is a one-line error here, before pytest
        # starts. Only when something was given: the procedures are a heavy import.
        from gameday.gamedays.under_load import LoadSettings, slo_overrides

        LoadSettings.from_sources({"acked_writes": args.load_acked_writes, "rate": args.load_rate,
                                   "write_ratio": args.load_write_ratio})
        slo_overrides(args.slo)
    if args.dry_run:
        from gameday.cli.plan import cmd_plan

        return cmd_plan(args)
    from gameday.deployment import check_writable

    check_writable(args.report_dir, "--report-dir", folder=True)   # not after the game days ran
    if args.junitxml is not None:
        check_writable(args.junitxml, "--junitxml")
    run_id = new_run_id()
    run_dir = Path(args.report_dir) / run_id
    pytest_args = pytest_args_for_run(args, run_dir)  # checks --scenarios before anything is written
    guard: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if deployment is not None:
        from gameday.cli.guard import check_guardrails, held_lease

        check_guardrails(deployment, [args.fail_region] if args.fail_region else regions)
        guard = held_lease(deployment, run_id=run_id, wait_s=args.wait_lock or 0.0)
    from gameday.cli.progress import RunProgress

    display = RunProgress(run_dir, level=args.verbose - args.quiet)
    try:
        with guard:
            run_dir.mkdir(parents=True, exist_ok=True)
            from gameday.cli.journals import remember_journal

            remember_journal(Path(args.report_dir) / "journal.jsonl")
            print(f"gameday run {run_id}: pytest {' '.join(pytest_args)}", flush=True)
            try:
                code = run_pytest(pytest_args, autoload=not loads_own_plugins(args), plugins=[display])
            finally:
                display.close()   # pytest closes it as the session ends; this when it ended before
        return finish_run(run_dir, code, build_html=not args.no_html, notify_url=args.notify, display=display)
    finally:
        display.release()


def check_selection(option: str, expression: str) -> None:
    """A -k / -m expression pytest cannot parse is a usage error here, in one line, before anything
    starts (pytest itself would answer with its own exit status 4)."""
    from _pytest.mark.expression import Expression

    try:
        Expression.compile(expression)
    except SyntaxError as exc:
        raise UsageError(f"{option}: expected a pytest selection expression, got {expression!r} ({exc.msg})") from None


def cmd_plan_or_policy(args: argparse.Namespace) -> int:
    from gameday.cli.plan import cmd_plan, cmd_policy

    for option, expression in (("-k", args.k), ("-m", args.m)):
        if expression is not None:
            check_selection(option, expression)
    if getattr(args, "out", None) is not None:
        from gameday.deployment import check_writable

        check_writable(args.out, "--out")   # before the read-only calls, not after them
    return cmd_plan(args) if args.command_name == "plan" else cmd_policy(args)


def cmd_unlock(args: argparse.Namespace) -> int:
    from gameday.cli.guard import unlock
    from gameday.deployment import load_deployment

    print(f"gameday unlock: {unlock(load_deployment(args.deployment), force=args.force)}")
    return 0


def cmd_local_up(args: argparse.Namespace) -> int:
    from gameday.localcloud.process.serve import run_foreground

    return run_foreground(args)


def cmd_restore(args: argparse.Namespace) -> int:
    from gameday.cli.journals import check_journal, latest_journal
    from gameday.deployment import load_deployment
    from gameday.faults.journal import restore_pending

    if args.deployment is None:
        from gameday.localcloud.process.serve import DEFAULT_DESCRIPTION

        args.deployment = DEFAULT_DESCRIPTION
    deployment = load_deployment(args.deployment)
    if args.journal is None:
        journal, looked = latest_journal()
        if journal is None:
            print(f"gameday restore: no journal found (looked at {looked}): nothing to restore")
            return 0
        print(f"gameday restore: the latest run's journal: {journal}")
    else:
        journal = Path(args.journal)
        if not journal.exists():
            print(f"gameday restore: no journal at {journal}: nothing to restore")
            return 0
    check_journal(journal, "--journal" if args.journal is not None else "journal")
    results = restore_pending(journal, deployment)
    for line in results:
        print(f"gameday restore: {line}")
    if not results:
        print("gameday restore: nothing left injected")
    return 0 if all(outcome.ok for outcome in results) else 5


def cmd_report(args: argparse.Namespace) -> int:
    from gameday.report.html import build_report

    report_dir = Path(args.report_dir)
    if not report_dir.is_dir():
        why = "a file" if report_dir.exists() else "no such folder"
        raise UsageError(f"--report-dir: expected a folder of gameday runs, got {str(report_dir)!r} ({why})")
    if not args.history:
        from gameday.report.html import RESULTS_DIR, latest_results

        try:
            latest_results(report_dir)
        except GamedayError:
            raise UsageError(f"--report-dir: expected a folder of gameday runs, got {str(report_dir)!r} (no run "
                             f"with {RESULTS_DIR}/ in it; `gameday run --report-dir {report_dir}` makes one)") from None
    if args.history:
        from gameday.report.trends import load_history, render_trend_table, trend_rows, trend_series

        history = load_history(report_dir)
        print(f"gameday report: {len(history)} kept runs in {report_dir}")
        print(render_trend_table(trend_rows(trend_series(history))))
        return 0
    path = build_report(report_dir)
    print(f"gameday report: {path}")
    return 0


def cmd_provision(args: argparse.Namespace) -> int:
    from gameday.cli.provision import provision_command

    return provision_command(args)


def cmd_teardown(args: argparse.Namespace) -> int:
    from gameday.cli.provision import teardown_command

    return teardown_command(args)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line. `local up` takes its arguments from the local cloud's own module,
    which is imported only when the command line names `local` (argv None: always)."""
    from gameday.table_consistency import add_consistency_arguments

    parser = _Parser(prog="gameday", description="Failover game days for multi-region serverless backends.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run game-day scenarios (default: against a fresh embedded local cloud)")
    run.add_argument("--deployment", metavar="FILE", help="deployment description (default: start a local cloud)")
    run.add_argument("-k", metavar="EXPR", help="only scenarios matching EXPR (pytest -k)")
    run.add_argument("-m", metavar="EXPR", help="only scenarios with these markers (pytest -m)")
    run.add_argument("-n", type=int, metavar="N", help="parallel workers (pytest-xdist)")
    run.add_argument("--fail-region", metavar="REGION", help="fail only this region")
    run.add_argument("--time-scale", type=float, metavar="X", help="time scale of the local cloud (default 0.01)")
    run.add_argument("--regions", metavar="R1,R2[,R3...]",
                     help="regions of the embedded local cloud (default eu-west-1,us-east-1; not with --deployment)")
    run.add_argument("--routing", metavar="failover|latency|failover_pairs",
                     help="routing of the embedded local cloud (default: failover for 2 regions, latency for more; "
                          "failover_pairs: each region's clients fail over to its --pairs partner)")
    run.add_argument("--pairs", metavar="R:P,...",
                     help="with --routing failover_pairs: each region's failover partner, e.g. "
                          "eu-west-1:us-east-1,us-east-1:eu-west-1,ap-southeast-1:us-east-1 (default: the next "
                          "region in --regions, the last's the first)")
    add_consistency_arguments(run, whose="the embedded local cloud's global table (not with --deployment):")
    run.add_argument("--load-acked-writes", metavar="N", help="under load: acknowledged writes to reach (default 1000)")
    run.add_argument("--load-rate", metavar="RPS", help="under load: requests per second (default 60)")
    run.add_argument("--load-write-ratio", metavar="SHARE", help="under load: share of writes (default 0.8)")
    run.add_argument("--slo", metavar="NAME=MAX", action="append",
                     help="an SLO over the deployment file's (AWS-equivalent seconds for *_s figures); repeatable")
    run.add_argument("--scenarios", action="append", metavar="DIR",
                     help="also run the game days in DIR (a team's own; pytest files); repeatable")
    run.add_argument("--no-catalog", action="store_true",
                     help="run only the --scenarios game days, not the catalog shipped with gameday")
    run.add_argument("--junitxml", metavar="FILE", help="also write JUnit XML for CI systems (pytest --junitxml)")
    run.add_argument("--notify", metavar="URL", help="POST the run's summary (verdicts, figures, report) to URL "
                                                     "when it ends; a failed delivery is logged, never fails the run")
    run.add_argument("--dry-run", action="store_true",
                     help="print the plan (preconditions, faults, phases, AWS actions) and change nothing")
    run.add_argument("--wait-lock", type=float, metavar="S", default=None,
                     help="if another run holds the deployment's lease, wait up to S seconds for it (default: "
                          "refuse at once, naming the holder; exit 3)")
    run.add_argument("--report-dir", default="reports", metavar="DIR")
    run.add_argument("--no-html", action="store_true", help="skip building the Allure HTML report")
    levels = run.add_mutually_exclusive_group()
    levels.add_argument("-q", "--quiet", action="store_const", const=1, default=0,
                        help="progress: only finished scenarios and the summary")
    levels.add_argument("-v", "--verbose", action="store_const", const=1, default=0,
                        help="progress: also a plain line for every wait (not only per phase)")
    run.set_defaults(func=cmd_run)

    local = sub.add_parser("local", help="the embedded local cloud")
    local_sub = local.add_subparsers(dest="local_command", required=True, parser_class=_Parser)
    up = local_sub.add_parser("up", help="run the local cloud in the foreground; Ctrl-C stops it")
    if argv is None or "local" in argv:
        from gameday.localcloud.process.serve import add_arguments

        add_arguments(up)
    up.set_defaults(func=cmd_local_up)

    for name, helptext in (("plan", "check the preconditions and print what the selected game days would do; "
                                     "changes nothing"),
                           ("policy", "print the IAM policy (actions and resources) the selected game days need")):
        planning = sub.add_parser(name, help=helptext)
        planning.add_argument("--deployment", metavar="FILE", help="deployment description (default: an embedded "
                                                                   "local cloud, started for the plan)")
        planning.add_argument("-k", metavar="EXPR", help="only game days matching EXPR (pytest -k)")
        planning.add_argument("-m", metavar="EXPR", help="only game days with these markers (pytest -m)")
        planning.add_argument("--fail-region", metavar="REGION", help="fail only this region")
        planning.add_argument("--scenarios", metavar="DIR", action="append", help="a folder of your own game days")
        planning.add_argument("--no-catalog", action="store_true", help="only the --scenarios game days")
        planning.add_argument("--time-scale", type=float, metavar="X", help=argparse.SUPPRESS)
        if name == "policy":
            planning.add_argument("--out", metavar="FILE", help="write the policy to FILE")
            planning.add_argument("--cfn", action="store_true",
                                  help="print a CloudFormation template instead: the runner role with this policy, "
                                       "a CodeBuild project running `gameday run`, reports in S3, and an "
                                       "EventBridge Scheduler schedule")
        planning.set_defaults(func=cmd_plan_or_policy, n=None, load_acked_writes=None, load_rate=None,
                              load_write_ratio=None, slo=None, command_name=name)

    unlock = sub.add_parser("unlock", help="remove a deployment's lease (a run that was killed holds it until it "
                                           "expires)")
    unlock.add_argument("--deployment", required=True, metavar="FILE", help="deployment description (names the lease)")
    unlock.add_argument("--force", action="store_true", help="required: the lease may belong to a live run")
    unlock.set_defaults(func=cmd_unlock)

    restore = sub.add_parser("restore", help="undo faults that a killed run left behind")
    restore.add_argument("--journal", default=None, metavar="FILE",
                         help="the fault journal (default: the latest run's, wherever it wrote it)")
    restore.add_argument("--deployment", default=None, metavar="FILE",
                         help="deployment description (default: the one `gameday local up` writes)")
    restore.set_defaults(func=cmd_restore)

    report = sub.add_parser("report", help="build the Allure HTML report with history")
    report.add_argument("--report-dir", default="reports", metavar="DIR")
    report.add_argument("--history", action="store_true",
                        help="print each figure across the kept runs (first, latest, range, SLO) instead")
    report.set_defaults(func=cmd_report)

    provision = sub.add_parser("provision", help="deploy the reference backend with CloudFormation")
    provision.add_argument("--regions", default="eu-west-1,us-east-1")
    provision.add_argument("--table-version", default="2019.11.21")
    provision.add_argument("--routing", default="failover", metavar="failover|latency|failover_pairs")
    provision.add_argument("--pairs", default=None, metavar="R:P,...",
                           help="with --routing failover_pairs: each region's failover partner (default: the next "
                                "region in --regions, the last's the first)")
    add_consistency_arguments(provision)
    provision.add_argument("--domain", default=None, metavar="D",
                           help="required: the custom domain (alias A records to a regional custom domain per "
                                "region), inside the --hosted-zone-id zone")
    provision.add_argument("--hosted-zone-id", default=None, metavar="Z",
                           help="required: your public hosted zone, delegated to Route 53, that holds --domain "
                                "(provision adds records to it and never deletes it)")
    provision.add_argument("--templates", default=None, metavar="DIR")
    provision.add_argument("--health", default="deep", metavar="deep|shallow",
                           help="the reference /health: deep (writes and reads back the region's own item) or "
                                "shallow (the article's: its environment only)")
    provision.add_argument("--deployment-out", default="reports/aws/deployment.yaml", metavar="FILE")
    provision.set_defaults(func=cmd_provision)

    teardown = sub.add_parser("teardown", help="delete the stacks that provision created")
    teardown.add_argument("--deployment", required=True, metavar="FILE")
    teardown.set_defaults(func=cmd_teardown)

    from gameday.cli.discover import add_parser as add_discover  # the standard library only, at import

    add_discover(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"gameday: {exc}", file=sys.stderr)
        return 2
    except GamedayError as exc:
        print(f"gameday: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("gameday: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
