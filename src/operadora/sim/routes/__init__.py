"""The simulator's ARI HTTP and WebSocket routes, one module per resource group."""
