"""The memory engine: Markdown journals, a hybrid recall index, the persona profile and
the hippocampus. Memory reaches prompts only through the SEMI_STABLE profile snapshot and
the VOLATILE retrieval section, so writing a memory never moves the invariant prefix."""
