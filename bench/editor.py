"""bench/editor: what a warm editor request costs, through continuum-lsp as an editor runs
it (a subprocess over stdio, pygls's client) on the embedded default model.

One file of real code (this repository's room/turn.py), one persona, one cold request and
N warm ones, each about a different function (the selection, a window around it and the
file's outline). For every request the server's own metrics (prompt / evaluated / reused
tokens from the backend; volatile tokens: the prompt's VOLATILE tier — recent history,
the new message with its code, recalled memories) and the new message alone as the chat
template renders it (the model's tokenizer). The claim: a warm request evaluates at most
volatile + 16 tokens — the persona's identity, the workspace's conventions and the
earlier requests are reused from its KV slot.

    .venv/bin/python bench/editor.py            # ~2 min on 2 cores

Writes bench/results/editor.json (+ .md).
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SOURCE = ROOT / "packages" / "continuum-core" / "src" / "continuum" / "room" / "turn.py"
WARM = 8
QUESTIONS = (
    "What does this do, in two sentences?",
    "Is there a bug here?",
    "How would you test this?",
    "What happens when this fails?",
)


def functions(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) line of each top-level or method definition, 4..40 lines long."""
    starts = [i for i, ln in enumerate(lines) if re.match(r"^\s*(async\s+)?def ", ln)]
    spans = []
    for a, b in zip(starts, [*starts[1:], len(lines)], strict=False):
        if 4 <= b - a <= 40:
            spans.append((a, b - 1))
    return spans


async def main() -> None:
    from llama_cpp import Llama

    from continuum.models import default_model_path
    from continuum_lsp.context import selection_message
    from continuum_lsp.host import plain

    tokenizer = Llama(str(default_model_path()), vocab_only=True, verbose=False)

    def count(text: str) -> int:
        return len(tokenizer.tokenize(text.encode(), add_bos=False, special=True))

    code = SOURCE.read_text()
    lines = code.splitlines()
    spans = functions(lines)[: WARM + 1]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        workspace = tmp_path / "project"
        workspace.mkdir()
        (workspace / "CONVENTIONS.md").write_text(
            "Type every public function. Async code uses anyio, never bare asyncio. "
            "Errors are one line and name the file and field.\n"
        )
        (workspace / "turn.py").write_text(code)
        config = tmp_path / "continuum.toml"
        config.write_text(
            f"[memory]\ndata_dir = {str(tmp_path / 'data')!r}\n"
            f"[personas]\npaths = [{str(ROOT / 'examples' / 'personas')!r}]\nonly = ['maya']\n"
            "[policy]\nreply_max_tokens = 48\n"
            "[hosts.lsp]\nuser_id = 'sam'\nuser_name = 'Sam'\npersona = 'maya'\n"
        )
        client = LanguageClient("bench-editor", "1")
        await client.start_io(
            sys.executable, "-m", "continuum_lsp", "--config", str(config), cwd=str(workspace)
        )
        await client.initialize_async(
            types.InitializeParams(capabilities=types.ClientCapabilities(),
                                   root_uri=workspace.as_uri())
        )  # fmt: skip
        client.initialized(types.InitializedParams())
        uri = (workspace / "turn.py").as_uri()
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(uri=uri, language_id="python", version=1, text=code)
            )
        )
        rows = []
        for i, (first, last) in enumerate(spans):
            question = QUESTIONS[i % len(QUESTIONS)]
            selection = {
                "start": {"line": first, "character": 0},
                "end": {"line": last + 1, "character": 0},
            }
            began = time.monotonic()
            result = plain(
                await client.protocol.send_request_async(
                    "continuum/chat",
                    {"prompt": question, "textDocument": {"uri": uri}, "range": selection},
                )
            )
            wall_ms = (time.monotonic() - began) * 1000
            rng = types.Range(types.Position(first, 0), types.Position(last + 1, 0))
            message = selection_message(question, uri, lines, rng, window=12, max_selection=120)
            rendered = f"<|im_start|>user\nSam: {message}<|im_end|>\n<|im_start|>assistant\n"
            m = result["metrics"]
            row = {
                "request": i,
                "warm": i > 0,
                "lines": f"{first + 1}-{last + 1}",
                "prompt_tokens": m["prompt_tokens"],
                "evaluated_tokens": m["evaluated_tokens"],
                "reused_tokens": m["reused_tokens"],
                "volatile_tokens": m["volatile_tokens"],  # the prompt's VOLATILE tier
                "new_message_tokens": count(rendered),  # the question with its code
                "wall_ms": round(wall_ms, 1),
            }
            row["over_volatile"] = row["evaluated_tokens"] - row["volatile_tokens"]
            rows.append(row)
            print(row, flush=True)
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
    warm = [r for r in rows if r["warm"]]
    result = {
        "model": "SmolLM2-135M-Instruct (embedded default)",
        "source": str(SOURCE.relative_to(ROOT)),
        "warm_requests": len(warm),
        "median_prompt_tokens": statistics.median(r["prompt_tokens"] for r in warm),
        "median_evaluated_tokens": statistics.median(r["evaluated_tokens"] for r in warm),
        "median_volatile_tokens": statistics.median(r["volatile_tokens"] for r in warm),
        "median_new_message_tokens": statistics.median(r["new_message_tokens"] for r in warm),
        "max_over_volatile": max(r["over_volatile"] for r in warm),
        "all_within_volatile_plus_16": all(r["over_volatile"] <= 16 for r in warm),
        "median_reuse_ratio": round(
            statistics.median(r["prompt_tokens"] / max(1, r["evaluated_tokens"]) for r in warm), 2
        ),
        "cold": rows[0],
        "median_warm_wall_ms": statistics.median(r["wall_ms"] for r in warm),
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "editor.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# bench/editor",
        "",
        f"continuum-lsp over stdio, {result['model']}, one persona, {result['source']} open; "
        f"1 cold + {len(warm)} warm `continuum/chat` requests about different functions.",
        "",
        "| request | lines | prompt tok | new message tok | volatile tok | evaluated tok |"
        " evaluated − volatile | wall ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        md.append(
            f"| {r['request']}{' (cold)' if not r['warm'] else ''} | {r['lines']} | "
            f"{r['prompt_tokens']} | {r['new_message_tokens']} | {r['volatile_tokens']} | "
            f"{r['evaluated_tokens']} | "
            f"{r['over_volatile']} | {r['wall_ms']:.0f} |"
        )
    md += [
        "",
        f"Warm: median prompt {result['median_prompt_tokens']} tokens, median evaluated "
        f"{result['median_evaluated_tokens']} (volatile {result['median_volatile_tokens']}), "
        f"max evaluated − volatile {result['max_over_volatile']}; every warm request within "
        f"volatile + 16: {result['all_within_volatile_plus_16']}; median reuse "
        f"{result['median_reuse_ratio']}x.",
    ]
    (RESULTS / "editor.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    asyncio.run(main())
