"""Batch classification of files (``dispute-classifier classify``): one driver (`driver`) for the
local engine (`local_engine`) and the Ray Data engine (`ray_engine`), over the job machinery they share
(`job`: settings, `BatchInput`, files, lock, state, row checks, routing, spend)."""
