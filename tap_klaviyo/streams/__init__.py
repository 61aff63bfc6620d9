"""The tap's streams, built from the stream table (`table.py`) by `run.py`, which also holds what the streams of one
run share: entities (`entities.py`) read through shared walks (`walks.py`) and the streams derived from them
(`derived.py`), metrics (`metrics.py`), and the streams read by time windows (`windowed.py`): events (`events.py`)
with their attributions (`attributions.py`), profiles and list and segment members (`profiles.py`), on a common base
(`base.py`)."""
