"""``python -m workbench``: the same as the ``sde-workbench`` command."""

from workbench.cli import entry

if __name__ == "__main__":
    entry()
