import json
import struct
import zlib

import pytest

from continuum.character_cards import import_card, png_with_card
from continuum.errors import PersonaFileError
from continuum.persona_files import load_persona


def tiny_png() -> bytes:
    def chunk(kind, body):
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


V2 = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {
        "name": "Seraphina",
        "description": "A guardian of the forest glade.",
        "personality": "gentle, protective",
        "scenario": "You wake up in her glade.",
        "first_mes": "*She smiles.* You're safe now.",
        "mes_example": "<START>\n{{char}}: Rest.",
        "creator_notes": "Classic demo card",
        "system_prompt": "Write in third person.",
        "post_history_instructions": "Stay in character.",
        "alternate_greetings": ["Hello, traveller."],
        "tags": ["fantasy", "healer"],
        "creator": "st",
        "character_version": "1.2",
        "character_book": {"entries": [{"keys": ["glade"], "content": "A magic place."}]},
        "extensions": {"talkativeness": "0.5"},
    },
}


def test_v2_json_maps_every_field(tmp_path):
    f = tmp_path / "seraphina.json"
    f.write_text(json.dumps(V2))
    p = import_card(f)
    assert (p.id, p.name) == ("seraphina", "Seraphina")
    assert p.identity == V2["data"]["description"]
    assert p.personality == "gentle, protective" and p.scenario.startswith("You wake")
    assert p.greeting.startswith("*She smiles.*")
    assert p.alternate_greetings == ("Hello, traveller.",)
    assert p.example_dialogue.startswith("<START>") and p.system_prompt == "Write in third person."
    assert p.post_history_instructions == "Stay in character."
    assert p.tags == ("fantasy", "healer") and p.creator == "st" and p.version == "1.2"
    assert p.lorebook["entries"][0]["keys"] == ["glade"]
    assert p.extensions["talkativeness"] == "0.5"
    assert p.extensions["character_card"]["spec"] == "chara_card_v2"


def test_v3_png_wins_over_v2_and_keeps_unmapped_fields(tmp_path):
    v3 = {
        "spec": "chara_card_v3",
        "spec_version": "3.0",
        "data": {
            **V2["data"],
            "name": "Seraphina V3",
            "nickname": "Sera",
            "assets": [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
            "creation_date": 1700000000,
            "group_only_greetings": [],
        },
    }
    png = png_with_card(png_with_card(tiny_png(), V2, "chara"), v3, "ccv3")
    f = tmp_path / "card.png"
    f.write_bytes(png)
    p = load_persona(f)  # load_persona dispatches on the suffix
    assert p.name == "Seraphina V3" and p.id == "sera"
    kept = p.extensions["character_card"]
    assert kept["spec"] == "chara_card_v3"
    assert kept["fields"]["assets"][0]["uri"] == "ccdefault:"
    assert kept["fields"]["creation_date"] == 1700000000


def test_v2_png(tmp_path):
    f = tmp_path / "card.png"
    f.write_bytes(png_with_card(tiny_png(), V2))
    assert import_card(f).name == "Seraphina"


def test_bad_cards_name_file_and_field(tmp_path):
    f = tmp_path / "plain.png"
    f.write_bytes(tiny_png())
    with pytest.raises(PersonaFileError, match=r"plain\.png: PNG has no character card"):
        import_card(f)
    g = tmp_path / "noname.json"
    g.write_text(json.dumps({"spec": "chara_card_v2", "data": {"description": "x"}}))
    with pytest.raises(PersonaFileError) as err:
        import_card(g)
    assert err.value.field == "data.name"
    h = tmp_path / "tags.json"
    h.write_text(json.dumps({"spec": "chara_card_v2", "data": {"name": "A", "tags": "x"}}))
    with pytest.raises(PersonaFileError) as err:
        import_card(h)
    assert err.value.field == "data.tags"
    k = tmp_path / "broken.json"
    k.write_text("{not json")
    with pytest.raises(PersonaFileError, match=r"broken\.json: invalid JSON"):
        import_card(k)
