"""continuum-slack: continuum's personas in Slack (see docs/hosts/slack.md)."""

from continuum_slack.config import SlackConfig
from continuum_slack.host import SlackHost

__all__ = ["SlackConfig", "SlackHost"]
