"""``cxstream report``: one self-contained HTML page for the CX lead, the CEO and the CMO.

Charts are PNGs drawn by matplotlib (Agg backend) and embedded as ``data:``
URIs; the page has no script and loads nothing, so it opens offline. Every
number comes from :func:`flows.app.report_data.figures`.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

REPORT_FILE = "report.html"
_STYLE = (
    "body{font-family:sans-serif;margin:24px;color:#222;max-width:1100px}"
    "h1{margin-bottom:0}h2{border-bottom:2px solid #ccc;margin-top:32px}"
    "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;"
    "text-align:right}th{background:#f2f2f2}td:first-child{text-align:left}"
    ".kpi{display:inline-block;margin:8px 24px 8px 0}.kpi b{font-size:28px;display:block}"
    "img{max-width:100%}.grid{display:grid;grid-template-columns:1fr 1fr;gap:12px}"
)


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _img(uri: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="{uri}">'


def _bar(
    labels: list[str], values: list[float], title: str, colors: list[str] | None = None
) -> str:
    fig, ax = plt.subplots(figsize=(6, max(2.0, 0.3 * len(labels) + 1)))
    ax.barh(labels[::-1], values[::-1], color=(colors or ["#4472c4"] * len(values))[::-1])
    ax.set_title(title)
    ax.axvline(0, color="#333", linewidth=0.8)
    return _img(_png(fig), title)


def _table(head: list[str], rows: list[list[Any]]) -> str:
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return (
        "<table><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + f"</tr>{cells}</table>"
    )


def _kpi(label: str, value: object) -> str:
    return f'<span class="kpi"><b>{html.escape(str(value))}</b>{html.escape(label)}</span>'


def _trend(cx: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(11, 3.5))
    trend = cx["nps_trend"]
    ax.plot([t[0][:10] for t in trend], [t[1] for t in trend], "k-o", label="overall", linewidth=2)
    top = sorted(cx["touchpoint_trend"].items(), key=lambda kv: -len(kv[1]))[:6]
    for name, points in top:
        ax.plot([p[0][:10] for p in points], [p[1] for p in points], alpha=0.6, label=name)
    ax.set_title("NPS by day, overall and the busiest touchpoints")
    ax.legend(fontsize=7, ncol=4)
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    return _img(_png(fig), "NPS trend")


def _drivers(cx: dict[str, Any]) -> str:
    rows = cx["drivers"]
    if not rows:
        return "<p>No window had enough answers for key drivers yet.</p>"
    fig, ax = plt.subplots(figsize=(6, 4))
    names = [r["driver"] for r in rows][::-1]
    shares = [r["weight"] for r in rows][::-1]
    low = [r["weight"] - (r["low"] if r["low"] is not None else r["weight"]) for r in rows][::-1]
    high = [(r["high"] if r["high"] is not None else r["weight"]) - r["weight"] for r in rows][::-1]
    colors = ["#c00000" if r["significant"] else "#bbbbbb" for r in rows][::-1]
    ax.barh(names, shares, xerr=[low, high], color=colors, capsize=3)
    ax.set_title("Key drivers of NPS: relative weight (grey: not significant)")
    table = _table(
        ["driver", "weight", "share %", "interval", "significant", "sign", "detractor weight"],
        [
            [
                r["driver"],
                f"{r['weight']:.4f}",
                f"{r['share']:.1f}",
                f"{r['low']:.4f} - {r['high']:.4f}" if r["low"] is not None else "",
                "yes" if r["significant"] else "no",
                "+" if r["sign"] > 0 else "-" if r["sign"] < 0 else "0",
                f"{r['detractor_weight']:.4f}",
            ]
            for r in rows
        ],
    )
    head = f"<p>Window from {cx['drivers_window']}, R&sup2; {cx['r2']:.3f}.</p>"
    return head + _img(_png(fig), "key drivers") + table


def _cx(cx: dict[str, Any]) -> str:
    board = cx["leaderboard"]
    colours = {"top": "#2e7d32", "bottom": "#c00000"}
    parts = [
        "<h2>CX lead</h2>",
        _kpi("NPS over the period", cx["nps"]),
        _kpi("survey answers", cx["answers"]),
        _kpi("top-bottom quintile gap", cx["quintile_gap"]),
        _trend(cx),
        f"<h3>Leaderboard ({html.escape(str(cx['leaderboard_window']))})</h3>",
        '<div class="grid">',
        _bar(
            [b["touchpoint"] for b in board],
            [b["nps"] for b in board],
            "NPS by touchpoint (green top, red bottom quintile)",
            [colours.get(b["quintile"] or "", "#4472c4") for b in board],
        )
        if board
        else "<p>No leaderboard yet.</p>",
        _bar(
            [b["touchpoint"] for b in board], [b["impact"] for b in board], "Impact on overall NPS"
        )
        if board
        else "",
        "</div>",
        _table(
            ["touchpoint", "rank", "NPS", "answers", "quintile", "impact"],
            [
                [
                    b["touchpoint"],
                    b["rank"],
                    b["nps"],
                    b["responses"],
                    b["quintile"] or "",
                    b["impact"],
                ]
                for b in board
            ],
        ),
        "<h3>Key drivers</h3>",
        _drivers(cx),
        "<h3>Pockets (cells lower than their drivers explain)</h3>",
        _table(
            ["window", "cell", "answers", "NPS", "rest", "adjusted gap (0-10)", "q"],
            [
                [
                    a["evidence"]["window_start"][:10],
                    f"{a['evidence']['kind']}: {' / '.join(a['evidence']['cell'])}",
                    a["evidence"]["answers"],
                    a["evidence"]["nps"],
                    a["evidence"]["complement_nps"],
                    a["evidence"].get("adjusted_gap", ""),
                    a["evidence"]["q"],
                ]
                for a in cx["pockets"]
            ],
        ),
        "<h3>NPS by channel and the channel mix</h3>",
        _table(
            ["channel", "answers", "NPS", "at the overall stage mix", "mix effect"],
            [
                [c["channel"], c["answers"], c["nps"], c["mix_adjusted_nps"], c["mix_effect"]]
                for c in cx["channels"]
            ],
        ),
    ]
    return "".join(parts)


def _ceo(ceo: dict[str, Any]) -> str:
    months = ceo["revenue_by_month"]
    seg = ceo["by_segment"]
    return "".join(
        [
            "<h2>CEO</h2>",
            _kpi("revenue (lifetime value)", f"{ceo['revenue']:,.2f}"),
            _kpi("NPS", ceo["nps"]),
            _kpi("churn rate", f"{100 * (ceo['churn_rate'] or 0):.2f} %"),
            _kpi("customers", ceo["customers"]),
            '<div class="grid">',
            _bar(list(months), list(months.values()), "Revenue by month") if months else "",
            _bar(list(seg), [s["ltv"] for s in seg.values()], "Mean LTV by segment") if seg else "",
            "</div>",
            _table(
                ["month", "revenue", "growth %"],
                [[m, v, ceo["growth_by_month"].get(m, "")] for m, v in months.items()],
            ),
            _table(
                ["segment", "customers", "churn rate", "mean churn risk", "mean LTV"],
                [
                    [k, v["customers"], v["churn_rate"], v["churn_risk"], v["ltv"]]
                    for k, v in seg.items()
                ],
            ),
        ]
    )


def _acceptance(cmo: dict[str, Any]) -> str:
    rows = cmo["acceptance"]
    if not rows:
        return "<p>No responses to NBAs in these outputs: no acceptance to show.</p>"
    return "<h3>Acceptance by action</h3>" + _table(
        ["action", "impressions", "accepted", "answered", "acceptance"],
        [
            [
                a,
                r["impressions"],
                r["accepted"],
                r["answered"],
                "" if r["rate"] is None else r["rate"],
            ]
            for a, r in rows.items()
        ],
    )


def _cmo(cmo: dict[str, Any]) -> str:
    nbas, funnel = cmo["nba_by_action_channel"], cmo["funnel"]
    reasons = cmo["suppression_reasons"]
    rate = cmo["acceptance_rate"]
    return "".join(
        [
            "<h2>CMO</h2>",
            _kpi("next-best actions", cmo["nbas"]),
            _kpi("held back", cmo["suppressed"]),
            _kpi("response outcomes", cmo["responses"]),
            _kpi("acceptance", "n/a" if rate is None else f"{100 * rate:.2f} %"),
            '<div class="grid">',
            _bar(list(nbas), list(nbas.values()), "NBAs by action / channel") if nbas else "",
            _bar(list(reasons), list(reasons.values()), "Suppressions by reason")
            if reasons
            else "",
            _bar(list(funnel), list(funnel.values()), "Customers by journey stage")
            if funnel
            else "",
            "</div>",
            "<h3>Suppressions by reason and action</h3>",
            _table(
                ["reason / action", "held back"], [[k, n] for k, n in cmo["suppressions"].items()]
            ),
            _acceptance(cmo),
            _table(
                ["stage", "customers", "mean sentiment"],
                [[s, n, cmo["sentiment_by_stage"].get(s, "")] for s, n in funnel.items()],
            ),
            f"<p>Items that came after their window closed: {cmo['late_items']}.</p>",
        ]
    )


def render(figs: dict[str, Any], source: str) -> str:
    """Return the report page for ``figs`` (:func:`flows.app.report_data.figures`)."""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>cxstream report</title>"
        f"<style>{_STYLE}</style></head><body><h1>cxstream report</h1>"
        f"<p>From {html.escape(source)}.</p>{_cx(figs['cx'])}{_ceo(figs['ceo'])}{_cmo(figs['cmo'])}"
        "</body></html>"
    )


def write_report(figs: dict[str, Any], source: str, out_dir: Path) -> Path:
    """Write ``report.html`` into ``out_dir``; return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / REPORT_FILE
    path.write_text(render(figs, source), encoding="utf-8")
    return path
