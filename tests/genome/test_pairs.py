"""Training pairs from turns (no training here): opt-in, reactions as the quality signal,
crash-safe appends, encryption at rest, and `forget` reaching pairs and trained adapters."""

from __future__ import annotations

import pytest

from continuum.config import parse_config
from continuum.genome.pairs import PairLog, TrainingPair, domain_slug
from continuum.genome.registry import GenomeRegistry
from continuum.genome.train import split_pairs
from continuum.hosts.base import CommandEvent, ReactionEvent
from continuum.memory.crypto import Cipher, MemoryKeyError
from continuum.persona import LearningSpec, Persona
from continuum.runtime import Runtime
from continuum.testing import RecordingHost, ScriptedBackend, text_envelope
from tests.server.lora_fixture import make_lora

LEARNS = Persona(
    id="maya",
    name="Maya",
    identity="A performance engineer.",
    expertise=("Rust async", "databases"),
    learning=LearningSpec(enabled=True, domain="general"),
)
QUIET = Persona(id="otto", name="Otto", identity="An archivist.")


class Alpha(RecordingHost):
    name = "alpha"


def pair(i: int, people=("sam",), domain="general") -> TrainingPair:
    return TrainingPair(
        id=f"m{i}", persona_id="maya", domain=domain, room="r", prompt=f"the prompt of pair {i}",
        response=f"r{i}", people=people,
    )  # fmt: skip


def test_pairs_append_read_and_survive_a_crash_mid_write(tmp_path):
    log = PairLog(tmp_path)
    log.record(pair(1))
    path = log.path("maya", "general")
    with path.open("ab") as f:
        f.write(b'{"id": "m2", "persona_id": "ma')  # the process died here
    log.record(pair(3))
    log.react("maya", "m3", positive=True)
    log.react("maya", "m3", positive=True)
    log.react("maya", "m1", positive=False)
    got = log.pairs("maya", "general")
    assert [(p.id, p.score) for p in got] == [("m1", -1), ("m3", 2)]
    assert log.domains("maya") == {"general": 2}
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_pairs_are_encrypted_at_rest_with_the_memory_key(tmp_path):
    key = Cipher.generate_key()
    log = PairLog(tmp_path, cipher=Cipher(key))
    log.record(pair(1))
    raw = log.path("maya", "general").read_bytes()
    assert b"the prompt of pair" not in raw and b"persona_id" not in raw
    assert (
        PairLog(tmp_path, cipher=Cipher(key)).pairs("maya", "general")[0].prompt
        == "the prompt of pair 1"
    )
    PairLog(tmp_path / "plain").record(pair(2))
    with pytest.raises(MemoryKeyError, match="not encrypted"):
        PairLog(tmp_path / "plain", cipher=Cipher(key)).pairs("maya", "general")


def test_split_drops_disliked_replies_and_holds_out_every_kth():
    pairs = [pair(i).model_copy(update={"score": -1 if i == 2 else 0}) for i in range(9)]
    train, heldout, dropped = split_pairs(pairs, 0.25)
    assert dropped == 1 and [p.id for p in heldout] == ["m4", "m8"]
    assert len(train) == 6 and not {p.id for p in train} & {"m2", "m4", "m8"}


def test_domain_names_are_safe():
    assert domain_slug("Rust async!") == "rust-async" and domain_slug("../..") == "general"
    with pytest.raises(Exception, match="not a domain"):
        PairLog("/tmp").path("maya", "../x")
    with pytest.raises(Exception, match="not a persona id"):
        PairLog("/tmp").path("../x", "general")


def test_forgetting_a_person_removes_adapters_trained_on_their_words(tmp_path, model_path):
    registry = GenomeRegistry(tmp_path, base_model=model_path)
    lora = make_lora(tmp_path / "a.gguf")
    registry.add("maya", "learned", lora, people=("Sam", "lee"))
    registry.add("maya", "bought", lora)
    assert registry.get("maya", "learned").people == ("lee", "sam")
    assert [r.id for r in registry.forget_person("SAM")] == ["learned"]
    assert [r.id for r in registry.records("maya")] == ["bought"]


@pytest.mark.anyio
async def test_a_runtime_records_pairs_only_for_personas_that_opted_in(tmp_path, monkeypatch):
    monkeypatch.setenv("CONTINUUM_MEMORY_KEY", Cipher.generate_key())
    cfg = parse_config(
        {"memory": {"data_dir": str(tmp_path)}, "policy": {"cognition": "direct"},
         "hosts": {"alpha": {}}},
        tmp_path / "continuum.toml",
    )  # fmt: skip
    backend = ScriptedBackend(lambda req: "Use a connection pool.")
    async with Runtime(
        cfg, personas=[LEARNS, QUIET], backend=backend, host_classes={"alpha": Alpha}
    ) as rt:
        for who, text in (("sam", "How do I size a databases pool?"), ("lee", "Hello!")):
            e = text_envelope(text, host="alpha", author=who, mentions=("maya", "otto"))
            await (await rt.deliver("alpha", e)).wait()
        replies = rt.host("alpha").replies
        maya_ids = [r.host_message_id for r in replies if r.start.persona_id == "maya"]
        assert len(maya_ids) == 2 and len(replies) == 4
        up = ReactionEvent(
            host="alpha", room_id="room", host_message_id=maya_ids[0], reaction="+1",
            positive=True, author=text_envelope("x").author,
        )  # fmt: skip
        await rt.host("alpha").services.submit(up)
        assert rt.pairs is not None
        assert rt.pairs.personas() == ["maya"]  # otto never opted in
        # the expertise named in the topics picks the domain, else the persona's default
        domains = rt.pairs.domains("maya")
        assert sum(domains.values()) == 2
        everything = [p for d in domains for p in rt.pairs.pairs("maya", d)]
        assert all(p.response == "Use a connection pool." for p in everything)
        assert all("<|im_start|>" in p.prompt or p.prompt for p in everything)
        assert sorted(p.score for p in everything) == [0, 1]
        for d in domains:  # encrypted like the journals
            assert b"connection pool" not in rt.pairs.path("maya", d).read_bytes()
        people = sorted(who for p in everything for who in p.people)
        assert people == ["alpha:lee", "alpha:sam", "alpha:sam"]
        forget = CommandEvent(
            host="alpha", room_id="room", name="forget", author=text_envelope("x").author
        )
        result = await rt.host("alpha").services.submit(forget)
        assert result is not None and result.data["training_pairs"] == 2
        assert sum(rt.pairs.domains("maya").values()) == 0


def test_the_cli_lists_pairs_and_refuses_to_train_on_too_few(tmp_path):
    import subprocess
    import sys

    log = PairLog(tmp_path)
    for i in range(3):
        log.record(pair(i))
    log.react("maya", "m0", positive=True)

    def cli(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "continuum", "genome", "--data-dir", str(tmp_path), *args]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
        return subprocess.run(cmd, capture_output=True, text=True, env=env)

    listed = cli("pairs")
    assert listed.returncode == 0 and "maya" in listed.stdout and "3 pairs  +1 -0" in listed.stdout
    refused = cli("train", "--persona", "maya")
    assert refused.returncode != 0 and "at least 4 are needed" in refused.stderr


@pytest.mark.anyio
async def test_turns_in_private_rooms_are_not_learned_from_unless_asked(tmp_path):
    from continuum.room import Room, RoomPolicy

    log = PairLog(tmp_path)
    for persona, expected in ((LEARNS, 1), (LEARNS.model_copy(update={"learning": LearningSpec(
        enabled=True, private_rooms=True)}), 2)):  # fmt: skip
        room = Room("r", [persona], ScriptedBackend(lambda req: "Noted."),
                    policy=RoomPolicy(cognition="direct"), pairs=log)  # fmt: skip
        await room.handle(text_envelope("my salary is 90k", visibility="dm"))
        await room.handle(text_envelope("what is a pool?"))
        assert sum(log.domains("maya").values()) == expected
        log.forget_person("sam")


@pytest.mark.anyio
async def test_a_pair_lists_the_people_whose_recalled_words_it_holds(tmp_path):
    """Lee asks in another room; Maya's prompt recalls what Sam told her. The pair lists
    Sam too, so Sam's forget removes it (before: only the room's authors were listed, and
    Sam's words stayed in Lee's pair and in adapters trained on it)."""
    cfg = parse_config(
        {"memory": {"data_dir": str(tmp_path)}, "policy": {"cognition": "direct", "recall_k": 5},
         "hosts": {"alpha": {}}},
        tmp_path / "continuum.toml",
    )  # fmt: skip
    backend = ScriptedBackend(lambda req: "Noted.")
    hosts = {"alpha": Alpha}
    async with Runtime(cfg, personas=[LEARNS], backend=backend, host_classes=hosts) as rt:
        told = text_envelope("Please remember that my locker code is 4417.", host="alpha",
                             author="sam", room_id="a")  # fmt: skip
        await (await rt.deliver("alpha", told)).wait()
        await rt.hippocampus.drain()
        asked = text_envelope("What is Sam's locker code?", host="alpha", author="lee", room_id="b")
        await (await rt.deliver("alpha", asked)).wait()
        assert rt.pairs is not None
        everything = [p for d in rt.pairs.domains("maya") for p in rt.pairs.pairs("maya", d)]
        [lees] = [p for p in everything if p.room == "alpha:b"]
        assert "4417" in lees.prompt and set(lees.people) == {"alpha:lee", "alpha:sam"}
        sam = told.author
        await rt.host("alpha").services.submit(
            CommandEvent(host="alpha", room_id="a", name="forget", author=sam)
        )
        left = [p for d in rt.pairs.domains("maya") for p in rt.pairs.pairs("maya", d)]
        assert not any("4417" in p.prompt for p in left)
