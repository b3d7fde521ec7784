"""The dashboard's charts (Altair), built from plain pandas frames so they are testable."""

from __future__ import annotations

from typing import Any

ROW_PX = 30
"""Height of one class row in bar charts and the confusion matrix: room for its label."""


def _label_axis() -> Any:
    """Axis for class names: full names (BANKING77 intents are long), none thinned out."""
    import altair as alt

    return alt.Axis(labelLimit=260, labelOverlap=False)


def cost_accuracy_scatter(frame: Any, front: list[str]) -> Any:
    """Accuracy against cost per 1,000 queries (log axis), with the Pareto front as a line.

    Each approach is a colour in the legend and each kind a shape, not a text label beside its
    point: approaches of similar cost and accuracy (embedding and kNN, the prompted runs) sit
    on top of each other, and their labels would overlap. ``frame`` has columns label, kind,
    cost_per_1k_usd, accuracy (0–1), acc_lo, acc_hi.
    """
    import altair as alt

    x = alt.X("cost_per_1k_usd:Q", scale=alt.Scale(type="log"), title="cost per 1,000 queries (USD, log scale)")
    color = alt.Color("label:N", title="approach", legend=alt.Legend(labelLimit=320, symbolLimit=0))
    base = alt.Chart(frame)
    points = base.mark_point(size=140, filled=True, opacity=0.85).encode(
        x=x,
        y=alt.Y("accuracy:Q", scale=alt.Scale(zero=False), axis=alt.Axis(format="%"), title="accuracy"),
        color=color,
        shape=alt.Shape("kind:N", title="kind"),
        tooltip=["label", "kind", alt.Tooltip("accuracy:Q", format=".2%"), alt.Tooltip("cost_per_1k_usd:Q", format="$.4g")],
    )
    bars = base.mark_rule(opacity=0.5).encode(x=x, y="acc_lo:Q", y2="acc_hi:Q", color=color)
    on_front = frame[frame["label"].isin(front)].sort_values("cost_per_1k_usd")
    line = alt.Chart(on_front).mark_line(strokeDash=[4, 3], color="gray").encode(x=x, y="accuracy:Q")
    return (line + bars + points).properties(height=380, title="accuracy vs cost (dashed: Pareto front)")


def monthly_cost_lines(frame: Any, volume: float, break_even: float | None) -> Any:
    """Cost per month against monthly volume (log–log) per approach, a rule at ``volume`` and
    one at the break-even volume. ``frame`` has columns label, volume, monthly_usd."""
    import altair as alt
    import pandas as pd

    x = alt.X("volume:Q", scale=alt.Scale(type="log"), title="queries per month (log scale)")
    lines = (
        alt.Chart(frame)
        .mark_line()
        .encode(
            x=x,
            y=alt.Y("monthly_usd:Q", scale=alt.Scale(type="log"), title="USD per month (log scale)"),
            color=alt.Color("label:N", title="approach"),
            tooltip=["label", alt.Tooltip("volume:Q", format=",.0f"), alt.Tooltip("monthly_usd:Q", format="$,.2f")],
        )
    )
    rules = [{"volume": volume, "what": "stated volume"}] + ([{"volume": break_even, "what": "break-even"}] if break_even else [])
    marks = (
        alt.Chart(pd.DataFrame(rules))
        .mark_rule(strokeDash=[4, 3])
        .encode(
            x="volume:Q",
            color=alt.value("gray"),
            tooltip=["what", alt.Tooltip("volume:Q", format=",.0f")],
        )
    )
    return (lines + marks).properties(height=380)


def f1_bars(frame: Any, title: str) -> Any:
    """Per-class F1 as horizontal bars; ``frame`` has columns label, f1 (and optionally support)."""
    import altair as alt

    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            y=alt.Y("label:N", sort="-x", title=None, axis=_label_axis()),
            x=alt.X("f1:Q", scale=alt.Scale(domain=[0, 1]), title="F1"),
            tooltip=list(frame.columns),
        )
        .properties(height=max(160, ROW_PX * len(frame)), title=title)
    )


def f1_difference(frame: Any, title: str) -> Any:
    """Per-class F1 difference (B − A) as diverging bars; ``frame`` has columns label, delta."""
    import altair as alt

    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            y=alt.Y("label:N", sort="-x", title=None, axis=_label_axis()),
            x=alt.X("delta:Q", title="F1 difference (B − A)"),
            color=alt.condition("datum.delta >= 0", alt.value("#2a9d8f"), alt.value("#e76f51")),
            tooltip=["label", alt.Tooltip("delta:Q", format="+.3f")],
        )
        .properties(height=max(160, ROW_PX * len(frame)), title=title)
    )


def confusion_heatmap(frame: Any, title: str) -> Any:
    """Confusion matrix as a heatmap with counts; ``frame`` has columns gold, predicted, count."""
    import altair as alt

    order = list(dict.fromkeys(frame["gold"]))
    base = alt.Chart(frame).encode(
        x=alt.X("predicted:N", sort=order, title="predicted", axis=alt.Axis(labelAngle=-60, labelLimit=200, labelOverlap=False)),
        y=alt.Y("gold:N", sort=order, title="gold", axis=_label_axis()),
    )
    cells = base.mark_rect().encode(color=alt.Color("count:Q", scale=alt.Scale(scheme="blues")), tooltip=["gold", "predicted", "count"])
    text = base.mark_text(fontSize=10).encode(text=alt.condition("datum.count > 0", "count:Q", alt.value("")))
    # The height Streamlit gives a chart includes its axes: leave room for the slanted labels.
    size = max(240, 34 * len(order)) + 160
    return (cells + text).properties(width=size, height=size, title=title)


def training_curves(frame: Any) -> Any:
    """Loss and learning rate against step, one panel each; ``frame`` has columns step,
    metric (loss or learning_rate), value, run."""
    import altair as alt

    return (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("step:Q"),
            y=alt.Y("value:Q", title=None),
            color=alt.Color("run:N"),
            tooltip=["run", "step", "metric", "value"],
        )
        .properties(height=220, width=420)
        .facet(row=alt.Row("metric:N", title=None))
        .resolve_scale(y="independent")
    )


def sweep_trials(frame: Any) -> Any:
    """Validation accuracy of each finished trial of a search, coloured by learning rate;
    ``frame`` has columns trial, accuracy, learning_rate, epochs, lora_r."""
    import altair as alt

    return (
        alt.Chart(frame)
        .mark_circle(size=90)
        .encode(
            x=alt.X("trial:O", title="trial"),
            y=alt.Y("accuracy:Q", scale=alt.Scale(zero=False), axis=alt.Axis(format="%"), title="validation accuracy"),
            color=alt.Color("learning_rate:Q", scale=alt.Scale(type="log"), title="learning rate"),
            tooltip=[
                "trial",
                alt.Tooltip("accuracy:Q", format=".2%"),
                "learning_rate",
                "epochs",
                "lora_r",
                "lora_alpha",
                "lora_dropout",
                "max_length",
            ],
        )
        .properties(height=260, title="search: validation accuracy per finished trial")
    )


def class_counts(frame: Any) -> Any:
    """Examples per class and split as grouped bars; ``frame`` has columns label, split, count."""
    import altair as alt

    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            y=alt.Y("label:N", title=None),
            x=alt.X("count:Q", title="examples"),
            color="split:N",
            yOffset="split:N",
            tooltip=["label", "split", "count"],
        )
        .properties(height=max(200, 40 * frame["label"].nunique()))
    )


def learning_curve(frame: Any) -> Any:
    """Mean validation accuracy against training rows (log axis), one line per approach and
    noise level, with the interval over seeds as a band. ``frame`` has columns approach, noise,
    n_train, accuracy_mean, lo, hi."""
    import altair as alt

    x = alt.X("n_train:Q", scale=alt.Scale(type="log"), title="training rows (log scale)")
    y = alt.Y("accuracy_mean:Q", scale=alt.Scale(zero=False), axis=alt.Axis(format="%"), title="accuracy (mean over seeds)")
    base = alt.Chart(frame).encode(
        x=x, color=alt.Color("approach:N", title="approach"), strokeDash=alt.StrokeDash("noise:N", title="label noise")
    )
    band = base.mark_area(opacity=0.15).encode(y="lo:Q", y2="hi:Q")
    line = base.mark_line(point=True).encode(
        y=y,
        tooltip=[
            "approach",
            "noise",
            "n_train",
            alt.Tooltip("accuracy_mean:Q", format=".2%"),
            alt.Tooltip("lo:Q", format=".2%"),
            alt.Tooltip("hi:Q", format=".2%"),
        ],
    )
    return (band + line).properties(height=360, title="learning curve (band: 95% interval over seeds)")


def noise_curve(frame: Any) -> Any:
    """Mean accuracy against the share of flipped training labels, one line per approach and
    training size. ``frame`` has columns approach, size, noise, accuracy_mean, lo, hi."""
    import altair as alt

    base = alt.Chart(frame).encode(
        x=alt.X("noise:Q", axis=alt.Axis(format="%"), title="training labels flipped"),
        color=alt.Color("size:N", title="training rows"),
        strokeDash=alt.StrokeDash("approach:N", title="approach"),
    )
    line = base.mark_line(point=True).encode(
        y=alt.Y("accuracy_mean:Q", scale=alt.Scale(zero=False), axis=alt.Axis(format="%"), title="accuracy (mean over seeds)"),
        tooltip=[
            "approach",
            "size",
            "noise",
            alt.Tooltip("accuracy_mean:Q", format=".2%"),
            alt.Tooltip("lo:Q", format=".2%"),
            alt.Tooltip("hi:Q", format=".2%"),
        ],
    )
    return line.properties(height=360, title="accuracy under label noise")


def finder_recall(frame: Any) -> Any:
    """The label-issue finder's recall at k (k = rows flipped) against the noise level, one
    line per training size. ``frame`` has columns size, noise, recall_at_k."""
    import altair as alt

    return (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("noise:Q", axis=alt.Axis(format="%"), title="training labels flipped"),
            y=alt.Y("recall_at_k:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1]), title="flipped rows in the finder's top k"),
            color=alt.Color("size:N", title="training rows"),
            tooltip=["size", "noise", "n_flipped", alt.Tooltip("recall_at_k:Q", format=".1%")],
        )
        .properties(height=300, title="label-issue finder: recall at k = number flipped")
    )


def window_lines(frame: Any) -> Any:
    """One line per measure (share, 0–1) over time windows; ``frame`` has start, measure, value."""
    import altair as alt

    return (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("start:T", title="window start"),
            y=alt.Y("value:Q", axis=alt.Axis(format="%"), title=None),
            color=alt.Color("measure:N", title=None),
            tooltip=["start:T", "measure:N", alt.Tooltip("value:Q", format=".1%")],
        )
        .properties(height=260, title="estimated accuracy and abstain rate per window")
    )


def label_shares(frame: Any) -> Any:
    """Share of each label in training and in served traffic; ``frame`` has label, source, share."""
    import altair as alt

    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            y=alt.Y("label:N", axis=_label_axis(), title=None),
            x=alt.X("share:Q", axis=alt.Axis(format="%"), title="share"),
            color=alt.Color("source:N", title=None),
            yOffset="source:N",
            tooltip=["label", "source", alt.Tooltip("share:Q", format=".1%")],
        )
        .properties(title="predicted labels: training distribution vs served traffic")
    )
