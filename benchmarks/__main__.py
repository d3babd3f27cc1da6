"""Run the benchmarks and print their figures: `uv run --group bench python -m benchmarks`.

1. render time per combination (median of --render-runs);
2. with --with-matrix, the template's full test command, per combination and stage;
3. the rendered service under load (wrk, loopback, one uvicorn worker, real services),
   next to the bare baseline, with ratios, and next to the framework floor (the checked
   baseline's work as a minimal FastAPI app, with Strawberry for GraphQL); --profile adds
   where the time goes;
   --workers 1,2 runs the service at each worker count and compares them;
4. start-to-ready time of the service.

Figures are printed, never asserted: they depend on the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import load, matrix, render


def _say(text: str) -> None:
    print(text, flush=True)


def _load_average() -> str:
    """Other work on the machine skews every figure; the 1-minute load average tells how much."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def _render_section(runs: int) -> dict[str, list[float]]:
    times = render.time_renders(runs)
    rows = [
        [cid, f"{render.median_ms(ts):.0f}", f"{1000 * min(ts):.0f}", f"{1000 * max(ts):.0f}"]
        for cid, ts in times.items()
    ]
    _say(f"\n## Render time per combination (cookiecutter API + hooks, {runs} runs, ms)\n")
    _say(_table(["combination", "median", "min", "max"], rows))
    return times


def _matrix_section(workdir: Path, extra: list[str]) -> matrix.MatrixReport:
    del workdir  # kept after the run: the pytest output is worth reading
    keep = Path(tempfile.mkdtemp(prefix="bench-matrix-"))
    record, log = keep / "record.jsonl", keep / "pytest.log"
    _say(f"\n(running the template suite: pytest at the repo root; output in {log})")
    matrix.run_matrix(record, log, extra)
    report = matrix.summarise(record, log)
    rows = []
    totals = dict.fromkeys(matrix.STAGES, 0.0)
    for combination, stages in report.stages.items():
        for k, v in stages.items():
            totals[k] += v
        rows.append(
            [
                combination,
                *(f"{stages[s]:.1f}" for s in matrix.STAGES),
                f"{sum(stages.values()):.1f}",
            ]
        )
    rows.append(
        [
            "all 16 (sum)",
            *(f"{totals[s]:.1f}" for s in matrix.STAGES),
            f"{sum(totals.values()):.1f}",
        ]
    )
    status = "passed" if report.exit_status == 0 else f"FAILED (exit {report.exit_status})"
    _say("\n## Template test command, per combination and stage (seconds of worker time)\n")
    _say(_table(["combination", *matrix.STAGES, "total"], rows))
    busy = ", ".join(f"{w} {s:.0f} s" for w, s in report.workers.items())
    _say(
        f"\nwall time {report.wall_seconds:.1f} s ({status}); services up and first test after "
        f"{report.first_test_after:.1f} s; worker busy time: {busy}; the template's own checks "
        f"(hooks, prompts, lint): {report.template_checks_seconds:.1f} s"
    )
    slowest = max(totals, key=lambda s: totals[s])
    share = 100 * totals[slowest] / max(1e-9, sum(totals.values()))
    _say(f"slowest stage: {slowest} ({totals[slowest]:.0f} s, {share:.0f}% of all stages' time)")
    return report


def _ratio(part: float, whole: float) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def _ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _load_section(args: argparse.Namespace, workdir: Path) -> list[load.TargetReport]:
    from tests.services import running_services

    connections = [int(c) for c in args.connections.split(",")]
    workers = list(dict.fromkeys(int(n) for n in args.workers.split(",")))
    reports = []
    _say(
        f"\n(starting PostgreSQL, Redis, RabbitMQ, Kafka protocol and MongoDB protocol servers; "
        f"then per combination: render, uv sync, migrate, {args.starts} starts, "
        f"seed {args.items} items, wrk for {args.duration:g} s per cell)"
    )
    jobs = [(load.TARGETS[name], None) for name in args.targets.split(",")]
    if args.project:
        jobs = [(load.target_of(args.project), args.project.resolve())]
    with running_services(workdir / "services") as urls:
        for target, project in jobs:
            reports.append(
                load.measure_target(
                    target,
                    urls,
                    workdir,
                    connections=connections,
                    seconds=args.duration,
                    starts=args.starts,
                    seed_items=args.items,
                    log_level=args.log_level,
                    with_profile=args.profile,
                    say=_say,
                    project=project,
                    workers=workers,
                )
            )
    headers = ["combination", "scenario", "conc", "req/s", "p50 ms", "p99 ms", "CPU µs/req"]
    headers += ["base req/s", "base p50", "base p99", "base CPU µs", "req/s ratio", "CPU ratio"]
    headers += ["checked req/s", "checked CPU µs", "ratio to checked"]
    rows = []
    for report in reports:
        for m in report.measurements:
            s, b, k = m.service.result, m.baseline.result, m.checked.result
            row = [m.target, load.SCENARIO_TITLES[m.scenario], str(m.connections)]
            row += [f"{s.rps:.0f}", _ms(s.p50_ms), _ms(s.p99_ms), f"{m.service.cpu_us:.0f}"]
            row += [f"{b.rps:.0f}", _ms(b.p50_ms), _ms(b.p99_ms), f"{m.baseline.cpu_us:.0f}"]
            row += [_ratio(s.rps, b.rps), _ratio(m.baseline.cpu_us, m.service.cpu_us)]
            row += [f"{k.rps:.0f}", f"{m.checked.cpu_us:.0f}", _ratio(s.rps, k.rps)]
            if s.errors or b.errors or k.errors:
                row[1] += f" ({s.errors}/{b.errors}/{k.errors} errors)"
            if not s.requests or not b.requests or not k.requests:
                row[1] += " (no answer in time: the server is saturated)"
            rows.append(row)
    service_workers = "1 uvicorn worker"
    if workers[0] != 1:
        service_workers = f"the service on {workers[0]} uvicorn workers, the baselines on 1"
    _say(
        f"\n## Service under load vs bare baseline (wrk, loopback, {service_workers}, "
        f"{args.duration:g} s per cell, APP_LOG_LEVEL={args.log_level}, compliance logging on, "
        "RabbitMQ)\n\n'checked' is the baseline making the service's per-request checks too "
        "(token, session, rate limit): what is left to the service is its framework's and its "
        "own code's.\n"
    )
    _say(_table(headers, rows))
    _floor_table(reports)
    if workers != [1]:
        _workers_tables(reports, workers)
    _say(
        "\n## Start to /health/ready answering 200 (seconds), and the worker's resident "
        "memory after the load (MiB)\n"
    )
    _say(
        _table(
            ["combination", "median", "runs", "RSS MiB"],
            [
                [
                    r.target,
                    f"{statistics.median(r.startup_seconds):.2f}",
                    " ".join(f"{s:.2f}" for s in r.startup_seconds),
                    f"{r.rss_mib:.0f}",
                ]
                for r in reports
            ],
        )
    )
    for report in reports:
        for scenario, rows_ in report.profiles.items():
            title = load.SCENARIO_TITLES[scenario]
            _say(
                f"\n### Where {report.target} spends '{title}' (py-spy, % of event-loop samples)\n"
            )
            _say("\n".join(f"{share:5.1f}%  {label}" for share, label in rows_))
    return reports


def _floor_table(reports: list[load.TargetReport]) -> None:
    rows = []
    for report in reports:
        for m in report.measurements:
            if m.floor is None:
                continue
            f, service, checked, floor = m.floor.result, m.service, m.checked, m.floor
            row = [m.target, load.SCENARIO_TITLES[m.scenario], str(m.connections)]
            row += [f"{checked.cpu_us:.0f}", f"{f.rps:.0f}", _ms(f.p50_ms), _ms(f.p99_ms)]
            row += [f"{floor.cpu_us:.0f}", _ratio(floor.cpu_us, checked.cpu_us)]
            row += [f"{service.cpu_us:.0f}", _ratio(service.cpu_us, floor.cpu_us)]
            row += [_ratio(floor.cpu_us - checked.cpu_us, service.cpu_us - checked.cpu_us)]
            if f.errors:
                row[1] += f" ({f.errors} errors)"
            if not f.requests:
                row[1] += " (no answer in time: the server is saturated)"
            rows.append(row)
    headers = ["combination", "scenario", "conc", "checked CPU µs", "floor req/s", "floor p50"]
    headers += ["floor p99", "floor CPU µs", "floor over checked", "service CPU µs"]
    headers += ["service over floor", "the frameworks' share of service over checked"]
    _say(
        "\n## Framework floor: the checked baseline's work as a minimal FastAPI app "
        "(1 uvicorn worker)\n\nREST: router-level Depends for the checks, typed parameters, "
        "pydantic models (benchmarks/fastapi_floor.py). GraphQL: the same with Strawberry, "
        "answering the service's own documents with Relay types, parser and validation "
        "caches (benchmarks/strawberry_floor.py). No logging, metrics or middleware. The last "
        "column: of the CPU the service spends per request beyond the checked baseline, the "
        "part the floor spends too (FastAPI's and Strawberry's own).\n"
    )
    _say(_table(headers, rows))


def _workers_tables(reports: list[load.TargetReport], workers: list[int]) -> None:
    rows = []
    for report in reports:
        for count in workers:
            for m in report.measurements:
                cell = m.by_workers[count]
                s = cell.result
                row = [m.target, str(count), load.SCENARIO_TITLES[m.scenario], str(m.connections)]
                row += [f"{s.rps:.0f}", _ms(s.p50_ms), _ms(s.p99_ms), f"{cell.cpu_us:.0f}"]
                if s.errors:
                    row[2] += f" ({s.errors} errors)"
                rows.append(row)
    _say(
        "\n## Service per worker count (the first count's figures are the table's above; "
        "the others' measured after it, the service alone; CPU summed over uvicorn's "
        "supervisor and its workers)\n"
    )
    headers = ["combination", "workers", "scenario", "conc", "req/s", "p50 ms", "p99 ms"]
    _say(_table([*headers, "CPU µs/req"], rows))
    memory = [
        [
            r.target,
            str(count),
            f"{r.master_rss_mib[count]:.0f}" if count > 1 else "-",
            " ".join(f"{mib:.0f}" for mib in r.worker_rss_mib[count]),
        ]
        for r in reports
        for count in workers
    ]
    _say("\n### Resident memory after the load, per process (MiB)\n")
    _say(_table(["combination", "workers", "supervisor", "each worker"], memory))
    if len(workers) < 2:
        return
    base = min(workers)
    rows = []
    for report in reports:
        for m in report.measurements:
            if m.scenario != "create":
                continue
            rps = {count: m.by_workers[count].result.rps for count in workers}
            row = [m.target, str(m.connections), *(f"{rps[n]:.0f}" for n in workers)]
            row += [_times(rps[n], rps[base]) for n in workers if n != base]
            row += [f"{100 * m.by_workers[n].machine_busy:.0f}%" for n in workers]
            rows.append(row)
    headers = [
        "combination",
        "conc",
        *(f"create req/s, {n} worker{'s' if n > 1 else ''}" for n in workers),
    ]
    headers += [f"{n} over {base}" for n in workers if n != base]
    headers += [f"machine busy, {n} worker{'s' if n > 1 else ''}" for n in workers]
    _say(
        f"\n## Workers\n\nCreates per second at each worker count, and over {base}. The "
        "counts are measured one after the other (instances side by side would share their "
        "background work), so a busy spell of the machine may hit one and not another. "
        "'Machine busy' is the CPU of all the machine's cores in use over the run: the "
        "workers share them with the database, Redis, the broker and wrk, so near 100% "
        "more workers cannot add throughput.\n"
    )
    _say(_table(headers, rows))


def _times(part: float, whole: float) -> str:
    return f"{part / whole:.2f}x" if whole else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--only", default="render,load", help="sections: render,load (and matrix)")
    parser.add_argument(
        "--with-matrix", action="store_true", help="also run the full template suite (minutes)"
    )
    parser.add_argument(
        "--matrix-args", default="", help="extra pytest arguments for the matrix run"
    )
    parser.add_argument("--render-runs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per cell")
    parser.add_argument("--connections", default="1,16,64", help="concurrency levels")
    parser.add_argument("--starts", type=int, default=3, help="starts timed per combination")
    parser.add_argument("--items", type=int, default=1000, help="items seeded per combination")
    parser.add_argument("--targets", default=",".join(load.TARGETS), help=",".join(load.TARGETS))
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the service at the top concurrency"
    )
    parser.add_argument(
        "--project", type=Path, help="load this already rendered project instead of --targets"
    )
    parser.add_argument("--json", type=Path, help="also write every figure here as JSON")
    parser.add_argument(
        "--workers",
        default="1",
        help="uvicorn worker counts for the service, e.g. 1,2 (the baselines keep one)",
    )
    args = parser.parse_args(argv)
    sections = set(args.only.split(","))
    if args.with_matrix:
        sections.add("matrix")

    started = time.monotonic()
    _say(
        f"# Benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {platform.node()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}; "
        f"{_load_average()}"
    )
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        if "render" in sections:
            results["render"] = _render_section(args.render_runs)
            _say(f"({_load_average()} at the end of this section)")
        if "matrix" in sections:
            report = _matrix_section(workdir, args.matrix_args.split())
            results["matrix"] = {**dataclasses.asdict(report), "log": str(report.log)}
            _say(f"({_load_average()} at the end of this section)")
        if "load" in sections:
            results["load"] = [dataclasses.asdict(r) for r in _load_section(args, workdir)]
            _say(f"({_load_average()} at the end of this section)")
    _say(f"\n(benchmarks took {time.monotonic() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
