"""The HTML report: self-contained, no script, and hostile text shown as text (real runs,
parsed by the standard library and rendered by a real headless Chromium)."""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
from matplotlib.figure import Figure

from qpsweep.analysis.verdict import Verdict
from qpsweep.output.html import render_html
from qpsweep.output.rebuild import analyze_run
from qpsweep.records.run_files import load_records

from conftest import Run
from servers import ServerThread

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SRV_PAYLOAD = "<script>alert('srv')</script>"
MODEL_PAYLOAD = "<script>alert('model')</script>"


class Page(HTMLParser):
    """Every start tag with its attributes, all text, and the cell texts of each table row."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.rows: dict[str, list[list[str]]] = {}  # table id -> body rows -> cell texts
        self._table: list[str] = []
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self._table.append(dict(attrs).get("id") or "")
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.setdefault(self._table[-1], []).append([])
        elif tag == "td" and self._in_body:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table.pop()
        elif tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[self._table[-1]][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def all_text(self) -> str:
        return "".join(self.text)

    def headings(self) -> list[str]:
        return [attrs.get("id") or "" for tag, attrs in self.tags if tag == "h2"]


def small_png() -> bytes:
    fig = Figure(figsize=(4, 3), dpi=50)
    fig.subplots().plot([1, 2, 3], [1, 4, 9], marker="o")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def failing_run(
    qpsweep: Callable[..., Run], server: ServerThread, model: str, message: str
) -> tuple[str, Path, Verdict, int]:
    """A short real run against a server that answers 500 with ``message``; returns the
    rendered page, the run directory, the verdict and the number of failed requests."""
    url = server.url("status", code=500, message=quote(message))
    run = qpsweep("--endpoint", url, "--model", model, "--qps", "5", "--duration", "1", "--no-plot")
    assert run.run_dir is not None, run.err
    analysis = analyze_run(run.run_dir)
    records = load_records(run.run_dir)
    table = (run.run_dir / "report.txt").read_text(encoding="utf-8")
    page = render_html(
        analysis.metadata,
        analysis.summaries,
        analysis.verdict,
        table,
        records,
        [("overview", small_png())],
    )
    return page, run.run_dir, analysis.verdict, sum(not r.ok for r in records)


def test_hostile_text_stays_text_and_the_page_is_self_contained(
    qpsweep: Callable[..., Run], server: ServerThread
) -> None:
    page, _, _, failed = failing_run(qpsweep, server, MODEL_PAYLOAD, SRV_PAYLOAD)
    assert failed > 0
    parser = Page()
    parser.feed(page)
    parser.close()
    tags = {tag for tag, _ in parser.tags}
    assert not tags & {"script", "link", "iframe", "object", "embed", "base"}, tags
    assert "url(" not in page and "@import" not in page  # nothing fetched by the CSS either
    for tag, attrs in parser.tags:
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert "http://" not in value and "https://" not in value, (tag, attrs)
    text = parser.all_text()
    assert SRV_PAYLOAD in text and MODEL_PAYLOAD in text
    images = [attrs for tag, attrs in parser.tags if tag == "img"]
    assert len(images) == 1 and images[0]["alt"] == "overview"
    src = images[0]["src"] or ""
    assert src.startswith("data:image/png;base64,")
    assert base64.b64decode(src.split(",", 1)[1], validate=True).startswith(PNG_SIGNATURE)
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page


def test_sections_level_rows_and_error_counts(
    qpsweep: Callable[..., Run], server: ServerThread
) -> None:
    page, run_dir, verdict, failed = failing_run(qpsweep, server, "m", "engine exploded")
    parser = Page()
    parser.feed(page)
    headings = parser.headings()
    order = ["verdict", "levels-heading", "plots", "errors-heading", "metadata-heading"]
    assert [h for h in headings if h in order] == order
    summaries = analyze_run(run_dir).summaries
    assert len(parser.rows["levels"]) == len(summaries) == len(verdict.levels)
    shown = [row[-1].removeprefix("\u26a0 ") for row in parser.rows["levels"]]
    assert shown == [st.state for st in verdict.levels]  # one level: same order either way
    errors = [row for row in parser.rows["errors"] if row[2] == "http_5xx"]
    assert sum(int(row[3]) for row in errors) == failed
    assert "[500] HTTP 500: engine exploded" in errors[0][4]
    assert "slowest" not in parser.rows  # nothing succeeded
    text = parser.all_text()
    assert "no successful request" in text and "QPS BENCHMARK RESULTS" in text
    meta = dict((row[0], row[1]) for row in parser.rows["metadata"])
    assert meta["model"] == "m" and meta["status"] == "complete"


def test_without_images_the_page_says_how_to_get_plots(
    qpsweep: Callable[..., Run], server: ServerThread
) -> None:
    run = qpsweep(
        "--endpoint", server.url("ok"), "--model", "m", "--qps", "5", "--duration", "1", "--no-plot"
    )
    assert run.run_dir is not None
    analysis = analyze_run(run.run_dir)
    records = load_records(run.run_dir)
    page = render_html(
        analysis.metadata, analysis.summaries, analysis.verdict, "", records, images=[]
    )
    parser = Page()
    parser.feed(page)
    assert "img" not in [tag for tag, _ in parser.tags]
    assert "qpsweep report DIR --plot" in parser.all_text()
    assert len(parser.rows["slowest"]) == min(10, len(records))
    assert "errors" not in parser.rows and "no request failed" in parser.all_text()


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_report_renders_as_text_in_headless_chromium(
    qpsweep: Callable[..., Run], server: ServerThread, tmp_path: Path
) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed")
    model = "<img src=x onerror=\"document.title='PWNED'\">"
    message = "<script>document.title='PWNED'</script>"
    page, _, _, _ = failing_run(qpsweep, server, model, message)
    report = tmp_path / "report.html"
    report.write_text(page, encoding="utf-8")
    profile = tmp_path / "profile"

    def chromium_run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, report.as_uri()]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)

    start = time.perf_counter()
    dumped = chromium_run("--dump-dom")
    assert dumped.returncode == 0, dumped.stderr
    dom = dumped.stdout
    title = dom.split("<title>", 1)[1].split("</title>", 1)[0]
    assert "PWNED" not in title and title.startswith("qpsweep report")
    assert "&lt;script&gt;document.title='PWNED'&lt;/script&gt;" in dom
    assert "&lt;img src=x onerror=\"document.title='PWNED'\"&gt;" in dom
    assert "<script" not in dom.lower()
    shot = tmp_path / "shot.png"
    taken = chromium_run(f"--screenshot={shot}", "--window-size=1400,2400")
    assert taken.returncode == 0, taken.stderr
    assert shot.read_bytes().startswith(PNG_SIGNATURE) and shot.stat().st_size > 10_000
    print(f"chromium: {time.perf_counter() - start:.1f} s for dump + screenshot")
