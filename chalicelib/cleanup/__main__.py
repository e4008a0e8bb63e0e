"""`python -m chalicelib.cleanup [--dry-run]`."""

from chalicelib.cleanup import main

main()
