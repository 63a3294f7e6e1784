"""Hardware layer: the only package that imports machine / rp2 / esp32 / bluetooth.

Nothing here touches hardware at import time: hal.board.make_hw(board_def, role) builds the
``hw`` object (docs/architecture.md) from a board definition when the board starts.
"""
