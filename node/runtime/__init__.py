"""The imperative shell: configuration, the event loop driver, and the node's wiring."""
