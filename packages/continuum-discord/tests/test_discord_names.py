"""Persona names Discord accepts as webhook usernames (it refuses "discord" and "clyde")."""

from __future__ import annotations

import pytest

from continuum_discord.names import HAIR_SPACE, MAX_NAME, webhook_name


@pytest.mark.parametrize(
    "name",
    ["Clyde", "clyde the helper", "DiscordBot", "My DISCORD pal", "Mr. ClydeDiscord"],
)
def test_refused_words_are_broken_and_still_read_the_same(name):
    made = webhook_name(name)
    assert "clyde" not in made.lower() and "discord" not in made.lower()
    assert made.replace(HAIR_SPACE, "") == name


def test_length_is_one_to_eighty_characters():
    assert len(webhook_name("x" * 200)) == MAX_NAME
    assert 2 <= len(webhook_name("Q")) <= MAX_NAME  # a one-letter name is padded
    assert webhook_name("   ") == "persona"
    assert webhook_name("Maya\n\tChen") == "Maya Chen"
