"""Reading persona files: TOML, or SillyTavern character cards (.json/.png); one file or a
directory, all or nothing (any bad file or duplicate id raises, naming file and field)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from continuum.character_cards import import_card
from continuum.errors import PersonaFileError
from continuum.persona import MAX_PERSONA_FILE_BYTES, Persona, persona_from_mapping
from continuum.toml_text import parse_toml


def load_persona(path: Path | str) -> Persona:
    """Load one persona from a TOML file, or a character card (.json / .png)."""
    path = Path(path)
    if path.suffix.lower() in {".json", ".png"}:
        return import_card(path)
    try:
        if path.stat().st_size > MAX_PERSONA_FILE_BYTES:
            raise PersonaFileError(path, None, f"larger than {MAX_PERSONA_FILE_BYTES >> 20} MiB")
        raw = path.read_bytes()
    except OSError as exc:
        raise PersonaFileError(path, None, f"cannot read file: {exc.strerror}") from exc
    data = parse_toml(raw, lambda reason: PersonaFileError(path, None, reason))
    persona = persona_from_mapping(data, path)
    if any(a.path and not Path(a.path).is_absolute() for a in persona.adapters):
        adapters = tuple(
            a.model_copy(update={"path": str(path.parent / a.path)})
            if a.path and not Path(a.path).is_absolute()
            else a
            for a in persona.adapters
        )
        persona = persona.model_copy(update={"adapters": adapters})
    return persona


PERSONA_SUFFIXES = (".toml", ".json", ".png")


def persona_files(directory: Path | str) -> list[Path]:
    """Persona files in a directory, in a stable order."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PersonaFileError(directory, None, "no such persona directory")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in PERSONA_SUFFIXES)
    if not files:
        raise PersonaFileError(directory, None, "no persona files (.toml, .json, .png) in it")
    return files


def load_personas(paths: Iterable[Path | str]) -> list[Persona]:
    """Load several personas; all or nothing: any bad file or duplicate id raises."""
    personas: list[Persona] = []
    seen: dict[str, Path] = {}
    for raw_path in paths:
        path = Path(raw_path)
        files = persona_files(path) if path.is_dir() else [path]
        for file in files:
            persona = load_persona(file)
            if persona.id in seen:
                raise PersonaFileError(
                    file, "id", f"duplicate persona id '{persona.id}' (also in {seen[persona.id]})"
                )
            seen[persona.id] = file
            personas.append(persona)
    return personas
