"""Run the simulated home: household -> meter -> telegrams on a pty, truth to CSV files.

The clock is simulated: second k is ``start + k`` and is lived at real time ``k / speed``.
The household and the meter's registers step every second; a telegram goes out on the
seconds the meter's interval divides (``every_s``: 1 as DSMR 5 meters, 10 as DSMR 2.2-4
meters; at 10 s and slower the telegrams are DSMR 4.2's, without the voltage; on a 7E1 line
DSMR 2.2's, without a CRC or a timestamp), so truth.csv
has a row a second and meter.csv a row a telegram. If the writer falls behind it catches up
rather than skipping, and while no reader has the port open the clock waits, so every
telegram written was readable: the meter CSV is exactly what the hub could receive.
"""

from __future__ import annotations

import csv
import json
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from firmware_sim.household import Household
from firmware_sim.meter import SimMeter
from firmware_sim.plugs import step as plug_step
from firmware_sim.pty_port import PtyPort
from protocols.p1 import DSMR_VERSIONS, dsmr_version
from protocols.readings import READING_FIELDS

METER_COLUMNS = ("timestamp", *READING_FIELDS[1:])


def _corrupt_crc(telegram: bytes, rng: random.Random) -> bytes:
    body, _, crc = telegram.rpartition(b"!")
    wrong = int(crc.strip(), 16) ^ rng.randrange(1, 0x10000)
    return body + b"!" + f"{wrong:04X}".encode() + b"\r\n"


def _truncate(telegram: bytes, rng: random.Random) -> bytes:
    return telegram[: rng.randrange(20, len(telegram) - 20)]


def _garbage(telegram: bytes, rng: random.Random) -> bytes:
    return bytes(rng.choice(b"\x00\xff!()*:.0123456789ABCDEF\r\n") for _ in range(rng.randrange(5, 200)))


#: Faults a real P1 line shows, injected between good telegrams; none of them is a reading.
FAULTS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "bad_crc": _corrupt_crc,
    "truncated": _truncate,
    "garbage": _garbage,
}
#: Faults only a CRC shows: a meter that sends none (DSMR 2.2/3) is taken on trust, so it is not sent them.
NEEDS_CRC = frozenset({"bad_crc"})


EVEN_PARITY = bytes((b & 0x7F) | ((bin(b & 0x7F).count("1") & 1) << 7) for b in range(256))


def with_parity(data: bytes) -> bytes:
    """7E1 on the wire: seven data bits and an even-parity bit, as an 8N1 reader sees them."""
    return data.translate(EVEN_PARITY)


@dataclass
class SimResult:
    telegrams: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    faults: Counter[str] = field(default_factory=Counter)
    stopped_early: bool = False

    def as_json(self) -> str:
        return json.dumps({"telegrams": self.telegrams, "first_ts": self.first_ts,
                           "last_ts": self.last_ts, "faults": dict(self.faults),
                           "stopped_early": self.stopped_early})


@dataclass
class MqttTarget:
    host: str
    port: int
    username: str | None = None
    password: str | None = None


class PlugPublisher:
    """paho-mqtt in its own thread; QoS 1 so a plug's message reaches the broker or is retried."""

    def __init__(self, target: MqttTarget) -> None:
        import paho.mqtt.client as mqtt

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ohmni-sim-plugs",
                                  protocol=mqtt.MQTTv311)
        if target.username:
            self.client.username_pw_set(target.username, target.password)
        self.client.max_queued_messages_set(0)  # keep everything until the broker is there
        # paho's hints say whole seconds; it waits any float
        self.client.reconnect_delay_set(0.2, 5)  # type: ignore[arg-type]
        self.client.connect_async(target.host, target.port, keepalive=30)  # the broker may start after us
        self.client.loop_start()
        self.sent = 0

    def publish(self, messages: list[tuple[str, str]]) -> None:
        for topic, payload in messages:
            self.client.publish(topic, payload, qos=1)
            self.sent += 1

    def close(self, timeout_s: float = 5.0) -> None:
        """Give queued messages a moment to leave, then disconnect."""
        end = time.monotonic() + timeout_s
        while self.client.want_write() and time.monotonic() < end:
            time.sleep(0.05)
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class SimConfig:
    start_ts: int
    seconds: int  # simulated seconds to run
    speed: float = 1.0
    household: Path | None = None
    seed: int | None = None
    truth_csv: Path = Path("truth.csv")
    meter_csv: Path = Path("meter.csv")
    link: Path | None = None
    fault_every: int = 0  # inject one fault after every Nth telegram (0 = never)
    mqtt: MqttTarget | None = None  # where the plugs publish (None = plugs stay silent)
    line: str = "8N1"  # ``LINES``: "7E1" is even parity in each byte's top bit, as DSMR 2.2/3 meters send
    #: The DSMR version the meter sends (``protocols.p1.DSMR_VERSIONS``), on its own line framing; None: by ``line``
    #: and ``every_s`` (``dsmr_version``).
    dsmr: str | None = None
    #: Seconds between telegrams: one goes out on each second this divides, as a real meter sends on the clock.
    every_s: int = 1
    #: Go on from the meter CSV already there (an earlier run into the same folder): its registers, the second after
    #: its last telegram (a later ``start_ts`` stands), both CSVs appended to. Without it they are written afresh.
    resume: bool = False

    @property
    def dsmr_version(self) -> str:
        """What the meter's telegrams are (``protocols.p1.DSMR_VERSIONS``): on a 7E1 line a DSMR 2.2 meter's (no CRC, no
        timestamp), else a DSMR 5.0 meter's when it sends every second or more often than every 10 s, and a DSMR 4.2
        meter's, without the voltage, from 10 s, as real meters of each version send; or the one ``dsmr`` names."""
        if self.dsmr is not None:
            return self.dsmr
        return LINES[self.line] or ("50" if self.every_s < DSMR_VERSIONS["42"].every_s else "42")

    def __post_init__(self) -> None:
        if self.line not in LINES:
            raise ValueError(f"line {self.line!r}: the simulated meter speaks {' or '.join(LINES)}")
        if self.dsmr is not None and dsmr_version(self.dsmr).line != self.line:
            raise ValueError(f"{DSMR_VERSIONS[self.dsmr].label} meters send on a {DSMR_VERSIONS[self.dsmr].line} "
                             f"line, not {self.line}")


#: The line framings the simulated meter speaks, and the DSMR version a meter on each is (``protocols.p1``): 7E1 lines
#: carry DSMR 2.2/3 meters (this one sends 2.2); on 8N1 it is 5.0 or 4.2, by how often it sends.
LINES: dict[str, str | None] = {"8N1": None, "7E1": "22"}


def default_every_s(line: str, dsmr: str | None = None) -> int:
    """How often the meter on ``line`` (of version ``dsmr``) sends unless told: as meters of its version do
    (``DsmrVersion.every_s``)."""
    return DSMR_VERSIONS[dsmr or LINES[line] or "50"].every_s


class SimResumeError(ValueError):
    """An earlier run's CSVs that a resumed run cannot go on from."""


def last_telegram(meter_csv: Path) -> dict[str, int] | None:
    """The last whole row of a meter CSV (``METER_COLUMNS`` as ints; a row cut short by a kill is skipped), or None
    when there is none."""
    if not meter_csv.exists():
        return None
    last = None
    with meter_csv.open(newline="") as f:
        reader = csv.reader(f)
        if next(reader, None) != list(METER_COLUMNS):
            raise SimResumeError(f"{meter_csv} is not a simulated meter's CSV: cannot go on from it")
        for row in reader:
            if len(row) == len(METER_COLUMNS):
                try:
                    last = {name: int(float(v)) for name, v in zip(METER_COLUMNS, row, strict=True)
                            if name in ("timestamp", "import_t1_wh", "import_t2_wh")}
                except ValueError:
                    continue
    return last


@dataclass(frozen=True)
class ResumePoint:
    """Where a run into a folder that holds an earlier run's meter CSV goes on from."""

    last_ts: int  # the earlier run's last whole telegram
    start_ts: int  # the second after it, or the asked start if that is later
    import_t1_wh: int
    import_t2_wh: int


def resume_point(meter_csv: Path, start_ts: int) -> ResumePoint | None:
    """The point a resumed run starting no earlier than ``start_ts`` goes on from, or None when ``meter_csv`` holds
    no telegram (the run starts afresh). The demo asks it too, so both agree on when the home goes on."""
    last = last_telegram(meter_csv)
    if last is None:
        return None
    return ResumePoint(last_ts=last["timestamp"], start_ts=max(start_ts, last["timestamp"] + 1),
                       import_t1_wh=last["import_t1_wh"], import_t2_wh=last["import_t2_wh"])


@dataclass
class _Start:
    """What a run starts from: its configuration (the start moved on when resumed), its meter, and whether the CSVs
    are appended to."""

    cfg: SimConfig
    meter: SimMeter
    appending: bool


def run(cfg: SimConfig, port: PtyPort | None = None, on_ready: Callable[[str], None] | None = None,
        stop: Callable[[], bool] | None = None) -> SimResult:
    """Simulate ``cfg.seconds`` seconds of the home; stop early when ``stop()`` is true."""
    point = resume_point(cfg.meter_csv, cfg.start_ts) if cfg.resume else None
    if point is None:
        start = _Start(cfg, SimMeter(version=cfg.dsmr_version), appending=False)
    else:
        start = _Start(replace(cfg, start_ts=point.start_ts),
                       SimMeter(import_t1_wh=point.import_t1_wh, import_t2_wh=point.import_t2_wh,
                                 version=cfg.dsmr_version), appending=True)
    house = Household.load(cfg.household, start.cfg.start_ts, seed=cfg.seed)
    if start.appending:
        with cfg.truth_csv.open(newline="") as f:
            header = next(csv.reader(f), None)
        if header != ["timestamp", "mains_w", *house.names]:
            raise SimResumeError(f"{cfg.truth_csv} has the appliances {header and header[2:]}, this household "
                                 f"{house.names}: another household cannot go on from it")
    if port is not None:
        return _run(start, house, port, on_ready, stop or (lambda: False))
    own = PtyPort(cfg.link)
    try:
        return _run(start, house, own, on_ready, stop or (lambda: False))
    finally:
        if own.reader_present():  # with none, nothing takes the bytes left: waiting for it took 10 s for nothing
            own.drain()
        own.close()  # and its link: a stale link could later point at another process's pty


def _run(start: _Start, house: Household, port: PtyPort, on_ready: Callable[[str], None] | None,
         stopping: Callable[[], bool]) -> SimResult:
    publisher = PlugPublisher(start.cfg.mqtt) if start.cfg.mqtt and house.plugs else None
    try:
        return _loop(start, house, port, on_ready, stopping, publisher)
    finally:
        if publisher is not None:
            publisher.close()


def _loop(start: _Start, house: Household, port: PtyPort, on_ready: Callable[[str], None] | None,
          stopping: Callable[[], bool], publisher: PlugPublisher | None) -> SimResult:
    cfg, meter = start.cfg, start.meter
    rng = random.Random(cfg.seed or 1)
    fault_names = sorted(name for name in FAULTS if meter.sends.crc or name not in NEEDS_CRC)
    result = SimResult()
    if on_ready:
        on_ready(port.path)
    cfg.truth_csv.parent.mkdir(parents=True, exist_ok=True)
    mode = "a" if start.appending else "w"
    if start.appending:
        for path in (cfg.truth_csv, cfg.meter_csv):
            _cut_after(path, cfg.start_ts - 1)
    with cfg.truth_csv.open(mode, newline="") as tf, cfg.meter_csv.open(mode, newline="") as mf:
        truth = csv.writer(tf)
        meter_out = csv.writer(mf)
        if not start.appending:
            truth.writerow(["timestamp", "mains_w", *house.names])
            meter_out.writerow(METER_COLUMNS)
        if not port.wait_for_reader(stopping):
            result.stopped_early = True
            return result
        t0 = time.monotonic()
        paused = 0.0
        for k in range(cfg.seconds):
            if stopping():
                result.stopped_early = True
                break
            due = t0 + paused + k / cfg.speed
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if not port.reader_present():
                wait_start = time.monotonic()
                if not port.wait_for_reader(stopping):
                    result.stopped_early = True
                    break
                paused += time.monotonic() - wait_start
            ts = cfg.start_ts + k
            watts = house.step(ts)
            mains = sum(watts.values())
            reading = meter.tick(ts, mains)  # the registers count every second, sent or not
            if ts % cfg.every_s == 0:
                telegram = meter.telegram(reading)
                port.write(with_parity(telegram) if cfg.line == "7E1" else telegram)
                meter_out.writerow([getattr(reading, name) for name in READING_FIELDS])
                result.telegrams += 1
                result.first_ts = result.first_ts or ts
                result.last_ts = ts
                sent = result.telegrams
                if cfg.fault_every and sent % cfg.fault_every == 0:
                    name = fault_names[((sent - 1) // cfg.fault_every) % len(fault_names)]
                    port.write(FAULTS[name](telegram, rng))
                    result.faults[name] += 1
            if publisher is not None:
                publisher.publish(plug_step(house.plugs, ts, watts))
            truth.writerow([ts, round(mains, 1), *watts.values()])
            if k % 64 == 0:
                tf.flush()
                mf.flush()
    return result


def _cut_after(path: Path, last_ts: int) -> None:
    """Drop the rows after ``last_ts`` and a last row cut short (a run killed mid-write), so the rows appended start
    on a line of their own and the truth goes on exactly where the meter does."""
    with path.open("rb+") as f:
        data = f.read()
        end = len(data) if data.endswith(b"\n") else data.rfind(b"\n") + 1
        while end > 0:
            start = data.rfind(b"\n", 0, end - 1) + 1
            first = data[start:end].split(b",", 1)[0]
            if not first.isdigit() or int(first) <= last_ts:  # the header, or a row the meter had written
                break
            end = start
        f.truncate(end)


def install_stop_signals() -> Callable[[], bool]:
    """SIGTERM/SIGINT end the run after the current telegram, with the CSVs complete."""
    flag = {"stop": False}

    def handler(signum: int, frame: object) -> None:
        flag["stop"] = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return lambda: flag["stop"]
