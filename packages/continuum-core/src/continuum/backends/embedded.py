"""EmbeddedBackend: llama.cpp in-process, one model, one warm KV slot per persona.

llama-cpp-python's high-level ``Llama`` keeps a single sequence, so personas taking turns
re-evaluate their whole prompt at every switch. Here the model is loaded once and a
second context is built on it with ``n_seq_max`` sequences and a non-unified KV cache
(each sequence attends only to its own cells). Each (persona, adapter set) owns a
sequence through the :class:`SlotPool`; before a turn the sequence is trimmed to the
longest common token prefix with the new prompt (``llama_memory_seq_rm``) and only the
rest is evaluated.
"""

from __future__ import annotations

import codecs
import ctypes
import functools
import json
import math
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import anyio
import numpy as np

from continuum.backends.base import (
    AdapterUse,
    Backend,
    Completion,
    CompletionRequest,
    FinishReason,
    GenerationSettings,
    InferenceMetrics,
    Priority,
    SlotKey,
)
from continuum.backends.scheduler import InferenceScheduler
from continuum.backends.slots import SlotPool, common_prefix_len
from continuum.compose import CHATML
from continuum.errors import (
    BackendError,
    BackendPreempted,
    BackendTimeout,
    ModelNotInstalled,
    PromptTooLong,
)
from continuum.genome.pager import AdapterPager, GenomeError
from continuum.media.capabilities import ModelCapabilities
from continuum.media.placeholder import MISSING, PLACEHOLDER, placeholders_in, without_media

BACKGROUND_BATCH = 64  # tokens per batch of a background prompt (preemption granularity)

if TYPE_CHECKING:
    from continuum.backends.media_projector import MediaProjector, MediaPrompt

try:
    import llama_cpp as llama
    from llama_cpp import _internals, llama_grammar
    from llama_cpp._logger import set_verbose
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ModelNotInstalled(
        "the embedded backend needs llama-cpp-python; install it with: "
        "pip install 'continuum-core[embedded]' (or run scripts/bootstrap), "
        'or use a server backend (backend.kind = "server" or "openai")'
    ) from exc

SCRATCH = SlotKey(persona_id="__scratch__")


class EmbeddedModel:
    """A GGUF model loaded once per process and shared by every context and persona."""

    _loaded: ClassVar[weakref.WeakValueDictionary[str, EmbeddedModel]] = (
        weakref.WeakValueDictionary()
    )
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path, verbose: bool = False) -> None:
        set_verbose(verbose)
        llama.llama_backend_init()
        params = llama.llama_model_default_params()
        self.path = path
        self._model = _internals.LlamaModel(path_model=str(path), params=params, verbose=verbose)
        self.vocab = llama.llama_model_get_vocab(self._model.model)
        self.n_ctx_train = self._model.n_ctx_train()
        self.description = self._model.desc()
        self._piece_buf = ctypes.create_string_buffer(64)
        self._specials: dict[str, tuple[int, ...]] = {}

    @classmethod
    def load(cls, path: Path | str, verbose: bool = False) -> EmbeddedModel:
        key = str(Path(path).resolve())
        with cls._lock:
            model = cls._loaded.get(key)
            if model is None:
                if not Path(key).is_file():
                    raise ModelNotInstalled(f"model file not found: {key}")
                model = cls(Path(key), verbose=verbose)
                cls._loaded[key] = model
            return model

    @property
    def handle(self) -> llama.llama_model_p:
        return self._model.model

    def tokenize(self, text: str) -> list[int]:
        """Text as text: nothing in it becomes a control token. No BOS is added."""
        return self._model.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def tokenize_prompt(self, prompt: str, control: tuple[str, ...]) -> list[int]:
        """A composed prompt: the template's ``control`` markers become their special
        tokens, every other byte is tokenized as text (see continuum.sanitize)."""
        if not control:
            return self.tokenize(prompt)
        pattern = _control_pattern(control)
        tokens: list[int] = []
        for i, piece in enumerate(pattern.split(prompt)):
            if not piece:
                continue
            if i % 2:  # a marker (the split keeps them at odd indices)
                tokens.extend(self._special(piece))
            else:
                tokens.extend(self.tokenize(piece))
        return tokens

    def _special(self, marker: str) -> tuple[int, ...]:
        ids = self._specials.get(marker)
        if ids is None:
            raw = self._model.tokenize(marker.encode("utf-8"), add_bos=False, special=True)
            ids = self._specials[marker] = tuple(raw)
        return ids

    def piece(self, token: int) -> bytes:
        buf = self._piece_buf
        n = llama.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        if n < 0:  # buffer too small
            buf = self._piece_buf = ctypes.create_string_buffer(-n)
            n = llama.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        return buf.raw[:n]

    def is_eog(self, token: int) -> bool:
        return bool(llama.llama_vocab_is_eog(self.vocab, token))

    @functools.cached_property
    def eog_tokens(self) -> tuple[int, ...]:
        n_vocab = llama.llama_vocab_n_tokens(self.vocab)
        return tuple(t for t in range(n_vocab) if llama.llama_vocab_is_eog(self.vocab, t))


@functools.lru_cache(maxsize=16)
def _control_pattern(control: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("(" + "|".join(re.escape(m) for m in control) + ")")


class _ContextStore:
    """SequenceStore over a llama.cpp context (per-sequence state, never the whole context)."""

    def __init__(
        self, ctx: llama.llama_context_p, memory: llama.llama_memory_t, prefix_copy: str
    ) -> None:
        self.ctx = ctx
        self.memory = memory
        self.prefix_copy = prefix_copy

    def save(self, seq_id: int) -> bytes:
        size = llama.llama_state_seq_get_size(self.ctx, seq_id)
        buf = (ctypes.c_uint8 * size)()
        written = llama.llama_state_seq_get_data(self.ctx, buf, size, seq_id)
        return ctypes.string_at(buf, written)  # a memcpy (slicing a ubyte array is 30x slower)

    def restore(self, seq_id: int, state: bytes) -> bool:
        buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        return llama.llama_state_seq_set_data(self.ctx, buf, len(state), seq_id) == len(state)

    def clear(self, seq_id: int) -> None:
        llama.llama_memory_seq_rm(self.memory, seq_id, -1, -1)

    def trim(self, seq_id: int, n_tokens: int) -> None:
        llama.llama_memory_seq_rm(self.memory, seq_id, n_tokens, -1)

    def copy(self, src: int, dst: int, n_tokens: int) -> bool:
        """Copy the first ``n_tokens`` of ``src`` into (empty) ``dst``. With a non-unified
        KV cache each sequence has its own buffer: ``prefix_copy="state"`` copies the
        source's cells through its sequence state (only what it holds), ``"seq_cp"`` lets
        llama.cpp copy the whole buffer at the next decode; both then trim to the prefix."""
        if self.prefix_copy == "seq_cp":
            llama.llama_memory_seq_cp(self.memory, src, dst, -1, -1)
        elif not self.restore(dst, self.save(src)):
            return False
        self.trim(dst, n_tokens)
        return True


@dataclass(frozen=True)
class EmbeddedConfig:
    live_slots: int = 8  # sequences in the context; more personas hibernate LRU-first
    slot_ctx: int = 4096  # tokens per sequence
    n_threads: int = 0  # 0: all cores
    n_batch: int = 512
    hibernate: bool = True
    hibernate_budget_bytes: int = 2 << 30
    max_queue: int = 64
    # off: on CPU, llama.cpp's flash attention makes decoding 1.6-2.5x and short warm
    # evaluations 2.7-5x slower; it wins evaluations of long new messages at depth (up to
    # 1.2x) and cold prefill (~10 %), yet whole warm turns are faster without it in every
    # case measured (bench/results/attention.md). [backend] flash_attn = true for TTFT on
    # long pastes.
    flash_attn: bool = False
    # a cold slot (a persona in a new room) starts from another slot's shared prefix
    share_prefixes: bool = True
    prefix_copy: str = "state"  # "state" (sequence state copy) | "seq_cp" (llama.cpp copy)
    # LoRA adapters resident at once (the genome's budget); least recently used go first
    adapter_budget_bytes: int = 512 << 20
    # the model's multimodal projector (mmproj GGUF): audio / images go to the model itself
    mmproj: str | None = None


class EmbeddedBackend(Backend):
    """The default backend. ``live_slots=1, hibernate=False`` gives the naive single-sequence
    behaviour (every persona switch re-evaluates the whole prompt), for comparisons."""

    name = "embedded"

    def __init__(
        self, model: EmbeddedModel | Path | str, config: EmbeddedConfig | None = None
    ) -> None:
        self.model = model if isinstance(model, EmbeddedModel) else EmbeddedModel.load(model)
        self.config = config or EmbeddedConfig()
        cfg = self.config
        threads = cfg.n_threads or os.cpu_count() or 1
        params = llama.llama_context_default_params()
        params.n_seq_max = cfg.live_slots
        params.n_ctx = cfg.slot_ctx * cfg.live_slots
        params.n_batch = cfg.n_batch
        params.n_ubatch = cfg.n_batch
        params.n_threads = threads
        params.n_threads_batch = threads
        params.kv_unified = False  # each sequence attends over its own cells only
        params.flash_attn_type = 1 if cfg.flash_attn else 0
        params.no_perf = True
        self._ctx = llama.llama_init_from_model(self.model.handle, params)
        if not self._ctx:
            raise BackendError(f"could not create a llama.cpp context ({cfg})")
        self.slot_ctx = llama.llama_n_ctx_seq(self._ctx)
        self._memory = llama.llama_get_memory(self._ctx)
        self._batch = llama.llama_batch_init(cfg.n_batch, 0, 1)
        self.slots = SlotPool(
            _ContextStore(self._ctx, self._memory, cfg.prefix_copy),
            cfg.live_slots,
            hibernate=cfg.hibernate,
            hibernate_budget_bytes=cfg.hibernate_budget_bytes,
            share_prefixes=cfg.share_prefixes,
        )
        self.scheduler = InferenceScheduler(max_queue=cfg.max_queue)
        # LoRA adapters: loaded once per backend (one per process in a runtime), shared by
        # every slot that uses them, paged under the budget
        self.adapters = AdapterPager(
            cfg.adapter_budget_bytes, load=self._load_adapter, free=llama.llama_adapter_lora_free
        )
        self._active_adapters: tuple[tuple[str, float], ...] = ()
        self.projector: MediaProjector | None = None
        if cfg.mmproj:
            from continuum.backends.media_projector import MediaProjector

            n_vocab = llama.llama_vocab_n_tokens(self.model.vocab)
            self.projector = MediaProjector(self.model.handle, n_vocab, cfg.mmproj, threads)
        self._grammars: dict[str, str] = {}
        self._closed = False
        # The context must be freed before the model it was built on (weakly held, so
        # dropping the backend still frees its context).
        this = weakref.ref(self)
        self.model._model._exit_stack.callback(lambda: (b := this()) and b.close())

    # --- public API ---------------------------------------------------------------------

    @property
    def capabilities(self) -> ModelCapabilities:
        """Read from the model and its projector (mmproj), if one is loaded: without one,
        text in, text out, and audio and images go through the media bridge."""
        proj = self.projector
        return ModelCapabilities(
            context_length=self.model.n_ctx_train,
            audio_in=bool(proj and proj.audio),
            vision_in=bool(proj and proj.vision),
            source="model",
        )

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` costs in a prompt (a template marker in it counts as the one
        control token it becomes; content never holds one — compose escapes them). A media
        placeholder counts as the positions its part takes (an audio clip: hundreds), so
        the history window makes room for media as for words."""
        ids = placeholders_in(text)
        if not ids:
            return len(self.model.tokenize_prompt(text, CHATML.markers))
        words = len(self.model.tokenize_prompt(PLACEHOLDER.sub("", text), CHATML.markers))
        if self.projector is None:
            return words + len(ids) * self.count_tokens(MISSING)
        return words + sum(self.projector.size_of(i) for i in ids)

    async def complete(
        self, request: CompletionRequest, on_token: Callable[[str], None] | None = None
    ) -> Completion:
        if self._closed:
            raise BackendError("backend is closed")
        queued = time.perf_counter()
        cancel = threading.Event()
        # background work gives the model back to a turn that starts waiting (its decode
        # loop stops at the next batch); a turn itself runs to its end
        preempt = cancel if request.priority >= Priority.BACKGROUND else None
        async with self.scheduler.turn(request.priority, request.queue_timeout_s, preempt):
            queue_ms = (time.perf_counter() - queued) * 1000

            def emit(text: str) -> None:
                if on_token is not None:
                    anyio.from_thread.run_sync(on_token, text)

            def work() -> Completion:
                return self._generate(request, cancel, emit, queue_ms)

            try:
                with anyio.fail_after(request.timeout_s):
                    done = await _run_cancellable(work, cancel)
            except TimeoutError as exc:
                raise BackendTimeout(f"generation exceeded {request.timeout_s}s") from exc
            if preempt is not None and preempt.is_set() and done.finish_reason == "cancelled":
                raise BackendPreempted("a turn needed the model; run this again later")
            return done

    async def preload(self, adapters: Sequence[AdapterUse]) -> float:
        """Page adapters in ahead of the requests that will run under them (a voice LoRA
        before a turn's first audio); the milliseconds it took. They stay resident under
        the budget like any other, and the next request under them is a pager hit."""
        async with self.scheduler.turn(Priority.ANALYSIS):

            def work() -> float:
                started = time.perf_counter()
                # nothing may stay set on the context that the pager could free
                llama.llama_set_adapters_lora(self._ctx, None, 0, None)
                self._active_adapters = ()
                self.adapters.acquire(list(adapters))
                return (time.perf_counter() - started) * 1000

            return await anyio.to_thread.run_sync(work)

    async def forget_slot(self, key: SlotKey) -> None:
        """Drop a slot's KV (its next turn runs cold). Waits for the context to be free."""
        async with self.scheduler.turn(Priority.ANALYSIS):
            self.slots.forget(key)

    def slot_tokens(self, key: SlotKey) -> int:
        """Tokens currently cached for a slot (0 if it is not live)."""
        slot = self.slots.peek(key)
        return len(slot.tokens) if slot else 0

    async def aclose(self) -> None:
        async with self.scheduler.turn(0):
            self.close()

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        if not getattr(self, "_ctx", None):
            return
        if not self._closed:
            self._closed = True
            llama.llama_set_adapters_lora(self._ctx, None, 0, None)
            self.adapters.clear()
            llama.llama_batch_free(self._batch)
            if self.projector is not None:
                self.projector.close()
            llama.llama_free(self._ctx)

    # --- LoRA adapters (worker thread) ------------------------------------------------------

    def _load_adapter(self, use: AdapterUse) -> llama.llama_adapter_lora_p:
        handle = llama.llama_adapter_lora_init(self.model.handle, str(use.path).encode())
        if not handle:
            raise GenomeError(
                f"adapter {use.id!r} ({use.path}) does not load on {self.model.path.name}: "
                "not a LoRA GGUF for this base model"
            )
        return handle

    def _use_adapters(self, request: CompletionRequest, key: SlotKey) -> float:
        """Make the context run under exactly the request's adapters (paging them in);
        returns the milliseconds it took. KV is keyed by adapter set (the slot key), so a
        slot never continues under another set."""
        wanted = tuple(sorted((u.id, u.scale) for u in request.adapters))
        if tuple(sorted(u.id for u in request.adapters)) != key.adapters and key != SCRATCH:
            raise BackendError(
                f"request adapters {[u.id for u in request.adapters]} do not match its slot "
                f"{key.adapters}",
                retryable=False,
            )
        if wanted == self._active_adapters:
            if request.adapters:
                self.adapters.acquire(request.adapters)  # a hit: keeps them recent
            return 0.0
        started = time.perf_counter()
        # nothing may stay set on the context that the pager could free while loading
        llama.llama_set_adapters_lora(self._ctx, None, 0, None)
        self._active_adapters = ()
        if request.adapters:
            handles = self.adapters.acquire(request.adapters)
            n = len(handles)
            arr = (llama.llama_adapter_lora_p_ctypes * n)(*handles)
            scales = (ctypes.c_float * n)(*(u.scale for u in request.adapters))
            if llama.llama_set_adapters_lora(self._ctx, arr, n, scales) != 0:
                raise BackendError("llama.cpp refused the adapter set", retryable=False)
        self._active_adapters = wanted
        return (time.perf_counter() - started) * 1000

    # --- the decode loop (runs in a worker thread, one at a time) -------------------------

    def _decode(
        self,
        tokens: list[int],
        seq_id: int,
        pos0: int,
        cancel: threading.Event,
        record: list[int],
        step: int | None = None,
    ) -> bool:
        """Evaluate tokens at positions pos0.. of sequence seq_id (logits for the last only),
        appending each evaluated chunk to ``record``, ``step`` tokens a batch (default
        n_batch). False if cancelled midway."""
        batch = self._batch
        step = min(step or self.config.n_batch, self.config.n_batch)
        for start in range(0, len(tokens), step):
            if cancel.is_set():
                return False
            chunk = tokens[start : start + step]
            batch.n_tokens = len(chunk)
            for i, tok in enumerate(chunk):
                batch.token[i] = tok
                batch.pos[i] = pos0 + start + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = seq_id
                batch.logits[i] = 0
            batch.logits[len(chunk) - 1] = 1
            rc = llama.llama_decode(self._ctx, batch)
            if rc != 0:
                raise BackendError(f"llama_decode failed with code {rc}")
            record.extend(chunk)
        return True

    def _decode_media(
        self,
        tokens: list[int],
        media: MediaPrompt,
        reuse: int,
        seq_id: int,
        cancel: threading.Event,
        record: list[int],
    ) -> tuple[bool, int, float]:
        """Evaluate a prompt with media from ``reuse`` on: text runs through
        :meth:`_decode`, each media chunk through the projector (its pseudo tokens are
        recorded for it). Returns (completed, media positions evaluated, media ms)."""
        assert self.projector is not None
        pos, media_tokens, media_s = reuse, 0, 0.0
        for span in media.spans:
            if span.start + span.n <= pos:
                continue  # reused from the slot
            if pos < span.start and not self._decode(
                tokens[pos : span.start], seq_id, pos, cancel, record
            ):
                return False, media_tokens, media_s * 1000
            if cancel.is_set():
                return False, media_tokens, media_s * 1000
            t0 = time.perf_counter()
            last = span.start + span.n == len(tokens)
            self.projector.eval(self._ctx, span, span.start, seq_id, self.config.n_batch, last)
            media_s += time.perf_counter() - t0
            record.extend(tokens[span.start : span.start + span.n])
            media_tokens += span.n
            pos = span.start + span.n
        if pos < len(tokens) and not self._decode(tokens[pos:], seq_id, pos, cancel, record):
            return False, media_tokens, media_s * 1000
        return True, media_tokens, media_s * 1000

    def _gbnf(self, json_schema: dict) -> str:
        key = json.dumps(json_schema, sort_keys=True)
        gbnf = self._grammars.get(key)
        if gbnf is None:
            gbnf = self._grammars[key] = llama_grammar.json_schema_to_gbnf(key)
        return gbnf

    def _sampler(
        self, settings: GenerationSettings, json_schema: dict | None, ban_eog: bool = False
    ) -> _internals.LlamaSampler:
        sampler = _internals.LlamaSampler()
        if ban_eog:
            n_vocab = llama.llama_vocab_n_tokens(self.model.vocab)
            sampler.add_logit_bias(n_vocab, dict.fromkeys(self.model.eog_tokens, -math.inf))
        if json_schema is not None:
            gbnf = self._gbnf(json_schema)
            sampler.add_grammar(self.model._model, llama_grammar.LlamaGrammar.from_string(gbnf))
        if settings.repeat_penalty and settings.repeat_penalty != 1.0:
            sampler.add_penalties(0, 64, settings.repeat_penalty, 0.0, 0.0)
        if settings.temperature <= 0:
            sampler.add_greedy()
        else:
            if settings.top_k:
                sampler.add_top_k(settings.top_k)
            sampler.add_top_p(settings.top_p, 1)
            sampler.add_temp(settings.temperature)
            seed = settings.seed if settings.seed is not None else llama.LLAMA_DEFAULT_SEED
            sampler.add_dist(seed)
        return sampler

    def _generate(
        self,
        request: CompletionRequest,
        cancel: threading.Event,
        emit: Callable[[str], None],
        queue_ms: float,
    ) -> Completion:
        started = time.perf_counter()
        key = request.slot or SCRATCH
        adapter_ms = self._use_adapters(request, key)
        media = None
        if not placeholders_in(request.prompt):
            tokens = self.model.tokenize_prompt(request.prompt, request.control)
        elif self.projector is None:  # a model without a projector is told plainly
            tokens = self.model.tokenize_prompt(without_media(request.prompt), request.control)
        else:
            media = self.projector.prompt(
                request.prompt,
                request.media,
                lambda text: self.model.tokenize_prompt(text, request.control),
                MISSING,
            )
            tokens = media.tokens
        try:
            return self._generate_tokens(
                request, tokens, media, key, cancel, emit, queue_ms, started, adapter_ms
            )
        finally:
            if media is not None:
                media.close()

    def _generate_tokens(
        self,
        request: CompletionRequest,
        tokens: list[int],
        media: MediaPrompt | None,
        key: SlotKey,
        cancel: threading.Event,
        emit: Callable[[str], None],
        queue_ms: float,
        started: float,
        adapter_ms: float,
    ) -> Completion:
        settings = request.settings
        slot, restored = self.slots.acquire(key, tokens if key != SCRATCH else None)
        if len(tokens) + settings.max_tokens > self.slot_ctx:
            raise PromptTooLong(
                f"prompt of {len(tokens)} tokens + {settings.max_tokens} to generate exceeds "
                f"the slot context of {self.slot_ctx} tokens"
            )
        if not tokens:
            raise BackendError("empty prompt")

        # Keep the longest common prefix; evaluate at least the last token (for logits).
        reuse = min(common_prefix_len(slot.tokens, tokens), len(tokens) - 1)
        if media is not None:
            reuse = media.align(reuse)  # never from the middle of an image or a clip
        llama.llama_memory_seq_rm(self._memory, slot.seq_id, reuse, -1)
        del slot.tokens[reuse:]

        finish: FinishReason = "stop"
        generated = 0
        ttft_ms = 0.0
        first_at = last_at = started
        out = _StopFilter(settings.stop, emit)
        media_tokens, media_ms = 0, 0.0
        if media is None:
            # background prompts go in small batches: a turn that starts waiting gets the
            # model after at most one of them
            step = BACKGROUND_BATCH if request.priority >= Priority.BACKGROUND else None
            completed = self._decode(
                tokens[reuse:], slot.seq_id, reuse, cancel, slot.tokens, step=step
            )
        else:
            completed, media_tokens, media_ms = self._decode_media(
                tokens, media, reuse, slot.seq_id, cancel, slot.tokens
            )
        prompt_done = time.perf_counter()
        if not completed:
            finish = "cancelled"
        else:
            fast = None
            if (
                request.json_schema is not None
                and settings.temperature <= 0
                and settings.repeat_penalty in (0.0, 1.0)
            ):
                fast = _GreedyGrammar(self.model, self._gbnf(request.json_schema))
            sampler = self._sampler(settings, None if fast else request.json_schema)
            early = None
            if settings.min_tokens and request.json_schema is None:
                early = self._sampler(settings, None, ban_eog=True)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            try:
                while True:
                    if cancel.is_set():
                        finish = "cancelled"
                        break
                    if generated >= settings.max_tokens or len(slot.tokens) >= self.slot_ctx:
                        finish = "length"
                        break
                    if fast is not None:
                        tok = fast.sample(self._ctx)
                    else:
                        use_early = early is not None and generated < settings.min_tokens
                        active = early if use_early else sampler
                        tok = llama.llama_sampler_sample(active.sampler, self._ctx, -1)
                    last_at = time.perf_counter()
                    if generated == 0:
                        ttft_ms = (last_at - started) * 1000
                        first_at = last_at
                    if self.model.is_eog(tok):
                        break
                    generated += 1
                    if out.feed(decoder.decode(self.model.piece(tok))):
                        break  # a stop string
                    if not self._decode([tok], slot.seq_id, len(slot.tokens), cancel, slot.tokens):
                        finish = "cancelled"
                        break
            finally:
                sampler.close()
                if early is not None:
                    early.close()
                if fast is not None:
                    fast.close()
            out.flush()
        done = time.perf_counter()
        if ttft_ms == 0.0:
            ttft_ms = (prompt_done - started) * 1000
        decode_s = last_at - first_at
        metrics = InferenceMetrics(
            backend=self.name,
            slot_id=slot.seq_id,
            prompt_tokens=len(tokens),
            reused_tokens=reuse,
            evaluated_tokens=len(tokens) - reuse,
            generated_tokens=generated,
            queue_ms=queue_ms,
            prompt_eval_ms=(prompt_done - started) * 1000,
            ttft_ms=ttft_ms,
            decode_tokens_per_s=(generated - 1) / decode_s if generated > 1 and decode_s else 0.0,
            total_ms=(done - started) * 1000 + queue_ms,
            restored_from_hibernation=restored,
            adapters=tuple(u.id for u in request.adapters),
            adapter_ms=adapter_ms,
            media_tokens=media_tokens,
            media_ms=media_ms,
        )
        metrics.log()
        return Completion(text=out.text, finish_reason=finish, metrics=metrics)


_TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])


class _GreedyGrammar:
    """Greedy decoding under a grammar that checks only the best candidates.

    Applying a grammar to the whole vocabulary every token (a grammar sampler first in
    the chain) costs more than the model on a small model; llama.cpp's own common
    sampler samples first and constrains on rejection. Here: the ``top`` highest logits
    are checked in order and the first the grammar admits wins — the same token greedy
    decoding over the fully constrained vocabulary would pick — with the whole
    vocabulary as the fallback when none of them fits."""

    def __init__(self, model: EmbeddedModel, gbnf: str, top: int = 64) -> None:
        self.grammar = llama.llama_sampler_init_grammar(model.vocab, gbnf.encode(), b"root")
        if not self.grammar:
            raise BackendError("invalid grammar")
        self.n_vocab = llama.llama_vocab_n_tokens(model.vocab)
        self.top = min(top, self.n_vocab)
        self._buf = (llama.llama_token_data * self.n_vocab)()
        self._view = np.frombuffer(self._buf, dtype=_TOKEN_DATA)

    def sample(self, ctx: llama.llama_context_p) -> int:
        ptr = llama.llama_get_logits_ith(ctx, -1)
        logits = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
        best = np.argpartition(logits, -self.top)[-self.top :]
        best = best[np.argsort(-logits[best], kind="stable")]
        tok = self._first_admitted(best, logits)
        if tok is None:
            tok = self._first_admitted(np.argsort(-logits, kind="stable"), logits)
        if tok is None:
            raise BackendError("the grammar admits no token here")
        llama.llama_sampler_accept(self.grammar, tok)
        return tok

    def _first_admitted(self, ids: np.ndarray, logits: np.ndarray) -> int | None:
        n = len(ids)
        view = self._view[:n]
        view["id"] = ids
        view["logit"] = logits[ids]
        view["p"] = 0.0
        arr = llama.llama_token_data_array(
            data=ctypes.cast(self._buf, llama.llama_token_data_p), size=n, selected=-1, sorted=True
        )
        llama.llama_sampler_apply(self.grammar, ctypes.byref(arr))
        admitted = np.flatnonzero(np.isfinite(view["logit"]))
        return int(view["id"][admitted[0]]) if len(admitted) else None

    def close(self) -> None:
        if self.grammar:
            llama.llama_sampler_free(self.grammar)
            self.grammar = None


class _StopFilter:
    """Accumulates generated text, emits it as it comes, and cuts at the first stop string
    (holding back a tail that could be the start of one)."""

    def __init__(self, stops: tuple[str, ...], emit: Callable[[str], None]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.emit = emit
        self.text = ""
        self.emitted = 0

    def feed(self, delta: str) -> bool:
        self.text += delta
        hits = [i for i in (self.text.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.text = self.text[: min(hits)]
            self.flush()
            return True
        hold = max(
            (k for s in self.stops for k in range(1, len(s)) if self.text.endswith(s[:k])),
            default=0,
        )
        safe = len(self.text) - hold
        if safe > self.emitted:
            self.emit(self.text[self.emitted : safe])
            self.emitted = safe
        return False

    def flush(self) -> None:
        if len(self.text) > self.emitted:
            self.emit(self.text[self.emitted :])
            self.emitted = len(self.text)


async def _run_cancellable(work: Callable[[], Completion], cancel: threading.Event) -> Completion:
    """Run blocking ``work`` in a thread. If the caller is cancelled, set ``cancel`` so the
    decode loop stops at its next token, and wait for it: the slot stays consistent."""
    box: dict[str, Completion | BaseException] = {}
    done = anyio.Event()

    async def runner() -> None:
        try:
            box["result"] = await anyio.to_thread.run_sync(work)
        except Exception as exc:  # re-raised below, outside the task group
            box["error"] = exc
        finally:
            done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(runner)
        try:
            await done.wait()
        except anyio.get_cancelled_exc_class():
            cancel.set()
            raise
    if "error" in box:
        raise box["error"]
    result = box["result"]
    assert isinstance(result, Completion)
    return result
