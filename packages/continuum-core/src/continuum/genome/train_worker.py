"""The training process: ``python -m continuum.genome.train_worker JOB_DIR``.

Run in its own process by :mod:`continuum.genome.train` (torch and llama.cpp never share
one, a crash or an out-of-memory kill costs only the job, and a serving runtime keeps
its memory). Reads ``JOB_DIR/job.json`` (a :class:`TrainJob`), writes the PEFT adapter to
``JOB_DIR/peft/``, the base model's config to ``JOB_DIR/base/`` (what the GGUF converter
reads) and ``JOB_DIR/report.json``.

The base weights: the GGUF the runtime serves, loaded and dequantized by transformers'
GGUF support, so the adapter is trained on the very model it will run on (the Q4 grid
aside). The loss is on the response tokens only, with the end-of-turn token appended.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from continuum.genome.train_spec import TrainJob, TrainReport


def _encode(tok: Any, prompt: str, response: str, max_tokens: int) -> tuple[list[int], list[int]]:
    target = tok(response, add_special_tokens=False).input_ids[: max_tokens // 2]
    target = [*target, tok.eos_token_id]
    context = tok(prompt, add_special_tokens=False).input_ids
    context = context[-(max_tokens - len(target)) :]  # the oldest context goes first
    return context + target, [-100] * len(context) + target


def _mean_loss(model: Any, examples: list[tuple[list[int], list[int]]]) -> float:
    if not examples:
        return math.nan
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for ids, labels in examples:
            out = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
            n = sum(1 for x in labels[1:] if x != -100)
            total += out.loss.item() * n
            count += n
    return total / max(count, 1)


def main(job_dir: Path) -> int:
    job = TrainJob.model_validate_json((job_dir / "job.json").read_text())
    spec = job.spec
    torch.manual_seed(spec.seed)
    rng = random.Random(spec.seed)
    torch.set_num_threads(spec.threads)
    started = time.monotonic()
    base = Path(job.base_model)
    tok = AutoTokenizer.from_pretrained(str(base.parent), gguf_file=base.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(base.parent), gguf_file=base.name, dtype=torch.float32
    )
    loaded_s = time.monotonic() - started
    train = [_encode(tok, p.prompt, p.response, spec.max_tokens) for p in job.train]
    heldout = [_encode(tok, p.prompt, p.response, spec.max_tokens) for p in job.heldout]
    weights = [2 if p.score > 0 else 1 for p in job.train]  # a liked reply counts double
    config = LoraConfig(
        r=spec.rank,
        lora_alpha=spec.alpha,
        target_modules=list(spec.target_modules),
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    before = _mean_loss(peft_model, heldout)  # LoRA B starts at zero: this is the base
    train_before = _mean_loss(peft_model, train)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec.learning_rate, weight_decay=0.0)
    steps = spec.steps or max(1, math.ceil(spec.epochs * sum(weights) / spec.batch_size))
    curve: list[float] = []
    t0 = time.monotonic()
    for _ in range(steps):
        peft_model.train()
        batch = rng.choices(range(len(train)), weights=weights, k=spec.batch_size)
        optimizer.zero_grad()
        loss_sum = 0.0
        for i in batch:
            ids, labels = train[i]
            out = peft_model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
            (out.loss / len(batch)).backward()
            loss_sum += out.loss.item() / len(batch)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        curve.append(round(loss_sum, 4))
    train_s = time.monotonic() - t0
    after = _mean_loss(peft_model, heldout)
    train_after = _mean_loss(peft_model, train)
    peft_model.save_pretrained(str(job_dir / "peft"))
    # what convert_lora_to_gguf.py reads of the base: its config (architecture, shapes)
    model.config.architectures = [type(model).__name__]
    config_dict = model.config.to_dict()
    config_dict.pop("quantization_config", None)
    (job_dir / "base").mkdir(exist_ok=True)
    (job_dir / "base" / "config.json").write_text(json.dumps(config_dict, indent=1))
    tok.save_pretrained(str(job_dir / "base"))
    report = TrainReport(
        train_pairs=len(job.train),
        heldout_pairs=len(job.heldout),
        steps=steps,
        heldout_loss_before=round(before, 4),
        heldout_loss_after=round(after, 4),
        train_loss_before=round(train_before, 4),
        train_loss_after=round(train_after, 4),
        loss_curve=curve,
        load_s=round(loaded_s, 2),
        train_s=round(train_s, 2),
        trainable_params=sum(p.numel() for p in params),
    )
    (job_dir / "report.json").write_text(report.model_dump_json(indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
