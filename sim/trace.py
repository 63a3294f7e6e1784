"""The simulator trace: JSON lines (format in docs/virtual-pack.md).

Line 1, the header (no ``t``): ``{"cells": N, "chemistry": ..., "engine": ..., "settings": {...}}``
with every setting in force. Then one object per simulated second with ``t`` (s) and the state;
a settings change writes ``{"t": ..., "settings": {...}}`` before that second's state line.
"""
import json


class TraceWriter:
    def __init__(self, path):
        self.path = path
        self.f = open(path, "w") if path else None
        self.lines = 0

    def write(self, obj):
        if self.f is not None:
            self.f.write(json.dumps(obj, separators=(",", ":")) + "\n")
            self.lines += 1

    def close(self):
        if self.f is not None:
            self.f.close()
            self.f = None


def read(path):
    """(header, states, settings_changes) from a trace file."""
    header = None
    states = []
    changes = []
    with open(path) as f:
        for line in f:
            obj = json.loads(line)
            if header is None:
                header = obj
            elif "settings" in obj:
                changes.append(obj)
            else:
                states.append(obj)
    return header, states, changes
