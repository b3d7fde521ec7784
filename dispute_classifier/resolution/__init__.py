"""From a ``--model`` name to a ready classifier: the approaches, model resolution, the
fitted-model cache and the monitoring profile of a served model."""
