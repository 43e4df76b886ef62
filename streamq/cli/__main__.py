"""``python -m streamq.cli`` runs the CLI (as the ``streamq`` console script does)."""

from .app import main

main()
