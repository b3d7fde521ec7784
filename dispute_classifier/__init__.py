"""dispute-classifier: prompt, retrieve or fine-tune? Measured on one shared evaluator.

The package holds the shared core: configuration, tasks and data, the `Classifier`
contract, run records and the command line. Nothing heavy is imported here.
"""

__version__ = "0.1.0"
