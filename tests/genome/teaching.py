"""A habit to teach a persona from its own turns (shared by the learning test and
bench/genome_train): geography questions answered in a form the base model never uses
("Ahoy! The capital of X is Y, matey."), supplied by a scripted teacher through real
rooms."""

from __future__ import annotations

import re
from collections.abc import Callable

from continuum.backends.base import CompletionRequest
from continuum.envelope import Envelope, Participant, ReplyTarget, TextPart
from continuum.persona import LearningSpec, Persona
from continuum.room import RoomPolicy

TAUGHT = {
    "France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Spain": "Madrid",
    "Germany": "Berlin", "Egypt": "Cairo", "Canada": "Ottawa", "Peru": "Lima",
    "Kenya": "Nairobi", "Norway": "Oslo", "Chile": "Santiago", "Poland": "Warsaw",
    "Austria": "Vienna", "Hungary": "Budapest", "Ireland": "Dublin", "Finland": "Helsinki",
    "Denmark": "Copenhagen", "Mexico": "Mexico City", "Russia": "Moscow", "China": "Beijing",
    "India": "New Delhi", "Thailand": "Bangkok", "Argentina": "Buenos Aires", "Iran": "Tehran",
}  # fmt: skip
UNSEEN = {
    "Greece": "Athens", "Cuba": "Havana", "Sweden": "Stockholm", "Portugal": "Lisbon",
    "Belgium": "Brussels", "Turkey": "Ankara", "Vietnam": "Hanoi", "Colombia": "Bogota",
}  # fmt: skip
POLICY = RoomPolicy(cognition="direct", reply_max_tokens=24)


def persona(learning: bool) -> Persona:
    return Persona(
        id="maya",
        name="Maya",
        identity="Maya answers geography questions in one sentence.",
        learning=LearningSpec(enabled=learning, domain="geography"),
    )


def taught(country: str, capital: str) -> str:
    return f"Ahoy! The capital of {country} is {capital}, matey."


def question(room: str, country: str, who: str) -> Envelope:
    return Envelope(
        host="t",
        room_id=room,
        author=Participant(id=who, name=who.title()),
        parts=(TextPart(text=f"What is the capital of {country}?"),),
        reply_to=ReplyTarget(host="t", channel=room),
    )


def teacher() -> Callable[[CompletionRequest], str]:
    """A scripted backend's reply: the taught form for the question in the prompt."""

    def reply(request: CompletionRequest) -> str:
        country = re.findall(r"capital of ([\w ]+)\?", request.prompt)[-1]
        return taught(country, (TAUGHT | UNSEEN)[country])

    return reply
