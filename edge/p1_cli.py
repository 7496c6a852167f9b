"""`ohmni p1 …`: read P1 byte streams (a file, stdin or a serial port) and print what they say."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, BinaryIO

import serial
import typer

from edge.sources.serial_p1 import STRIP_PARITY
from protocols.p1 import P1Framer
from protocols.p1_gcm import SMARTY_AUTH_KEY, GcmDecryptor, KeyError_, parse_key
from protocols.p1_normalise import normalise

app = typer.Typer(help="DSMR P1: decode telegrams from files, pipes and serial ports.", no_args_is_help=True)


def _chunks(stream: BinaryIO, size: int = 4096) -> Iterator[bytes]:
    while True:
        data = stream.read(size)
        if not data:
            return
        yield data


def _port_chunks(port: str, baudrate: int, bytesize: int, parity: str) -> Iterator[bytes]:
    with serial.Serial(port, baudrate=baudrate, bytesize=bytesize, parity=parity, timeout=1) as ser:
        while True:
            data = ser.read(max(1, ser.in_waiting))
            if data:
                # at 7 bits, a pty or lax adapter passes the parity bit on: the hub's reader strips it too
                yield data.translate(STRIP_PARITY) if bytesize == 7 else data


@app.command("decode")
def decode(
    source: Annotated[str | None, typer.Argument(help="A file of P1 bytes, or - for stdin.")] = None,
    port: Annotated[str | None, typer.Option(help="Read a serial port instead, e.g. /dev/ttyUSB0.")] = None,
    baudrate: Annotated[int, typer.Option(help="Serial speed (DSMR 4/5: 115200; 2.2/3: 9600).")] = 115200,
    bytesize: Annotated[int, typer.Option(help="Data bits (8, or 7 for DSMR 2.2/3).")] = 8,
    parity: Annotated[str, typer.Option(help="N, E or O (E for DSMR 2.2/3).")] = "N",
    key: Annotated[str | None, typer.Option(help="AES-128 key (32 hex digits) of an encrypting meter "
                                                 "(Luxembourg Smarty); from the grid operator.")] = None,
    auth_key: Annotated[str | None, typer.Option(help="GCM authentication key, if not the Smarty default.")] = None,
) -> None:
    """Find every telegram frame and print one JSON object per frame (JSON Lines).

    Values are decoded even when the CRC is invalid ("crc": "invalid"); a frame that
    cannot be read says why in "error". Energy is always kWh and power W. Read from a
    port, each frame also has "received_at", when it was read (UTC): the time the hub
    stamps a meter with no clock by (DSMR 2.2/3, EasyMeter Q3D: "timestamp" null). A file
    has no such time: its bytes were read long after the meter sent them.
    """
    if port and source:
        raise typer.BadParameter("give a FILE or --port, not both")
    framer = P1Framer()
    out = sys.stdout

    def received() -> dict[str, str]:
        return {"received_at": datetime.now(UTC).isoformat(timespec="seconds")} if port else {}

    decryptor = None
    if key:
        try:
            decryptor = GcmDecryptor(parse_key(key), parse_key(auth_key, "authentication key") if auth_key
                                     else SMARTY_AUTH_KEY)
        except KeyError_ as exc:
            raise typer.BadParameter(str(exc), param_hint="--key") from None
    try:
        if port:
            chunks: Iterator[bytes] = _port_chunks(port, baudrate, bytesize, parity)
        elif source in (None, "-"):
            chunks = _chunks(sys.stdin.buffer)
        else:
            path = Path(source)
            if not path.is_file():
                raise typer.BadParameter(f"{source}: no such file", param_hint="SOURCE")
            chunks = _chunks(path.open("rb"))
        for chunk in chunks:
            if decryptor is not None:
                chunk = decryptor.feed(chunk)
            for frame in framer.feed(chunk):
                out.write(json.dumps(normalise(frame) | received()) + "\n")
            out.flush()
    except KeyboardInterrupt:
        pass
    except serial.SerialException as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for frame in framer.flush():  # a frame cut short when the reading stopped: read from a port, it is stamped too
        out.write(json.dumps(normalise(frame) | received()) + "\n")
    if decryptor is not None and decryptor.counters["rejected_tag"]:
        typer.echo(f"{decryptor.counters['rejected_tag']} encrypted frame(s) rejected: {decryptor.last_error}",
                   err=True)
    stats = framer.stats
    typer.echo(f"{stats.frames} frame(s), {sum(stats.errors.values())} rejected "
               f"({', '.join(f'{k} {v}' for k, v in sorted(stats.errors.items())) or 'none'}), "
               f"{stats.skipped_bytes} byte(s) outside frames", err=True)
