"""``python -m cellchain`` runs the app client CLI (cellchain/cli.py); the extended-output
decoder is ``python -m cellchain.extout``."""
import sys

from cellchain.cli import main

sys.exit(main())
