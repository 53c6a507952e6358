"""Options whose effect a user can check: plots, --warmup, --no-verify-tls, --arrival."""

from __future__ import annotations

import dataclasses
import ssl
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Run
from servers import BODIES, ServerThread, make_app

QUICK = ("--model", "m", "--qps", "10,20", "--duration", "0.5")


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


@pytest.mark.slow
def test_plots_are_drawn_by_default(qpsweep, server: ServerThread) -> None:
    run: Run = qpsweep("--endpoint", server.url("ok"), *QUICK, "--plot-output", "o.png", plots=True)
    assert run.run_dir is not None
    assert png_size(run.run_dir / "o.png") == (2000, 1200)
    names = sorted(p.name for p in (run.run_dir / "plots").iterdir())
    assert names == ["in_flight.png", "itl_distribution.png", "ttft_distribution.png"]
    assert (run.run_dir / "report.html").exists() and run.json("metadata.json")["plot"] is True
    plain = qpsweep("--endpoint", server.url("ok"), *QUICK, "--no-plot")
    assert plain.run_dir is not None and not (plain.run_dir / "benchmark_qps.png").exists()
    assert not (plain.run_dir / "plots").exists() and (plain.run_dir / "report.html").exists()
    (plain.run_dir / "report.html").unlink()
    again = qpsweep("report", str(plain.run_dir), "--plot", "--html")
    assert again.code == 0 and png_size(plain.run_dir / "benchmark_qps.png") == (2000, 1200)
    assert len(list((plain.run_dir / "plots").glob("*.png"))) == 3
    page = (plain.run_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4  # the overview and the three in plots/
    assert qpsweep("--endpoint", server.url("ok"), *QUICK, "--plot").run_dir is not None


@pytest.mark.slow
def test_overview_figure_has_six_panels_and_marks_the_verdict(qpsweep, server_process: str) -> None:
    from qpsweep.output.plot import build_figure
    from qpsweep.output.rebuild import analyze_run

    url = f"{server_process}/ok/v1/chat/completions?ttft_ms=5&tokens=4"
    run = qpsweep("--endpoint", url, "--model", "m", "--qps", "5,10,20", "--duration", "1")
    assert run.code == 0 and run.run_dir is not None
    analysis = analyze_run(run.run_dir)
    fig = build_figure(analysis.summaries, analysis.metadata, analysis.verdict)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:6] == [
        "QPS: target, offered, achieved",
        "TTFT",
        "end-to-end latency",
        "tokens/s per request",
        "failures by kind",
        "verdict and settings",
    ]
    panel_text = fig.axes[5].texts[0].get_text()
    assert "recommended QPS:" in panel_text and "max sustainable QPS:" in panel_text
    if analysis.verdict.recommended_qps is not None:
        lines = [ln.get_label() for ln in fig.axes[1].get_lines()]
        assert "recommended" in lines


def test_warmup_requests_are_sent_but_not_counted(qpsweep, server: ServerThread) -> None:
    server.app[BODIES].clear()
    run = qpsweep(
        "--endpoint",
        server.url("ok"),
        "--model",
        "m",
        "--qps",
        "10",
        "--duration",
        "0.5",
        "--arrival",
        "constant",
        "--warmup",
        "3",
    )
    assert len(server.app[BODIES]) == 3 + 5
    assert len(run.records()) == 5
    warmup = run.json("metadata.json")["warmup"]
    assert (warmup["sent"], warmup["ok"]) == (3, 3) and warmup["e2e_p50_s"] > 0
    assert "warmup: 3/3 succeeded" in run.err


def test_gamma_arrivals_are_used(qpsweep, server: ServerThread) -> None:
    run = qpsweep(
        "--endpoint",
        server.url("ok"),
        "--model",
        "m",
        "--qps",
        "50",
        "--duration",
        "1",
        "--arrival",
        "gamma",
        "--burstiness",
        "0.3",
    )
    meta = run.json("metadata.json")
    assert (meta["arrival"], meta["burstiness"]) == ("gamma", 0.3)
    assert 20 < len(run.records()) < 100


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """The scripted server over HTTPS with a fresh self-signed certificate."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with ServerThread(make_app(), ssl_context=context) as srv:
        yield srv


@pytest.mark.slow
def test_tls_is_verified_unless_told_not_to(qpsweep, tls_server: ServerThread) -> None:
    url = tls_server.url("ok")
    assert url.startswith("https://127.0.0.1:")
    strict = qpsweep("--endpoint", url, *QUICK)
    assert {r["error_kind"] for r in strict.records()} == {"connection"}
    assert "certificate verify failed" in strict.records()[0]["error"]
    lax = qpsweep("--endpoint", url, *QUICK, "--no-verify-tls")
    assert {r["error_kind"] for r in lax.records()} == {None}


def test_fixed_sweep_stops_when_a_level_fails_too_often(qpsweep, server: ServerThread) -> None:
    run = qpsweep(
        "--endpoint",
        server.url("status", code=503),
        "--model",
        "m",
        "--qps",
        "10,20,40",
        "--duration",
        "0.5",
        "--arrival",
        "constant",
    )
    meta = run.json("metadata.json")
    assert [level["qps_target"] for level in meta["levels"]] == [10.0]
    assert meta["stopped_early"].startswith(
        "100.0% of the requests at 10 QPS failed (--max-error-rate 0.05; 99% lower bound "
    )
    assert "stopping the sweep: 100.0% of the requests at 10 QPS failed" in run.err
    verdict = run.json("saturation.json")
    assert verdict["saturation_signals"] == ["error_rate"]
    assert "Every level saturated the server" in verdict["suggestion"]


def test_fixed_sweep_stops_past_the_p95_latency_limit(qpsweep, server_process: str) -> None:
    run = qpsweep(
        "--endpoint",
        f"{server_process}/ok/v1/chat/completions?ttft_ms=150",
        "--model",
        "m",
        "--qps",
        "10,20",
        "--duration",
        "0.5",
        "--max-p95-latency",
        "0.1",
    )
    meta = run.json("metadata.json")
    assert len(meta["levels"]) == 1 and "--max-p95-latency 0.1 s" in meta["stopped_early"]
    level = run.json("saturation.json")["levels"][0]
    # one level alone cannot prove itself sustainable: nothing above it showed more capacity
    assert level["state"] == "inconclusive" and "a higher level" in level["needs"], run.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--budget", "30", "--duration", "20"), "--budget: 30 s cannot fit the two levels"),
        (("--max-qps", "0.5"), "--max-qps: 0.5 must be above --start-qps 1"),
        (("--headroom", "1.5"), "--headroom: 1.5 must be in (0, 1]"),
    ],
)
def test_auto_settings_that_cannot_work_are_refused(
    qpsweep, args: tuple[str, ...], message: str
) -> None:
    run = qpsweep("--endpoint", "http://127.0.0.1:9", "--model", "m", "--qps", "auto", *args)
    assert run.code == 2 and run.run_dir is None
    assert run.err.startswith("qpsweep: error: ") and message in run.err


@pytest.mark.slow
def test_a_level_where_the_generator_stalled_is_run_once_more(qpsweep, server_process: str) -> None:
    """A long GIL-holding call (a sort of 3M floats, ~0.5 s) in another thread blocks the event
    loop during the first level, as a busy machine would: that level is client-limited, and the
    sweep runs it again before moving on."""
    import random
    import threading
    import time

    data = [random.random() for _ in range(3_000_000)]

    def stall() -> None:
        time.sleep(1.2)
        sorted(data)  # holds the GIL throughout

    url = f"{server_process}/ok/v1/chat/completions?tokens=2"
    staller = threading.Thread(target=stall)
    staller.start()
    run = qpsweep(
        "--endpoint", url, "--model", "m", "--qps", "20,30", "--duration", "3",
        "--arrival", "constant", rerun=True,
    )  # fmt: skip
    staller.join()
    assert run.code == 0
    levels = run.json("benchmark_qps_results.json")
    assert [lv["qps_target"] for lv in levels] == [20, 20, 30]
    assert [lv["state"] for lv in levels][:2] == ["client_limited", "ok"]
    assert "running that level once more" in run.err


def test_a_run_where_every_request_failed_is_still_drawn(qpsweep, server: ServerThread) -> None:
    """No TTFT or E2E to plot and no verdict rate to mark (here: a 401 for every request, the
    saturation left unknown): the overview is drawn without an empty legend (matplotlib's
    warning about one is an error in this suite)."""
    from qpsweep.output.plot import build_figure
    from qpsweep.output.rebuild import analyze_run

    run: Run = qpsweep("--endpoint", server.url("echo_auth"), *QUICK)  # all 401
    assert run.run_dir is not None, run.err
    analysis = analyze_run(run.run_dir)
    assert all(s.n_ok == 0 for s in analysis.summaries)
    unknown = dataclasses.replace(analysis.verdict, saturation_qps=None, recommended_qps=None)
    figure = build_figure(analysis.summaries, analysis.metadata, unknown)
    assert len(figure.axes) >= 6
