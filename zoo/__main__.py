"""`python -m zoo` runs the command-line interface."""

from zoo.cli.app import main

main()
