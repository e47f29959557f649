"""``python -m edgecnn.cli``."""

from edgecnn.cli import main

main()
