"""cellchain host-side tools: extended-output decoder, app-protocol CLI."""
