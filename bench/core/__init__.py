"""The floor every other part stands on: the registry, config composition, schemas, hashing and atomic files."""
