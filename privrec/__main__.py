"""``python -m privrec`` runs the CLI."""

from privrec.cli import main

main()
