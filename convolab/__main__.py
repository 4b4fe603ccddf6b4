"""`python -m convolab ...`, the form torchrun starts."""
from .cli import main

raise SystemExit(main())
