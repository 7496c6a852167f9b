"""Luxembourg Smarty: AES-128-GCM frames decrypted with the user's key, then decoded like any P1."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from edge.sources.serial_p1 import P1Decoder
from ohmni.cli import app
from protocols.p1_gcm import GcmDecryptor, encrypt_frame

KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
runner = CliRunner()


def test_encrypted_frames_decode_to_the_plain_telegram_values(data_dir, tmp_path):
    plain = (data_dir / "dsmr/dsmrreader_luxembourg-smarty.txt").read_bytes()
    wire = b"\x00\x01" + encrypt_frame(plain, KEY, b"SAG10301", 1) + encrypt_frame(plain, KEY, b"SAG10301", 2)
    (tmp_path / "smarty.bin").write_bytes(wire)
    result = runner.invoke(app, ["p1", "decode", str(tmp_path / "smarty.bin"), "--key", KEY.hex()])
    assert result.exit_code == 0, result.output
    frames = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(frames) == 2
    assert frames[0]["variant"] == "luxembourg" and frames[0]["crc"] == "valid"
    assert frames[0]["import_kwh"]["total"] == 5675.956 and frames[0]["power_import_w"] == 3074


def test_a_wrong_key_is_reported_and_decodes_nothing(data_dir, tmp_path):
    plain = (data_dir / "dsmr/dsmrreader_luxembourg-smarty.txt").read_bytes()
    (tmp_path / "smarty.bin").write_bytes(encrypt_frame(plain, KEY, b"SAG10301", 1))
    result = runner.invoke(app, ["p1", "decode", str(tmp_path / "smarty.bin"), "--key", "00" * 16])
    assert result.exit_code == 0 and result.stdout == ""
    assert "wrong key" in result.stderr
    bad = runner.invoke(app, ["p1", "decode", str(tmp_path / "smarty.bin"), "--key", "nothex"])
    assert bad.exit_code == 2 and "hex" in bad.output


def test_hub_decoder_counts_frames_it_cannot_decrypt(data_dir):
    plain = (data_dir / "dsmr/dsmrreader_luxembourg-smarty.txt").read_bytes()
    decoder = P1Decoder(GcmDecryptor(KEY))
    good = encrypt_frame(plain, KEY, b"SAG10301", 1)
    tampered = bytearray(encrypt_frame(plain, KEY, b"SAG10301", 2))
    tampered[40] ^= 0xFF
    readings = decoder.feed(good + bytes(tampered) + encrypt_frame(plain, KEY, b"SAG10301", 3))
    assert len(readings) == 2 and decoder.counters["rejected_decryption"] == 1
