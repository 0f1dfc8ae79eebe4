"""``/continuum personas|ask|state|forget|invite|remove|link|join|leave`` as Discord application
commands (one command with subcommands), registered per guild and answered ephemerally
(only ``ask`` is public: the question is posted like a message, and the persona answers
it in the channel)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord import app_commands

Run = Callable[[discord.Interaction, str, tuple[str, ...]], Awaitable[None]]


def command_group(name: str, run: Run) -> app_commands.Group:
    """The group; every subcommand hands (interaction, verb, args) to ``run``."""
    group = app_commands.Group(name=name, description="Talk to continuum's personas")

    @group.command(name="personas", description="Which personas are in this room")
    async def personas(interaction: discord.Interaction) -> None:
        await run(interaction, "personas", ())

    @group.command(name="ask", description="Ask one persona a question")
    @app_commands.describe(persona="The persona's name", question="What to ask")
    async def ask(interaction: discord.Interaction, persona: str, question: str) -> None:
        await run(interaction, "ask", (persona, question))

    @group.command(name="state", description="A persona's energy, mood and trust")
    @app_commands.describe(persona="The persona's name (all when empty)")
    async def state(interaction: discord.Interaction, persona: str | None = None) -> None:
        await run(interaction, "state", (persona,) if persona else ())

    @group.command(name="forget", description="Forget everything you told the personas")
    async def forget(interaction: discord.Interaction) -> None:
        await run(interaction, "forget", ())

    @group.command(name="invite", description="Bring a persona into this room")
    @app_commands.describe(persona="The persona's name")
    async def invite(interaction: discord.Interaction, persona: str) -> None:
        await run(interaction, "invite", (persona,))

    @group.command(name="remove", description="Send a persona out of this room")
    @app_commands.describe(persona="The persona's name")
    async def remove(interaction: discord.Interaction, persona: str) -> None:
        await run(interaction, "remove", (persona,))

    @group.command(name="link", description="Link this account with your account elsewhere")
    @app_commands.describe(code="The code your other account got (empty: get a code)")
    async def link(interaction: discord.Interaction, code: str | None = None) -> None:
        await run(interaction, "link", (code,) if code else ())

    @group.command(name="join", description="The personas join your voice channel")
    async def join(interaction: discord.Interaction) -> None:
        await run(interaction, "join", ())

    @group.command(name="leave", description="The personas leave the voice channel")
    async def leave(interaction: discord.Interaction) -> None:
        await run(interaction, "leave", ())

    return group


async def answer(interaction: discord.Interaction, text: str, **kwargs: Any) -> None:
    """Answer once, ephemerally unless told otherwise (Discord's 2,000 characters)."""
    kwargs.setdefault("ephemeral", True)
    kwargs.setdefault("allowed_mentions", discord.AllowedMentions.none())
    text = text if len(text) <= 2000 else text[:1990] + " …"
    if interaction.response.is_done():
        await interaction.followup.send(text, **kwargs)
    else:
        await interaction.response.send_message(text, **kwargs)
