"""The genome: a persona's LoRA adapters (skills, voice), registered with their
provenance, activated for each render, and paged in and out under a memory budget."""

from continuum.genome.pager import AdapterPager, GenomeError, PagerEvent
from continuum.genome.registry import AdapterRecord, GenomeRegistry

__all__ = ["AdapterPager", "AdapterRecord", "GenomeError", "GenomeRegistry", "PagerEvent"]
