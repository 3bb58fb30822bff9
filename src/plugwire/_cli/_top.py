"""`plugwire top`: a live dashboard of a host's plugins, from its Prometheus endpoint or a host it runs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import click
import msgspec
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from .._errors import PluginError
from ._bench import format_seconds
from ._common import EXIT_OK, JSON_OPTION, POSITIVE_FLOAT, POSITIVE_INT, console, fail, load_config, print_json
from ._top_model import Frame, Row, Snapshot, build_frame, frame_data

__all__ = ["COLUMNS", "render_frame", "top_command"]

_STATUS_STYLE = {"healthy": "green", "degraded": "yellow", "unhealthy": "red", "offline": "red dim"}
_BREAKER_STYLE = {"closed": "green", "half-open": "yellow", "open": "red bold", "disabled": "dim"}
_SCRAPE_TIMEOUT = 5.0
#: The wide table's columns, in order.
COLUMNS = ("plugin", "status", "calls", "calls/s", "p50", "p99", "err%", "errors", "breaker", "procs", "in-flight")
_TEXT_COLUMNS = frozenset({"plugin", "status", "errors", "breaker"})


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _latency(value: float | None) -> str:
    return "-" if value is None else format_seconds(value)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _errors(row: Row) -> str:
    return " ".join(f"{code}x{count}" for code, count in row.errors_by_code.items()) or "0"


def _header(frame: Frame) -> Text:
    clock = time.strftime("%H:%M:%S", time.localtime(frame.taken_at))
    window = f"last {frame.window:.1f} s" if frame.window is not None else "rates from the next read"
    text = Text.assemble(("plugwire top", "bold"), f"  {clock}  {window}  {len(frame.rows)} plugin(s)\n{frame.source}")
    if frame.error:
        text.append(f"\n{frame.error}", style="red")
    return text


def _wide(frame: Frame) -> Table:
    table = Table(box=None, pad_edge=False, collapse_padding=True, header_style="bold")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in _TEXT_COLUMNS else "right", overflow="fold")
    for row in frame.rows:
        table.add_row(
            row.name,
            Text(row.status, style=_STATUS_STYLE.get(row.status, "")),
            str(row.calls),
            _rate(row.calls_per_second),
            _latency(row.p50),
            _latency(row.p99),
            _percent(row.error_rate),
            _errors(row),
            Text(row.breaker, style=_BREAKER_STYLE.get(row.breaker, "")),
            str(row.processes),
            str(row.in_flight),
        )
    return table


def _narrow(frame: Frame) -> Group:
    blocks: list[RenderableType] = []
    for row in frame.rows:
        title = Text.assemble((row.name, "bold"), "  ", (row.status, _STATUS_STYLE.get(row.status, "")))
        title.append(f"  {row.transport}")
        lines = [
            f"  calls {row.calls}  {_rate(row.calls_per_second)}/s  p50 {_latency(row.p50)}  p99 {_latency(row.p99)}",
            f"  err {_percent(row.error_rate)}  errors {_errors(row)}",
            f"  breaker {row.breaker}  procs {row.processes}  in-flight {row.in_flight}",
        ]
        blocks.append(title)
        blocks.extend(Text(line) for line in lines)
    return Group(*blocks)


def render_frame(frame: Frame, out: Console) -> RenderableType:
    """A frame as rich renderables for `out`: one table row per plugin when the table fits
    its width, else a few lines per plugin."""
    body: RenderableType
    if not frame.rows:
        body = Text("no plugins registered")
    else:
        table = _wide(frame)
        fits = Measurement.get(out, out.options.update_width(10_000), table).maximum <= out.width
        body = table if fits else _narrow(frame)
    return Group(_header(frame), Text(""), body)


Reader = Callable[[], Awaitable[Snapshot]]


@contextlib.asynccontextmanager
async def _source(config_path: str | None, url: str | None) -> AsyncIterator[tuple[str, Reader]]:
    """What to read snapshots from: the endpoint at `url`, or a host of `config_path` run here."""
    if url is not None:
        from ._top_scrape import ScrapeError, scrape

        async def read_url() -> Snapshot:
            try:
                return await asyncio.to_thread(scrape, url, _SCRAPE_TIMEOUT)
            except PluginError as exc:  # the prometheus extra is missing
                fail(exc)
            except ScrapeError as exc:
                raise _ReadError(str(exc)) from None

        yield url, read_url
        return
    assert config_path is not None
    from ._host import open_host

    config = load_config(config_path)
    config = msgspec.structs.replace(config, metrics=msgspec.structs.replace(config.metrics, enabled=True))
    async with open_host(config) as manager:

        async def read_host() -> Snapshot:
            metrics = manager.get_metrics()
            return Snapshot(taken_at=metrics.taken_at, plugins=dict(metrics.plugins))

        yield config_path, read_host


class _ReadError(Exception):
    """A read of the source failed (the message says why)."""


async def _frames(read: Reader, source: str, interval: float, count: int | None) -> AsyncIterator[Frame]:
    """A frame per interval, forever or `count` times. The first read failing ends it (exit
    2); a later failure shows in the frame and the next interval tries again."""
    try:
        previous = await read()
    except _ReadError as exc:
        fail(str(exc))
    shown = 0
    last = build_frame(None, previous, source)
    while count is None or shown < count:
        await asyncio.sleep(interval)
        try:
            current = await read()
        except _ReadError as exc:
            last = Frame(source=source, taken_at=time.time(), window=None, rows=last.rows, error=str(exc))
            yield last
        else:
            last = build_frame(previous, current, source)
            previous = current
            yield last
        shown += 1


async def _top(
    config_path: str | None, url: str | None, *, interval: float, count: int | None, once: bool, as_json: bool
) -> None:
    out = console()
    async with _source(config_path, url) as (source, read):
        if once:
            async for frame in _frames(read, source, interval, 1):
                if as_json:
                    print_json(frame_data(frame))
                else:
                    out.print(render_frame(frame, out))
            return
        if not out.is_terminal:  # piped: one frame after the other, a log
            async for frame in _frames(read, source, interval, count):
                out.print(render_frame(frame, out))
                out.print()
            return
        from rich.live import Live

        waiting = Text(f"plugwire top  {source}: first numbers in {interval:g} s (Ctrl-C to quit)")
        with Live(waiting, console=out, auto_refresh=False) as live:
            async for frame in _frames(read, source, interval, count):
                live.update(render_frame(frame, out), refresh=True)


@click.command("top")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--metrics", "url", metavar="URL", help="A running host's Prometheus endpoint, e.g. http://127.0.0.1:9464/metrics."
)
@click.option("--interval", type=POSITIVE_FLOAT, default=1.0, show_default=True, help="Seconds between refreshes.")
@click.option("--once", is_flag=True, help="Print one frame (over one interval) and exit.")
@click.option("--count", type=POSITIVE_INT, default=None, help="Exit after this many refreshes.")
@JSON_OPTION
def top_command(
    *, config: str | None, url: str | None, interval: float, once: bool, count: int | None, as_json: bool
) -> None:
    """Watch each plugin's status, calls/s, latency, errors, breaker and processes.

    \b
      plugwire top --metrics http://127.0.0.1:9464/metrics
      plugwire top plugwire.yaml --interval 2
      plugwire top --metrics URL --once --json

    Reads a running host's Prometheus endpoint (--metrics; the prometheus extra), or runs
    the host of CONFIG itself with metrics on. Rates, p50/p99 and err% are over the last
    interval. Ctrl-C quits.
    """
    if (config is None) == (url is None):
        raise click.UsageError("give a CONFIG file or --metrics URL (one of them)")
    if as_json and not once:
        raise click.UsageError("--json prints one frame: add --once")
    if once and count is not None:
        raise click.UsageError("--once prints one frame: leave out --count")
    if url is not None and not url.startswith(("http://", "https://")):
        raise click.BadParameter(f"expected an http:// or https:// URL, got {url!r}", param_hint="--metrics")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_top(config, url, interval=interval, count=count, once=once, as_json=as_json))
    raise SystemExit(EXIT_OK)
