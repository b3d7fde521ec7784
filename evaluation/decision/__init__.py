"""The decision package: evidence → costs → rule → report → render, one job per file.

- `config`: the assumptions (`VerdictConfig`);
- `evidence`: paired tests between two runs (`Status`, `Evidence`, `paired`);
- `costs`: what each option costs per month (`CostLine`, `cost_line`, break-even);
- `selection`: the fine-tuned version chosen on validation;
- `rule`: the recommendation and the fine-tuning question;
- `report`: the report as plain data (`build_report`);
- `render`: Markdown, the files, and the experiment's stages kept with the runs.
"""

from evaluation.decision.assumptions import CATEGORY_NAMES, VerdictConfig, config_from_assumptions
from evaluation.decision.costs import CostLine, api_model, break_even_volume, cost_line, training_cost, volume_grid
from evaluation.decision.evidence import Evidence, Status, best_run, paired
from evaluation.decision.render import read_report, read_stages, report_paths, to_markdown, write_report, write_stages
from evaluation.decision.report import SCHEMA, build_report
from evaluation.decision.rule import Recommendation, finetune_question, recommend
from evaluation.decision.selection import choose_on_validation

__all__ = [
    "CATEGORY_NAMES",
    "SCHEMA",
    "CostLine",
    "Evidence",
    "Recommendation",
    "Status",
    "VerdictConfig",
    "api_model",
    "best_run",
    "break_even_volume",
    "build_report",
    "choose_on_validation",
    "config_from_assumptions",
    "cost_line",
    "finetune_question",
    "paired",
    "read_report",
    "read_stages",
    "recommend",
    "report_paths",
    "to_markdown",
    "training_cost",
    "volume_grid",
    "write_report",
    "write_stages",
]
