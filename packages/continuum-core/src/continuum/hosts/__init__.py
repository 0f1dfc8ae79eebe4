"""Hosts: where personas live (console here; Slack, Discord, LSP, LiveKit as plugins)."""
