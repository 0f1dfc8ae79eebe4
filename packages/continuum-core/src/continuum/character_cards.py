"""Import SillyTavern Character Cards (V1, V2 and V3; JSON or PNG) as personas.

PNG cards carry the card as base64 JSON in a tEXt/iTXt/zTXt chunk named ``chara`` (V2)
or ``ccv3`` (V3); when both are present the V3 chunk wins. Fields that map onto
:class:`~continuum.persona.Persona` are mapped; everything else is kept under
``extensions["character_card"]`` so an export can give it back.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
import zlib
from pathlib import Path
from typing import Any

from continuum.errors import PersonaFileError
from continuum.persona import Persona, persona_from_mapping

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_CARD_BYTES = 8 << 20  # a card file, and any decompressed text chunk, at most 8 MiB
MAX_JSON_DEPTH = 64  # real cards nest a few levels; deeper is an attack or an accident
CARD_CHUNK_KEYS = ("ccv3", "chara")  # preference order

# card field -> persona field, for the fields that map one to one
_DIRECT = {
    "name": "name",
    "description": "identity",
    "personality": "personality",
    "scenario": "scenario",
    "first_mes": "greeting",
    "mes_example": "example_dialogue",
    "system_prompt": "system_prompt",
    "post_history_instructions": "post_history_instructions",
    "creator": "creator",
    "creator_notes": "creator_notes",
    "character_version": "version",
}
_LISTS = {"alternate_greetings": "alternate_greetings", "tags": "tags"}


def read_png_text_chunks(data: bytes, source: Path | str) -> dict[str, str]:
    """Return the textual chunks (tEXt, zTXt, iTXt) of a PNG file by keyword."""
    if not data.startswith(PNG_SIGNATURE):
        raise PersonaFileError(source, None, "not a PNG file (bad signature)")
    chunks: dict[str, str] = {}
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if len(body) != length:
            raise PersonaFileError(source, None, f"truncated PNG chunk {kind!r}")
        pos += 12 + length
        try:
            if kind == b"tEXt":
                key, _, text = body.partition(b"\0")
                chunks[key.decode("latin-1")] = text.decode("latin-1")
            elif kind == b"zTXt":
                key, _, rest = body.partition(b"\0")
                chunks[key.decode("latin-1")] = _inflate(rest[1:], source).decode("latin-1")
            elif kind == b"iTXt":
                key, _, rest = body.partition(b"\0")
                compressed, _method = rest[0], rest[1]
                _lang, _, rest = rest[2:].partition(b"\0")
                _translated, _, text = rest.partition(b"\0")
                if compressed:
                    text = _inflate(text, source)
                chunks[key.decode("latin-1")] = text.decode("utf-8")
        except (zlib.error, UnicodeDecodeError, IndexError) as exc:
            raise PersonaFileError(source, None, f"unreadable PNG {kind.decode()} chunk") from exc
        if kind == b"IEND":
            break
    return chunks


def _inflate(data: bytes, source: Path | str) -> bytes:
    """zlib-decompress at most MAX_CARD_BYTES (a 1 MB chunk can inflate to gigabytes)."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, MAX_CARD_BYTES + 1)
    if len(out) > MAX_CARD_BYTES or inflater.unconsumed_tail:
        raise PersonaFileError(
            source, None, f"a compressed PNG text chunk inflates past {MAX_CARD_BYTES >> 20} MiB"
        )
    return out


def _depth_ok(text: str, limit: int) -> bool:
    """Bracket nesting of a JSON text stays within ``limit`` (strings skipped)."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def card_from_png(data: bytes, source: Path | str) -> dict[str, Any]:
    """Extract the character card JSON embedded in a PNG."""
    chunks = read_png_text_chunks(data, source)
    for key in CARD_CHUNK_KEYS:
        if key in chunks:
            try:
                decoded = base64.b64decode(chunks[key], validate=False).decode("utf-8")
                return _parse_json(decoded, source, key)
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise PersonaFileError(source, key, "chunk is not base64 UTF-8 JSON") from exc
    raise PersonaFileError(source, None, "PNG has no character card ('chara' or 'ccv3' chunk)")


def _parse_json(text: str, source: Path | str, field: str | None = None) -> dict[str, Any]:
    if not _depth_ok(text, MAX_JSON_DEPTH):
        raise PersonaFileError(source, field, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        card = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PersonaFileError(source, field, f"invalid JSON: {exc}") from exc
    if not isinstance(card, dict):
        raise PersonaFileError(source, field, "a character card must be a JSON object")
    return card


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64]
    return slug or "persona"


def persona_from_card(card: dict[str, Any], source: Path | str) -> Persona:
    """Map a V1/V2/V3 character card dict onto a Persona."""
    spec = card.get("spec")
    if spec in ("chara_card_v2", "chara_card_v3"):
        data = card.get("data")
        if not isinstance(data, dict):
            raise PersonaFileError(source, "data", f"{spec} card needs a 'data' object")
    elif spec is None:
        data = card  # V1: the fields sit at the top level
    else:
        raise PersonaFileError(source, "spec", f"unknown character card spec {spec!r}")

    mapped: dict[str, Any] = {}
    leftover: dict[str, Any] = {}
    for key, value in data.items():
        if key in _DIRECT:
            if value is not None and not isinstance(value, str):
                raise PersonaFileError(source, f"data.{key}", "must be a string")
            if value:
                mapped[_DIRECT[key]] = value
        elif key in _LISTS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise PersonaFileError(source, f"data.{key}", "must be a list of strings")
            mapped[_LISTS[key]] = tuple(value)
        elif key == "character_book":
            if value is not None and not isinstance(value, dict):
                raise PersonaFileError(source, "data.character_book", "must be an object")
            mapped["lorebook"] = value
        elif key == "extensions":
            if not isinstance(value, dict):
                raise PersonaFileError(source, "data.extensions", "must be an object")
            mapped["extensions"] = dict(value)
        else:
            leftover[key] = value  # V3 assets, nickname, source, dates, ...
    name = mapped.get("name")
    if not name:
        raise PersonaFileError(source, "data.name", "a character card needs a name")
    mapped.setdefault("identity", name)
    nickname = data.get("nickname")
    mapped["id"] = slugify(nickname if isinstance(nickname, str) and nickname else name)
    extensions = mapped.setdefault("extensions", {})
    extensions["character_card"] = {
        "spec": spec or "chara_card_v1",
        "spec_version": card.get("spec_version", "1.0"),
        **({"fields": leftover} if leftover else {}),
    }
    return persona_from_mapping(mapped, source)


def import_card(path: Path | str) -> Persona:
    """Read a character card file (.json or .png) and return the persona it describes."""
    path = Path(path)
    try:
        if path.stat().st_size > 4 * MAX_CARD_BYTES:
            raise PersonaFileError(path, None, f"larger than {4 * MAX_CARD_BYTES >> 20} MiB")
        data = path.read_bytes()
    except OSError as exc:
        raise PersonaFileError(path, None, f"cannot read file: {exc.strerror}") from exc
    if data.startswith(PNG_SIGNATURE):
        card = card_from_png(data, path)
    else:
        try:
            card = _parse_json(data.decode("utf-8"), path)
        except UnicodeDecodeError as exc:
            raise PersonaFileError(path, None, "not UTF-8 JSON and not a PNG") from exc
    return persona_from_card(card, path)


def png_with_card(image_png: bytes, card: dict[str, Any], key: str = "chara") -> bytes:
    """Embed ``card`` into a PNG as a tEXt chunk (what SillyTavern writes on export)."""
    if not image_png.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG")
    payload = key.encode("latin-1") + b"\0" + base64.b64encode(json.dumps(card).encode())
    chunk = struct.pack(">I", len(payload)) + b"tEXt" + payload
    chunk += struct.pack(">I", zlib.crc32(b"tEXt" + payload) & 0xFFFFFFFF)
    iend = image_png.rindex(b"IEND") - 4
    return image_png[:iend] + chunk + image_png[iend:]
