"""People: one person, many host identities.

Hosts name people by their own ids (a Slack user ``U123``, a Discord snowflake, the
editor's user, a LiveKit identity). The directory maps each host id (``slack:U123``) to
one person id, so memory, recall and reputation follow the person across hosts. Links
come from the config (``[[people]]``), from ``continuum people link``, or from a person
confirming a link a persona proposed. An unlinked host id is its own person
(``slack:U123``).

Persisted as ``people.json`` in the data dir (crash-safe writes, 0600).
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

from filelock import FileLock
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from continuum.errors import ContinuumError
from continuum.memory.atomic import atomic_write_bytes

PERSON_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class IdentityError(ContinuumError):
    """An identity link is invalid or conflicts with an existing one."""


class Person(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=PERSON_ID.pattern)
    name: str = Field(min_length=1, max_length=80)
    host_ids: tuple[str, ...] = ()


class _Directory(BaseModel):
    people: dict[str, Person] = Field(default_factory=dict)


def host_key(host: str, user_id: str) -> str:
    return f"{host}:{user_id}"


class PeopleDirectory:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file_lock = FileLock(str(path) + ".lock", mode=0o600) if path else None
        self._people: dict[str, Person] = {}
        self._by_host: dict[str, str] = {}
        self._load()

    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            data = _Directory.model_validate_json(self.path.read_bytes())
        except (ValidationError, ValueError) as exc:
            raise IdentityError(f"{self.path}: invalid people directory: {exc}") from exc
        self._people = dict(data.people)
        self._index()

    def _index(self) -> None:
        self._by_host = {h: p.id for p in self._people.values() for h in p.host_ids}

    def _save(self) -> None:
        if self.path is None:
            return
        data = _Directory(people=self._people).model_dump(mode="json")
        atomic_write_bytes(self.path, json.dumps(data, indent=1, sort_keys=True).encode())

    # --- reading ---------------------------------------------------------------------------

    def resolve(self, host: str, user_id: str) -> str:
        """The person behind a host identity (their own host key when unlinked)."""
        key = host_key(host, user_id)
        return self._by_host.get(key, key)

    def get(self, person_id: str) -> Person | None:
        return self._people.get(person_id)

    def people(self) -> list[Person]:
        return sorted(self._people.values(), key=lambda p: p.id)

    def identities(self, person_id: str) -> tuple[str, ...]:
        """Every id this person's words may be stored under: the person id and each host
        id linked to it (what was said before a link is kept under the host id)."""
        person = self._people.get(person_id)
        return (person_id, *(person.host_ids if person else ()))

    def name_of(self, person_id: str) -> str | None:
        """A person's name, by person id or by any host id linked to them."""
        person = self._people.get(person_id) or self._people.get(self._by_host.get(person_id, ""))
        return person.name if person else None

    # --- linking ---------------------------------------------------------------------------

    def link(self, person_id: str, name: str, *host_ids: str) -> Person:
        """Link host ids to a person (created if new). A host id already linked to someone
        else is an error: unlink it first."""
        if not PERSON_ID.match(person_id):
            raise IdentityError(f"not a person id: {person_id!r} (lowercase letters, digits, -_.)")
        for host_id in host_ids:
            if ":" not in host_id.strip(":"):
                raise IdentityError(f"host ids look like 'slack:U123', not {host_id!r}")
        with self._lock, self._file_lock or _nolock():
            self._load()
            for host_id in host_ids:
                owner = self._by_host.get(host_id)
                if owner is not None and owner != person_id:
                    raise IdentityError(f"{host_id} is already linked to {owner!r}")
            old = self._people.get(person_id)
            ids = tuple(dict.fromkeys((*(old.host_ids if old else ()), *host_ids)))
            person = Person(
                id=person_id, name=name or (old.name if old else person_id), host_ids=ids
            )
            self._people[person_id] = person
            self._index()
            self._save()
            return person

    def unlink(self, host_id: str) -> str | None:
        """Remove a host id from whoever it is linked to; returns that person's id."""
        with self._lock, self._file_lock or _nolock():
            self._load()
            owner = self._by_host.get(host_id)
            if owner is None:
                return None
            person = self._people[owner]
            self._people[owner] = person.model_copy(
                update={"host_ids": tuple(h for h in person.host_ids if h != host_id)}
            )
            self._index()
            self._save()
            return owner


class _nolock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
