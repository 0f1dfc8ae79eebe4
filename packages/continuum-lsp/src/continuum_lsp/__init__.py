"""continuum personas in the editor (see docs/hosts/editor.md)."""

from continuum_lsp.config import LspConfig
from continuum_lsp.host import LspHost

__all__ = ["LspConfig", "LspHost"]
