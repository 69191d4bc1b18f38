"""The process that draws the monthly report's chart and writes its ledger
(`scheduler.monthly._draw` starts it): `python -P -m scheduler.report_files CHART LEDGER`, fed on
stdin a pickled `MonthlyClosure`, then pickled pages of `LedgerRow`s until end of file. Exit 0
when both files are written; an error's traceback goes to stderr, which the service logs."""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from models.closure import LedgerRow, MonthlyClosure
from scheduler.monthly import render_chart, render_ledger

NICE = 10


def _pages(source: BinaryIO) -> Iterator[list[LedgerRow]]:
    while True:
        try:
            yield pickle.load(source)
        except EOFError:
            return


def main(chart: Path, ledger: Path, source: BinaryIO) -> None:
    # Background work: the service's process and the database come first for the CPU (an
    # emergency's tick waits on both), as README.md advises for a worker sharing their cores.
    os.nice(NICE)
    report = pickle.load(source)
    assert isinstance(report, MonthlyClosure)
    chart.write_bytes(render_chart(report))
    render_ledger(report, _pages(source), ledger)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.stdin.buffer)
