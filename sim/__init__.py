"""Virtual pack: simulated cells, charger, load and the real firmware in the loop."""
