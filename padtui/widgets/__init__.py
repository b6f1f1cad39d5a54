"""The TUI widgets, one per file."""
