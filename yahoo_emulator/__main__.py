"""``python -m yahoo_emulator``: same as the ``yahoo-emulator`` console script."""

from yahoo_emulator.cli import main

raise SystemExit(main())
