"""The cost model: API list prices per token, or hardware $/hour over measured throughput."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dispute_classifier.core.config import read_yaml
from dispute_classifier.core.errors import UserError

DEFAULT_PRICES = Path(__file__).with_name("prices.yaml")


def money(value: float | None) -> str:
    """Dollars, readable at any scale — the one money formatter of every report and command:
    ``$1,234.56``, ``$0.0012`` for fractions of a cent, ``$1.2e-05`` below that, ``unknown``
    for a cost nobody knows (never $0)."""
    if value is None:
        return "unknown"
    if value == 0:
        return "$0"
    if abs(value) >= 0.01:
        return f"${value:,.2f}"
    return f"${value:.4f}" if abs(value) >= 0.0001 else f"${value:.2e}"


@dataclass(frozen=True)
class Machine:
    """One machine size of the price table: what it holds, besides its hourly price."""

    vcpus: float | None = None
    """Virtual CPUs (None: not stated, so the machine is never picked by right-sizing)."""
    memory_gib: float | None = None
    """Memory in GiB (None: not stated)."""
    kind: str = "cpu"
    """cpu or gpu: capacity measured on one kind is never scaled to the other."""


@dataclass
class PriceTable:
    """Prices from a small YAML file (see ``dispute_classifier/core/prices.yaml``).

    A hardware entry is its hourly price, or a mapping with ``usd_per_hour`` and the machine's
    ``vcpus``, ``memory_gib`` and ``kind`` (used to right-size self-hosted approaches)."""

    api: dict[str, dict[str, float]] = field(default_factory=dict)
    hardware: dict[str, float] = field(default_factory=dict)
    """Hardware name → $ per hour."""
    default_hardware: str = "cpu-2core"
    path: Path | None = None
    machines: dict[str, Machine] = field(default_factory=dict)
    """Hardware name → what the machine holds (entries given as a plain price hold nothing stated)."""
    as_of: str | None = None
    """When the prices were read from their source."""
    source: str | None = None

    @classmethod
    def load(cls, path: Path | None = None) -> "PriceTable":
        path = Path(path) if path else DEFAULT_PRICES
        raw = read_yaml(path)
        unknown = set(raw) - {"api", "hardware", "default_hardware", "as_of", "source"}
        if unknown:
            raise UserError(f"{path}: unknown key '{sorted(unknown)[0]}' (expected api, hardware, default_hardware, as_of, source)")
        hourly, machines = {}, {}
        for name, entry in (raw.get("hardware") or {}).items():
            if isinstance(entry, dict):
                extra = set(entry) - {"usd_per_hour", "vcpus", "memory_gib", "kind", "example"}
                if "usd_per_hour" not in entry or extra:
                    raise UserError(
                        f"{path}: hardware '{name}' needs usd_per_hour (and optionally vcpus, memory_gib, kind, example); got {sorted(entry)}"
                    )
                hourly[name] = float(entry["usd_per_hour"])
                machines[name] = Machine(entry.get("vcpus"), entry.get("memory_gib"), entry.get("kind", "cpu"))
            else:
                hourly[name] = float(entry)
                machines[name] = Machine()
        table = cls(
            raw.get("api") or {}, hourly, raw.get("default_hardware", "cpu-2core"), path, machines, raw.get("as_of"), raw.get("source")
        )
        if table.default_hardware not in table.hardware:
            raise UserError(f"{path}: default_hardware '{table.default_hardware}' is not under 'hardware'")
        return table

    def cheapest_machine(self, kind: str = "cpu") -> str | None:
        """The cheapest machine of ``kind`` whose size the table states (None: none stated)."""
        sized = [n for n, m in self.machines.items() if m.kind == kind and m.memory_gib]
        return min(sized, key=lambda n: self.hardware[n], default=None)

    def api_price(self, model: str) -> dict[str, float] | None:
        """Price per million tokens for an API model, or None when the table has no entry."""
        return self.api.get(model)

    def rates(self, model: str, workload: str = "online") -> tuple[float, float, float | None] | None:
        """(input, output, cached input) $ per million tokens for ``workload`` (online or
        batch: the batch rates where the table gives them, else list price); None when the
        model has no entry. Cached input is None when the table gives no cached rate."""
        price = self.api_price(model)
        if price is None:
            return None
        if workload == "batch" and "batch_input_per_mtok" in price:
            return (
                price["batch_input_per_mtok"],
                price["batch_output_per_mtok"],
                price.get("batch_cached_input_per_mtok", price.get("cached_input_per_mtok")),
            )
        return price["input_per_mtok"], price["output_per_mtok"], price.get("cached_input_per_mtok")

    def token_cost(
        self, model: str, input_tokens: float, output_tokens: float, workload: str = "online", cached_share: float = 0.0
    ) -> float | None:
        """$ for one query's tokens; ``cached_share`` of the input at the cached rate (where
        the table has one). None when the model has no price."""
        rates = self.rates(model, workload)
        if rates is None:
            return None
        rate_in, rate_out, rate_cached = rates
        share = cached_share if rate_cached is not None else 0.0
        billed_in = input_tokens * ((1 - share) * rate_in + share * (rate_cached or 0.0))
        return (billed_in + output_tokens * rate_out) / 1e6

    def describe_rate(self, model: str, workload: str = "online", cached_share: float = 0.0) -> str:
        """The rates applied, in words, for reports."""
        rates = self.rates(model, workload)
        if rates is None:
            return "no price"
        rate_in, rate_out, rate_cached = rates
        kind = "batch rate" if workload == "batch" and "batch_input_per_mtok" in (self.api_price(model) or {}) else "list price"
        cached = f", {cached_share:.0%} of input cached at ${rate_cached}" if cached_share and rate_cached is not None else ""
        return f"{kind} ${rate_in}/${rate_out} per Mtok{cached}"

    def hourly(self, hardware: str | None) -> float:
        name = hardware or self.default_hardware
        if name not in self.hardware:
            raise UserError(f"hardware '{name}' has no hourly price in {self.path}; known: {', '.join(self.hardware)}")
        return float(self.hardware[name])

    def self_hosted_cost_per_query(self, hardware: str | None, queries_per_second: float) -> float | None:
        """Hourly price divided by queries per hour: the cost of one query on a busy machine."""
        if queries_per_second <= 0:
            return None
        return self.hourly(hardware) / (queries_per_second * 3600)
