"""What a person reads: result tables (one row per model, or one row per metric when that would not fit the
terminal) and ``ask`` replies.

Tables only show scalar metrics; nested ones (a tuned threshold's curve, per-class figures) stay in ``--json``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

#: Short column headers so a table of many metrics fits an 80-column terminal.
SHORT_LABELS = {
    "execution_accuracy": "exec acc",
    "abstention_precision": "abst P",
    "abstention_recall": "abst R",
    "threshold": "entropy thr",
    "examples_per_s": "ex/s",
}


def _cell(value: Any) -> str:
    return "—" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


def _scalar_keys(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    keys: list[str] = []
    for metrics in results.values():
        for key, value in metrics.items():
            if key not in keys and not key.startswith("n_") and (value is None or isinstance(value, (int, float, str))):
                keys.append(key)
    return keys


def metrics_table(results: Mapping[str, Mapping[str, Any]], title: str = "", keys: Sequence[str] | None = None,
                  width: int | None = None) -> Table:
    """A rich table: one row per model and one column per metric when that fits ``width`` (default: the terminal),
    else transposed (one row per metric, one column per model) so nothing is cut to one letter.

    >>> t = metrics_table({"base": {"accuracy": 0.5, "f1": 0.25}}, width=80)
    >>> [c.header for c in t.columns]
    ['model', 'accuracy', 'f1']
    >>> wide = {f"m{i}": {f"metric_{k}": 0.5 for k in range(12)} for i in range(2)}
    >>> [c.header for c in metrics_table(wide, width=80).columns]
    ['metric', 'm0', 'm1']
    """
    keys = list(keys) if keys is not None else _scalar_keys(results)
    if width is None:  # the console's width: the terminal's, $COLUMNS, or 80 when the output is not a terminal
        from ehrforge.core.progress import console

        width = console.width
    labels = [SHORT_LABELS.get(k, k) for k in keys]
    cells = {name: [_cell(m.get(k)) for k in keys] for name, m in results.items()}
    name_w = max([5, *(len(n) for n in results)])
    col_w = [max([len(lab), *(len(c[i]) for c in cells.values())]) for i, lab in enumerate(labels)]
    table = Table(title=title or None)
    if name_w + sum(w + 3 for w in col_w) + 4 <= width:
        table.add_column("model", style="bold")
        for label in labels:
            table.add_column(label, justify="right")
        for name, row in cells.items():
            table.add_row(name, *row)
        return table
    table.add_column("metric", style="bold")
    for name in results:
        table.add_column(name, justify="right", overflow="fold")
    for i, key in enumerate(keys):
        table.add_row(key, *(cells[name][i] for name in results))
    return table


def print_reply(reply: dict[str, Any]) -> None:
    """An ask reply for a person: the answer's fields (a result table where the answer has rows), its confidence;
    or the abstention's reason (and, dimmed, what was rejected)."""
    from rich.table import Table

    from ehrforge.core.progress import console

    out = console.__class__()  # stdout console for the answer itself
    answer = reply.get("answer")
    fields = answer if isinstance(answer, dict) else ({"answer": answer} if answer is not None else {})
    if reply.get("abstained"):
        out.print(f"[bold yellow]I can't answer that reliably[/] — {reply.get('reason')} (confidence {reply.get('confidence', 0):.2f})", highlight=False)
        for key, value in fields.items():
            out.print(f"[dim]rejected {key}: {value}[/]", highlight=False)
        return
    rows = fields.get("rows")
    for key, value in fields.items():
        if key not in ("rows", "columns", "truncated"):
            out.print(f"[bold]{key}[/] {value}", highlight=False)
    if isinstance(rows, list):
        table = Table(*[str(c) for c in fields.get("columns", [])])
        for row in rows[:50]:
            table.add_row(*[str(v) for v in row])
        out.print(table)
        if fields.get("truncated") or len(rows) > 50:
            out.print(f"[dim]({len(rows)} rows; showing 50{', truncated at the row limit' if fields.get('truncated') else ''})[/]")
    out.print(f"confidence {reply.get('confidence', 0):.2f}")
