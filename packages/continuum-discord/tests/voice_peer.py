"""A local Discord voice server for the tests: the voice gateway (a TLS websocket on
127.0.0.1 — discord.py always dials ``wss://``, so the test trusts a throwaway CA through
``[hosts.discord] ca_file``) and the UDP media socket (IP discovery, transport-encrypted
RTP both ways).

It negotiates ``aead_xchacha20_poly1305_rtpsize`` and answers ``dave_protocol_version:
0``: transport encryption only, no DAVE end-to-end layer (that needs Discord's MLS
group; see docs/hosts/discord.md). The main gateway peer hands a bot's voice state
update to :meth:`VoicePeer.voice_state_update`, which answers VOICE_STATE_UPDATE and
VOICE_SERVER_UPDATE like Discord.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import ssl
import struct
import time
from pathlib import Path
from typing import Any

import discord
import numpy as np
from aiohttp import WSMsgType, web

from continuum_discord.rtp import UndecryptablePacket, is_rtp, open_packet, seal_packet

SERVER_SSRC = 1234  # the bot's ssrc


def make_ca(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert path, key path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "continuum test voice")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "voice-ca.pem", directory / "voice-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, peer: VoicePeer) -> None:
        self.peer = peer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) == 74 and struct.unpack_from(">H", data, 0)[0] == 1:  # IP discovery
            self.peer.client_addr = addr
            reply = bytearray(74)
            struct.pack_into(">HHI", reply, 0, 2, 70, struct.unpack_from(">I", data, 4)[0])
            reply[8 : 8 + len(addr[0])] = addr[0].encode()
            struct.pack_into(">H", reply, 72, addr[1])
            assert self.transport is not None
            self.transport.sendto(bytes(reply), addr)
            return
        if is_rtp(data) and self.peer.key is not None:
            try:
                packet = open_packet(data, self.peer.mode, self.peer.key)
            except UndecryptablePacket:
                self.peer.bad_packets += 1
                return
            self.peer.from_bot.append((time.monotonic(), packet.opus))


class VoicePeer:
    def __init__(self, directory: Path) -> None:
        self.ca_path, key_path = make_ca(directory)
        self.ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ssl.load_cert_chain(self.ca_path, key_path)
        self.key: bytes | None = None
        self.mode = "aead_xchacha20_poly1305_rtpsize"
        self.client_addr: tuple[str, int] | None = None
        self.from_bot: list[tuple[float, bytes]] = []  # (arrival, opus frame)
        self.bad_packets = 0
        self.identified: dict[str, Any] | None = None
        self.speaking: list[dict] = []  # the bot's SPEAKING ops
        self.ws: web.WebSocketResponse | None = None
        self.ready = asyncio.Event()
        self.port = 0
        self.udp_port = 0
        self._runner: web.AppRunner | None = None
        self._udp: _Udp | None = None
        self._counter = 0

    async def start(self) -> VoicePeer:
        app = web.Application()
        app.router.add_get("/", self._gateway)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _Udp(self), local_addr=("127.0.0.1", 0)
        )
        self._udp = protocol
        self.udp_port = transport.get_extra_info("sockname")[1]
        return self

    async def stop(self) -> None:
        if self._udp is not None and self._udp.transport is not None:
            self._udp.transport.close()
        if self.ws is not None:
            await self.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- the main gateway's part --------------------------------------------------------------

    async def voice_state_update(self, gateway: Any, d: dict) -> None:
        """The bot asked to join (op 4): Discord answers with its voice state and the voice
        server to dial."""
        from discord_peer import BOT_ID, member

        await gateway.dispatch(
            "VOICE_STATE_UPDATE",
            {
                "guild_id": d["guild_id"],
                "channel_id": d.get("channel_id"),
                "user_id": str(BOT_ID),
                "session_id": "voice-session-1",
                "member": member(BOT_ID),
                "deaf": False,
                "mute": False,
                "self_deaf": d.get("self_deaf", False),
                "self_mute": d.get("self_mute", False),
                "self_video": False,
                "suppress": False,
                "request_to_speak_timestamp": None,
            },
        )
        if d.get("channel_id") is not None:
            await gateway.dispatch(
                "VOICE_SERVER_UPDATE",
                {"token": "voice-token", "guild_id": d["guild_id"],
                 "endpoint": f"127.0.0.1:{self.port}"},
            )  # fmt: skip

    # --- the voice gateway ---------------------------------------------------------------------

    async def _send(self, op: int, d: Any) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps({"op": op, "d": d}))

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.ws = ws
        await self._send(8, {"heartbeat_interval": 13750.0})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            op, d = data.get("op"), data.get("d")
            if op == 0:  # IDENTIFY
                assert d["token"] == "voice-token" and d["session_id"] == "voice-session-1"
                self.identified = d
                await self._send(2, {"ssrc": SERVER_SSRC, "ip": "127.0.0.1",
                                     "port": self.udp_port, "modes": [self.mode]})  # fmt: skip
            elif op == 1:  # SELECT_PROTOCOL
                assert d["data"]["mode"] == self.mode
                self.key = os.urandom(32)
                await self._send(
                    4, {"mode": self.mode, "secret_key": list(self.key), "dave_protocol_version": 0}
                )
                self.ready.set()
            elif op == 3:  # heartbeat
                await self._send(6, {"t": (d or {}).get("t") if isinstance(d, dict) else d})
            elif op == 5:
                self.speaking.append(d)
        return ws

    # --- a person speaks ------------------------------------------------------------------------

    async def speak_as(self, user_id: int, ssrc: int, pcm: np.ndarray) -> None:
        """``user_id`` says ``pcm`` (mono float32 at 48 kHz) into the channel, paced in real
        time as Discord relays it: SPEAKING first (who the SSRC is), then one transport-
        encrypted Opus packet per 20 ms; then nothing (Discord sends no silence)."""
        assert self.key is not None and self.client_addr is not None and self._udp
        await self._send(5, {"user_id": str(user_id), "ssrc": ssrc, "speaking": 1})
        encoder = discord.opus.Encoder()
        mono = (np.clip(pcm, -1, 1) * 32767).astype("<i2")
        frames = len(mono) // 960
        begun = time.monotonic()
        for i in range(frames):
            stereo = np.repeat(mono[i * 960 : (i + 1) * 960], 2).tobytes()
            opus = encoder.encode(stereo, 960)
            self._counter += 1
            packet = seal_packet(
                opus, ssrc=ssrc, sequence=i, timestamp=i * 960, counter=self._counter, key=self.key
            )
            assert self._udp.transport is not None
            self._udp.transport.sendto(packet, self.client_addr)
            await asyncio.sleep(max(0.0, begun + (i + 1) * 0.02 - time.monotonic()))

    def heard_from_bot(self) -> np.ndarray:
        """What the bot played, decoded with libopus: mono float32 at 48 kHz."""
        decoder = discord.opus.Decoder()
        pcm = b"".join(decoder.decode(opus, fec=False) for _, opus in self.from_bot)
        stereo = np.frombuffer(pcm, np.int16).reshape(-1, 2).astype(np.float32) / 32768
        return stereo.mean(axis=1)
