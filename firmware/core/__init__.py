"""Hardware-free, clock-free cellchain logic. Imports nothing but core and MicroPython built-ins."""
