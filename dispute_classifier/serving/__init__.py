"""The HTTP classification service, layer by layer.

``config``   the typed settings (`ServeConfig`), every number range-checked;
``auth``     the API key: read once, stripped, compared in constant time;
``state``    one immutable `ServedVersion` per role, swapped atomically on reload;
``metrics``  the Prometheus counters and histograms;
``batcher``  one queue per role, micro-batches of jobs that each carry their version;
``schemas``  the pydantic request and response models (the OpenAPI document);
``app``      the routes, the ASGI edge (request ids, auth, body and depth limits) and the
             uvicorn runner.

The command ``dispute-classifier serve`` (`dispute_classifier.commands.serve`) loads the models
and hands them to `app.run`; nothing here resolves a model name.
"""
