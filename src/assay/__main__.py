"""``python -m assay`` is the ``assay`` command (e.g. ``python -X importtime -m assay hash x.png``)."""

from .cli import main

main()
