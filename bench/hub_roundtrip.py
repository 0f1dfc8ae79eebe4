"""continuum-hub's round trip on a local Hub: publish -> browse -> pull -> activate.

Each step runs as a user runs it (the ``continuum-hub`` console script, its own process,
``HF_ENDPOINT`` at ``hub_testkit.LocalHub``); "activate" loads the pulled adapter into a
persona (the genome registry) and renders one turn under it on the embedded model. Also:
pulling the default model (98 MB) as a ``--kind model`` GGUF, whole and after a Ctrl-C at
a third (what the resumed pull downloaded), and ``huggingface_hub.hf_hub_download`` of the
same file for comparison.

    .venv/bin/python bench/hub_roundtrip.py [--rounds 3]

Writes bench/results/hub_roundtrip.{json,md}."""

from __future__ import annotations

import argparse
import json
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "packages" / "continuum-hub" / "tests"))

from hub_testkit import TOKEN, Cli, LocalHub, cli_path  # noqa: E402

from continuum.backends.embedded import EmbeddedBackend, EmbeddedConfig  # noqa: E402
from continuum.envelope import Envelope, Participant, ReplyTarget, TextPart  # noqa: E402
from continuum.events import ReplyPosted  # noqa: E402
from continuum.genome.registry import GenomeRegistry, resolve_persona  # noqa: E402
from continuum.models import default_model_path  # noqa: E402
from continuum.persona import Persona  # noqa: E402
from continuum.room import Room, RoomPolicy  # noqa: E402
from tests.server.lora_fixture import make_lora  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, (time.perf_counter() - t0) * 1000


async def render(persona: Persona, backend: EmbeddedBackend) -> tuple[tuple[str, ...], float]:
    room = Room("r", [persona], backend, policy=RoomPolicy(cognition="direct", reply_max_tokens=8))
    t0 = time.perf_counter()
    await room.handle(
        Envelope(
            host="bench", room_id="r", author=Participant(id="sam", name="Sam"),
            parts=(TextPart(text="Maya, where would you start profiling?"),),
            reply_to=ReplyTarget(host="bench", channel="r"),
        )
    )  # fmt: skip
    (posted,) = room.events.of_type(ReplyPosted)
    return posted.metrics.adapters, (time.perf_counter() - t0) * 1000


def round_trip(hub: LocalHub, tmp: Path, i: int, model: Path, backend: EmbeddedBackend) -> dict:
    author = Cli(hub, tmp / f"a{i}", tmp / f"a{i}" / "data")
    user = Cli(hub, tmp / f"u{i}", tmp / f"u{i}" / "data")
    for c in (author, user):
        c.cwd.mkdir(parents=True, exist_ok=True)
    lora = make_lora(tmp / f"perf{i}.gguf", seed=10 + i)
    GenomeRegistry(author.data, base_model=model).add(
        "maya", f"perf{i}", lora, license="apache-2.0", provenance="bench"
    )
    repo = f"tester/maya-perf-{i}"
    publish = ("publish", "--persona", "maya", "--adapter", f"perf{i}", "--repo", repo)
    _, publish_ms = timed(author, *publish, HF_TOKEN=TOKEN)
    browsed, browse_ms = timed(user, "browse", "--kind", "skill")
    assert repo in browsed.stdout
    _, pull_ms = timed(user, "pull", repo, "--persona", "maya", "--quiet")
    t0 = time.perf_counter()
    genome = GenomeRegistry(user.data, base_model=model)
    maya = resolve_persona(Persona(id="maya", name="Maya", identity="An engineer."), genome)
    adapters, render_ms = anyio.run(render, maya, backend)
    activate_ms = (time.perf_counter() - t0) * 1000
    assert adapters == (f"maya-perf-{i}",), adapters
    return {
        "publish_ms": round(publish_ms),
        "browse_ms": round(browse_ms),
        "pull_ms": round(pull_ms),
        "activate_ms": round(activate_ms),
        "render_ms": round(render_ms),
        "total_ms": round(publish_ms + browse_ms + pull_ms + activate_ms),
        "adapter_bytes": lora.stat().st_size,
    }


def model_pulls(hub: LocalHub, tmp: Path, model: Path) -> dict:
    data = model.read_bytes()
    repo = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
    hub.add(repo, {"README.md": "---\nlicense: apache-2.0\n---\n", model.name: data})
    whole = Cli(hub, tmp / "m1", tmp / "m1" / "data")
    whole.cwd.mkdir(parents=True)
    _, whole_ms = timed(whole, "pull", repo, "--kind", "model", "--quiet")
    # hf_hub_download of the same file, for comparison (its own process, like the CLI)
    code = (
        "import sys; from huggingface_hub import hf_hub_download; "
        "hf_hub_download(sys.argv[1], sys.argv[2], local_dir=sys.argv[3])"
    )
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code, repo, model.name, str(tmp / "hf")],
        env=whole.env, check=True, capture_output=True,
    )  # fmt: skip
    hf_ms = (time.perf_counter() - t0) * 1000
    # Ctrl-C a third of the way in, then pull again
    cut = Cli(hub, tmp / "m2", tmp / "m2" / "data")
    cut.cwd.mkdir(parents=True)
    hub.stall_after[model.name] = len(data) // 3
    hub.stalled.clear()
    proc = subprocess.Popen(
        [cli_path(), "pull", repo, "--kind", "model", "--quiet"], env=cut.env, cwd=cut.cwd,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    hub.stalled.wait(120)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    ranges_before = len(hub.ranges)
    _, resumed_ms = timed(cut, "pull", repo, "--kind", "model", "--quiet")
    (resumed,) = [r for _, r in hub.ranges[ranges_before:]]
    start = int(resumed.removeprefix("bytes=").rstrip("-"))
    return {
        "model_bytes": len(data),
        "pull_whole_ms": round(whole_ms),
        "hf_hub_download_ms": round(hf_ms),
        "resumed_pull_ms": round(resumed_ms),
        "resumed_from_bytes": start,
        "resumed_downloaded_bytes": len(data) - start,
        "resumed_fraction_downloaded": round((len(data) - start) / len(data), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = default_model_path()
    backend = EmbeddedBackend(model, EmbeddedConfig(live_slots=2, slot_ctx=1024, n_threads=2))
    hub = LocalHub().start()
    try:
        with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
            rounds = [round_trip(hub, Path(tmp), i, model, backend) for i in range(args.rounds)]
            models = model_pulls(hub, Path(tmp), model)
    finally:
        hub.stop()
        backend.close()
    keys = ("publish_ms", "browse_ms", "pull_ms", "activate_ms", "render_ms", "total_ms")
    median = {k: statistics.median(r[k] for r in rounds) for k in keys}
    result = {
        "bench": "hub_roundtrip",
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "python": sys.version.split()[0],
        },
        "rounds": rounds,
        "median": median,
        "model": models,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "hub_roundtrip.json").write_text(json.dumps(result, indent=1) + "\n")
    md = [
        "# continuum-hub round trip on a local Hub",
        "",
        f"`bench/hub_roundtrip.py`, {args.rounds} rounds; each step as a user runs it (the "
        "`continuum-hub` console script in its own process, `HF_ENDPOINT` at the test "
        "tree's LocalHub); activate = the genome resolves the pulled adapter for a persona "
        "and one turn renders under it on SmolLM2-135M (embedded, 2 threads).",
        "",
        "| step | median ms |",
        "|---|---|",
        *[f"| {k.removesuffix('_ms')} | {median[k]:.0f} |" for k in keys],
        "",
        "Adapter: a rank-4 LoRA on attn_q/attn_v of 30 layers, "
        f"{rounds[0]['adapter_bytes']} bytes.",
        "",
        "## A 98 MB GGUF model",
        "",
        "| | ms | downloaded |",
        "|---|---|---|",
        f"| `continuum-hub pull --kind model` (whole) | {models['pull_whole_ms']} | "
        f"{models['model_bytes']} |",
        f"| `hf_hub_download`, same file | {models['hf_hub_download_ms']} | "
        f"{models['model_bytes']} |",
        f"| pull again after Ctrl-C at a third | {models['resumed_pull_ms']} | "
        f"{models['resumed_downloaded_bytes']} ({models['resumed_fraction_downloaded']:.0%}) |",
        "",
        "The pull's extra time over `hf_hub_download` is the checks: the tree, sha256 of the "
        "file, the GGUF header and tensor table, the install.",
        "",
    ]
    (RESULTS / "hub_roundtrip.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
