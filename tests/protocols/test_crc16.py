from protocols.crc16 import crc16_arc


def test_check_value_of_crc16_arc():
    # The catalogue check value of CRC-16/ARC over "123456789".
    assert crc16_arc(b"123456789") == 0xBB3D


def test_empty_input_is_zero():
    assert crc16_arc(b"") == 0
