"""The `scaling` command-line tool."""
