"""The report: a versioned record per file, and renderers (JSON Lines, terminal)."""
