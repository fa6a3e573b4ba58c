"""The demo's child processes: a broker, the collector and edge nodes, each logging to a file.

Every process is started in its own process group and stopped with SIGTERM
(then SIGKILL after a grace period), so Ctrl-C never leaves one behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from cloud.errors import ConfigError, DeployError

__all__ = [
    "LogFollower",
    "ManagedProcess",
    "free_port",
    "mosquitto_command",
    "run_step",
    "tool",
    "wait_until",
]

logger = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition`` until it holds; raise ConfigError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            msg = f"demo: {what} did not happen within {timeout_s:.0f}s; see the logs"
            raise ConfigError(msg)
        time.sleep(0.1)  # polling interval of a condition with a deadline


def tool(name: str) -> str:
    """The path of one of our console scripts, beside the running interpreter."""
    return str(Path(sys.executable).with_name(name))


def run_step(
    command: list[str], echo: Callable[[str], None], env: Mapping[str, str] | None = None
) -> None:
    """Show and run one command as a user would type it, its output going to the terminal.

    Raises:
        DeployError: the command exited non-zero.
    """
    echo(
        "$ " + " ".join(Path(command[0]).name if i == 0 else part for i, part in enumerate(command))
    )
    completed = subprocess.run(command, check=False, env=None if env is None else os.environ | env)
    if completed.returncode != 0:
        msg = f"demo: `{' '.join(command[:2])}` failed with exit code {completed.returncode}"
        raise DeployError(msg)


class ManagedProcess:
    """A child process with its output in ``log_path``."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        child_env = os.environ | dict(env or {}) | {"PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            list(command),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=child_env,
        )
        logger.info("started name=%s pid=%d log=%s", name, self.process.pid, log_path)

    @property
    def running(self) -> bool:
        """True while the process has not exited."""
        return self.process.poll() is None

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM, wait up to ``grace_s``, then SIGKILL."""
        if self.running:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


class LogFollower:
    """The lines a child has added to its log since the last look."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = path.stat().st_size if path.is_file() else 0

    def new_lines(self) -> list[str]:
        """Complete lines written since the last call (a partial last line waits)."""
        try:
            with self.path.open("rb") as log:
                log.seek(self._offset)
                chunk = log.read()
        except FileNotFoundError:
            return []
        complete, _, _ = chunk.rpartition(b"\n")
        if not complete:
            return []
        self._offset += len(complete) + 1
        return complete.decode(errors="replace").splitlines()


def mosquitto_command(workdir: Path, port: int) -> list[str]:
    """Write a broker config for the demo (durable queues) and return the command line."""
    binary = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).is_file()),
        None,
    )
    if binary is None:
        msg = "demo: the mosquitto broker is not installed; run `apt-get install mosquitto`"
        raise ConfigError(msg)
    data = workdir / "mosquitto"
    data.mkdir(parents=True, exist_ok=True)
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "persistence true",
        f"persistence_location {data}/",
        "max_queued_messages 0",
    ]
    if os.geteuid() == 0:
        lines.append("user root")  # else mosquitto drops to its own user and cannot write here
    config = data / "mosquitto.conf"
    config.write_text("\n".join(lines) + "\n")
    return [binary, "-c", str(config)]
