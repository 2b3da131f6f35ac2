"""Local Redis, PostgreSQL and nginx servers as child processes, on loopback ports.

Used by ``assistant cluster`` (``make run-cluster``, data kept under ``var/cluster/``) and by the tests, which
start throw-away servers in temporary folders. The binaries come from the Debian packages ``redis-server``,
``postgresql`` and ``nginx``; a missing one raises ``ServiceUnavailable`` naming the package to install.

Example:
    >>> server = RedisServer(Path("/tmp/redis-demo"), port=6380)  # cheap; start() runs it
    >>> server.url
    'redis://127.0.0.1:6380/0'
"""

from __future__ import annotations

import glob
import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

from assistant.errors import AssistantError

HOST = "127.0.0.1"


class ServiceUnavailable(AssistantError):
    """A server binary is not installed, or the server did not start (the message says which and why)."""


_HANDED_OUT: set[int] = set()


def _ephemeral_start() -> int:
    """The first port the kernel gives outgoing connections (Linux: ip_local_port_range, default 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def port_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on ``port`` now (bound as uvicorn and the servers bind: SO_REUSEADDR)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(run: int = 1) -> int:
    """A port to start a server on (the first of ``run`` consecutive ones), below the ephemeral range and not
    handed out before by this process.

    Why not the kernel's pick (bind to port 0): that port is in the ephemeral range, where any outgoing
    connection may take it between this call and the server's bind ("address already in use", seen in CI).
    """
    top = min(_ephemeral_start(), 65_536) - run
    for _ in range(200):
        first = random.randint(20_000 if top > 21_000 else 1_024, top)  # above the well-known ports
        ports = range(first, first + run)
        if not _HANDED_OUT.intersection(ports) and all(port_free(p) for p in ports):
            _HANDED_OUT.update(ports)
            return first
    raise ServiceUnavailable(f"no run of {run} free ports below {top + run}; free some or widen the range")


def stop_process(proc: subprocess.Popen[bytes] | None, timeout_s: float = 10.0) -> int | None:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL; returns the exit status (None without a process)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def port_open(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for_port(
    port: int, *, what: str, timeout_s: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while not port_open(port):
        if proc is not None and proc.poll() is not None:
            raise ServiceUnavailable(
                f"{what} exited with status {proc.returncode} before listening on {port}"
            )
        if time.monotonic() > deadline:
            raise ServiceUnavailable(f"{what} did not listen on {HOST}:{port} within {timeout_s:g} s")
        time.sleep(0.05)


def _tail(path: Path, n: int = 600) -> str:
    try:
        return " ".join(path.read_text(errors="replace")[-n:].split())
    except OSError:
        return ""


def _as_postgres_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its programs as the ``postgres`` user then."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser is None:
        raise ServiceUnavailable(
            "running as root without runuser: cannot start PostgreSQL as the postgres user"
        )
    return [runuser, "-u", "postgres", "--", *cmd]


def postgres_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class RedisServer:
    """``redis-server`` on a loopback port; with ``persist`` its data (append-only file) stays in ``workdir``."""

    def __init__(self, workdir: Path, *, port: int | None = None, persist: bool = False) -> None:
        self.workdir = workdir
        self.port = port if port is not None else free_port()
        self.persist = persist
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceUnavailable("redis-server is not installed (apt-get install redis-server)")
        if port_open(self.port):
            raise ServiceUnavailable(f"port {self.port} is taken; choose another Redis port")
        self.workdir.mkdir(parents=True, exist_ok=True)
        durable = (
            ["--appendonly", "yes", "--appendfsync", "everysec"] if self.persist else ["--appendonly", "no"]
        )
        log = self.workdir / "redis.log"
        where = ["--dir", str(self.workdir), "--logfile", str(log)]
        self._proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", HOST, "--save", "", *durable, *where],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port, what="redis-server", proc=self._proc)
        except ServiceUnavailable as e:
            self.stop()
            raise ServiceUnavailable(f"{e}: {_tail(log)}") from e

    def stop(self) -> None:
        stop_process(self._proc)
        self._proc = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PostgresServer:
    """A PostgreSQL cluster in ``workdir/data`` (created with initdb on first start), on a loopback port.

    Trust authentication on loopback only: a development and test server, not a production database.
    """

    def __init__(self, workdir: Path, *, port: int | None = None, database: str = "postgres") -> None:
        self.workdir = workdir
        self.port = port if port is not None else free_port()
        self.database = database
        self._bindir: Path | None = None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@{HOST}:{self.port}/{self.database}"

    @staticmethod
    def available() -> bool:
        return postgres_bindir() is not None

    def _bin(self, name: str) -> str:
        if self._bindir is None:
            self._bindir = postgres_bindir()
        if self._bindir is None:
            raise ServiceUnavailable("PostgreSQL is not installed (apt-get install postgresql)")
        return str(self._bindir / name)

    def start(self) -> None:
        data, sock, log = self.workdir / "data", self.workdir / "sock", self.workdir / "postgres.log"
        initdb = self._bin("initdb")
        if port_open(self.port):
            raise ServiceUnavailable(f"port {self.port} is taken; choose another PostgreSQL port")
        sock.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            for path in (self.workdir, sock):
                shutil.chown(path, "postgres")
        if not (data / "PG_VERSION").exists():
            done = subprocess.run(
                _as_postgres_user([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                hint = " (the postgres user must be able to reach this folder)" if os.geteuid() == 0 else ""
                raise ServiceUnavailable(f"initdb failed{hint}: {done.stderr[-600:]}")
        opts = f"-p {self.port} -k {sock} -h {HOST} -F"
        started = subprocess.run(
            _as_postgres_user(
                [self._bin("pg_ctl"), "-D", str(data), "-o", opts, "-w", "-l", str(log), "start"]
            ),
            capture_output=True,
            text=True,
        )
        if started.returncode != 0:
            raise ServiceUnavailable(f"PostgreSQL did not start: {started.stderr[-300:]} {_tail(log)}")
        wait_for_port(self.port, what="PostgreSQL")
        if self.database != "postgres":
            made = subprocess.run(
                _as_postgres_user(
                    [self._bin("createdb"), "-h", HOST, "-p", str(self.port), "-U", "postgres", self.database]
                ),
                capture_output=True,
                text=True,
            )
            if made.returncode != 0 and "already exists" not in made.stderr:
                raise ServiceUnavailable(f"createdb {self.database} failed: {made.stderr[-300:]}")

    def stop(self) -> None:
        if not (self.workdir / "data" / "postmaster.pid").exists():
            return
        subprocess.run(
            _as_postgres_user(
                [self._bin("pg_ctl"), "-D", str(self.workdir / "data"), "-m", "fast", "-w", "stop"]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class NginxServer:
    """nginx in the foreground with ``config`` and its runtime files (pid, temp, logs) under ``workdir``."""

    def __init__(self, workdir: Path, config: Path, *, port: int) -> None:
        self.workdir = workdir
        self.config = config
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary() -> str | None:
        return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)

    def _cmd(self, *extra: str) -> list[str]:
        binary = self.binary()
        if binary is None:
            raise ServiceUnavailable("nginx is not installed (apt-get install nginx)")
        for sub in ("logs", "tmp"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        return [
            binary,
            "-p",
            f"{self.workdir}/",
            "-e",
            "logs/error.log",
            "-c",
            str(self.config.resolve()),
            *extra,
        ]

    def check(self) -> None:
        """``nginx -t``: raise with nginx's message when the configuration is invalid."""
        done = subprocess.run(self._cmd("-t"), capture_output=True, text=True)
        if done.returncode != 0:
            raise ServiceUnavailable(f"nginx rejects {self.config}: {done.stderr[-600:]}")

    def start(self) -> None:
        self.check()
        self._proc = subprocess.Popen(
            self._cmd("-g", "daemon off;"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for_port(self.port, what="nginx", proc=self._proc)
        except ServiceUnavailable as e:
            self.stop()
            raise ServiceUnavailable(f"{e}: {_tail(self.workdir / 'logs' / 'error.log')}") from e

    def stop(self) -> None:
        stop_process(self._proc)  # SIGTERM: nginx's fast shutdown
        self._proc = None

    def __enter__(self) -> NginxServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
