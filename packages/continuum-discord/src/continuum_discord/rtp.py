"""Discord voice packets as they arrive on the UDP socket: RTP with transport encryption
(``aead_xchacha20_poly1305_rtpsize``, the mode discord.py negotiates), opened to the Opus
frame inside. Discord's voice docs: the RTP header (and, with ``rtpsize``, the 4-byte
extension header) is the AEAD's additional data, the 32-bit nonce counter is appended
to the packet, the extension's body is encrypted with the payload."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions

RTP_VERSION = 2
OPUS_PAYLOAD_TYPE = 0x78  # 120
MODES = ("aead_xchacha20_poly1305_rtpsize",)


class UndecryptablePacket(ValueError):
    """Not an RTP packet of ours, or its authentication failed."""


@dataclass(frozen=True)
class VoicePacket:
    ssrc: int
    sequence: int
    timestamp: int
    opus: bytes


def is_rtp(packet: bytes) -> bool:
    """An RTP audio packet (RTCP reports, IP discovery replies and keep-alives are not)."""
    return (
        len(packet) >= 12
        and packet[0] >> 6 == RTP_VERSION
        and (packet[1] & 0x7F) == OPUS_PAYLOAD_TYPE
    )


def _header_length(packet: bytes) -> tuple[int, int]:
    """(length of the authenticated header, length of the encrypted extension body)."""
    csrc = packet[0] & 0x0F
    length = 12 + 4 * csrc
    extension_words = 0
    if packet[0] & 0x10:  # a header extension: its 4-byte header stays in the clear
        if len(packet) < length + 4:
            raise UndecryptablePacket("truncated extension header")
        extension_words = struct.unpack_from(">H", packet, length + 2)[0]
        length += 4
    return length, 4 * extension_words


def open_packet(packet: bytes, mode: str, key: bytes) -> VoicePacket:
    """Decrypt one RTP packet; raises UndecryptablePacket."""
    if not is_rtp(packet):
        raise UndecryptablePacket("not an RTP Opus packet")
    if mode not in MODES:
        raise UndecryptablePacket(f"encryption mode {mode} is not supported for receiving")
    header_len, extension_len = _header_length(packet)
    if len(packet) < header_len + 4 + 16:
        raise UndecryptablePacket("too short")
    header = packet[:header_len]
    nonce = packet[-4:] + bytes(20)
    try:
        plain = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            packet[header_len:-4], header, nonce, key
        )
    except nacl.exceptions.CryptoError:
        raise UndecryptablePacket("authentication failed") from None
    sequence, timestamp, ssrc = struct.unpack_from(">HII", packet, 2)
    return VoicePacket(ssrc, sequence, timestamp, plain[extension_len:])


def seal_packet(
    opus: bytes, *, ssrc: int, sequence: int, timestamp: int, counter: int, key: bytes
) -> bytes:
    """The other direction (what a Discord voice server sends a client): for tests and
    local peers."""
    header = bytearray(12)
    header[0], header[1] = 0x80, OPUS_PAYLOAD_TYPE
    struct.pack_into(">HII", header, 2, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
    tail = struct.pack(">I", counter & 0xFFFFFFFF)
    sealed = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        opus, bytes(header), tail + bytes(20), key
    )
    return bytes(header) + sealed + tail
