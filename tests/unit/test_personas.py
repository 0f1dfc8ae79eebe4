import pytest

from continuum.errors import PersonaFileError
from continuum.persona_files import load_persona, load_personas

GOOD = 'id = "ada"\nname = "Ada"\nidentity = "A mathematician."\n'


def test_examples_are_four_distinct_personas(example_personas):
    assert len(example_personas) >= 4
    assert len({p.id for p in example_personas}) == len(example_personas)
    assert len({p.identity for p in example_personas}) == len(example_personas)
    assert len({p.voice.voice for p in example_personas}) == len(example_personas)
    assert all(p.specialty and p.style and p.rules for p in example_personas)


def test_bad_field_names_file_and_field(tmp_path):
    bad = tmp_path / "ada.toml"
    bad.write_text(GOOD + '[model]\ntemperature = "hot"\n')
    with pytest.raises(PersonaFileError) as err:
        load_persona(bad)
    assert err.value.path == bad and err.value.field == "model.temperature"
    assert "ada.toml: field 'model.temperature'" in str(err.value)


def test_unknown_and_missing_fields_are_named(tmp_path):
    f = tmp_path / "x.toml"
    f.write_text(GOOD + 'favourite_colour = "red"\n')
    with pytest.raises(PersonaFileError, match="favourite_colour"):
        load_persona(f)
    f.write_text('id = "ada"\nname = "Ada"\n')
    with pytest.raises(PersonaFileError) as err:
        load_persona(f)
    assert err.value.field == "identity"


def test_invalid_toml_names_the_file(tmp_path):
    f = tmp_path / "broken.toml"
    f.write_text('id = "ada\n')
    with pytest.raises(PersonaFileError, match=r"broken\.toml: invalid TOML"):
        load_persona(f)


def test_nothing_half_loads(tmp_path):
    (tmp_path / "a.toml").write_text(GOOD)
    (tmp_path / "b.toml").write_text('id = "BAD ID"\nname = "B"\nidentity = "x"\n')
    with pytest.raises(PersonaFileError) as err:
        load_personas([tmp_path])
    assert err.value.path.name == "b.toml" and err.value.field == "id"


def test_duplicate_ids_name_both_files(tmp_path):
    (tmp_path / "a.toml").write_text(GOOD)
    (tmp_path / "b.toml").write_text(GOOD)
    with pytest.raises(PersonaFileError, match=r"duplicate persona id 'ada' \(also in .*a.toml"):
        load_personas([tmp_path])
