"""What the demo shows: a placement table (text) and a picture of the fleet (self-contained SVG in HTML).

Pure functions of the objects the API returns — AITrainingJob dicts with their status, Node dicts and
Pod dicts — so they are unit-tested without a cluster. Nodes are read through the operator's own
discovery, so the picture shows the fleet as Suanli sees it.
"""

from __future__ import annotations

import html
import re
import textwrap
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from suanli.inventory import AcceleratorNode, InventorySettings
from suanli.inventory.discovery import discover
from suanli.inventory.pods import pod_usage

JOB_LABEL = "suanli.io/job"
OTHERS = "other teams"

# Tableau 10: distinct at a glance and readable for most colour-blind viewers.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#2f4b7c")
OTHERS_COLOUR = "#9aa3ad"
FREE_COLOUR = "#ffffff"
VENDOR_COLOUR = {"huawei": "#c7000b", "nvidia": "#76b900", "hygon": "#0a5cad"}
VENDOR_NAME = {"huawei": "Huawei", "nvidia": "NVIDIA", "hygon": "Hygon"}


# -- reading jobs ----------------------------------------------------------------------------------------


def job_name(job: Mapping[str, Any]) -> str:
    return str((job.get("metadata") or {}).get("name", "?"))


def _status(job: Mapping[str, Any]) -> Mapping[str, Any]:
    return job.get("status") or {}


def placed(job: Mapping[str, Any]) -> bool:
    return bool(_status(job).get("placement"))


def candidate_label(job: Mapping[str, Any]) -> str:
    """`0`, or `2 fallback` when the job runs on other than its first choice."""
    index = _status(job).get("candidateIndex")
    if index is None or not placed(job):
        return "-"
    return f"{index} fallback" if index > 0 else str(index)


def accelerator(job: Mapping[str, Any]) -> str:
    status = _status(job)
    if not placed(job):
        return "-"
    if status.get("model") == "mixed":  # no one vendor: count replicas per candidate
        spec = job.get("spec") or {}
        candidates = spec.get("candidates") or []
        counts: dict[str, int] = {}
        for r in status.get("placement") or []:
            index = r.get("candidateIndex")
            c = candidates[index] if isinstance(index, int) and index < len(candidates) else {}
            name = str(c.get("vendor", "?"))
            counts[name] = counts.get(name, 0) + 1
        return "mixed(" + ",".join(f"{name}={n}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1])) + ")"
    return f"{status.get('vendor', '?')}/{status.get('model', '?')}"


def domains_used(job: Mapping[str, Any], key: str) -> list[str]:
    """Distinct rack or zone names of the job's placed replicas, in first-use order."""
    return list(dict.fromkeys(str(r[key]) for r in _status(job).get("placement") or [] if r.get(key)))


def _list(names: Sequence[str], limit: int = 2) -> str:
    if not names:
        return "-"
    shown = ",".join(names[:limit])
    return f"{len(names)} ({shown}{',…' if len(names) > limit else ''})"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


# -- the table ---------------------------------------------------------------------------------------------


def placement_table(jobs: Sequence[Mapping[str, Any]], to_running: Mapping[str, float]) -> str:
    """One row per job: phase, accelerator, candidate (fallback marked), replicas, racks, zones, time to
    Running (`to_running`, seconds from create, measured by the caller); then why each pending job waits."""
    header = ("JOB", "PHASE", "ACCELERATOR", "CANDIDATE", "REPLICAS", "RACKS", "ZONES", "TO RUNNING")
    rows = [header]
    for job in jobs:
        spec = job.get("spec") or {}
        status = _status(job)
        placed_count = len(status.get("placement") or [])
        replicas = f"{placed_count}/{spec.get('replicas', '?')} x{spec.get('acceleratorsPerReplica', '?')}"
        rows.append((
            job_name(job), str(status.get("phase") or "-"), accelerator(job), candidate_label(job), replicas,
            _list(domains_used(job, "rack")), _list(domains_used(job, "zone")),
            _seconds(to_running.get(job_name(job))),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    waiting = [j for j in jobs if not placed(j)]
    if waiting:
        lines += ["", "Not placed, and why:"]
        for job in waiting:
            lines.append(f"  {job_name(job)}: {_status(job).get('reason') or 'no decision yet'}")
            lines += [f"    {line}" for line in _message_lines(job)]
    return "\n".join(lines)


def _message_lines(job: Mapping[str, Any], width: int = 110) -> list[str]:
    """The status message wrapped for a terminal; each "- candidate" clause keeps its own indented block."""
    out: list[str] = []
    for line in str(_status(job).get("message") or "").splitlines():
        if not line.strip():
            continue
        bullet = line.startswith("- ")
        for i, clause in enumerate(line.removeprefix("- ").split("; ") if bullet else [line]):
            first, rest = ("- " if i == 0 else "  ") if bullet else "", "  " if bullet else ""
            out += textwrap.wrap(clause, width, initial_indent=first, subsequent_indent=rest + "  ")
    return out


# -- the fleet, card by card -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeView:
    """One node as drawn: where it sits and who holds each of its cards (None = free)."""

    node: AcceleratorNode
    owners: tuple[str | None, ...]


def read_nodes(nodes: Iterable[Mapping[str, Any]]) -> list[AcceleratorNode]:
    """Accelerator nodes as the operator's discovery reads them; CPU-only and unreadable nodes are left out."""
    settings = InventorySettings()
    return [found for n in nodes if isinstance(found := discover(n, settings), AcceleratorNode)]


def card_owners(
    nodes: Sequence[AcceleratorNode], pods: Iterable[Mapping[str, Any]], jobs: Iterable[Mapping[str, Any]]
) -> dict[str, tuple[str | None, ...]]:
    """Who holds each card of each node: a job's name (from its status.placement), OTHERS for any other
    bound pod holding cards, None for free. Replicas go in the link domains the operator recorded; other
    pods fill the tightest domain that fits, as the inventory attributes them."""
    by_name = {n.name: n for n in nodes}
    cells: dict[str, list[str | None]] = {n.name: [None] * n.cards for n in nodes}

    def domain_cells(node: AcceleratorNode, domain: int) -> range:
        start = sum(node.link_domains[:domain])
        return range(start, start + node.link_domains[domain])

    def take(node: AcceleratorNode, owner: str, count: int, domains: Sequence[int]) -> None:
        slots = cells[node.name]
        preferred = [i for d in domains if d < len(node.link_domains) for i in domain_cells(node, d)]
        for i in [*preferred, *range(node.cards)]:
            if count == 0:
                return
            if slots[i] is None:
                slots[i] = owner
                count -= 1

    for job in jobs:
        per_replica = int((job.get("spec") or {}).get("acceleratorsPerReplica") or 0)
        for replica in _status(job).get("placement") or []:
            node = by_name.get(str(replica.get("node")))
            if node is not None:
                domains = [int(d) for d in str(replica.get("linkDomain") or "").split("+") if d.isdigit()]
                take(node, job_name(job), per_replica, domains)
    for pod in pods:
        if JOB_LABEL in ((pod.get("metadata") or {}).get("labels") or {}):
            continue  # drawn from its job's placement
        usage = pod_usage(pod)
        node = by_name.get(usage.node) if usage else None
        if usage is None or node is None:
            continue
        count = usage.cards.get(node.resource, 0)
        free = [sum(1 for i in domain_cells(node, d) if cells[node.name][i] is None)
                for d in range(len(node.link_domains))]
        fits = [d for d in range(len(free)) if free[d] >= count]
        take(node, OTHERS, count, [min(fits, key=lambda d: free[d])] if fits else [])
    return {name: tuple(slots) for name, slots in cells.items()}


def job_colours(jobs: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """A palette colour per placed job, in the order given."""
    names = [job_name(j) for j in jobs if placed(j)]
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


# -- the picture -------------------------------------------------------------------------------------------

CELL, GAP, DOMAIN_GAP = 11, 2, 5
ROW = CELL + 5
RACK_PAD, RACK_HEAD = 8, 34
ZONE_PAD, ZONE_HEAD = 10, 24
REGION_PAD, REGION_HEAD = 12, 30
LABEL_W = 22
NAME_W = 160


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _node_width(node: AcceleratorNode) -> int:
    return node.cards * CELL + (node.cards - 1) * GAP + (len(node.link_domains) - 1) * (DOMAIN_GAP - GAP)


def _rack_size(rack: Sequence[AcceleratorNode]) -> tuple[int, int]:
    width = LABEL_W + max(_node_width(n) for n in rack) + 2 * RACK_PAD
    return max(width, 126), RACK_HEAD + len(rack) * ROW + RACK_PAD


def _group(nodes: Sequence[AcceleratorNode]) -> dict[str, dict[str, dict[str, list[AcceleratorNode]]]]:
    tree: dict[str, dict[str, dict[str, list[AcceleratorNode]]]] = defaultdict(lambda: defaultdict(dict))
    for node in sorted(nodes, key=lambda n: (n.region, n.zone, n.rack, _natural(n.name))):
        tree[node.region or "(no region)"][node.zone or "(no zone)"].setdefault(node.rack or node.name, []).append(node)
    return tree


def _natural(name: str) -> tuple[object, ...]:
    head = name.rstrip("0123456789")
    tail = name[len(head):]
    return (head, int(tail) if tail else -1)


def _short_model(node: AcceleratorNode) -> str:
    return node.model.removeprefix("DCU-")


def fleet_svg(nodes: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]],
              jobs: Sequence[Mapping[str, Any]], title: str = "Suanli placement") -> str:
    """Regions → zones → racks → nodes, each node a row of its cards coloured by the job holding them."""
    accel = read_nodes(nodes)
    owners = card_owners(accel, pods, jobs)
    colours = {**job_colours(jobs), OTHERS: OTHERS_COLOUR}
    tree = _group(accel)
    parts: list[str] = []
    y = 64
    width = 0
    for region, zones in tree.items():
        x0, top = 16, y
        x = x0 + REGION_PAD
        inner_y = top + REGION_HEAD
        region_h = 0
        zone_parts: list[str] = []
        for zone, racks in zones.items():
            zx, zy = x, inner_y
            rx = zx + ZONE_PAD
            zone_h = 0
            rack_parts: list[str] = []
            for rack, members in racks.items():
                rw, rh = _rack_size(members)
                rack_parts.append(_rack_svg(rack, members, owners, colours, rx, zy + ZONE_HEAD, rw))
                rx += rw + ZONE_PAD
                zone_h = max(zone_h, rh)
            zw, zh = rx - zx, ZONE_HEAD + zone_h + ZONE_PAD
            zone_parts.append(
                f'<rect x="{zx}" y="{zy}" width="{zw}" height="{zh}" rx="8" class="zone"/>'
                f'<text x="{zx + 10}" y="{zy + 16}" class="zone-label">zone {_esc(zone)}</text>'
            )
            zone_parts += rack_parts
            x = zx + zw + ZONE_PAD
            region_h = max(region_h, zh)
        region_w = x - x0 + REGION_PAD - ZONE_PAD
        region_total_h = REGION_HEAD + region_h + REGION_PAD
        parts.append(
            f'<rect x="{x0}" y="{top}" width="{region_w}" height="{region_total_h}" rx="12" class="region"/>'
            f'<text x="{x0 + 14}" y="{top + 21}" class="region-label">region {_esc(region)}</text>'
        )
        parts += zone_parts
        width = max(width, x0 + region_w + 16)
        y = top + region_total_h + 16
    legend, legend_h = _legend_svg(jobs, colours, 16, y + 4, max(width - 32, 760))
    width = max(width, 792)
    height = y + legend_h + 12
    cards = sum(n.cards for n in accel)
    held = sum(1 for cells in owners.values() for c in cells if c is not None)
    vendors = sorted({n.vendor for n in accel})
    subtitle = (f"{len(accel)} nodes · {cards} accelerators ({', '.join(VENDOR_NAME.get(v, v) for v in vendors)}) · "
                f"{len(tree)} regions · {sum(len(z) for z in tree.values())} zones · "
                f"{sum(len(r) for z in tree.values() for r in z.values())} racks · "
                f"{held}/{cards} cards held at the peak")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Inter, \'Segoe UI\', Helvetica, Arial, sans-serif">'
        f"<style>{_CSS}</style>"
        f'<rect width="{width}" height="{height}" fill="#f7f8fa"/>'
        f'<text x="16" y="30" class="title">{_esc(title)}</text>'
        f'<text x="16" y="50" class="subtitle">{_esc(subtitle)}</text>'
        + "".join(parts) + legend + "</svg>"
    )


_CSS = """
.title{font-size:20px;font-weight:700;fill:#1f2933}
.subtitle{font-size:12px;fill:#52606d}
.region{fill:#eef1f5;stroke:#c5ccd6}
.region-label{font-size:14px;font-weight:700;fill:#323f4b}
.zone{fill:#ffffff;stroke:#d5dbe3}
.zone-label{font-size:12px;font-weight:600;fill:#52606d}
.rack{fill:#fbfcfd;stroke:#cfd6de}
.rack-label{font-size:11px;font-weight:600;fill:#323f4b}
.model{font-size:10px;fill:#ffffff;font-weight:600}
.node-label{font-size:9px;fill:#9aa5b1}
.card{stroke:#b8c2cc;stroke-width:0.6}
.legend-title{font-size:13px;font-weight:700;fill:#323f4b}
.legend{font-size:11.5px;fill:#323f4b}
.legend-dim{font-size:11px;fill:#616e7c}
.badge{font-size:10px;font-weight:700;fill:#ffffff}
"""


def _rack_svg(rack: str, members: Sequence[AcceleratorNode], owners: Mapping[str, tuple[str | None, ...]],
              colours: Mapping[str, str], x: int, y: int, width: int) -> str:
    _, height = _rack_size(members)
    head = members[0]
    vendor_colour = VENDOR_COLOUR.get(head.vendor, "#52606d")
    model = _short_model(head)
    chip_w = 8 + 6 * len(model)
    out = [
        f'<rect x="{x}" y="{y}" width="{width}" height="{height}" rx="6" class="rack"/>',
        f'<text x="{x + RACK_PAD}" y="{y + 14}" class="rack-label">rack {_esc(rack)}</text>',
        f'<rect x="{x + RACK_PAD}" y="{y + 19}" width="{chip_w}" height="12" rx="3" fill="{vendor_colour}"/>',
        f'<text x="{x + RACK_PAD + 4}" y="{y + 28.5}" class="model">{_esc(model)}</text>',
    ]
    for row, node in enumerate(members):
        ny = y + RACK_HEAD + row * ROW
        cells = owners.get(node.name, (None,) * node.cards)
        held = [c for c in cells if c]
        tip = f"{node.name} · {node.model} x{node.cards}" + "".join(
            f" · {who}: {held.count(who)}" for who in dict.fromkeys(held))
        out.append(f"<g><title>{_esc(tip)}</title>")
        suffix = node.name.rsplit("-", 1)[-1]
        out.append(f'<text x="{x + RACK_PAD}" y="{ny + CELL - 2}" class="node-label">{_esc(suffix)}</text>')
        cx = x + RACK_PAD + LABEL_W
        index = 0
        for size in node.link_domains:
            for _ in range(size):
                owner = cells[index] if index < len(cells) else None
                fill = colours.get(owner, OTHERS_COLOUR) if owner else FREE_COLOUR
                out.append(f'<rect x="{cx}" y="{ny}" width="{CELL}" height="{CELL}" rx="2" class="card" '
                           f'fill="{fill}"/>')
                cx += CELL + GAP
                index += 1
            cx += DOMAIN_GAP - GAP
        out.append("</g>")
    return "".join(out)


def _legend_svg(jobs: Sequence[Mapping[str, Any]], colours: Mapping[str, str], x: int, y: int,
                width: int) -> tuple[str, int]:
    out = [f'<text x="{x}" y="{y + 14}" class="legend-title">Jobs</text>']
    line = 20
    cy = y + 36
    for job in jobs:
        name = job_name(job)
        spec = job.get("spec") or {}
        status = _status(job)
        if placed(job):
            colour = colours[name]
            racks, zones = domains_used(job, "rack"), domains_used(job, "zone")
            count = len(status.get("placement") or [])
            detail = (f"{accelerator(job)} · {count} x {spec.get('acceleratorsPerReplica')}"
                      f" cards · {len(racks)} rack{'s' if len(racks) != 1 else ''} ({', '.join(racks)})"
                      f" · {len(zones)} zone{'s' if len(zones) != 1 else ''} · {status.get('phase', '')}")
            out.append(f'<rect x="{x}" y="{cy - 10}" width="14" height="14" rx="3" fill="{colour}"/>')
        else:
            detail = f"not placed · {status.get('reason') or 'no decision'}: {_first_line(status)}"
            out.append(f'<rect x="{x}" y="{cy - 10}" width="14" height="14" rx="3" fill="none" '
                       f'stroke="#7b8794" stroke-dasharray="3 2"/>')
        out.append(f'<text x="{x + 22}" y="{cy + 1}" class="legend" font-weight="700">{_esc(name)}</text>'
                   f'<text x="{x + 22 + NAME_W}" y="{cy + 1}" class="legend-dim">{_esc(_clip(detail, 112))}</text>')
        index = status.get("candidateIndex")
        if placed(job) and isinstance(index, int) and index > 0:
            first = ((spec.get("candidates") or [{}])[0]).get("model") or "first choice"
            badge = f"FALLBACK from {first} (candidate {index})"
            bx = x + width - 6.2 * len(badge) - 16
            out.append(f'<rect x="{bx}" y="{cy - 10}" width="{6.2 * len(badge) + 12}" height="15" rx="7" '
                       f'fill="#d64545"/><text x="{bx + 6}" y="{cy + 1}" class="badge">{_esc(badge)}</text>')
        cy += line
    cy += 4
    for colour, label in ((OTHERS_COLOUR, "held by other teams' pods (another scheduler)"), (FREE_COLOUR, "free")):
        out.append(f'<rect x="{x}" y="{cy - 10}" width="14" height="14" rx="3" fill="{colour}" stroke="#b8c2cc"/>'
                   f'<text x="{x + 22}" y="{cy + 1}" class="legend">{_esc(label)}</text>')
        cy += line
    vx = x
    for vendor, colour in VENDOR_COLOUR.items():
        label = f"{VENDOR_NAME[vendor]} rack"
        out.append(f'<rect x="{vx}" y="{cy - 9}" width="22" height="12" rx="3" fill="{colour}"/>'
                   f'<text x="{vx + 28}" y="{cy + 1}" class="legend">{_esc(label)}</text>')
        vx += 28 + 7 * len(label) + 20
    out.append(f'<text x="{vx}" y="{cy + 1}" class="legend-dim">one row per server; a gap splits its '
               "link domains (Ascend HCCS rings)</text>")
    return "".join(out), cy + 8 - y


def _first_line(status: Mapping[str, Any]) -> str:
    """The message's summary line without the operator's "namespace/name: " prefix."""
    message = str(status.get("message") or "")
    first = message.splitlines()[0] if message else ""
    head, sep, rest = first.partition(": ")
    return rest if sep and "/" in head and " " not in head else first


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fleet_html(svg: str, table: str, title: str = "Suanli demo") -> str:
    """A standalone page: the picture, then the text report (no scripts, no external files)."""
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_esc(title)}</title>"
        "<style>body{margin:0;background:#f7f8fa;font-family:Inter,'Segoe UI',Helvetica,Arial,sans-serif}"
        "main{padding:8px}pre{margin:8px 16px 24px;padding:12px;background:#fff;border:1px solid #d5dbe3;"
        "border-radius:8px;font-size:12px;line-height:1.45;overflow-x:auto}</style></head>"
        f"<body><main>{svg}<pre>{_esc(table)}</pre></main></body></html>\n"
    )


def svg_size(svg: str) -> tuple[int, int]:
    """The width and height `fleet_svg` drew, for sizing a screenshot."""
    found = re.search(r'<svg[^>]* width="(\d+)" height="(\d+)"', svg)
    if found is None:
        raise ValueError("not an SVG from fleet_svg: no width/height on the <svg> element")
    return int(found[1]), int(found[2])
