"""The README's test command on a fresh machine: the Debian servers installed when that
is possible (root, apt-get), saying so; otherwise one sentence naming what to install,
and no INTERNALERROR traceback."""

from __future__ import annotations

import concurrent.futures
import os
import socket
import sys
from pathlib import Path

import pytest

from tests.rendering import TEMPLATE, capture, clean_env
from tests.services import (
    DEBIAN_SERVERS,
    ServersMissingError,
    ensure_servers_installed,
    free_ports,
    missing_servers,
)

URLS = [variable for variable, _, _ in DEBIAN_SERVERS.values()]


def test_every_server_is_missing_on_an_empty_machine(tmp_path: Path) -> None:
    assert missing_servers({}, path=str(tmp_path), root=tmp_path) == list(DEBIAN_SERVERS)


def test_a_server_given_by_url_is_not_needed(tmp_path: Path) -> None:
    environ = {"POSTGRES_URL": "postgresql://x", "RABBITMQ_URL": "amqp://x"}
    assert missing_servers(environ, path=str(tmp_path), root=tmp_path) == ["redis"]


def test_not_root_it_names_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(ServersMissingError) as raised:
        ensure_servers_installed({}, path=str(tmp_path), root=tmp_path, euid=1000)
    sentence = str(raised.value)
    assert sentence == (
        "The tests need PostgreSQL, Redis and RabbitMQ and cannot find them: install them "
        "(on Debian or Ubuntu, as root: apt-get install -y postgresql redis-server "
        "rabbitmq-server), or set POSTGRES_URL, REDIS_URL, RABBITMQ_URL to running servers."
    )


def test_root_without_apt_get_it_names_what_to_install(tmp_path: Path) -> None:
    environ = {"POSTGRES_URL": "postgresql://x", "RABBITMQ_URL": "amqp://x"}
    with pytest.raises(ServersMissingError, match="need Redis and cannot find it"):
        ensure_servers_installed(environ, path=str(tmp_path), root=tmp_path, euid=0)


def test_root_with_apt_get_installs_them_and_says_so(tmp_path: Path) -> None:
    # A stand-in for apt-get (the real one would change this machine): it records its
    # arguments and "installs" redis-server into the searched directory.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apt-get.log"
    apt_get = bin_dir / "apt-get"
    apt_get.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        f'case "$1" in install) printf "#!/bin/sh\\n" > {bin_dir}/redis-server; '
        f"chmod +x {bin_dir}/redis-server;; esac\n"
    )
    apt_get.chmod(0o755)
    said: list[str] = []
    environ = {"POSTGRES_URL": "postgresql://x", "RABBITMQ_URL": "amqp://x"}
    ensure_servers_installed(environ, path=str(bin_dir), root=tmp_path, euid=0, say=said.append)
    assert said == ["installing the test servers from Debian: apt-get install -y redis-server"]
    calls = log.read_text().splitlines()
    assert calls[0] == "update -qq"
    assert calls[1].startswith("install -y")
    assert calls[1].endswith("redis-server")


def test_the_readme_command_stops_with_one_sentence_not_a_traceback(tmp_path: Path) -> None:
    """`uv run pytest` with a server missing (here: redis-server off PATH, and no
    apt-get on it to install it with)."""
    env = {k: v for k, v in clean_env().items() if k not in URLS}
    env.pop("MONGODB_URL", None)
    env.pop("KAFKA_URL", None)
    env["PATH"] = str(Path(sys.executable).parent)  # pytest, but no redis-server, no apt-get
    assert not [d for d in env["PATH"].split(os.pathsep) if (Path(d) / "redis-server").exists()]
    result = capture(
        [sys.executable, "-m", "pytest", "-n", "0", "tests/test_quality.py"], TEMPLATE, env, 300
    )
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert "ERROR: The tests need Redis and cannot find it" in output
    assert "apt-get install -y redis-server" in output
    assert "INTERNALERROR" not in output
    assert "Traceback" not in output


def test_free_ports_are_outside_the_range_outgoing_connections_take() -> None:
    # A port from the ephemeral range could be taken as the local port of any outgoing
    # connection between the pick and the server's bind; RabbitMQ once failed to start so.
    low, _ = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        picks = list(pool.map(free_ports, [3] * 20))
    ports = [port for pick in picks for port in pick]
    assert len(set(ports)) == len(ports) == 60
    assert all(1024 < port < low for port in ports), [p for p in ports if p >= low]
    for port in ports[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # free indeed
