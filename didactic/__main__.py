"""``python -m didactic``: the same entry point as the ``didactic`` console script."""

from didactic.cli import main

if __name__ == "__main__":
    main()
