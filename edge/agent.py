"""The hub agent: source -> store -> face -> uplink, plus the display server, in one loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import socket
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from edge.config import HubConfig
from edge.display_server import EmbeddedServer, display_app
from edge.embedded_broker import BrokerStartError, EmbeddedBroker
from edge.face import STALE_S, FaceTracker, silent_state
from edge.meter_clock import ClockGuard
from edge.mqtt_link import MqttLink
from edge.nilm import ModelFileError
from edge.sources.base import Source
from edge.sources.serial_p1 import SerialP1Source
from edge.store import HubStore
from edge.uplink import Uplink
from protocols import ha_discovery
from protocols.devices import DeviceReading
from protocols.display import DisplayState
from protocols.readings import MeterReading
from protocols.uplink import ApplianceEnergyV1, ApplianceRunV1

if TYPE_CHECKING:
    import numpy as np

    from edge.nilm.live import LiveState, Run

log = logging.getLogger("ohmni.hub")
#: Readings (and plug readings) held in memory while the store cannot take them: three hours at one a second,
#: some 10 MB on a hub.
UNWRITTEN_MAX = 3 * 3600
OWN_MODEL = "nilm-own-home.json"


class HubAgent:
    def __init__(self, cfg: HubConfig, source: Source | None = None) -> None:
        self.cfg = cfg
        self.store = HubStore(cfg.hub.data_dir / "hub.sqlite3")
        self.face = FaceTracker(cfg.face)
        self.source = source or SerialP1Source(cfg.meter.port, cfg.meter.baudrate, cfg.meter.bytesize,
                                               cfg.meter.parity, cfg.meter.stopbits, key=cfg.meter.key,
                                               auth_key=cfg.meter.auth_key)
        self.uplink = Uplink(self.store, cfg.hub.id, cfg.cloud, display=lambda: self.face.state)
        self.clock = ClockGuard(self.store.last_reading_ts())  # a telegram stamped in the future waits for the next
        self.mqtt = MqttLink(cfg.mqtt, cfg.hub.id, self.on_devices) if cfg.mqtt.enabled else None
        self.nilm = None
        self._nilm_saved = 0  # the disaggregator's passes when its state was last saved
        if cfg.nilm.enabled:
            # imported only when used: NumPy is most of a hub's memory (see bench.hub)
            from edge.nilm.live import LiveDisaggregator
            from edge.nilm.model import load as load_model
            from edge.nilm.model import pretrained

            self._nilm_base = load_model(cfg.nilm.model) if cfg.nilm.model else pretrained()
            model = self._nilm_base
            if self.own_model_path.exists():  # what an earlier run learned of this home
                try:
                    model = load_model(self.own_model_path)
                except ModelFileError as exc:
                    log.warning("ignoring %s (%s): disaggregating with the base model", self.own_model_path, exc)
            self.nilm = LiveDisaggregator(model, cfg.nilm.window_s, cfg.nilm.every_s,
                                          metered=self.metered if cfg.nilm.plugs else None)
            self._resume_nilm()
        self.broker = EmbeddedBroker(cfg.mqtt.host, cfg.mqtt.port) if cfg.mqtt.enabled and cfg.mqtt.embedded else None
        self.started = time.time()
        self.duplicates = 0
        #: when the last reading the hub kept arrived, by the hub's clock, and its stamp, by the meter's: `hub status`
        #: asks whether the meter is sending by the one, and how far off the meter's clock is by the two
        self.last_arrival: tuple[float, float] | None = None
        self._stop = asyncio.Event()
        self._pending_devices: list[DeviceReading] = []
        self._display_socket: socket.socket | None = None
        #: why the display page (and the status `hub status` reads) is not served, where it is not
        self.display_error: str | None = None
        self.broker_error: str | None = None  # why the embedded broker does not run, where it does not
        #: while the store cannot take a write (a full disk): what waits in memory for it, and why
        self._unwritten: list[MeterReading] = []
        self._unsettled: tuple[list[ApplianceRunV1], list[ApplianceEnergyV1], LiveState | None] = ([], [], None)
        self.store_error: str | None = None
        self.store_counters: Counter[str] = Counter()
        self._store_error_said = -math.inf

    def bind_display(self) -> socket.socket | None:
        """Take the display page's port before the hub runs, so that its address is known where ``[display] port``
        is 0; None where it cannot be had (another program holds it). The hub then runs without its page rather
        than stop, as uvicorn would have it (with a traceback, and systemd restarting it every 5 s): a meter's
        readings not read are lost, the page can wait. The log says so, and `hub status` names the port."""
        if self._display_socket is None and self.display_error is None:
            host, port = self.cfg.display.host, self.cfg.display.port
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                sock.close()
                self.display_error = (f"the display page cannot be served on {host}:{port} ({exc.strerror or exc}): "
                                      "the hub runs without it; set port under [display] to a free one")
                log.error("%s", self.display_error)
                return None
            self._display_socket = sock
        return self._display_socket

    @property
    def display_url(self) -> str | None:
        """The display page's address, once its port is taken (:meth:`bind_display`)."""
        if self._display_socket is None:
            return None
        host, port = self._display_socket.getsockname()[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/display"

    def _resume_nilm(self) -> None:
        """Go on disaggregating where the last run of this hub left off (its store keeps the window's readings and,
        with what it settled, where it got to): a restart, an update or a power cut neither loses the half hours
        and runs it had not yet settled nor splits the run going on in two."""
        assert self.nilm is not None
        try:
            state = self.store.nilm_state()
            if state is None:
                return
            ts, power_w, older = self.store.recent_power(self.cfg.nilm.window_s)
            self.nilm.resume(ts, power_w, state, older)
        except ValueError as exc:
            log.warning("disaggregation starts afresh, not from where the hub stopped: %s", exc)
            return
        log.info("disaggregation goes on from where the hub stopped (%d readings kept)", len(ts))

    def flush_nilm(self) -> None:
        """As the hub stops: runs that ended and whole half hours up to the last reading still count (and the state
        a restart goes on from is saved with them)."""
        if self.nilm is not None:
            self._settle_nilm(self.nilm.flush(final=True))

    def _settle_nilm(self, runs: list[Run]) -> None:
        """Keep what the disaggregator settled and, after a pass, its state, in one transaction; while the store
        cannot take it, in memory until it can."""
        assert self.nilm is not None
        ran, self._nilm_saved = self.nilm.passes != self._nilm_saved, self.nilm.passes
        held_runs, held_energy, held_state = self._unsettled
        held_runs += [run.to_uplink() for run in runs]
        held_energy += self.nilm.take_half_hours()
        state = self.nilm.state() if ran else held_state
        try:
            self.store.settle_nilm(held_runs, held_energy, state)
        except sqlite3.OperationalError as exc:
            self._unsettled = held_runs, held_energy, state
            self._store_failed(exc)
            return
        self._unsettled = [], [], None

    def metered(self, ts: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """What the plugs (``nilm.plugs``) said at these meter readings, per appliance: the hub reports a plugged
        appliance's runs and half hours as its plug measured them (``LiveDisaggregator``'s ``metered``). A plug's
        reading holds for up to ``PLUG_HOLD_S``; an appliance one of whose plugs never reported is left out."""
        from edge.nilm.own_home import by_appliance, plug_power

        out = {}
        for appliance, devices in by_appliance(self.cfg.nilm.plugs).items():
            got = plug_power(self.store, devices, ts, float(ts[0]))
            if got is not None:
                out[appliance] = got
        return out

    @property
    def own_model_path(self) -> Path:
        """The model adapted to this home (``adapt_to_home``): the hub starts from it when it is there."""
        return self.cfg.hub.data_dir / OWN_MODEL

    async def adapt_to_home(self) -> bool:
        """Adapt the disaggregator to this home from its plugs (``nilm.plugs``): the recent meter and plug
        history becomes submetered truth (``edge/nilm/own_home.py``) and the base model boosts on from it
        (``adapt``, in a worker thread). Each time from the base model, so the model never grows. Returns
        whether it adapted; too little history with every plug reporting leaves the model as it is."""
        if self.nilm is None or not self.cfg.nilm.plugs:
            return False
        import numpy as np

        from edge.nilm.adapt import adapt
        from edge.nilm.model import checked, save
        from edge.nilm.own_home import PLUG_HOLD_S, own_home

        self.flush_devices()
        house = own_home(self.store, self.cfg.nilm.plugs, self.cfg.nilm.adapt_history_s)
        covered = 0.0 if house is None else float(np.minimum(np.diff(house.timestamp), PLUG_HOLD_S).sum())
        if house is None or covered < self.cfg.nilm.adapt_min_s:  # None: no plug history at all
            log.info("not adapting to this home yet: %.1f h of meter and plug history, %.1f h needed",
                     covered / 3600, self.cfg.nilm.adapt_min_s / 3600)
            return False
        model = await asyncio.to_thread(adapt, self._nilm_base, [house],
                                        progress=lambda msg: log.info("adapting to this home: %s", msg))
        checked(model)  # one the live pass cannot run (ValueError) leaves the model as it was
        partial = self.own_model_path.with_suffix(".partial")
        save(model, partial)
        partial.replace(self.own_model_path)  # a crash mid-write leaves the previous model whole
        self.nilm.model = model
        log.info("disaggregation adapted to this home: %.1f h with %s", covered / 3600,
                 ", ".join(sorted(set(self.cfg.nilm.plugs.values()))))
        return True

    async def _adapter(self) -> None:
        """Re-adapt every ``adapt_every_s``, counted from the last adaptation (a restart does not reset it)."""
        while True:
            done = self.own_model_path.stat().st_mtime if self.own_model_path.exists() else 0.0
            await asyncio.sleep(max(60.0, done + self.cfg.nilm.adapt_every_s - time.time()))
            try:
                adapted = await self.adapt_to_home()
            except Exception:  # a failed adaptation must not stop the hub: the model stays as it is
                log.exception("adapting the disaggregator to this home failed; trying again later")
                adapted = False
            if not adapted:  # too little history yet: look again in a twenty-fourth of the period (an hour)
                await asyncio.sleep(self.cfg.nilm.adapt_every_s / 24)

    def flush_devices(self) -> None:
        """Plug readings are written once a second in one transaction, not one commit each (and kept, up to
        ``UNWRITTEN_MAX``, while the store cannot take them)."""
        if self._pending_devices:
            pending, self._pending_devices = self._pending_devices, []
            try:
                self.store.add_device_readings(pending, time.time())
            except sqlite3.OperationalError as exc:
                self._pending_devices = pending[-UNWRITTEN_MAX:] + self._pending_devices
                self.store_counters["plug_readings_lost"] += max(0, len(pending) - UNWRITTEN_MAX)
                self._store_failed(exc)

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.flush_devices()

    def silent_s(self) -> float | None:
        """Seconds since the last reading arrived, by the hub's clock; None before the first."""
        return None if self.last_arrival is None else time.time() - self.last_arrival[0]

    async def _housekeeping(self, every_s: float = 60.0, prune_every_s: float = 3600.0) -> None:
        """Tell the displays when the meter has gone quiet; drop what the cloud has had for longer than the hub reads
        back (hourly); and keep the store within its disk budget while the cloud is away (compaction, not loss)."""
        pruned_at = -math.inf
        while True:
            await asyncio.sleep(every_s)
            silent = self.silent_s()
            if self.mqtt is not None and self.face.state is not None and silent is not None and silent > STALE_S:
                # a display on MQTT keeps the last state it was sent: a face from hours ago is not one for now
                self.mqtt.publish_display(silent_state(self.face.state, silent), changed=True)
            try:
                if time.monotonic() - pruned_at >= prune_every_s:
                    pruned_at = time.monotonic()
                    gone: Counter[str] = Counter()
                    while step := self.store.prune(self.cfg.keep_s()):  # a few thousand rows at a time
                        gone.update(step)
                        await asyncio.sleep(0)
                    if gone:
                        log.info("dropped what the cloud has had for over %.1f days: %s", self.cfg.keep_s() / 86400,
                                 ", ".join(f"{n} {table}" for table, n in gone.items()))
                removed = self.store.enforce_budget(int(self.cfg.cloud.disk_budget_mb * 1e6))
                if removed:
                    log.warning("disk budget reached: %d unsent readings compacted (energy totals kept)", removed)
            except sqlite3.OperationalError as exc:  # a full disk: deleting needs room in the journal too
                self._store_failed(exc)

    def on_devices(self, readings: list[DeviceReading]) -> None:
        now = time.time()
        self._pending_devices += [replace(r, ts=r.ts or now) for r in readings]
        if self.mqtt is not None:
            for r in readings:
                name = r.device.split(":", 1)[-1]
                model = self.mqtt.zigbee_devices.get(name, {}).get("model")
                self.mqtt.publish_state(r.device, f"{name} ({model})" if model else name, r.fields(),
                                        ha_discovery.PLUG_SENSORS)

    def on_readings(self, readings: Sequence[MeterReading]) -> None:
        readings = self.clock.admit(readings)
        if not readings:
            return
        self.last_arrival = time.time(), readings[-1].ts
        self._keep(readings)
        if self.nilm is not None:
            self._settle_nilm([run for r in readings for run in self.nilm.feed(r.ts, r.net_power_w)])
        if self.mqtt is not None and readings:
            r = readings[-1]
            self.mqtt.publish_state("meter", f"Smart meter {r.meter_id}", {
                "import_kwh": r.import_wh / 1000, "export_kwh": r.export_wh / 1000, "power_w": r.net_power_w,
                "voltage_v": r.voltage_l1_v, "gas_m3": r.gas_m3}, ha_discovery.METER_SENSORS)
        previous = self.face.state.face if self.face.state else None
        state: DisplayState | None = None
        changed = False
        for reading in readings:
            state = self.face.update(reading.ts, reading.net_power_w)
            if state.face != previous:
                with contextlib.suppress(sqlite3.OperationalError):  # the face's log is a nicety, not data
                    self.store.log_face(state)
                previous, changed = state.face, True
        if self.mqtt is not None and state is not None:
            self.mqtt.publish_display(state, changed)

    def _keep(self, readings: Sequence[MeterReading]) -> None:
        """Store the readings, and those the store could not take before. Where it cannot (a full disk), they wait
        in memory, up to ``UNWRITTEN_MAX`` (the oldest go past it, counted), and the hub goes on: it stopped at the
        first failed write, and under systemd started again only to fail again, reading nothing meanwhile."""
        held = [*self._unwritten, *readings]
        try:
            new = self.store.add_readings(held)
        except sqlite3.OperationalError as exc:
            self._unwritten = held[-UNWRITTEN_MAX:]
            self.store_counters["readings_lost"] += len(held) - len(self._unwritten)
            self._store_failed(exc)
            return
        if self._unwritten:
            log.warning("the store takes writes again: %d readings held in memory are kept", len(self._unwritten))
        self._unwritten, self.store_error = [], None
        self.duplicates += len(held) - new

    def _store_failed(self, exc: sqlite3.Error) -> None:
        self.store_counters["write_errors"] += 1
        self.store_error = (f"the hub cannot write its store in {self.cfg.hub.data_dir} ({exc}): readings wait in "
                            "memory (up to three hours at one a second); free some space")
        if time.monotonic() - self._store_error_said >= 60:  # not a line a second
            self._store_error_said = time.monotonic()
            log.error("%s; %d readings held", self.store_error, len(self._unwritten))

    def status(self) -> dict[str, object]:
        return {
            "hub_id": self.cfg.hub.id,
            "uptime_s": round(time.time() - self.started, 1),
            "meter": {
                "port": getattr(self.source, "port", None),
                "connected": getattr(self.source, "connected", None),
                "last_error": getattr(self.source, "last_error", None),
                "counters": dict(self.source.counters) | dict(self.clock.counters),
                "last_reading_at": self.last_arrival[0] if self.last_arrival else None,
                "last_reading_ts": self.last_arrival[1] if self.last_arrival else None,
            },
            "store": self.store.status() | {"duplicate_readings_ignored": self.duplicates,
                                            "write_error": self.store_error, "readings_held": len(self._unwritten),
                                            "counters": dict(self.store_counters)},
            "uplink": {"cloud": self.cfg.cloud.url, "refused": self.uplink.refused,
                       "last_error": self.uplink.last_error, "counters": dict(self.uplink.counters)},
            "display": self.face.state.model_dump(mode="json") if self.face.state else None,
            "mqtt": self.mqtt.status() | {"embedded_broker_error": self.broker_error} if self.mqtt else None,
            "nilm": None if self.nilm is None else {
                "plugs": dict(self.cfg.nilm.plugs), "meter_clock_set_back": self.nilm.clock_setbacks,
                "adapted_at": (self.own_model_path.stat().st_mtime if self.own_model_path.exists() else None)},
        }

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self, drain_s: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        if self.broker is not None:
            try:
                await self.broker.start()
            except BrokerStartError as exc:  # the meter matters more: the plugs' link tries whatever listens there
                log.error("%s: the hub runs without it, and its MQTT link connects to what listens there; set "
                          "port under [mqtt], or embedded = false to use that broker", exc)
                self.broker_error, self.broker = str(exc), None
        sock = self.bind_display()
        app = display_app(lambda: self.face.state, self.status, self.store.face_log, self.silent_s)
        server = EmbeddedServer(uvicorn.Config(app, host=self.cfg.display.host, port=self.cfg.display.port,
                                               log_level="warning", lifespan="off"))
        display = asyncio.create_task(server.serve(sockets=[sock]) if sock else asyncio.sleep(0), name="display")
        tasks = [asyncio.create_task(self.source.run(self.on_readings), name="source"),
                 asyncio.create_task(self.uplink.run(), name="uplink"),
                 asyncio.create_task(self._housekeeping(), name="housekeeping")]
        if self.nilm is not None and self.cfg.nilm.plugs:
            tasks.insert(0, asyncio.create_task(self._adapter(), name="nilm-adapt"))
        if self.mqtt is not None:
            tasks.insert(2, asyncio.create_task(self.mqtt.run(), name="mqtt"))
            tasks.insert(3, asyncio.create_task(self._flusher(), name="device-flush"))
        stopper = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in done if t is not stopper and t.exception() is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.flush_devices()
        self._keep([])  # readings held while the store could not take them: a last try
        self.flush_nilm()
        if self._unwritten:
            log.error("stopping with %d readings the store could not take (a full disk?): they are lost",
                      len(self._unwritten))
        drained = await self.uplink.drain(drain_s)
        if not drained:
            backlog = self.store.status()["backlog_readings"]
            log.warning("stopping with %s readings kept in the outbox for the next start", backlog)
        server.should_exit = True
        await asyncio.gather(display, return_exceptions=True)
        await self.uplink.aclose()
        if self.broker is not None:
            await self.broker.stop()
        self.store.close()
        stopper.cancel()
        if failed:
            raise failed[0].exception()  # type: ignore[misc]
