"""hub.toml as an installer writes it by hand: a mistake is named, with where it is and what was there."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

import edge.config as config_module
from edge.config import HubConfig
from ohmni.cli import app

runner = CliRunner()


@pytest.mark.parametrize("toml, said", [
    # a misspelt key or section was ignored, and the hub read /dev/ttyUSB0 with nothing to say why
    ('[meter]\nprot = "/dev/ttyAMA0"\n', r"meter\.prot: not a setting the hub knows \(known here: port, baudrate"),
    ('[serial]\nport = "/dev/ttyAMA0"\n', r"serial: not a setting the hub knows \(known here: hub, meter, cloud"),
    ("[mqtt.sml]\nprefx = 'SML'\n", r"mqtt\.sml\.prefx: not a setting the hub knows \(known here: prefix"),
    ('[cloud]\nurl = "ftp://cloud.example"\n', r"cloud\.url: not an http:// or https:// address \(found 'ftp://"),
    ("[cloud]\ninterval_s = -1\n", r"cloud\.interval_s: Input should be greater than 0 \(found -1\)"),
    ('[meter]\nparity = "X"\n', r"meter\.parity: Input should be 'N', 'E' or 'O' \(found 'X'\)"),
    ("[mqtt]\nport = 70000\n", r"mqtt\.port: Input should be less than or equal to 65535"),
    ('[nilm.plugs]\n"shelly:x:0" = "toaster"\n', r"nilm\.plugs\.shelly:x:0: Input should be 'kettle'"),
    ("port = \n", r"not valid TOML"),
])
def test_a_config_mistake_is_named_and_the_hub_does_not_start(tmp_path, toml, said):
    config = tmp_path / "hub.toml"
    config.write_text(toml)
    result = runner.invoke(app, ["hub", "run", "--config", str(config)], env={"COLUMNS": "400"})  # no wrapping
    assert result.exit_code == 2 and re.search(said, result.output), result.output
    assert "Traceback" not in result.output and "errors.pydantic.dev" not in result.output


def test_a_command_line_override_is_checked_like_the_file(tmp_path):
    result = runner.invoke(app, ["hub", "run", "--cloud", "cloud.example:8000"], env={"COLUMNS": "400"})
    assert result.exit_code == 2 and "cloud.url: not an http:// or https:// address" in result.output, result.output


def test_the_documented_example_and_an_empty_file_load(tmp_path):
    assert config_module.__doc__ is not None
    toml = config_module.__doc__.split("::", 1)[1]
    config = tmp_path / "hub.toml"
    config.write_text("\n".join(line.removeprefix("    ") for line in toml.splitlines()))
    cfg = HubConfig.load(config)
    assert cfg.meter.port == "/dev/ttyUSB0" and cfg.cloud.url == "https://cloud.example" and cfg.display.port == 8001
    config.write_text("")
    assert HubConfig.load(config) == HubConfig()


def test_a_data_folder_the_hub_cannot_use_is_named_and_the_hub_does_not_start(tmp_path):
    """An installer's `ohmni hub run` as a user who may not write /var/lib/ohmni (here: a folder under a file, as
    root may write anywhere) gets the folder named and what to do, not a traceback from deep in the store."""
    (tmp_path / "a-file").write_text("")
    config = tmp_path / "hub.toml"
    config.write_text(f'[hub]\ndata_dir = "{tmp_path / "a-file" / "hub"}"\n[meter]\nport = "{tmp_path / "tty"}"\n')
    result = runner.invoke(app, ["hub", "run", "--config", str(config)], env={"COLUMNS": "400"})
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and f"the hub cannot keep its store in {tmp_path / 'a-file' / 'hub'}" in said, said
    assert "Traceback" not in result.output and not isinstance(result.exception, OSError)


def test_the_days_kept_never_fall_below_what_the_hub_reads_back():
    """`[hub] keep_days` (8): what the cloud has had is dropped after it, but never before the week a re-adaptation
    learns from (until the next), the disaggregator's window or the face's day of baseline."""
    day = 86400
    assert HubConfig().keep_s() == 8 * day
    plugged = {"plugs": {"shelly:plug:0": "kettle"}}
    assert HubConfig.model_validate({"hub": {"keep_days": 1}, "nilm": plugged}).keep_s() == 8 * day
    assert HubConfig.model_validate({"hub": {"keep_days": 1}, "nilm": plugged | {"adapt_history_s": 14 * day}}
                                    ).keep_s() == 15 * day
    assert HubConfig.model_validate({"hub": {"keep_days": 0.1}}).keep_s() == day  # the face's baseline
    assert HubConfig.model_validate({"hub": {"keep_days": 30}}).keep_s() == 30 * day
    with pytest.raises(ValidationError):
        HubConfig.model_validate({"hub": {"keep_days": 0}})


@pytest.mark.parametrize("hub_id", ["", "h1", "my hub", "hub/1", "h" * 65])
def test_a_hub_id_the_cloud_would_not_register_is_refused(tmp_path, hub_id):
    """The hub took any id (an empty one too), and every batch it sent under it was refused by the cloud, which
    registers 3-64 letters, digits, dots, underscores and hyphens; now hub.toml and `--hub-id` are held to that."""
    config = tmp_path / "hub.toml"
    config.write_text(f'[hub]\nid = "{hub_id}"\n')
    with pytest.raises(ValueError, match=r"hub\.id"):
        HubConfig.load(config)
    result = CliRunner().invoke(app, ["hub", "provision", "--cloud", "http://127.0.0.1:9", "--code", "AAAA-BBBB-CCCC",
                                      "--hub-id", hub_id, "--config-dir", str(tmp_path / "etc")])
    assert result.exit_code == 2 and "--hub-id" in result.output, result.output
    assert not (tmp_path / "etc").exists()  # refused before anything is written or the cloud is asked
    assert HubConfig.model_validate({"hub": {"id": "hub-0001.b_c"}}).hub.id == "hub-0001.b_c"
