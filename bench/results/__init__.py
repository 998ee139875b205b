"""Unit records and the tables built from them (the truth of a run), and the run manifest."""
