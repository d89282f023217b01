"""Run the CLI with a pseudo-terminal attached, as a person at a terminal would.

``run_in_terminal(argv, env)`` starts the command with its stdin, stdout and stderr on
the slave side of a new pty (stdlib ``pty``/``os.openpty``, no extra package), reads
everything it writes from the master side until it exits, and returns the raw bytes the
terminal received plus the exit code. ``TerminalRun.text`` is what the person sees: the
bytes decoded, with ANSI escape sequences (colours, cursor moves of progress bars, OSC
sequences) removed. Assert on ``text`` for content and on ``raw`` for what must never
reach a terminal.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), other two-byte ESC sequences.
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# OSC 8 hyperlinks and OSC 0/1/2 window titles: what data must never be able to emit
OSC = re.compile(rb"\x1b\]")


@dataclass
class TerminalRun:
    code: int
    raw: bytes

    @property
    def text(self) -> str:
        """The screen's text: decoded, escape sequences removed, CRLF as LF."""
        decoded = self.raw.decode("utf-8", errors="replace")
        return ANSI.sub("", decoded).replace("\r\n", "\n")


def run_in_terminal(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    timeout: float = 300,
    columns: int = 160,
    lines: int = 50,
    on_output: Callable[[bytes], None] | None = None,
) -> TerminalRun:
    """Run ``argv`` on a fresh pty of ``columns`` x ``lines``; raises TimeoutError (after
    killing it) when it runs longer than ``timeout`` seconds. ``on_output`` is called
    with everything received so far after each read (to act when a line appears)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    term_env = {k: v for k, v in env.items() if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS")}
    term_env.setdefault("TERM", "xterm-256color")
    if term_env["TERM"] == "dumb":
        term_env["TERM"] = "xterm-256color"
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=term_env,
            start_new_session=True,  # its own session: signals to the test do not reach it
            close_fds=True,
        )
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                proc.wait()
                raise TimeoutError(
                    f"{' '.join(argv)} ran over {timeout:.0f} s; it printed:\n"
                    + b"".join(chunks)[-3000:].decode("utf-8", errors="replace")
                )
            ready, _, _ = select.select([master], [], [], min(left, 1.0))
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every holder of the slave side has closed it
                break
            if not chunk:
                break
            chunks.append(chunk)
            if on_output is not None:
                on_output(b"".join(chunks))
    finally:
        os.close(master)
    code = proc.wait(timeout=30)
    return TerminalRun(code, b"".join(chunks))
