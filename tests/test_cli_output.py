"""cli/output.py: one table renderer for every command; cut to the terminal only when there is one."""

from __future__ import annotations

from nextmodel_proxy.cli.output import table


def test_columns_align_and_none_shows_as_a_dash():
    out = table(["model", "cost"], [["a", "1.5"], ["longer-name", None]], right={1})
    assert out.splitlines() == ["model        cost", "a             1.5", "longer-name     -"]


def test_a_table_wider_than_the_terminal_is_cut_with_an_ellipsis():
    rows = [["x" * 60, "0.001234"], ["short", "12.50"]]
    out = table(["note", "usd"], rows, right={1}, width=40)
    assert all(len(line) <= 40 for line in out.splitlines())
    assert "…" in out.splitlines()[1] and out.splitlines()[1].endswith("0.001234")  # figures are never cut


def test_piped_output_is_never_cut(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    out = table(["note"], [["y" * 300]])
    assert "y" * 300 in out and "…" not in out
