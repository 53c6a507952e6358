"""One run as a single self-contained HTML page (pure: values in, text out, no file I/O).

Contract of ``render_html``: one HTML5 document, UTF-8, styled by one inline ``<style>``; no
``<script>`` and no external URL of any kind (plots are ``data:image/png;base64`` images), so
it reads the same offline, attached to a ticket or opened from a mail.  Every value that comes
from the dataset, the server, the command line or ``metadata`` (model, endpoint, paths, error
messages, headers, argv, the console table, the verdict's reason) passes through ``_e``
(``html.escape(str(x), quote=True)``) and is shown as text, never as markup.  Sections: title
and summary, verdict, per-level table, cost per level (with ``--cost-per-hour``), plots,
error breakdown with the slowest requests, metadata.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from qpsweep.analysis.cost import RunCost, run_cost
from qpsweep.analysis.estimate import Estimate
from qpsweep.analysis.summary import LevelSummary, Records, as_table
from qpsweep.analysis.verdict import Knee, Verdict, stalled
from qpsweep.output.text import (
    WORKLOAD_HEAD,
    WORKLOAD_TITLE,
    client_warning,
    money,
    stall_note,
    trace_multiples,
    traffic_words,
    workload_table,
)
from qpsweep.records.metadata import RunMetadata
from qpsweep.records.table import NO_INT, RecordTable
from qpsweep.records.table_ops import first_counts, largest

MAX_EXAMPLES = 3
SLOWEST = 10
NO_PLOTS = "no plots were drawn (run with plots enabled, or `qpsweep report DIR --plot`)"
_NB = "\u00a0"  # keeps "TTFT p95" on one line when a header wraps
LEVEL_HEAD = (
    "target QPS", "offered QPS", "achieved QPS", "sent", "ok", "success %",
    *(f"{m}{_NB}p{p} ({u})" for m, u in (("TTFT", "s"), ("E2E", "s")) for p in (50, 95, 99)),
    f"ITL{_NB}p50 (ms)", f"TPOT{_NB}p50 (ms)", f"send{_NB}lag{_NB}p99 (ms)", "state",
)  # fmt: skip
_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;
 margin:0 auto;padding:24px 32px;max-width:1500px;background:#fff}
h1{font-size:26px;margin:0 0 6px}h2{font-size:20px;margin:32px 0 10px;padding-bottom:4px;
 border-bottom:2px solid #dde3ec}h3{font-size:16px;margin:20px 0 8px}
.summary{color:#3d4656;margin:4px 0}.summary b{color:#1d2330}
.notice{background:#fff4d6;border:1px solid #e0b341;border-radius:6px;padding:10px 14px;
 font-weight:600}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(230px,1fr));gap:12px}
.card{border:1px solid #dde3ec;border-radius:8px;padding:10px 14px;background:#f7f9fc}
.card .k{font-size:13px;color:#5a6475;text-transform:uppercase;letter-spacing:.04em}
.card .v{font-size:26px;font-weight:700;margin:2px 0}.card .s{font-size:13px;color:#3d4656}
.card.rec{background:#eaf7ee;border-color:#8fd1a4}.reason{max-width:70em}
.suggestion{font-style:italic}.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13.5px;margin:6px 0}
th,td{border:1px solid #d6dce6;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#eef2f7;position:sticky;top:0}tbody tr:nth-child(even){background:#f8fafc}
td.text,th.text{text-align:left}tr.client_limited td{background:#fff0e0}
td.state-client_limited{color:#b35900;font-weight:700}td.state{white-space:nowrap}
td.state-saturated{color:#b3261e;font-weight:700}td.state-degraded{color:#a06800;font-weight:600}
td.state-ok{color:#1e7a3a}ul.warn{color:#8a4500}ul.examples{margin:0;padding-left:18px}
table.meta td{text-align:left}table.meta td:first-child{white-space:nowrap;font-weight:600}
code,pre{font:12.5px/1.4 ui-monospace,Menlo,Consolas,monospace}
table.meta code{overflow-wrap:anywhere;white-space:pre-wrap}
pre{background:#f4f6f9;border:1px solid #dde3ec;padding:10px;overflow-x:auto}
figure{margin:12px 0}figure img{width:100%;height:auto;border:1px solid #dde3ec}
figcaption{color:#5a6475;font-size:13px;text-align:center}.none{color:#5a6475}
"""


def _e(value: object) -> str:
    """``value`` as HTML text: ``& < > " '`` escaped, so it can never become markup."""
    return html.escape(str(value), quote=True)


def _num(value: float | None, fmt: str = ".3g") -> str:
    return "-" if value is None else format(value, fmt)


def _cls(name: str | None) -> str:
    return f' class="{_e(name)}"' if name else ""


def _row(
    cells: Sequence[object],
    cls: str = "",
    cell_cls: dict[int, str] | None = None,
    tail: str = "",
    tag: str = "td",
) -> str:
    """One ``<tr>``, every cell escaped; ``tail``: more cells, built from escaped parts."""
    classes = cell_cls or {}
    tds = "".join(f"<{tag}{_cls(classes.get(i))}>{_e(c)}</{tag}>" for i, c in enumerate(cells))
    return f"<tr{_cls(cls)}>{tds}{tail}</tr>"


def _head(names: Sequence[str], cell_cls: dict[int, str] | None = None) -> str:
    return f"<thead>{_row(names, cell_cls=cell_cls, tag='th')}</thead>"


def _header(metadata: RunMetadata, summaries: Sequence[LevelSummary]) -> str:
    sent = sum(s.n_sent for s in summaries)
    ok = sum(s.n_ok for s in summaries)
    parts = [
        f"<h1>qpsweep report: {_e(metadata.model)}</h1>",
        f'<p class="summary">endpoint <b>{_e(metadata.endpoint)}</b> &middot; '
        f"dataset <b>{_e(metadata.dataset)}</b> &middot; "
        f"started <b>{_e(metadata.timestamp)}</b></p>",
        f'<p class="summary"><b>{len(summaries)}</b> levels &middot; requests sent '
        f"<b>{sent}</b>, ok <b>{ok}</b>, failed <b>{sent - ok}</b></p>",
    ]
    notice = ""
    if metadata.interrupted:
        notice = "This run was interrupted: its last level may be cut short."
    elif metadata.status == "running":
        notice = "This run did not finish (killed?): the results cover what was recorded."
    if notice:
        parts.append(f'<p class="notice">{_e(notice)}</p>')
    return "\n".join(parts)


def _card(key: str, value: str, sub: str = "", cls: str = "card") -> str:
    return (
        f'<div class="{_e(cls)}"><div class="k">{_e(key)}</div><div class="v">{_e(value)}</div>'
        f'<div class="s">{_e(sub)}</div></div>'
    )


def _knee_text(knee: Knee | None) -> tuple[str, str]:
    if knee is None:
        return "-", "no knee found"
    check = "" if knee.kneedle_qps is None else f"; Kneedle {_num(knee.kneedle_qps)}"
    return _num(knee.qps), (
        f"interval {_num(knee.low)} - {_num(knee.high)} (p95 {knee.metric.upper()}, "
        f"two-segment fit{check})"
    )


def _verdict(v: Verdict, trace_rate_qps: float | None = None, cost: RunCost | None = None) -> str:
    """The verdict's cards and reason; with ``--arrival trace``, each rate as a multiple of
    the trace's mean rate too; with ``cost``, a card of the price at the recommended QPS."""
    knee_value, knee_sub = _knee_text(v.knee)
    times = trace_multiples(v, trace_rate_qps) if trace_rate_qps else {}

    def x(key: str) -> str:
        value = times.get(key)
        return "" if value is None else f" · {value:.3g}x today's traffic"

    def span(e: Estimate | None) -> str:
        if e is None:
            return ""
        high = _num(e.high) if math.isfinite(e.high) else "inf"
        return f"{v.confidence:.0%} interval {_num(e.low)} - {high}"

    capacity = v.capacity.value if v.capacity else None
    cards = [
        _card("saturation QPS", _num(v.saturation_qps), span(v.saturation) + x("saturation")),
        _card("capacity QPS", _num(capacity), span(v.capacity)),
        _card("proved", f"{_num(v.proved[0])} / {_num(v.proved[1])}", "sustained / saturated"),
        _card("knee QPS", knee_value, knee_sub),
        _card(
            "max sustainable QPS", _num(v.max_sustainable_qps), x("max_sustainable").lstrip(" ·")
        ),
        _card(
            "recommended QPS",
            _num(v.recommended_qps),
            f"headroom {v.headroom:g}{x('recommended')}",
            "card rec",
        ),
    ]
    if any(st.certified is not None for st in v.levels):
        cards.append(_card("SLO-certified QPS", _num(v.certified_qps), "early stopping"))
    if cost is not None:
        rec = cost.recommended
        cards.append(
            _card(
                "cost per 1M output tokens",
                money(rec.per_1m_output_tokens_usd if rec else None),
                f"at the recommended QPS; {money(cost.cost_per_hour_usd)}/hour; "
                f"{money(rec.per_1k_requests_usd if rec else None)} per 1k requests",
            )
        )
    reason = v.reason
    if trace_rate_qps:
        reason = f"{traffic_words(v, trace_rate_qps)[1]} {reason}"
    out = f'<div class="cards">{"".join(cards)}</div>\n<p class="reason">{_e(reason)}</p>'
    if v.suggestion is not None:
        out += f'\n<p class="suggestion">{_e(v.suggestion)}</p>'
    return out


def _levels(
    summaries: Sequence[LevelSummary], v: Verdict, table: str, metadata: RunMetadata
) -> str:
    states = {st.index: st.state for st in v.levels}
    thresholds = metadata.thresholds
    rows, notes = [], []
    for s in summaries:
        state = states.get(s.index, "-")
        limited = state == "client_limited"
        rates = [f"{s.qps_target:g}", f"{s.offered_qps:.2f}", f"{s.achieved_qps:.2f}"]
        counts = [s.n_sent, s.n_ok, f"{s.success_pct:.1f}"]
        pcts = [_num(d.get(p), ".3f") for d in (s.ttft_s, s.e2e_s) for p in (50.0, 95.0, 99.0)]
        ms = [_num(m.get(p), ".1f") for m, p in ((s.itl_ms, 50.0), (s.tpot_ms, 50.0))]
        lag_ms = _num(s.send_lag_ms.get(99.0), ".1f")
        cells = [*rates, *counts, *pcts, *ms, lag_ms, f"\u26a0 {state}" if limited else state]
        cls = "client_limited" if limited else ""
        rows.append(_row(cells, cls, {len(cells) - 1: f"text state state-{state}"}))
        if limited:
            notes.append(client_warning(s))
        elif stalled(s, thresholds):
            notes.append(stall_note(s))
    warn = "".join(f"<li>{_e(n)}</li>" for n in notes)
    head = _head(LEVEL_HEAD, {len(LEVEL_HEAD) - 1: "text"})
    workload = workload_table(summaries)
    extra = (
        ""
        if workload is None
        else f'<p>{_e(WORKLOAD_TITLE)}</p>\n<div class="scroll">'
        + _table("workload", _head(WORKLOAD_HEAD), [_row(c) for c in workload], "")
        + "</div>\n"
    )
    return (
        f'<div class="scroll">{_table("levels", head, rows, "no level ran")}</div>\n'
        + extra
        + (f'<ul class="warn">{warn}</ul>\n' if warn else "")
        + "<details><summary>console table (report.txt)</summary>"
        f"<pre>{_e(table)}</pre></details>"
    )


def _sessions(summaries: Sequence[LevelSummary]) -> str:
    """The ``--multi-turn`` section (empty without sessions): ``text.session_lines``'s
    figures, one row per level, the reasons of the turns not sent in the last column."""
    rows = []
    for s in summaries:
        ss = s.sessions
        if ss is None:
            continue
        reasons = ", ".join(f"{reason} {n}" for reason, n in ss.not_sent) or "-"
        ttft = [
            _num(d.get(p), ".3f")
            for p in (50.0, 95.0)
            for d in (ss.ttft_first_turn_s, ss.ttft_later_turns_s)
        ]
        cells = [
            f"{s.qps_target:g}",
            f"{s.offered_qps:.2f}",
            f"{ss.started_qps:.2f}",
            ss.n_sessions,
            _num(ss.requests_per_session, ".2f"),
            _num(ss.history_tokens_mean, ".0f"),
            _num(ss.history_tokens_p95, ".0f"),
            *ttft,
            reasons,
        ]
        rows.append(_row(cells, cell_cls={len(cells) - 1: "text"}))
    if not rows:
        return ""
    head = _head(SESSION_HEAD, {len(SESSION_HEAD) - 1: "text"})
    return (
        '<section><h2 id="sessions-heading">Sessions</h2>\n<p>--multi-turn: each turn is a '
        "request, released when the answer before it ends plus the think time; TTFT of turn 1 "
        "against later turns shows what the server's prefix cache saves.</p>\n"
        f'<div class="scroll">{_table("sessions", head, rows, "no session")}</div></section>'
    )


SESSION_HEAD = [
    "target QPS",
    "request rate",
    "session start rate",
    "sessions",
    "requests / session",
    "history tokens mean",
    "history tokens p95",
    "TTFT turn 1 p50 (s)",
    "TTFT later turns p50 (s)",
    "TTFT turn 1 p95 (s)",
    "TTFT later turns p95 (s)",
    "turns not sent",
]


def _costs(summaries: Sequence[LevelSummary], cost: RunCost) -> str:
    """Each level priced at its achieved rates (``qpsweep.analysis.cost``)."""
    rows = []
    for s in summaries:
        c = cost.level(s.index)
        if c is not None:
            per_1m, per_1k = c.per_1m_output_tokens_usd, c.per_1k_requests_usd
            cells = [f"{s.qps_target:g}", f"{c.qps:.2f}", f"{c.output_tok_per_s:.1f}"]
            rows.append(_row([*cells, money(per_1m), money(per_1k)]))
    head = _head(["target QPS", "achieved QPS", "output tok/s", "USD per 1M output tokens",
                  "USD per 1k requests"])  # fmt: skip
    note = f"At {money(cost.cost_per_hour_usd)} per hour (--cost-per-hour)."
    return f'<p class="summary">{_e(note)}</p>\n' + _table("costs", head, rows, "no level ran")


def _plots(images: Sequence[tuple[str, bytes]]) -> str:
    if not images:
        return f'<p class="none">{_e(NO_PLOTS)}</p>'
    return "\n".join(
        f'<figure><img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" '
        f'alt="{_e(title)}"><figcaption>{_e(title)}</figcaption></figure>'
        for title, png in images
    )


def _example(message: str | None, status: int | None) -> str:
    text = message or "(no message)"
    return text if status is None else f"[{status}] {text}"


def _slow_row(t: RecordTable, i: int) -> str:
    first_token_s, sent_s = float(t.first_token_s[i]), float(t.sent_s[i])
    ttft_s = None if math.isnan(first_token_s) else first_token_s - sent_s
    status = None if t.status[i] == NO_INT else int(t.status[i])
    cells = [int(t.level[i]), f"{float(t.level_qps[i]):g}", int(t.prompt_id[i])]
    return _row(
        [*cells, _num(ttft_s, ".3f"), f"{float(t.done_s[i]) - sent_s:.3f}", _num(status, "d")]
    )


def _table(table_id: str, head: str, rows: Sequence[str], empty: str) -> str:
    """A table of already escaped ``rows``, or the note ``empty`` when there are none."""
    if not rows:
        return f'<p class="none">{_e(empty)}</p>'
    return f'<table id="{_e(table_id)}">{head}<tbody>{"".join(rows)}</tbody></table>'


def _errors(records: Records) -> str:
    t = as_table(records)
    failed = ~t.ok
    kinds, messages = [*t.error_kind.names, ""], [*t.error.names, None]
    examples: dict[tuple[int, str], list[str]] = {}
    by_message = (t.level, t.error_kind.codes, t.error.codes, t.status)
    for (level, kind, error, status), _, _ in first_counts(*(c[failed] for c in by_message)):
        seen = examples.setdefault((level, kinds[kind]), [])
        text = _example(messages[error], None if status == NO_INT else status)
        if len(seen) < MAX_EXAMPLES and text not in seen:
            seen.append(text)
    by_kind = (t.level, t.level_qps, t.error_kind.codes)
    counts = [
        ((level, qps, kinds[kind]), n)
        for (level, qps, kind), n, _ in first_counts(*(c[failed] for c in by_kind))
    ]
    rows = []
    for (level, qps, kind), n in sorted(counts, key=lambda kv: (kv[0][0], -kv[1])):
        items = "".join(f"<li>{_e(x)}</li>" for x in examples[(level, kind)])
        tail = f'<td class="text"><ul class="examples">{items}</ul></td>'
        rows.append(_row([level, f"{qps:g}", kind, n], cell_cls={2: "text"}, tail=tail))
    head = _head(["level", "target QPS", "kind", "count", "examples"], {2: "text", 4: "text"})
    failures = _table("errors", head, rows, "no request failed")
    ok = np.flatnonzero(t.ok)
    slow = [_slow_row(t, int(ok[i])) for i in largest(t.done_s[ok] - t.sent_s[ok], SLOWEST)]
    head = _head(["level", "target QPS", "prompt_id", "TTFT (s)", "E2E (s)", "status"])
    slowest = _table("slowest", head, slow, "no successful request")
    return f"{failures}\n<h3>The {SLOWEST} slowest successful requests</h3>\n{slowest}"


def _metadata(metadata: RunMetadata) -> str:
    def text(value: Any) -> str:
        if isinstance(value, dict | list | tuple):
            return json.dumps(value, separators=(",", ":"), default=str)
        return str(value)

    rows = "".join(
        f"<tr><td>{_e(k)}</td><td><code>{_e(text(v))}</code></td></tr>"
        for k, v in metadata.to_json().items()
    )
    return f'<table class="meta" id="metadata"><tbody>{rows}</tbody></table>'


def render_html(
    metadata: RunMetadata,
    summaries: Sequence[LevelSummary],
    verdict: Verdict,
    table: str,
    records: Records,
    images: Sequence[tuple[str, bytes]],
) -> str:
    """The whole report page; see the module docstring for the contract."""
    trace_rate = metadata.trace.mean_rate_qps if metadata.trace else None
    cost = run_cost(summaries, verdict, metadata.cost_per_hour)
    sections = [
        _header(metadata, summaries),
        f'<section><h2 id="verdict">Verdict</h2>\n{_verdict(verdict, trace_rate, cost)}</section>',
        f'<section><h2 id="levels-heading">Levels</h2>\n'
        f"{_levels(summaries, verdict, table, metadata)}</section>",
        *(
            [f'<section><h2 id="cost-heading">Cost</h2>\n{_costs(summaries, cost)}</section>']
            if cost is not None
            else []
        ),
        *([_sessions(summaries)] if any(s.sessions for s in summaries) else []),
        f'<section><h2 id="plots">Plots</h2>\n{_plots(images)}</section>',
        f'<section><h2 id="errors-heading">Error breakdown</h2>\n{_errors(records)}</section>',
        f'<section><h2 id="metadata-heading">Metadata</h2>\n{_metadata(metadata)}</section>',
    ]
    title = f"qpsweep report {metadata.timestamp}".strip()
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )
