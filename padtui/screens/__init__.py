"""The TUI screens: setup, run monitor, history, compare, help, and their dialogs."""
