"""Audio and images into the embedded model itself: llama.cpp's mtmd with the model's
multimodal projector (an ``mmproj`` GGUF: Ultravox, Qwen2-Audio, Voxtral for audio;
SmolVLM, Gemma 3, Qwen2.5-VL ... for images).

A prompt holds placeholders where media belong (:mod:`continuum.media.placeholder`). Each
part is turned into mtmd chunks: the model's own wrapper tokens (``<|audio_bos|>`` ...)
as text tokens, and the embeddings as a media chunk. In the slot's token list a media
chunk is stood for by *pseudo tokens* — negative ids derived from the part's hash — one
per position it fills, so the usual longest-common-prefix reuse works across media: the
same audio in the same place is reused, different audio is not, and the stable prefix
before it is never touched.
"""

from __future__ import annotations

import ctypes
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import llama_cpp as llama
from llama_cpp import mtmd_cpp as mtmd

from continuum.errors import BackendError, MediaRejected
from continuum.media.image_size import too_large
from continuum.media.placeholder import PLACEHOLDER, MediaPart

MARKER = "<__media__>"


@dataclass
class MediaSpan:
    """One media chunk at ``start`` of the flattened prompt, ``n`` positions long."""

    start: int
    n: int
    chunk: int  # mtmd_input_chunk_p (owned by the prompt's chunk lists)


@dataclass
class MediaPrompt:
    """A prompt with media, flattened: text tokens and pseudo tokens, and the spans."""

    tokens: list[int]
    spans: list[MediaSpan]
    _owned: list[int] = field(default_factory=list)  # mtmd_input_chunks_p to free

    def close(self) -> None:
        for chunks in self._owned:
            mtmd.mtmd_input_chunks_free(chunks)
        self._owned.clear()

    def align(self, reuse: int) -> int:
        """Reuse may not end inside a media chunk: back it off to the chunk's start."""
        for span in self.spans:
            if span.start < reuse < span.start + span.n:
                return span.start
        return reuse


def _pseudo_tokens(media_id: str, index: int, n: int) -> list[int]:
    seed = int(hashlib.sha256(f"{media_id}:{index}".encode()).hexdigest()[:7], 16)
    return [-(1 + (seed + i) % 0x3FFFFFFF) for i in range(n)]


class MediaProjector:
    def __init__(
        self, model_handle: llama.llama_model_p, n_vocab: int, path: Path | str, threads: int
    ) -> None:
        self.n_vocab = n_vocab
        path = Path(path)
        if not path.is_file():
            raise BackendError(f"mmproj {path} does not exist")
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = False
        params.n_threads = threads
        params.print_timings = False
        params.media_marker = MARKER.encode()
        self._ctx = mtmd.mtmd_init_from_file(str(path).encode(), model_handle, params)
        if not self._ctx:
            raise BackendError(
                f"{path}: llama.cpp could not load this projector for the model (is it the "
                "mmproj GGUF made for this model, with its embedding size?)"
            )
        if mtmd.mtmd_decode_use_mrope(self._ctx):
            self.close()
            raise BackendError(
                f"{path}: a projector with M-RoPE positions (Qwen2-VL style) is not supported "
                "by the embedded backend yet; use llama-server with --mmproj"
            )
        self.path = path
        self.audio = bool(mtmd.mtmd_support_audio(self._ctx))
        self.vision = bool(mtmd.mtmd_support_vision(self._ctx))
        self.sample_rate = int(mtmd.mtmd_get_audio_sample_rate(self._ctx)) if self.audio else 0
        # positions each part took (by media id), for prompt budgets before it is evaluated
        self._sizes: OrderedDict[str, int] = OrderedDict()
        self._typical = 0

    def size_of(self, media_id: str) -> int:
        """Positions a part takes in a prompt: known once it was tokenized; before that,
        the largest seen so far (a 30 s audio window is 750 for Whisper-style encoders)."""
        return self._sizes.get(media_id) or self._typical or (750 if self.audio else 256)

    def _remember(self, media_id: str, n: int) -> None:
        self._sizes[media_id] = n
        self._sizes.move_to_end(media_id)
        while len(self._sizes) > 4096:
            self._sizes.popitem(last=False)
        self._typical = max(self._typical, n)

    def close(self) -> None:
        if self._ctx:
            mtmd.mtmd_free(self._ctx)
            self._ctx = None

    def _chunks(self, part: MediaPart) -> int:
        kind_ok = self.audio if part.type == "audio" else self.vision
        if not kind_ok:
            raise BackendError(f"this model's projector takes no {part.type}")
        data = part.data or b""
        if part.type == "image" and (why := too_large(data)):
            raise BackendError(f"this image is not decoded: {why}")
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        bitmap = mtmd.mtmd_helper_bitmap_init_from_buf(self._ctx, buf, len(data), False)
        if not bitmap:
            raise BackendError(f"llama.cpp could not decode this {part.type} ({part.mime})")
        chunks = mtmd.mtmd_input_chunks_init()
        try:
            text = mtmd.mtmd_input_text()
            raw = MARKER.encode()
            text.text, text.text_len = raw, len(raw)
            text.add_special, text.parse_special = False, True
            bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
            rc = mtmd.mtmd_tokenize(self._ctx, chunks, ctypes.byref(text), bitmaps, 1)
        finally:
            mtmd.mtmd_bitmap_free(bitmap)
        if rc != 0:
            mtmd.mtmd_input_chunks_free(chunks)
            raise BackendError(f"llama.cpp could not tokenize this {part.type} (code {rc})")
        return chunks

    def prompt(
        self,
        prompt: str,
        media: dict[str, MediaPart],
        tokenize: Callable[[str], list[int]],
        missing: str,
    ) -> MediaPrompt:
        """Flatten ``prompt``: text pieces through ``tokenize``, each placeholder through
        mtmd (a placeholder whose part the request lacks is said as ``missing``)."""
        out = MediaPrompt(tokens=[], spans=[])
        try:
            pending_text = ""
            pieces = PLACEHOLDER.split(prompt)  # text, id, text, id, ..., text
            for i, piece in enumerate(pieces):
                if i % 2 == 0:
                    pending_text += piece
                    continue
                part = media.get(piece)
                if part is None or not part.data:
                    pending_text += missing
                    continue
                if pending_text:
                    out.tokens.extend(tokenize(pending_text))
                    pending_text = ""
                try:
                    chunks = self._chunks(part)
                except BackendError as exc:
                    raise MediaRejected(str(exc), (piece,)) from exc
                out._owned.append(chunks)
                before = len(out.tokens)
                for c in range(mtmd.mtmd_input_chunks_size(chunks)):
                    chunk = mtmd.mtmd_input_chunks_get(chunks, c)
                    if mtmd.mtmd_input_chunk_get_type(chunk) == 0:  # text
                        n = ctypes.c_size_t(0)
                        ids = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
                        # the projector's wrapper text (<fake_token_around_image> ...): a
                        # token the text model lacks comes back as -1 and is left out
                        wrapper = [ids[k] for k in range(n.value)]
                        out.tokens.extend(t for t in wrapper if 0 <= t < self.n_vocab)
                        continue
                    n_tokens = mtmd.mtmd_input_chunk_get_n_tokens(chunk)
                    if mtmd.mtmd_input_chunk_get_n_pos(chunk) != n_tokens:
                        raise BackendError("a media chunk whose positions differ from its tokens")
                    out.spans.append(MediaSpan(len(out.tokens), n_tokens, chunk))
                    out.tokens.extend(_pseudo_tokens(piece, c, n_tokens))
                self._remember(piece, len(out.tokens) - before)
            if pending_text:
                out.tokens.extend(tokenize(pending_text))
        except BaseException:
            out.close()
            raise
        return out

    def eval(
        self, lctx: llama.llama_context_p, span: MediaSpan, pos: int, seq_id: int, n_batch: int,
        logits_last: bool,
    ) -> None:  # fmt: skip
        """Encode one media chunk and decode its embeddings at ``pos`` of ``seq_id``."""
        new_pos = llama.llama_pos(0)
        rc = mtmd.mtmd_helper_eval_chunk_single(
            self._ctx, lctx, span.chunk, pos, seq_id, n_batch, logits_last, ctypes.byref(new_pos)
        )
        if rc != 0:
            raise BackendError(f"llama.cpp could not evaluate a media chunk (code {rc})")
        if new_pos.value != pos + span.n:
            raise BackendError("a media chunk filled an unexpected number of positions")
