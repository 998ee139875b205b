"""The process runtime: executors, workers that end with the runner, allocator settings, folders the suite owns."""
