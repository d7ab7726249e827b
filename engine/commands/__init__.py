"""The ``ingestion-agent`` command line and its subcommands."""
