"""Model cards, as the Hub reads them: YAML front matter (``base_model``,
``base_model_relation: adapter``, ``library_name``, ``license``, ``tags`` — the Hub's
model tree and search come from these) and a body that says what the adapter is, what it
was made for and what it derives from."""

from __future__ import annotations

from typing import Any

import yaml

from continuum.genome.registry import AdapterRecord

KIND_TAG = {"skill": "continuum-skill", "voice": "continuum-voice"}


def adapter_card(
    record: AdapterRecord,
    base_id: str,
    license: str,
    description: str = "",
    backbone_revision: str | None = None,
) -> str:
    meta: dict[str, Any] = {
        "base_model": base_id,
        "base_model_relation": "adapter",
        "library_name": "peft",
        "license": license,
        "tags": ["continuum", KIND_TAG[record.kind], "lora", "gguf"],
        "continuum": {
            "kind": record.kind,
            "rank": record.rank,
            "alpha": record.alpha,
            "targets": list(record.targets),
            "architecture": record.architecture,
            "base_file": record.base_model,
            "base_sha256": record.base_model_sha256,
            "file_sha256": record.sha256,
        },
    }
    if record.kind == "voice":
        meta["continuum"]["codec"] = "wavtokenizer (OuteTTS-style codec voice)"
        meta["continuum"]["backbone"] = base_id
        meta["continuum"]["backbone_revision"] = backbone_revision or record.base_model_sha256
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip()
    what = "voice" if record.kind == "voice" else "skill"
    lines = [
        "---",
        front,
        "---",
        "",
        f"# {record.id}",
        "",
        description or f"A continuum {what} adapter (a GGUF LoRA) for `{base_id}`.",
        "",
        "## Use it",
        "",
        "```",
        f"continuum-hub pull OWNER/NAME --persona PERSONA   # {what}: checked against the base",
        "```",
        "",
        "## Made for",
        "",
        f"- base model: `{base_id}` (file `{record.base_model}`, sha256 "
        f"`{record.base_model_sha256}`)",
        f"- LoRA rank {record.rank}, alpha {record.alpha:g}, on {', '.join(record.targets)}",
    ]
    if record.kind == "voice":
        lines.append(
            f"- voice backbone revision: `{backbone_revision or record.base_model_sha256}`"
        )
    lines += [
        "",
        "## Attribution",
        "",
        f"- derives from: {record.provenance or 'made with continuum'}",
        f"- licence: {license}",
        "",
    ]
    return "\n".join(lines)
