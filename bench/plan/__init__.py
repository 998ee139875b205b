"""Planning a study: cross its axes into cells, each validated and explained before any work."""
