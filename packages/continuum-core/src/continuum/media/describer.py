"""Images described by a model that can see, for a persona model that cannot.

The media bridge's ``describe`` path: a vision-capable backend (a model with its
projector, e.g. SmolVLM or Gemma 3 with their mmproj on the embedded backend, or a
llama-server started with ``--mmproj``) writes a sentence or two about the image, and the
persona reads "(shared an image: …)". Configured in ``[media]``: ``describer_model`` and
``describer_mmproj``.
"""

from __future__ import annotations

import re

import anyio.from_thread

from continuum.backends.base import (
    Backend,
    CompletionRequest,
    GenerationSettings,
    InferenceMetrics,
    Priority,
    SlotKey,
)
from continuum.envelope import ImagePart
from continuum.errors import ContinuumError
from continuum.media.placeholder import media_id, placeholder

INSTRUCTION = (
    "Describe this image for someone who cannot see it, in one or two plain sentences: "
    "what it shows, and any text in it. No guessing about people's identities."
)


# ChatML (Qwen, SmolLM); SmolVLM: "<|im_start|>User:{image}{instruction}<end_of_utterance>
# \nAssistant:"; Gemma 3: "<start_of_turn>user\n{image}{instruction}<end_of_turn>\n
# <start_of_turn>model\n"
CHATML_TEMPLATE = (
    "<|im_start|>system\nYou describe images.<|im_end|>\n"
    "<|im_start|>user\n{image}\n{instruction}<|im_end|>\n<|im_start|>assistant\n"
)
_MARKER = re.compile(r"<[^<>\s{}]+>")


class ModelDescriber:
    """A :class:`~continuum.media.Describer` backed by a vision-capable model, prompted in
    its chat template (``{image}`` and ``{instruction}`` in it; the template's ``<...>``
    markers are its control tokens). Called in a worker thread by the media bridge."""

    def __init__(
        self, backend: Backend, max_tokens: int = 64, template: str = CHATML_TEMPLATE
    ) -> None:
        if "{image}" not in template or "{instruction}" not in template:
            raise ContinuumError("a describer template needs {image} and {instruction}")
        self.template = template
        self.control = tuple(dict.fromkeys(_MARKER.findall(template)))
        if not backend.capabilities.vision_in:
            raise ContinuumError(
                "the describer's model cannot see: give it its projector (describer_mmproj)"
            )
        self.backend = backend
        self.max_tokens = max_tokens
        self.last_metrics: InferenceMetrics | None = None

    def request(self, image: ImagePart) -> CompletionRequest:
        prompt = self.template.format(image=placeholder(image), instruction=INSTRUCTION)
        return CompletionRequest(
            prompt=prompt,
            control=self.control,
            media={media_id(image): image},
            slot=SlotKey(persona_id="_describer"),  # the instruction prefix stays warm
            settings=GenerationSettings(
                max_tokens=self.max_tokens, temperature=0.0, repeat_penalty=1.1
            ),
            priority=Priority.ANALYSIS,
        )

    def describe(self, image: ImagePart) -> str:
        completion = anyio.from_thread.run(self.backend.complete, self.request(image))
        self.last_metrics = completion.metrics
        return " ".join(completion.text.split()) or "an image the describer could not make out"
