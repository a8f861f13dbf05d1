"""The README's performance table, rendered from one ``bench.run`` results JSON.

    .venv/bin/python -m bench.report bench/results/full-2core.json            # print it
    .venv/bin/python -m bench.report bench/results/full-2core.json --write README.md
    .venv/bin/python -m bench.report bench/results/full-2core.json --check README.md

Every figure of the section comes from the JSON: the machine, the commit and library
versions (``provenance``), each target with whether it was met, the ratios and the
ranges of repeated runs. ``--write`` replaces what lies between ``BEGIN`` and ``END``
in the README; ``--check`` exits 1 when that part differs from what the JSON renders,
so the README cannot drift from the results it cites.

JSON files from older runs lack sections (``client_ceiling``, ``live.steady``,
``catch_up``, ``provenance``): their rows say ``NOT_MEASURED``. Which targets are shown,
and whether each was met, is ``bench.verdicts``'s.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import run as bench_run
from bench.verdicts import NOT_MEASURED, TIMES, get, live_share, num, ratio, times, verdict_text, verdicts

__all__ = ["BEGIN", "END", "NOT_MEASURED", "main", "render", "replace_section"]

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
_DASH = "\N{EN DASH}"
Results = dict[str, Any]

#: How the table names the e2e runs' readers (``--readers``).
READER_NAMES = {
    "fast": "the fast reader (the service's, a thread of its process)",
    "process": "the reader in its own process (prototype, `bench/procreader.py`)",
    "library": 'the library reader (`reader.decoder = "library"`)',
}


def span(values: Any, digits: int = 0) -> str:
    """`` (2,218-2,235)`` (an en dash) from repeated runs' figures; "" for fewer than two."""
    present = [v for v in values or [] if isinstance(v, int | float)]
    if len(present) < 2:
        return ""
    return f" ({num(min(present), digits)}{_DASH}{num(max(present), digits)})"


# -- the table --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    measured: str
    figure: str
    target: str = ""


class _Table:
    """The rows, and which targets they have shown (the others get rows of their own)."""

    def __init__(self, results: Results) -> None:
        self.results = results
        self.verdicts = verdicts(results)
        self.shown: set[str] = set()
        self.rows: list[Row] = []

    def target(self, key: str) -> str:
        if key not in self.verdicts:
            return ""
        self.shown.add(key)
        return verdict_text(self.verdicts[key])

    def add(self, measured: str, figure: str, target: str = "") -> None:
        self.rows.append(Row(measured, figure, target))


def _best_reader(results: Results) -> tuple[str | None, dict[str, Any]]:
    runs: dict[str, Any] = get(results, "e2e.backlog_0ms") or {}
    if not runs:
        return None, {}
    name = max(runs, key=lambda k: runs[k].get("leads_per_s") or 0.0)
    best: dict[str, Any] = runs[name]
    return name, best


def scan_ratio(results: Results, segment: str, reference: str) -> float | None:
    """The fast reader's row events/s over ``reference``'s on ``segment``, from the figures
    (the table and the text say the same number)."""
    return ratio(
        get(results, f"scan.{segment}.fast.row_events_per_s"),
        get(results, f"scan.{segment}.{reference}.row_events_per_s"),
    )


def _scan_rows(t: _Table) -> None:
    r = t.results
    mixed, leads = get(r, "binlog.mixed") or {}, get(r, "binlog.leads") or {}
    events = mixed.get("row_events")
    noise = ratio(mixed.get("noise_statements"), mixed.get("statements"))
    what = f"{num(events)} row events with {num((noise or 0) * 100)} % noise" if events else "mixed segment"
    fast = get(r, "scan.mixed.fast.row_events_per_s")
    stock = get(r, "scan.mixed.stock.row_events_per_s")
    figure = NOT_MEASURED
    if fast and stock:
        figure = f"{num(fast)} vs {num(stock)} ev/s, **{times(scan_ratio(r, 'mixed', 'stock'))}**"
    t.add(
        f"scan, {what}: fast reader vs stock `mysql-replication` + `freeze_schema`",
        figure,
        t.target("scan_ratio_vs_stock"),
    )
    remote = get(r, "scan.mixed.mariadb_binlog_remote.row_events_per_s")
    figure = NOT_MEASURED
    if fast and remote:
        figure = f"{num(fast)} vs {num(remote)} ev/s"
        figure += f", **{times(scan_ratio(r, 'mixed', 'mariadb_binlog_remote'))}**"
        cpu = get(r, "ratios.scan_mixed_fast_vs_mariadb_binlog_remote_cpu")
        if cpu is not None:
            figure += f" ({times(cpu)} in CPU seconds)"
    t.add(
        "the same segment: fast reader vs `mariadb-binlog --read-from-remote-server` without row "
        "decoding (like for like: both read every event from the server, neither decodes an "
        "unwatched table's rows)",
        figure,
        t.target("scan_ratio_vs_mariadb_binlog"),
    )
    decoded = [get(r, f"scan.{s}.mariadb_binlog_remote_decoded.row_events_per_s") for s in ("mixed", "leads")]
    figure = NOT_MEASURED
    if all(decoded):
        mine = [get(r, f"scan.{s}.fast.row_events_per_s") for s in ("mixed", "leads")]
        figure = f"{num(decoded[0])} / {num(decoded[1])} ev/s (fast: {times(ratio(mine[0], decoded[0]))}"
        figure += f" / {times(ratio(mine[1], decoded[1]))})"
    t.add(
        "the same from the server with `--verbose` (every row of every table decoded), mixed / leads segment",
        figure,
        "(reference)",
    )
    local = [get(r, f"scan.{s}.mariadb_binlog.row_events_per_s") for s in ("mixed", "leads")]
    if any(local):
        t.add(
            "`mariadb-binlog --verbose` on the local binlog files (earlier runs' reference)",
            f"{num(local[0])} / {num(local[1])} ev/s",
            "(reference)",
        )
    fast_rows = get(r, "scan.leads.fast.lead_rows_per_s")
    stock_rows = get(r, "scan.leads.stock.lead_rows_per_s")
    figure = NOT_MEASURED
    if fast_rows and stock_rows:
        fast_ev = get(r, "scan.leads.fast.row_events_per_s")
        stock_ev = get(r, "scan.leads.stock.row_events_per_s")
        figure = f"{num(fast_rows)} vs {num(stock_rows)} lead rows/s ({num(fast_ev)} vs {num(stock_ev)} ev/s)"
        figure += f", **{times(ratio(fast_rows, stock_rows))}**"
    count = leads.get("leads")
    t.add(
        f"lead rows decoded, {num(count)} add_lead calls: fast vs stock"
        if count
        else "lead rows decoded: fast vs stock",
        figure,
        t.target("lead_decode_ratio_vs_stock"),
    )


def _e2e_rows(t: _Table) -> None:
    r = t.results
    reader, best = _best_reader(r)
    count = get(r, "binlog.leads.leads")
    backlog = f"{num(count)}-lead backlog" if count else "backlog"
    figure = NOT_MEASURED
    if best.get("leads_per_s"):
        figure = f"**{num(best['leads_per_s'])} leads/s**{span(best.get('runs_leads_per_s'))}"
        if best.get("cpu_s_per_1000_leads") is not None:
            figure += f", {num(best['cpu_s_per_1000_leads'], 2)} CPU s per 1,000 leads"
    t.add(
        f"end to end, {backlog} to a 0 ms receiver, durable outbox (best reader: {reader or 'none'})",
        figure,
        "(figure: machines differ 2 to 3 times)",
    )
    client = r.get("client_ceiling") or {}
    figure = NOT_MEASURED
    if client.get("requests_per_s"):
        figure = f"{num(client['requests_per_s'])} requests/s{span(client.get('runs_requests_per_s'))}"
        if client.get("cpu_s_per_1000_requests") is not None:
            figure += f", {num(client['cpu_s_per_1000_requests'], 2)} CPU s per 1,000 requests"
        cpu = get(r, "ratios.e2e_cpu_per_lead_vs_client_ceiling")
        if cpu is not None:
            figure += f" (the service: {times(cpu)} that per lead)"
    concurrency = client.get("concurrency") or get(r, "params.concurrency")
    t.add(
        "client ceiling: aiohttp alone sending the same requests, pre-rendered, to the same receiver"
        f" ({num(concurrency)} in flight, the service's loop and session settings)",
        figure,
    )
    share = get(r, "ratios.e2e_vs_client_ceiling")
    t.add(
        "end to end / client ceiling, same run",
        NOT_MEASURED if share is None else f"**{share:.2f}**",
        t.target("e2e_vs_client_ceiling"),
    )
    for other, run in (get(r, "e2e.backlog_0ms") or {}).items():
        if other == reader or not isinstance(run, dict) or not run.get("leads_per_s"):
            continue
        what = READER_NAMES.get(other, f"the `{other}` reader")
        t.add(
            f"the same with {what}", f"{num(run['leads_per_s'])} leads/s{span(run.get('runs_leads_per_s'))}"
        )
    drain = get(r, "backlog.drain_per_s")
    pending = get(r, "backlog.deliveries")
    t.add(
        f"sender alone draining a {num(pending)}-delivery outbox"
        if pending
        else "sender alone draining an outbox",
        NOT_MEASURED if drain is None else f"{num(drain)} deliveries/s",
    )
    seq0, seq_latency = get(r, "sequential.0ms.requests_per_s"), get(r, "sequential.latency.requests_per_s")
    latency_ms = get(r, "sequential.latency.latency_ms")
    figure = NOT_MEASURED
    if seq0 is not None:
        figure = f"{num(seq0)} req/s at 0 ms"
        if seq_latency is not None:
            figure += f", {num(seq_latency, 1)} at {num(latency_ms)} ms"
    t.add("VICIdial's model (one blocking request at a time)", figure)


def _offered(live: dict[str, Any]) -> str:
    offered = (
        f"{num(live.get('offered_leads_per_s'))} leads/s + {num(live.get('offered_noise_per_s'))} noise/s"
    )
    achieved = f"{num(live.get('achieved_leads_per_s'))} + {num(live.get('achieved_noise_per_s'))}"
    return f"offered {offered} (achieved {achieved})"


def _live_rows(t: _Table) -> None:
    r = t.results
    for run, target in (("latency", "live_p99_ms"), ("latency_lead_rate", None)):
        live = get(r, f"live.{run}")
        if not isinstance(live, dict):
            if target is not None:
                t.add("live: p99 insert→request under offered load", NOT_MEASURED, t.target(target))
            continue
        figure = NOT_MEASURED
        if live.get("p99_ms") is not None:
            figure = f"p50 {num(live.get('p50_ms'))} ms, **p99 {num(live['p99_ms'])} ms**"
        t.add(f"live: p99 insert→request, {_offered(live)}", figure, t.target(target) if target else "")
    _cpu_share_row(t)
    _steady_rows(t)
    _catch_up_row(t)
    noise = get(r, "e2e.mixed.fast.cpu_s_per_100k_noise_events")
    t.add(
        "noise cost while replaying the mixed segment",
        NOT_MEASURED if noise is None else f"{num(noise, 2)} CPU s per 100k noise events",
    )
    rss = t.verdicts.get("peak_rss_mb")
    pending = get(r, "backlog.deliveries")
    state_mb = get(r, "backlog.state_mb_at_start")
    what = "peak RSS"
    if pending:
        what += f", {num(pending)} pending deliveries on disk"
        if state_mb:
            what += f" ({num(state_mb)} MB state file)"
    figure = NOT_MEASURED
    if rss is not None and rss.measured is not None:
        backlog_rss = get(r, "backlog.peak_rss_mb")
        figure = f"**{num(backlog_rss if backlog_rss is not None else rss.measured)} MB**"
        figure += f" (all runs: ≤ {num(rss.measured)} MB)"
    t.add(what, figure, t.target("peak_rss_mb"))


def _cpu_share_row(t: _Table) -> None:
    """The streamer's share of one core at the steady target rate: a figure since
    ``steady_cpu_per_lead_vs_backlog`` (``live.cpu`` in older files, then a target)."""
    r = t.results
    old = get(r, "live.cpu")
    if isinstance(old, dict):
        share, what = old.get("window_cpu_share_of_one_core"), f"live: streamer CPU, {_offered(old)}"
    else:
        steady = get(r, "live.steady") or {}
        share = steady.get("cpu_share_of_one_core")
        rate = steady.get("cpu_leads_per_s")
        what = "live: streamer CPU"
        if rate is not None:
            what += f" at {num(rate)} leads/s + {num(steady.get('noise_per_s'))} noise/s"
    t.add(
        what,
        NOT_MEASURED if share is None else f"**{num(share * 100)} % of one core**",
        t.target("live_cpu_share_of_one_core"),
    )


def _steady_rows(t: _Table) -> None:
    steady = get(t.results, "live.steady") or {}
    per_rate = steady.get("net_cpu_s_per_1000_leads")
    figure = NOT_MEASURED
    if isinstance(per_rate, dict) and per_rate:
        parts = [f"{_rate_name(name)} leads/s: {num(value, 2)}" for name, value in per_rate.items()]
        figure = "; ".join(parts) + " (CPU s per 1,000 leads, net of a noise-only run)"
    noise = steady.get("noise_per_s")
    with_noise = f", each + {num(noise)} noise/s" if noise is not None else ""
    t.add(f"steady state: CPU per lead at 20, 200 and 2,000 leads/s{with_noise}", figure)
    key = "steady_cpu_per_lead_vs_backlog"
    v = t.verdicts.get(key)
    rate = steady.get("cpu_leads_per_s", 200)
    t.add(
        f"steady state ({num(rate)} leads/s, noise cost subtracted) / backlog replay, CPU per lead",
        NOT_MEASURED if v is None or v.measured is None else f"**{v.measured:.2f}{TIMES}**",
        t.target(key),
    )


def _rate_name(name: str) -> str:
    try:
        return num(float(name))
    except ValueError:
        return name


def _catch_up_row(t: _Table) -> None:
    r = t.results
    found = r.get("catch_up") or get(r, "live.catch_up")
    catch_up: dict[str, Any] = found if isinstance(found, dict) else {}
    leads, noise = catch_up.get("offered_leads_per_s", 50), catch_up.get("offered_noise_per_s", 5000)
    per_s = catch_up.get("catch_up_s_per_outage_s")
    figure = NOT_MEASURED
    if isinstance(per_s, int | float):
        figure = f"**{per_s:.3f} s** of catch-up per second of outage"
        hour, outage = catch_up.get("one_hour_outage_catch_up_s"), catch_up.get("outage_s")
        if hour is not None and outage is not None:
            figure += f" (one hour: {num(hour)} s, extrapolated from a {num(outage)} s outage)"
    t.add(f"catch-up after an outage at {num(leads)} leads/s + {num(noise)} noise/s", figure)


def _other_targets(t: _Table) -> None:
    for key, v in t.verdicts.items():
        if key not in t.shown:
            measured = NOT_MEASURED if v.measured is None else f"{v.measured:g}"
            t.add(f"target `{key}`", measured, t.target(key))


SECTIONS: tuple[Callable[[_Table], None], ...] = (_scan_rows, _e2e_rows, _live_rows, _other_targets)


# -- the text -------------------------------------------------------------------------------


def _header(results: Results, source: str) -> str:
    machine = results.get("machine") or {}
    prov = results.get("provenance") or {}
    libraries = prov.get("libraries") or {}
    versions = [
        f"Python {prov.get('python') or machine.get('python') or '?'}",
        f"MariaDB {str(machine.get('mariadb') or '?').split('-')[0]}",
        f"mysql-replication {libraries.get('mysql-replication') or machine.get('mysql_replication') or '?'}",
        f"aiohttp {libraries.get('aiohttp') or machine.get('aiohttp') or '?'}",
    ]
    if libraries.get("uvloop"):
        versions.append(f"uvloop {libraries['uvloop']}")
    loop = prov.get("event_loop") or "event loop not recorded"
    loop = f"{loop} event loop" if prov.get("event_loop") else loop
    commit = prov.get("commit")
    if commit:
        made = f"commit `{commit[:10]}`" + (" with uncommitted changes" if prov.get("dirty") else "")
    else:
        made = "commit not recorded (the file predates provenance)"
    params = results.get("params") or {}
    total = results.get("total_s")
    minutes = f"; {num(total / 60)} minutes" if isinstance(total, int | float) else ""
    return (
        f"Results: `{source}` ({results.get('preset', '?')} preset{minutes}), "
        f"{machine.get('cores', '?')} vCPU {machine.get('cpu') or 'CPU not recorded'}, "
        f"{', '.join(versions)}, {loop}; {made}. Medians of {params.get('repeat', '?')} scans and "
        f"{params.get('e2e_repeat', '?')} end-to-end runs; a range in brackets is the spread of those runs."
    )


def _reading(t: _Table) -> list[str]:
    r = t.results
    out: list[str] = []
    by_state: dict[bool | None, list[str]] = {True: [], False: [], None: []}
    for key, v in t.verdicts.items():
        by_state[v.met].append(f"`{key}`")
    out.append(
        f"targets met: {', '.join(by_state[True]) or 'none'}; not met: {', '.join(by_state[False]) or 'none'}"
        f"; {NOT_MEASURED}: {', '.join(by_state[None]) or 'none'}."
    )
    stock = scan_ratio(r, "mixed", "stock")
    remote = scan_ratio(r, "mixed", "mariadb_binlog_remote")
    decoded = scan_ratio(r, "mixed", "mariadb_binlog_remote_decoded")
    if stock is not None:
        text = (
            f'The fast reader (`reader.decoder = "fast"`) scans a busy dialer\'s binlog {times(stock)} faster'
        )
        text += " than stock `mysql-replication`"
        if remote is not None:
            text += (
                f" and {times(remote)} faster than `mariadb-binlog` reading the same segment from the server"
                f" without decoding rows ({times(decoded)} against `--verbose`, which decodes every row"
                " of every table: work the reader's table filter avoids, so not the like-for-like figure)"
            )
        else:
            text += "; `mariadb-binlog` reading from the server was " + NOT_MEASURED
        out.append(text + ".")
    _, best = _best_reader(r)
    share = get(r, "ratios.e2e_vs_client_ceiling")
    ceiling = get(r, "client_ceiling.requests_per_s")
    if best.get("leads_per_s"):
        text = f"End to end the service delivers {num(best['leads_per_s'])} leads/s durably"
        if share is not None and ceiling:
            text += (
                f", {share:.2f} of the {num(ceiling)} requests/s aiohttp alone sends to the same receiver"
                " on this machine in the same run: the share is the figure to compare across machines"
            )
        else:
            text += f"; the client ceiling it is compared with was {NOT_MEASURED}"
        out.append(text + ".")
    live = get(r, "live.latency")
    if isinstance(live, dict) and live.get("p99_ms") is not None:
        share_live = live_share(r, "latency")
        achieved = "an unknown share" if share_live is None else f"{share_live:.2f}"
        out.append(
            f"The live p99 ({num(live['p99_ms'])} ms) was measured at {achieved} of the offered load; it"
            f" counts only at {bench_run.MIN_ACHIEVED_SHARE:g} or more."
        )
    return out


def render(results: Results, source: str) -> str:
    """The section between the markers (markers included), ending with a newline."""
    table = _Table(results)
    for section in SECTIONS:
        section(table)
    lines = [BEGIN, "", _header(results, source), "", "| measured | figure | target |", "|---|---|---|"]
    lines += [f"| {row.measured} | {row.figure} | {row.target} |" for row in table.rows]
    lines += ["", "Reading it: " + " ".join(_reading(table)), "", END]
    return "\n".join(lines) + "\n"


def _markers(text: str) -> tuple[int, int]:
    begin, end = text.find(BEGIN), text.find(END)
    if begin < 0 or end < begin or text.count(BEGIN) != 1 or text.count(END) != 1:
        msg = f"the README needs exactly one {BEGIN} followed by one {END}"
        raise ValueError(msg)
    return begin, end + len(END)


def replace_section(readme: str, section: str) -> str:
    """``readme`` with what lies between the markers (and them) replaced by ``section``."""
    begin, end = _markers(readme)
    rest = readme[end:]
    return readme[:begin] + section.rstrip("\n") + (rest if rest.startswith("\n") else "\n" + rest)


def current_section(readme: str) -> str:
    begin, end = _markers(readme)
    return readme[begin:end] + "\n"


def _source_name(path: Path) -> str:
    """The JSON's path as the README cites it: relative to the checkout when inside it."""
    root = Path(__file__).resolve().parents[1]
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _diff(old: str, new: str) -> Iterator[str]:
    return difflib.unified_diff(old.splitlines(), new.splitlines(), "README", "rendered", lineterm="")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    p.add_argument("results", type=Path, help="a results JSON of bench.run")
    group = p.add_mutually_exclusive_group()
    readme = Path("README.md")
    group.add_argument(
        "--write", type=Path, nargs="?", const=readme, metavar="README", help="rewrite the README's section"
    )
    group.add_argument(
        "--check",
        type=Path,
        nargs="?",
        const=readme,
        metavar="README",
        help="exit 1 when the README's section differs from what the JSON renders",
    )
    args = p.parse_args(argv)
    results = json.loads(args.results.read_text(encoding="utf-8"))
    section = render(results, _source_name(args.results))
    if args.write is not None:
        readme = args.write.read_text(encoding="utf-8")
        args.write.write_text(replace_section(readme, section), encoding="utf-8")
        return 0
    if args.check is not None:
        current = current_section(args.check.read_text(encoding="utf-8"))
        if current == section:
            return 0
        print(f"{args.check} differs from what {args.results} renders:", file=sys.stderr)
        print("\n".join(_diff(current, section)), file=sys.stderr)
        print(f"regenerate it: python -m bench.report {args.results} --write {args.check}", file=sys.stderr)
        return 1
    sys.stdout.write(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
