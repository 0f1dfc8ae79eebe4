"""The persona profile: hobbies, tastes, medium-term reflections and a roster of contacts.

The model proposes a :class:`ProfileUpdate` (grammar-constrained JSON); ``merge`` validates
it against the current profile and rejects malformed or contradictory updates whole, so a
bad update never corrupts the profile. The condensed snapshot that enters prompts (in the
SEMI_STABLE tier) buckets sentiment and caps lists, so it only changes on meaningful
change — not on every small sentiment nudge.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from continuum.errors import ContinuumError
from continuum.memory.atomic import atomic_write_bytes
from continuum.memory.crypto import Cipher
from continuum.memory.journal import check_persona_id

log = logging.getLogger("continuum.memory.profile")

MAX_ITEMS = 24
MAX_REFLECTIONS = 8
MAX_NOTES = 6


class ProfileUpdateRejected(ContinuumError):
    """A structured profile update was malformed or contradicted itself or the profile."""


class Contact(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    person_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    host_ids: tuple[str, ...] = ()  # e.g. "slack:U123", "discord:42" — one person, many hosts
    sentiment: float = Field(default=0.0, ge=-1.0, le=1.0)
    notes: tuple[str, ...] = ()


class PersonaProfile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    persona_id: str
    version: int = 0
    hobbies: tuple[str, ...] = ()
    tastes: tuple[str, ...] = ()
    reflections: tuple[str, ...] = ()
    contacts: dict[str, Contact] = Field(default_factory=dict)


class ContactUpdate(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    person_id: str = Field(min_length=1, max_length=120)
    name: str | None = Field(default=None, max_length=80)
    host_id: str | None = Field(default=None, max_length=120)
    sentiment_delta: float = Field(default=0.0, ge=-0.5, le=0.5)
    note: str | None = Field(default=None, max_length=240)


class ProfileUpdate(BaseModel):
    """What the model may change in one go (its JSON schema constrains generation)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    add_hobbies: list[str] = Field(default_factory=list, max_length=5)
    remove_hobbies: list[str] = Field(default_factory=list, max_length=5)
    add_tastes: list[str] = Field(default_factory=list, max_length=5)
    remove_tastes: list[str] = Field(default_factory=list, max_length=5)
    reflection: str | None = Field(default=None, max_length=400)
    contacts: list[ContactUpdate] = Field(default_factory=list, max_length=8)

    @property
    def is_empty(self) -> bool:
        return not (
            self.add_hobbies
            or self.remove_hobbies
            or self.add_tastes
            or self.remove_tastes
            or self.reflection
            or self.contacts
        )


def _norm(items: list[str]) -> list[str]:
    return [i.strip() for i in items if i and i.strip()]


def _apply_list(
    current: tuple[str, ...], add: list[str], remove: list[str], what: str
) -> tuple[str, ...]:
    add, remove = _norm(add), _norm(remove)
    lower_current = {c.lower() for c in current}
    both = {a.lower() for a in add} & {r.lower() for r in remove}
    if both:
        raise ProfileUpdateRejected(f"{what}: adds and removes {sorted(both)} at once")
    missing = [r for r in remove if r.lower() not in lower_current]
    if missing:
        raise ProfileUpdateRejected(f"{what}: cannot remove {missing}: not in the profile")
    kept = [c for c in current if c.lower() not in {r.lower() for r in remove}]
    for item in add:
        if item.lower() not in {k.lower() for k in kept}:
            kept.append(item)
    return tuple(kept[-MAX_ITEMS:])


def merge(profile: PersonaProfile, update: ProfileUpdate) -> PersonaProfile:
    """Validated merge; raises ProfileUpdateRejected and leaves ``profile`` untouched."""
    hobbies = _apply_list(profile.hobbies, update.add_hobbies, update.remove_hobbies, "hobbies")
    tastes = _apply_list(profile.tastes, update.add_tastes, update.remove_tastes, "tastes")
    reflections = profile.reflections
    if update.reflection and update.reflection.strip():
        reflections = (*reflections, update.reflection.strip())[-MAX_REFLECTIONS:]
    contacts = dict(profile.contacts)
    seen: set[str] = set()
    for cu in update.contacts:
        if cu.person_id in seen:
            raise ProfileUpdateRejected(f"contact {cu.person_id!r} updated twice in one update")
        seen.add(cu.person_id)
        old = contacts.get(cu.person_id)
        if old is None and not cu.name:
            raise ProfileUpdateRejected(f"new contact {cu.person_id!r} needs a name")
        base = old or Contact(person_id=cu.person_id, name=cu.name or cu.person_id)
        host_ids = base.host_ids
        if cu.host_id and cu.host_id not in host_ids:
            owner = next(
                (
                    c.person_id
                    for c in contacts.values()
                    if cu.host_id in c.host_ids and c.person_id != cu.person_id
                ),
                None,
            )
            if owner:
                raise ProfileUpdateRejected(f"host id {cu.host_id!r} already belongs to {owner!r}")
            host_ids = (*host_ids, cu.host_id)
        notes = base.notes
        if cu.note and cu.note.strip():
            notes = (*notes, cu.note.strip())[-MAX_NOTES:]
        contacts[cu.person_id] = base.model_copy(
            update={
                "name": cu.name or base.name,
                "host_ids": host_ids,
                "notes": notes,
                "sentiment": max(-1.0, min(1.0, base.sentiment + cu.sentiment_delta)),
            }
        )
    return profile.model_copy(
        update={
            "version": profile.version + 1,
            "hobbies": hobbies,
            "tastes": tastes,
            "reflections": reflections,
            "contacts": contacts,
        }
    )


def _feeling(sentiment: float) -> str:
    if sentiment >= 0.5:
        return "close"
    if sentiment >= 0.15:
        return "warm"
    if sentiment > -0.15:
        return "neutral"
    if sentiment > -0.5:
        return "wary"
    return "strained"


def snapshot(profile: PersonaProfile) -> str:
    """A condensed, deterministic text of the profile for the SEMI_STABLE tier."""
    lines = []
    if profile.hobbies:
        lines.append("Hobbies: " + ", ".join(profile.hobbies[-8:]))
    if profile.tastes:
        lines.append("Tastes: " + ", ".join(profile.tastes[-8:]))
    if profile.reflections:
        lines.append("Lately you have been thinking: " + " ".join(profile.reflections[-3:]))
    for c in sorted(profile.contacts.values(), key=lambda c: c.person_id):
        notes = f" — {'; '.join(c.notes[-2:])}" if c.notes else ""
        lines.append(f"{c.name} ({_feeling(c.sentiment)}){notes}")
    return "\n".join(lines)


class ProfileStore:
    """``personas/<id>/profile.json`` (atomic) plus every version under ``profile.history/``."""

    def __init__(self, data_dir: Path, persona_id: str, cipher: Cipher | None = None) -> None:
        self.persona_id = check_persona_id(persona_id)
        self.dir = Path(data_dir) / "personas" / persona_id
        self.path = self.dir / ("profile.json.enc" if cipher else "profile.json")
        self.history = self.dir / "profile.history"
        self.cipher = cipher
        self._profile: PersonaProfile | None = None
        self._snapshot: tuple[int, str] | None = None
        self.rejected = 0

    def load(self) -> PersonaProfile:
        if self._profile is None:
            if self.path.exists():
                raw = self.path.read_bytes()
                if self.cipher:
                    raw = self.cipher.decrypt(raw, str(self.path))
                try:
                    self._profile = PersonaProfile.model_validate_json(raw)
                except ValidationError as exc:
                    raise ContinuumError(f"{self.path}: invalid profile: {exc}") from exc
            else:
                self._profile = PersonaProfile(persona_id=self.persona_id)
        return self._profile

    def apply(self, update: ProfileUpdate | dict) -> PersonaProfile | None:
        """Merge an update; a malformed or contradictory one is logged and rejected (None)."""
        try:
            parsed = (
                update
                if isinstance(update, ProfileUpdate)
                else ProfileUpdate.model_validate(update)
            )
            merged = merge(self.load(), parsed)
        except (ValidationError, ProfileUpdateRejected) as exc:
            self.rejected += 1
            log.warning("rejected profile update for %s: %s", self.persona_id, exc)
            return None
        data = merged.model_dump_json(indent=2).encode()
        if self.cipher:
            data = self.cipher.encrypt(data)
        atomic_write_bytes(self.history / f"{merged.version:05d}{self.path.suffix}", data)
        atomic_write_bytes(self.path, data)
        self._profile = merged
        return merged

    def snapshot(self) -> str:
        """Regenerated only when the profile version changes."""
        profile = self.load()
        if self._snapshot is None or self._snapshot[0] != profile.version:
            self._snapshot = (profile.version, snapshot(profile))
        return self._snapshot[1]

    def export(self) -> dict:
        return json.loads(self.load().model_dump_json())
