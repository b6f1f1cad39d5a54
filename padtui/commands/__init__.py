"""The command line's commands, one module per command group (padtui/cli.py parses and dispatches)."""
