"""The meter's end of a pseudo-terminal: the hub opens the other end as it would /dev/ttyUSB0."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import struct
import termios
import time
import tty
from collections.abc import Callable
from pathlib import Path


class PtyPort:
    """A pty whose slave path the hub opens with pyserial; we write to the master.

    ``wait_for_reader`` blocks until the slave is open (the master stops reporting
    POLLHUP) and the reader has flushed its input, so that what the meter writes is
    read and the ground truth equals what the hub could see.
    """

    def __init__(self, link: Path | None = None) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        os.close(slave)  # only the reader holds the slave open: POLLHUP tells us when it has
        self.link = link
        if link is not None:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(self.path)
        self._poll = select.poll()
        self._poll.register(self.master, select.POLLHUP)

    def reader_present(self) -> bool:
        return not any(ev & select.POLLHUP for _, ev in self._poll.poll(0))

    def wait_for_reader(self, stop: Callable[[], bool], settle_s: float = 0.3) -> bool:
        """Wait until a reader has the port open; False if ``stop()`` turned true first."""
        while not self.reader_present():
            if stop():
                return False
            time.sleep(0.05)
        time.sleep(settle_s)  # pyserial flushes input right after opening
        return True

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.master, view)
            view = view[n:]

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until the reader has taken every byte written (closing the master drops the rest)."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return False
        try:
            # Bytes pass through the kernel's flip buffer before FIONREAD counts them, so
            # "empty" must hold for a while, not just once.
            end = time.monotonic() + timeout_s
            empty_since: float | None = None
            while time.monotonic() < end:
                pending = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
                now = time.monotonic()
                if pending:
                    empty_since = None
                elif empty_since is None:
                    empty_since = now
                elif now - empty_since >= 0.3:
                    return True
                time.sleep(0.02)
            return False
        finally:
            os.close(fd)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.master)
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
