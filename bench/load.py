"""The HTTP load benchmark: status throughput against the bare protected route.

Run it with ``make bench`` or ``.venv/bin/python bench/load.py [--quick] [--output PATH]``
(about 70 s, 15 s with ``--quick``). It needs ``wrk`` (``apt-get install wrk``).

It builds ``bench/run.py``'s app (the example app with a bare route, ``/bench/bare``, and the
same route behind the app's Authlib ``ResourceProtector``, ``/bench/protected``) on a temporary
SQLite file, makes a user and logs it in (``POST /auth/login``) for a bearer token, then serves
that app with gunicorn, 2 sync workers, on a free port of 127.0.0.1. It checks each route
answers as it should (200 with the token, 401 without it on the protected ones), then loads it
with ``wrk``: one thread, 4 connections (two per worker, so a worker never waits for its next
request while the load stays bounded), a fixed duration per round. The rounds are interleaved,
each route in turn, with the order rotated every round, so that a burst of load from elsewhere
on the machine hits every figure alike. Each figure is the median requests per second of the
rounds of its route; each ratio is the median over the rounds of the route's rate over the
protected route's rate in the same round. Paired by round, a change of load during the run (a
job elsewhere starting halfway) leaves the ratio alone, where a ratio of medians could divide a
rate of the quiet half by one of the busy half:

- ``GET /bench/bare``: the bare route, for context;
- ``GET /bench/protected``: the baseline, the protected route's token lookup (the example app
  loads the user's 2FA state with the token, so that query is the one status uses too);
- ``GET /auth/2fa/status``: the target is at least 0.9x the protected route's throughput.

Beside each rate, where there is a ``/proc`` (Linux), the CPU time gunicorn's processes spent
per request in the same rounds, and how many cores they had. The workers are CPU-bound, so the
rate is about those cores over that CPU time; the CPU time is the steadier figure of the two
on a shared machine (the rate moves with whatever else runs), and its ratio a cross-check of
the target's. The target itself is the ratio of the rates.

Every request goes through TCP and gunicorn's HTTP parser (a sync worker closes the connection
after each response, so each request is a new connection too): the fixed cost of a request is
larger than in process, and the extension's share of it smaller. ``wrk`` shares the machine's
cores with the workers, as does anything else that runs at the same time: compare the ratios,
not the absolute figures, between machines.

When ``wrk`` is not on ``PATH``, the script says how to install it and falls back to a small
client of its own (``http.client``, one thread per connection, in a separate process so that
it does not share the interpreter of the script). That client costs more CPU per request than
``wrk``, so its absolute figures are lower; its ratios remain comparable.

The figures are printed and written to the ``http`` section of ``bench/results.json``. Like
``run.py``, it only reports: it exits 0 whatever the timings, and non-zero only when something
is functionally broken (a route answers other than 2xx, a socket error, gunicorn does not
start or dies). gunicorn is stopped, its whole process group, whatever happens, Ctrl-C too.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
import multiprocessing
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import Protocol
from urllib.parse import urlsplit

from run import RESULTS
from run import build_app
from run import make_user
from run import write_section

from example_app import db

BENCH = Path(__file__).resolve().parent
HOST = "127.0.0.1"
WORKERS = 2
CONNECTIONS = 4
ROUTES = {
    "bare": ("bare route", "/bench/bare"),
    "protected": ("protected route", "/bench/protected"),
    "status": ("GET status", "/auth/2fa/status"),
}
TARGET = 0.9  # status throughput over the protected route's


class BenchmarkError(Exception):
    """Something is functionally broken: the figures would mean nothing."""


@dataclass
class Round:
    """One load run of one route."""

    requests: int
    rate: float  # requests per second
    failures: list[str] = field(default_factory=list)  # non-2xx answers, socket errors
    cpu_seconds: float | None = None  # used by gunicorn's processes; None without /proc
    elapsed: float = 0.0

    @property
    def cpu_per_request(self) -> float | None:
        return None if self.cpu_seconds is None else self.cpu_seconds / self.requests

    @property
    def cores_busy(self) -> float | None:
        """How many of the machine's cores the server had, on average."""
        return None if self.cpu_seconds is None else self.cpu_seconds / self.elapsed


@dataclass
class Server:
    url: str
    pid: int  # gunicorn's master, the leader of its process group


class LoadGenerator(Protocol):
    description: str

    def __call__(self, url: str, headers: dict[str, str], seconds: int) -> Round: ...


# -- the server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def gunicorn_command(port: int, log: Path, app: str, workers: int = WORKERS) -> list[str]:
    """gunicorn's command line serving ``app`` (``module:factory(...)``, found on ``bench/``)."""
    from gunicorn.config import KNOWN_SETTINGS  # type: ignore[import-untyped]

    command = [
        sys.executable,
        "-m",
        "gunicorn",
        f"--workers={workers}",
        "--worker-class=sync",
        f"--bind={HOST}:{port}",
        f"--pythonpath={BENCH}",
        f"--error-logfile={log}",
        "--log-level=info",
    ]
    if any(setting.name == "control_socket_disable" for setting in KNOWN_SETTINGS):
        # gunicorn 25+ opens a control socket at one path per user by default: two benchmarks
        # (or a benchmark and someone's server) at the same time would fight over it.
        command.append("--no-control-socket")
    # Each worker builds its own app (no --preload): a SQLite connection must not cross a fork.
    return [*command, app]


def server_cpu(master: int) -> tuple[frozenset[int], float] | None:
    """The processes of gunicorn (its master and their children, the workers) and the CPU
    time, user and system, they have used so far; None where there is no ``/proc``."""
    tick = os.sysconf("SC_CLK_TCK")
    processes: set[int] = set()
    ticks = 0
    try:
        entries = os.listdir("/proc")
    except FileNotFoundError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            # After the command name in parentheses: state, ppid, ..., utime and stime at 11-12.
            fields = Path("/proc", entry, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # a process that ended meanwhile
            continue
        if int(entry) == master or int(fields[1]) == master:
            processes.add(int(entry))
            ticks += int(fields[11]) + int(fields[12])
    return frozenset(processes), ticks / tick


@contextmanager
def gunicorn(
    database_uri: str, directory: Path, app: str | None = None, workers: int = WORKERS
) -> Iterator[Server]:
    """gunicorn serving ``app`` (``run.build_app(database_uri)`` by default) with ``workers``
    sync workers on a free port, stopped on the way out."""
    port = free_port()
    log = directory / "gunicorn.log"
    # No gunicorn.conf.py of the current directory, no GUNICORN_CMD_ARGS: only the flags above.
    environment = {key: value for key, value in os.environ.items() if key != "GUNICORN_CMD_ARGS"}
    process = subprocess.Popen(
        gunicorn_command(port, log, app or f"run:build_app({database_uri!r})", workers),
        cwd=directory,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, out of reach of the terminal's Ctrl-C
    )
    try:
        wait_until_serving(process, port, log)
        yield Server(f"http://{HOST}:{port}", process.pid)
        if process.poll() is not None:
            raise BenchmarkError(f"gunicorn died during the load.\n{tail(log)}")
    finally:
        stop(process)


def wait_until_serving(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchmarkError(f"gunicorn exited with {process.returncode}.\n{tail(log)}")
        try:
            status, _body = get(port, "/bench/bare", {})
        except OSError:
            time.sleep(0.1)
            continue
        if status != 200:
            raise BenchmarkError(f"GET /bench/bare answered {status}.\n{tail(log)}")
        return
    raise BenchmarkError(f"gunicorn did not answer within 30 s.\n{tail(log)}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """The master and its workers: the whole process group, politely first."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            process.poll()  # reap the master
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
    process.wait()


def tail(log: Path, lines: int = 30) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no gunicorn log)"
    return "gunicorn's log ends with:\n" + "\n".join(text[-lines:])


# -- functional checks ----------------------------------------------------------------------


def get(port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    # http.client rather than urllib: no proxy from the environment stands between us and it.
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def check_routes(server: Server, headers: dict[str, str]) -> None:
    """Every route answers 200 with the token, the protected ones 401 without it.

    ``wrk`` counts 3xx with the successes; this check shows the routes answer 200, and the
    load then fails on any other status or socket error.
    """
    port = int(urlsplit(server.url).port or 80)
    for key, (_name, path) in ROUTES.items():
        status, body = get(port, path, headers)
        if status != 200:
            raise BenchmarkError(f"GET {path} with the token answered {status}: {body[:200]!r}")
        if key != "bare":
            status, body = get(port, path, {})
            if status != 401:
                raise BenchmarkError(f"GET {path} without a token answered {status}, not 401")


# -- load generators ------------------------------------------------------------------------


class Wrk:
    def __init__(self, executable: str) -> None:
        self.executable = executable
        version = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, check=False
        ).stdout.split(" [")[0]
        self.description = f"{version}, 1 thread, {CONNECTIONS} connections"

    def __call__(self, url: str, headers: dict[str, str], seconds: int) -> Round:
        command = [
            self.executable,
            "--threads=1",
            f"--connections={CONNECTIONS}",
            f"--duration={seconds}s",  # whole seconds: wrk takes no fractions
            "--timeout=10s",  # a timeout is a failure, not a slow answer on a busy machine
        ]
        for name, value in headers.items():
            command += ["--header", f"{name}: {value}"]
        result = subprocess.run([*command, url], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BenchmarkError(
                f"wrk exited with {result.returncode}:\n{result.stderr}{result.stdout}"
            )
        return self.parse(result.stdout)

    @staticmethod
    def parse(output: str) -> Round:
        requests = re.search(r"^\s*(\d+) requests in ", output, re.MULTILINE)
        rate = re.search(r"^Requests/sec:\s*([\d.]+)", output, re.MULTILINE)
        if requests is None or rate is None:
            raise BenchmarkError(f"Could not read wrk's output:\n{output}")
        failures = []
        non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
        if non_2xx is not None:
            failures.append(f"{non_2xx.group(1)} answers not 2xx or 3xx")
        errors = re.search(r"Socket errors: (.*)", output)
        if errors is not None:
            failures.append(f"socket errors: {errors.group(1)}")
        return Round(int(requests.group(1)), float(rate.group(1)), failures)


def client_process_round(
    port: int, path: str, headers: dict[str, str], seconds: int, connections: int
) -> tuple[int, float, list[str]]:
    """The fallback client's round, in its own process: ``connections`` threads, each sending
    one request after another, on one connection while the server keeps it open."""
    lock = threading.Lock()
    counts = {"done": 0}
    failures: list[str] = []
    deadline = time.perf_counter() + seconds

    def client() -> None:
        connection: http.client.HTTPConnection | None = None
        done = 0
        while time.perf_counter() < deadline:
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(HOST, port, timeout=10)
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as error:
                with lock:
                    failures.append(f"socket error: {error!r}")
                return
            if not 200 <= response.status < 300:
                with lock:
                    failures.append(f"answer {response.status}")
                return
            done += 1
            if response.will_close:
                connection.close()
                connection = None
        if connection is not None:
            connection.close()
        with lock:
            counts["done"] += done

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return counts["done"], counts["done"] / elapsed, failures


class StdlibClient:
    description = f"bench/load.py's http.client fallback, {CONNECTIONS} threads"

    def __init__(self, pool: ProcessPoolExecutor) -> None:
        self.pool = pool

    def __call__(self, url: str, headers: dict[str, str], seconds: int) -> Round:
        parts = urlsplit(url)
        port, path = int(parts.port or 80), parts.path
        future = self.pool.submit(client_process_round, port, path, headers, seconds, CONNECTIONS)
        requests, rate, failures = future.result()
        return Round(requests, rate, failures)


@contextmanager
def load_generator() -> Iterator[LoadGenerator]:
    executable = shutil.which("wrk")
    if executable is not None:
        yield Wrk(executable)
        return
    print(
        "wrk is not on PATH: install it (apt-get install wrk) for the reference figures.\n"
        "Falling back to a slower http.client load; compare its ratios, not its rates.",
        flush=True,
    )
    # spawn: the client process inherits nothing of this one (its database connections).
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield StdlibClient(pool)


# -- the benchmark --------------------------------------------------------------------------


def load_round(
    generate: LoadGenerator, server: Server, key: str, headers: dict[str, str], seconds: int
) -> Round:
    """One route under load for ``seconds``, and the CPU time the server spent on it."""
    path = ROUTES[key][1]
    before = server_cpu(server.pid)
    started = time.perf_counter()
    result = generate(server.url + path, headers, seconds)
    result.elapsed = time.perf_counter() - started
    after = server_cpu(server.pid)
    if result.failures or result.requests == 0:
        problems = "; ".join(result.failures) or "no request completed"
        raise BenchmarkError(f"GET {path} under load: {problems}")
    if before is not None and after is not None and before[0] == after[0]:
        result.cpu_seconds = after[1] - before[1]
    return result


def measure(
    generate: LoadGenerator, server: Server, headers: dict[str, str], rounds: int, seconds: int
) -> dict[str, list[Round]]:
    """Every route in turn, round after round, the order rotated each round so that no route
    always follows the same one; a short untimed round of each first (both workers loaded,
    caches and connection pools warm)."""
    keys = list(ROUTES)
    for key in keys:
        load_round(generate, server, key, headers, 1)
    results: dict[str, list[Round]] = {key: [] for key in keys}
    for number in range(rounds):
        for key in keys[number % len(keys) :] + keys[: number % len(keys)]:
            results[key].append(load_round(generate, server, key, headers, seconds))
    for key, measured in results.items():
        rates = [result.rate for result in measured]
        median = statistics.median(rates)
        spread = (max(rates) - min(rates)) / median
        line = f"  {ROUTES[key][0]:<22} {median:10.1f} req/s  (spread {spread:5.1%})"
        cpu = cpu_per_request(measured)
        if cpu is not None:
            cores = statistics.median(r.cores_busy or 0.0 for r in measured)
            line += f"  server CPU {cpu * 1e6:6.0f} µs/request, {cores:.2f} cores busy"
        print(line, flush=True)
    return results


def prepare_database(database_uri: str) -> dict[str, str]:
    """The schema and a logged-in user, before any worker starts; its Authorization header."""
    app = build_app(database_uri)
    headers = make_user(app, app.test_client(), "load")
    with app.app_context():
        db.engine.dispose()  # nothing of this process stays connected to the file
    return headers


def run(quick: bool) -> dict[str, Any]:
    rounds = 3 if quick else 7
    seconds = 1 if quick else 3
    load_before = [round(load, 2) for load in os.getloadavg()]
    with tempfile.TemporaryDirectory() as directory, load_generator() as generate:
        database_uri = "sqlite:///" + os.path.join(directory, "load.sqlite")
        headers = prepare_database(database_uri)
        with gunicorn(database_uri, Path(directory)) as server:
            check_routes(server, headers)
            print(
                f"HTTP load ({'quick' if quick else 'full'}): gunicorn, {WORKERS} sync workers,"
                f" {generate.description}; median of {rounds} rounds of {seconds} s",
                flush=True,
            )
            results = measure(generate, server, headers, rounds, seconds)
    return report(results, quick, generate.description, seconds, load_before)


def cpu_per_request(measured: list[Round]) -> float | None:
    """The median over the rounds of the server's CPU time per request, None if unknown."""
    values = [r.cpu_per_request for r in measured]
    known = [value for value in values if value is not None]
    return statistics.median(known) if known and len(known) == len(values) else None


def paired_cpu_ratio(measured: list[Round], baseline: list[Round]) -> float | None:
    """The median over the rounds of the CPU time per request over the baseline's."""
    ratios = []
    for one, base in zip(measured, baseline, strict=True):
        if one.cpu_per_request is None or not base.cpu_per_request:
            return None
        ratios.append(one.cpu_per_request / base.cpu_per_request)
    return statistics.median(ratios)


def report(
    results: dict[str, list[Round]],
    quick: bool,
    load: str,
    seconds: int,
    load_before: list[float],
) -> dict[str, Any]:
    rates = {key: statistics.median(r.rate for r in measured) for key, measured in results.items()}
    cpus = {key: cpu_per_request(measured) for key, measured in results.items()}
    baseline = results["protected"]
    targets = {"bare": "-", "protected": "baseline", "status": f">= {TARGET:.2f}x"}
    print()
    print(
        f"{'figure':<14} {'median':>13} {'ratio':>8}  {'target':<12} {'met':<5}"
        f" {'server CPU':>14} {'ratio':>7}"
    )
    figures: dict[str, Any] = {}
    for key, measured in results.items():
        rounds_ratio = [r.rate / base.rate for r, base in zip(measured, baseline, strict=True)]
        ratio = statistics.median(rounds_ratio)
        met = ratio >= TARGET if key == "status" else None
        mark = "" if met is None else ("yes" if met else "NO")
        cpu, cpu_ratio = cpus[key], paired_cpu_ratio(measured, baseline)
        line = f"{key:<14} {rates[key]:7.1f} req/s {ratio:7.2f}x  {targets[key]:<12} {mark:<5}"
        if cpu is not None and cpu_ratio is not None:
            line += f" {cpu * 1e6:7.0f} µs/req {cpu_ratio:6.2f}x"
        print(line.rstrip())
        figures[key] = {
            "path": ROUTES[key][1],
            "median_rps": round(rates[key], 1),
            "rounds_rps": [round(r.rate, 1) for r in measured],
            "requests": sum(r.requests for r in measured),
            "ratio_to_protected": round(ratio, 3),
            "rounds_ratio": [round(value, 3) for value in rounds_ratio],
            "target": targets[key],
            "met": met,
            "server_cpu_us_per_request": None if cpu is None else round(cpu * 1e6, 1),
            "server_cpu_ratio_to_protected": None if cpu_ratio is None else round(cpu_ratio, 3),
            "server_cores_busy": [
                None if r.cores_busy is None else round(r.cores_busy, 2) for r in measured
            ],
        }
    return {
        "mode": "quick" if quick else "full",
        "database": "sqlite (temporary file)",
        "server": (
            f"gunicorn {importlib.metadata.version('gunicorn')}, {WORKERS} sync workers on {HOST}"
        ),
        "load": f"{load}, {seconds} s per round",
        "figures": figures,
        "status_over_protected": figures["status"]["ratio_to_protected"],
        "load_average_before": load_before,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter rounds: under 20 s")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    # A SIGTERM (make interrupted, a CI timeout) unwinds like Ctrl-C, so gunicorn is stopped.
    signal.signal(signal.SIGTERM, lambda _signal, _frame: sys.exit(128 + signal.SIGTERM))
    started = time.perf_counter()
    try:
        results = run(args.quick)
    except BenchmarkError as error:
        print(f"\nbench/load.py: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench/load.py: interrupted; gunicorn is stopped.", file=sys.stderr)
        return 130
    results["seconds"] = round(time.perf_counter() - started, 1)
    write_section(args.output, "http", results)
    print(f"\nWrote the HTTP figures to {args.output} in {results['seconds']} s.")
    return 0  # a benchmark reports; it never fails a build on a timing


if __name__ == "__main__":
    sys.exit(main())
