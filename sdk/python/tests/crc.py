"""CRC-64/NVME in plain Python, to check what the daemon reports (slow: small data only)."""

from __future__ import annotations

_POLY = 0x9A6C9329AC4BC9B5  # 0xAD93D23594C93659, reflected
_TABLE = []
for _byte in range(256):
    _crc = _byte
    for _ in range(8):
        _crc = (_crc >> 1) ^ _POLY if _crc & 1 else _crc >> 1
    _TABLE.append(_crc)


def crc64nvme(data: bytes) -> str:
    """16 hex digits, as the daemon writes them."""
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return f"{crc ^ 0xFFFFFFFFFFFFFFFF:016x}"


assert crc64nvme(b"123456789") == "ae8b14860a799888"
