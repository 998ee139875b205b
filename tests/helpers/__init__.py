"""Helpers shared by the tests (fabricated run folders, local servers, registry specs, a crashing model)."""
