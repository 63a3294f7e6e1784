"""Board definitions: one data-only module per supported board (see docs/wiring.md).

Each module is copied as ``board.py`` into the images for that board (tools/build_images.py).
"""

BOARDS = ("pico", "pico_w", "esp32_devkitc", "esp32c3_devkitm")
ROLE_NAMES = ("begin", "between", "end", "gateway")
