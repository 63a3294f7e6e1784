"""cellchain firmware version (sent on the extended output, keys 6 and 7; shown by diagnostics).

major and minor are 0..15 (the extended output packs them into one byte, a nibble each),
patch is 0..255. Keep in step with pyproject.toml's version.
"""

FIRMWARE_VERSION = (0, 1, 0)
