"""The cost model: API list prices per token, or hardware $/hour over measured throughput."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dispute_classifier.core.config import read_yaml
from dispute_classifier.core.errors import UserError

DEFAULT_PRICES = Path(__file__).with_name("prices.yaml")


@dataclass
class PriceTable:
    """Prices from a small YAML file (see ``dispute_classifier/core/prices.yaml``)."""

    api: dict[str, dict[str, float]] = field(default_factory=dict)
    hardware: dict[str, float] = field(default_factory=dict)
    default_hardware: str = "cpu-2core"
    path: Path | None = None

    @classmethod
    def load(cls, path: Path | None = None) -> "PriceTable":
        path = Path(path) if path else DEFAULT_PRICES
        raw = read_yaml(path)
        unknown = set(raw) - {"api", "hardware", "default_hardware"}
        if unknown:
            raise UserError(f"{path}: unknown key '{sorted(unknown)[0]}' (expected api, hardware, default_hardware)")
        table = cls(raw.get("api") or {}, raw.get("hardware") or {}, raw.get("default_hardware", "cpu-2core"), path)
        if table.default_hardware not in table.hardware:
            raise UserError(f"{path}: default_hardware '{table.default_hardware}' is not under 'hardware'")
        return table

    def api_price(self, model: str) -> dict[str, float] | None:
        """Price per million tokens for an API model, or None when the table has no entry."""
        return self.api.get(model)

    def token_cost(self, model: str, input_tokens: int, output_tokens: int) -> float | None:
        price = self.api_price(model)
        if price is None:
            return None
        return (input_tokens * price["input_per_mtok"] + output_tokens * price["output_per_mtok"]) / 1e6

    def hourly(self, hardware: str | None) -> float:
        name = hardware or self.default_hardware
        if name not in self.hardware:
            raise UserError(
                f"hardware '{name}' has no hourly price in {self.path}; known: {', '.join(self.hardware)}"
            )
        return float(self.hardware[name])

    def self_hosted_cost_per_query(self, hardware: str | None, queries_per_second: float) -> float | None:
        """Hourly price divided by queries per hour: the cost of one query on a busy machine."""
        if queries_per_second <= 0:
            return None
        return self.hourly(hardware) / (queries_per_second * 3600)
