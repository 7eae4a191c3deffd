"""``python -m pumpops`` runs the command line."""

from pumpops.cli import main

main()
