"""continuum-hub against a local Hub (hub_testkit.LocalHub) through huggingface_hub,
unpatched: the CLI as a user runs it, in its own process with HF_ENDPOINT set."""

from __future__ import annotations

import json

import pytest
from hub_testkit import SMOL, Cli, card

from continuum.genome.registry import SHARED, GenomeRegistry
from continuum_hub.errors import UnsafeFile
from continuum_hub.safety import check_license, check_name
from continuum_hub.store import PulledStore
from tests.server.lora_fixture import make_lora

LORA_BYTES: dict[int, bytes] = {}


def lora(tmp_path, seed: int = 3) -> bytes:
    if seed not in LORA_BYTES:
        LORA_BYTES[seed] = make_lora(tmp_path / f"lora-{seed}.gguf", seed=seed).read_bytes()
    return LORA_BYTES[seed]


def installed(cli: Cli) -> list:
    return PulledStore(cli.data).records()


def test_file_names_that_leave_their_folder_are_refused():
    for bad in ("../evil.gguf", "a/../../evil.gguf", "/etc/passwd", "a\\..\\b", "", "a//b", "./x"):
        with pytest.raises(UnsafeFile):
            check_name(bad)
    assert check_name("adapters/alto.gguf") == "adapters/alto.gguf"
    check_license("MIT", ("mit",), None)
    check_license("cc-by-nc-4.0", ("mit",), "cc-by-nc-4.0")


def test_browse_filters_by_kind_and_base_and_pages(hub, cli, tmp_path):
    outetts = "OuteAI/OuteTTS-0.2-500M"
    for i in range(5):
        hub.add(f"alice/voice-{i}", {"README.md": card(outetts, "voice"), "v.gguf": b"x" * (i + 1)})
        hub.repos[f"alice/voice-{i}"].downloads = 10 * i
    hub.add("bob/voice-other-base", {"README.md": card("other/Base", kind="voice"), "v.gguf": b"x"})
    hub.add("carol/perf-skill", {"README.md": card(kind="skill", license="mit"), "s.gguf": b"x"})
    hub.add("dave/plain-model", {"README.md": "---\nlicense: mit\n---\n", "m.gguf": b"x"})

    every = cli("browse", "--kind", "voice").stdout  # no voice backbone set: every voice
    assert "bob/voice-other-base" in every and "alice/voice-0" in every
    # the voices for the backbone this runs (the codec voice's), most downloaded first
    backbone = str(tmp_path / "OuteTTS-0.2-500M-Q8_0.gguf")
    out = cli("browse", "--kind", "voice", CONTINUUM_CODEC_TTS_BACKBONE=backbone).stdout
    rows = [line.split()[0] for line in out.splitlines()[1:] if line.startswith("alice/")]
    assert rows == [f"alice/voice-{i}" for i in (4, 3, 2, 1, 0)]  # most downloaded first
    assert "bob/voice-other-base" not in out and "carol/" not in out
    # the Hub's pages (3 per page here) were followed with their Link headers
    assert len([r for r in hub.requests if r[1] == "/api/models"]) >= 2
    page2 = cli(
        "browse", "--kind", "voice", "--base", outetts, "--limit", "2", "--page", "2"
    ).stdout
    assert [line.split()[0] for line in page2.splitlines()[1:3]] == [
        "alice/voice-2",
        "alice/voice-1",
    ]
    assert "--page 3" in page2
    other = cli("browse", "--kind", "voice", "--base", "other/Base").stdout
    assert "bob/voice-other-base" in other and "alice/" not in other
    skills = cli("browse", "--kind", "skill").stdout
    assert "carol/perf-skill" in skills and "mit" in skills and "alice/" not in skills
    found = cli("browse", "--kind", "voice", "--base", outetts, "--search", "voice-3").stdout
    assert "alice/voice-3" in found and "alice/voice-2" not in found


def test_a_pull_is_pinned_checked_and_installed(hub, cli, tmp_path):
    first = hub.add("alice/perf", {"README.md": card(), "perf.gguf": lora(tmp_path)})
    hub.add("alice/perf", {"perf.gguf": lora(tmp_path, seed=4)})  # main moved on
    out = cli("pull", f"alice/perf@{first[:10]}", "--persona", "maya", "--quiet").stdout
    assert f"alice/perf@{first[:12]}" in out and "installed as maya/perf" in out
    (record,) = installed(cli)
    assert record.revision == first and record.kind == "skill" and record.license == "apache-2.0"
    genome = GenomeRegistry(cli.data).get("maya", "perf")
    assert genome is not None and genome.sha256 == record.sha256
    assert genome.provenance.startswith(f"hub:alice/perf@{first}") and genome.rank == 4
    again = cli("pull", f"alice/perf@{first}", "--persona", "maya").stdout
    assert "already installed as maya/perf" in again  # the same commit again: nothing new
    # main has moved on: the same id at another commit is not silently replaced
    done = cli("pull", "alice/perf", "--persona", "maya", ok=False)
    assert "already has an adapter 'perf'" in done.stderr
    listed = cli("list").stdout
    assert "maya/perf" in listed and first[:12] in listed
    cli("remove", "maya/perf")
    assert installed(cli) == [] and GenomeRegistry(cli.data).get("maya", "perf") is None


def test_a_tampered_file_is_refused_and_nothing_is_installed(hub, cli, tmp_path):
    hub.add("mallory/perf", {"README.md": card(), "perf.gguf": lora(tmp_path)})
    good = lora(tmp_path)
    hub.repos["mallory/perf"].tamper["perf.gguf"] = good[:-4] + b"EVIL"
    done = cli("pull", "mallory/perf", "--quiet", ok=False)
    assert "hashes to" in done.stderr and "not installed" in done.stderr
    assert installed(cli) == [] and GenomeRegistry(cli.data).records() == []
    assert not list((cli.data / "genome").rglob("*.gguf"))


def test_a_repo_with_only_pickle_weights_is_refused_before_download(hub, cli):
    hub.add("mallory/pickled", {"README.md": card(), "adapter_model.bin": b"\x80\x04evil"})
    done = cli("pull", "mallory/pickled", ok=False)
    assert "pickle" in done.stderr and "safetensors or GGUF" in done.stderr
    assert not [r for r in hub.requests if "/resolve/" in r[1] and r[1].endswith(".bin")]
    done = cli("pull", "mallory/pickled", "--file", "adapter_model.bin", ok=False)
    assert "pickle" in done.stderr


def test_a_file_name_that_escapes_is_refused(hub, cli, tmp_path):
    hub.add("mallory/escape", {"README.md": card(), "../../../evil.gguf": lora(tmp_path)})
    done = cli("pull", "mallory/escape", ok=False)
    assert "refused file name" in done.stderr
    assert not [r for r in hub.requests if "/resolve/" in r[1]]
    assert not (cli.cwd / "evil.gguf").exists() and installed(cli) == []


def test_a_download_cut_mid_file_is_retried_and_checked(hub, cli, tmp_path):
    data = lora(tmp_path)
    hub.add("alice/perf", {"README.md": card(), "perf.gguf": data})
    hub.cut_after["perf.gguf"] = len(data) // 2  # the connection drops half way, once
    cli("pull", "alice/perf", "--quiet")
    # asked again for the rest only
    (resumed,) = [r for p, r in hub.ranges if p.endswith("perf.gguf")]
    assert 0 < int(resumed.removeprefix("bytes=").rstrip("-")) <= len(data) // 2
    (record,) = installed(cli)
    assert (cli.data / "genome" / SHARED / "perf.gguf").read_bytes() == data
    assert record.installed_as == f"{SHARED}/perf"


def test_a_licence_outside_the_allow_list_must_be_accepted(hub, cli, tmp_path):
    hub.add("alice/nc", {"README.md": card(license="cc-by-nc-4.0"), "nc.gguf": lora(tmp_path)})
    done = cli("pull", "alice/nc", ok=False)
    assert "cc-by-nc-4.0" in done.stderr and "--accept-license cc-by-nc-4.0" in done.stderr
    assert not [r for r in hub.requests if "/resolve/" in r[1] and r[1].endswith(".gguf")]
    cli("pull", "alice/nc", "--accept-license", "cc-by-nc-4.0", "--quiet")
    assert installed(cli)[0].license == "cc-by-nc-4.0"


def test_an_adapter_for_another_base_is_refused(hub, cli, tmp_path):
    hub.add("alice/other", {"README.md": card("Qwen/Qwen2.5-0.5B"), "o.gguf": lora(tmp_path)})
    done = cli("pull", "alice/other", ok=False)
    assert "Qwen/Qwen2.5-0.5B" in done.stderr and SMOL in done.stderr
    # declared for this base, but its tensors are not: refused when parsed, nothing kept
    wrong = make_lora(tmp_path / "wrong.gguf", n_embd=64, n_kv=32, n_layers=2).read_bytes()
    hub.add("alice/liar", {"README.md": card(), "l.gguf": wrong})
    done = cli("pull", "alice/liar", "--quiet", ok=False)
    assert "another base model" in done.stderr and installed(cli) == []


def _genome_with(cli: Cli, tmp_path, people: tuple[str, ...] = ()) -> None:
    from continuum.models import default_model_path

    src = make_lora(tmp_path / "maya-perf.gguf", seed=9)
    GenomeRegistry(cli.data, base_model=default_model_path()).add(
        "maya", "perf", src, license="apache-2.0", provenance="trained from maya's turns",
        people=people,
    )  # fmt: skip


def test_publish_writes_the_card_and_tags_the_hub_reads(hub, cli, tmp_path):
    from hub_testkit import TOKEN, front_matter

    _genome_with(cli, tmp_path)
    done = cli("publish", "--persona", "maya", "--adapter", "perf", "--repo", "tester/maya-perf",
               ok=False)  # fmt: skip
    assert "401" in done.stderr or "credentials" in done.stderr.lower()  # no token: refused
    cli("publish", "--persona", "maya", "--adapter", "perf", "--repo", "tester/maya-perf",
        HF_TOKEN=TOKEN)  # fmt: skip
    repo = hub.repos["tester/maya-perf"]
    files = repo.commits[-1].files
    meta = front_matter(files["README.md"])
    assert meta["base_model"] == SMOL and meta["base_model_relation"] == "adapter"
    assert meta["library_name"] == "peft" and meta["license"] == "apache-2.0"
    assert "continuum-skill" in meta["tags"]
    assert meta["continuum"]["file_sha256"] == GenomeRegistry(cli.data).get("maya", "perf").sha256
    assert "trained from maya's turns" in files["README.md"].decode()  # attribution
    assert files["perf.gguf"] == (cli.data / "genome" / "maya" / "perf.gguf").read_bytes()
    assert f"base_model:adapter:{SMOL}" in repo.tags() and "continuum-skill" in repo.tags()
    assert "tester/maya-perf" in cli("browse", "--kind", "skill").stdout


def test_an_adapter_trained_on_peoples_words_is_not_published_unless_they_released_it(
    hub, cli, tmp_path
):
    from hub_testkit import TOKEN

    _genome_with(cli, tmp_path, people=("sam", "ana"))
    args = ("publish", "--persona", "maya", "--adapter", "perf", "--repo", "tester/p")
    done = cli(*args, HF_TOKEN=TOKEN, ok=False)
    assert "ana, sam" in done.stderr and "tester/p" not in hub.repos
    done = cli(*args, "--released-by", "sam", HF_TOKEN=TOKEN, ok=False)
    assert "ana" in done.stderr and "tester/p" not in hub.repos
    cli(*args, "--released-by", "sam,ana", HF_TOKEN=TOKEN)
    assert "perf.gguf" in hub.repos["tester/p"].commits[-1].files


def test_offline_uses_what_was_pulled_and_says_what_is_missing(hub, cli, tmp_path):
    hub.add("alice/perf", {"README.md": card(), "perf.gguf": lora(tmp_path)})
    cli("pull", "alice/perf", "--quiet")
    asked = len(hub.requests)
    out = cli("pull", "alice/perf", HF_HUB_OFFLINE="1").stdout
    assert "already installed" in out and len(hub.requests) == asked  # no request at all
    done = cli("pull", "alice/never", HF_HUB_OFFLINE="1", ok=False)
    assert "offline" in done.stderr and "not pulled before" in done.stderr


def test_the_help_teaches(cli):
    out = cli("--help").stdout
    for word in ("browse", "preview", "pull", "publish", "list", "remove", "hub:OWNER/NAME",
                 "HF_HUB_OFFLINE", "pickle"):  # fmt: skip
        assert word in out, word
    assert "--accept-license" in cli("pull", "--help").stdout
    assert json  # (used by the model tests)


def test_a_second_pull_of_the_same_commit_waits_its_turn(hub, cli, tmp_path):
    from filelock import FileLock

    sha = hub.add("alice/perf", {"README.md": card(), "perf.gguf": lora(tmp_path)})
    staging = PulledStore(cli.data).staging_dir("alice/perf", sha)
    with FileLock(str(staging / ".pull.lock")):  # another pull holds it
        done = cli("pull", "alice/perf", "--quiet", ok=False)
    assert "another pull of alice/perf is running" in done.stderr and installed(cli) == []
    cli("pull", "alice/perf", "--quiet")
    assert len(installed(cli)) == 1
