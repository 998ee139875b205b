"""Training: the engine (fit / predict on tensors), losses, one fold's build-fit-predict, nested tuning, the unit of work."""
