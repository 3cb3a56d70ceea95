"""The HTML of each page: a shared shell, the controls with their current values, empty plot
and table containers that the page's script (static/<page>.js) fills from the JSON API.

Every value written into a page is escaped; there is no inline script (the content security
policy allows scripts from this server only).
"""
from __future__ import annotations

from html import escape

from netfrontier.frontier import OBJECTIVES
from netfrontier.serve.params import ACCURACY

NAV = (("/", "frontier", "Frontier"), ("/whatif", "whatif", "Hardware what-if"),
       ("/model", "model", "Model"), ("/compare", "compare", "Compare chips"),
       ("/studies", "studies", "Studies"))
OBJECTIVE_LABELS = {"latency": "latency", "dram": "DRAM traffic", "energy": "energy"}


def shell(page: str, title: str, lead: str, body: str, info: str) -> str:
    nav = "".join(f'<a href="{href}"{" aria-current=page" if key == page else ""}>'
                  f"{escape(text)}</a>" for href, key, text in NAV)
    scripts = "".join(f'<script src="/static/{s}"></script>'
                      for s in ("plotly.min.js", "app.js", f"{page}.js"))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · netfrontier</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/style.css"></head>
<body data-page="{page}">
<header><a class="brand" href="/">netfrontier</a><nav>{nav}</nav>
<span class="info">{escape(info)}</span></header>
<main><h1>{escape(title)}</h1><p class="lead">{lead}</p>
{body}
</main>{scripts}</body></html>"""


def select(name: str, label: str, options, selected) -> str:
    opts = "".join(f'<option value="{escape(str(v))}"'
                   f'{" selected" if str(v) == str(selected) else ""}>{escape(str(t))}</option>'
                   for v, t in options)
    return (f'<label>{escape(label)} <select name="{escape(name)}" id="{escape(name)}">'
            f"{opts}</select></label>")


def hardware_options(summaries: list[dict]) -> list[tuple[str, str]]:
    return [(s["name"], f"{s['name']} ({s['kind']}{', calibrated' if s['calibrated'] else ''})")
            for s in summaries]


def _bits(hw: dict, wbits: int, abits: int) -> str:
    return (select("wbits", "weights", [(b, f"{b}-bit") for b in hw["weight_bits"]], wbits)
            + select("abits", "activations", [(b, f"{b}-bit") for b in hw["activation_bits"]],
                     abits))


def _common(batches, batch, objective) -> str:
    return (select("batch", "batch", [(b, b) for b in batches], batch)
            + select("objective", "objective",
                     [(o, OBJECTIVE_LABELS[o]) for o in OBJECTIVES], objective))


def _family(families, family) -> str:
    return select("family", "family", [("all", "all families")] + [(f, f) for f in families],
                  family)


def _accuracy(accuracy) -> str:
    return select("accuracy", "top-1", [(a, f"{a} accuracy") for a in ACCURACY], accuracy)


PLOT_AND_TABLE = """<div id="status" class="status" role="status"></div>
<div id="plot" class="plot"></div><ul id="notes" class="notes"></ul>
<div id="table" class="table-wrap"></div>"""


def frontier_page(info, hw_list, hw, wbits, abits, batches, batch, objective, families, family,
                  accuracy) -> str:
    controls = (select("hw", "hardware", hardware_options(hw_list), hw["name"])
                + _bits(hw, wbits, abits) + _common(batches, batch, objective)
                + _family(families, family) + _accuracy(accuracy))
    return shell("frontier", "Frontier explorer",
                 "Accuracy against cost over the zoo on one chip: the Pareto staircase and the "
                 "trade-off line through it. Hover a point for the model, click it for its "
                 "layers; the table follows the filters and sorts by any column.",
                 f'<form id="controls" class="controls">{controls}</form>{PLOT_AND_TABLE}', info)


def whatif_page(info, hw_list, hw, wbits, abits, batches, batch, objective, families,
                family) -> str:
    controls = (select("hw", "start from", hardware_options(hw_list), hw["name"])
                + '<label>or upload YAML <input type="file" id="upload" name="upload" '
                  'accept=".yaml,.yml,text/yaml"></label>'
                + _bits(hw, wbits, abits) + _common(batches, batch, objective)
                + _family(families, family))
    body = (f'<form id="controls" class="controls">{controls}</form>'
            '<form id="knobs" class="knobs" autocomplete="off"></form>'
            '<div class="buttons"><button type="button" id="reset">reset to the preset</button>'
            '<button type="button" id="download">download this spec as YAML</button>'
            '<span id="timing" class="timing"></span></div>' + PLOT_AND_TABLE)
    return shell("whatif", "Hardware what-if",
                 "Change the chip and watch the frontier move: every change recosts the whole "
                 "zoo from its stored graphs (no capture), checked by the same rules as a "
                 "preset file. The dotted staircase is the unchanged chip.", body, info)


def model_page(info, models, name, hw_list, hw, wbits, abits, batches, batch) -> str:
    controls = (select("name", "model", [(m, m) for m in models], name)
                + select("hw", "hardware", hardware_options(hw_list), hw["name"])
                + _bits(hw, wbits, abits)
                + select("batch", "batch", [(b, b) for b in batches], batch))
    body = (f'<form id="controls" class="controls">{controls}</form>'
            '<div id="status" class="status" role="status"></div>'
            '<div id="summary" class="summary"></div><ul id="notes" class="notes"></ul>'
            '<div id="roofline" class="plot"></div>'
            '<div class="two"><div id="time" class="plot small"></div>'
            '<div id="dram" class="plot small"></div></div>'
            '<h2>Layers</h2><div id="table" class="table-wrap"></div>')
    return shell("model", "Model view",
                 "Every fused layer on the chip: the roofline (arithmetic intensity against "
                 "achieved ops/s), what bounds it, fusion groups and host fallback, and where "
                 "the time and the DRAM traffic go.", body, info)


def compare_page(info, hw_list, a, b, batches, batch, objective, families, family) -> str:
    opts = hardware_options(hw_list)
    controls = (select("a", "chip A", opts, a) + select("b", "chip B", opts, b)
                + _common(batches, batch, objective) + _family(families, family))
    return shell("compare", "Compare chips",
                 "Each model's rank and cost on two chips; rows whose rank changes are "
                 "highlighted (green: better rank on B, orange: worse).",
                 f'<form id="controls" class="controls">{controls}</form>{PLOT_AND_TABLE}', info)


def studies_page(info) -> str:
    body = ('<div id="status" class="status" role="status"></div>'
            '<div id="search" class="notice"></div><div id="studies"></div>')
    return shell("studies", "Studies",
                 "Quantization and search studies read from the results the benchmarks wrote.",
                 body, info)


def error_page(status: int, message: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{status} · netfrontier</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/style.css"></head>
<body><main class="error"><h1>{status}</h1><p id="error">{escape(message)}</p>
<p><a href="/">back to the frontier explorer</a></p></main></body></html>"""
