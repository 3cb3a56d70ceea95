"""HTTP endpoints: pages, the JSON API and the static files, each a thin wrapper that checks
its parameters (params.py), runs one api.py function in a worker thread and returns JSON or
HTML. Errors are one message: JSON `{"error": ...}` under /api, a plain page elsewhere.
"""
from __future__ import annotations

import json
import logging
import math

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from netfrontier.errors import NetfrontierError, UnknownHardwareError, UnknownModelError
from netfrontier.hardware.registry import hardware_names
from netfrontier.report.html import natural_key
from netfrontier.serve import api, pages
from netfrontier.serve import params as P

log = logging.getLogger("netfrontier.serve")
MAX_BODY_BYTES = 128 * 1024  # a what-if with uploaded YAML (64 KiB) and its knobs
BODY_KEYS = ("hw", "yaml", "set", "wbits", "abits", "batch", "objective", "family",
             "accuracy")
DEFAULT_PAIR = ("nvidia-t4", "h100-fp16-cudagraph")  # ResNet-50 and EfficientNet-B0 swap


def _clean(x):
    """JSON-safe: numpy scalars to Python, NaN and infinities to null."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        return _clean(x.item())
    return x


class Json(JSONResponse):
    def render(self, content) -> bytes:
        return json.dumps(_clean(content), separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")


# errors -----------------------------------------------------------------------------------------
def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/healthz"


def error(request: Request, status: int, message: str) -> Response:
    message = " ".join(str(message).split())
    if _is_api(request):
        return Json({"error": message}, status_code=status)
    return HTMLResponse(pages.error_page(status, message), status_code=status)


def _http_message(request: Request, exc: HTTPException) -> str:
    path = P.clip(request.url.path)
    if exc.status_code == 404:
        return (f"nothing at '{path}' (pages: /, /whatif, /model, /compare, /studies; "
                "the API is under /api/)")
    if exc.status_code == 405:
        return f"{request.method} is not allowed at '{path}'"
    if exc.status_code == 413:
        return f"the request body is larger than the {MAX_BODY_BYTES:,}-byte limit"
    return str(exc.detail)


async def on_http(request, exc):
    return error(request, exc.status_code, _http_message(request, exc))


async def on_bad(request, exc):
    return error(request, exc.status, str(exc))


async def on_unknown(request, exc):
    return error(request, 404, str(exc))


async def on_netfrontier(request, exc):
    return error(request, 400, str(exc))


async def on_crash(request, exc):
    log.error("internal error on %s", request.url.path, exc_info=exc)
    return error(request, 500, "internal error: the server's log has the details")


EXCEPTION_HANDLERS = {P.BadRequest: on_bad, UnknownModelError: on_unknown,
                      UnknownHardwareError: on_unknown, NetfrontierError: on_netfrontier,
                      HTTPException: on_http, Exception: on_crash}


# shared parameter handling ----------------------------------------------------------------------
def _state(request: Request):
    return request.app.state.zoo


def _q(request: Request, *keys: str) -> dict:
    return P.query(request.query_params.multi_items(), keys)


def _hw_list() -> list[dict]:
    """Every preset and profile that loads (a broken user profile is left out, not fatal)."""
    out = []
    for name in hardware_names():
        try:
            out.append(api.hardware_summary(P.hardware(name, name)))
        except NetfrontierError:
            continue
    return out


def _batch(state, value) -> int:
    return state.check_batch(P.integer("batch", value, state.batches[0]))


def _family(state, value) -> str:
    return P.choice("family", value, ["all", *state.families], "all")


def _view(state, q: dict, hw_key: str = "hw") -> dict:
    """The common controls: hardware, bits, batch, objective, family, accuracy."""
    hw = P.hardware(q.get(hw_key), P.default_hardware())
    w, a = P.bits(hw, q.get("wbits"), q.get("abits"))
    return {"hw": hw, "wbits": w, "abits": a, "batch": _batch(state, q.get("batch")),
            "objective": P.objective(q.get("objective")),
            "family": _family(state, q.get("family")),
            "accuracy": P.accuracy(q.get("accuracy"))}


def _info(state) -> str:
    return f"{len(state.entries)} models · {state.store_path}"


def _default_model(state) -> str:
    names = sorted(state.entries, key=natural_key)
    for arch in ("resnet50", "resnet18", "mobilenet_v2"):
        for n in names:
            if state.entries[n].arch == arch:
                return n
    return names[0]


async def _json_body(request: Request) -> dict:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise P.BadRequest("send the request as JSON (Content-Type: application/json)", 415)
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise P.BadRequest(f"the request body is not valid JSON ({P.clip(exc, 80)})") from None
    if not isinstance(body, dict):
        raise P.BadRequest("the request body must be a JSON object")
    for key in body:
        if key not in BODY_KEYS:
            raise P.BadRequest(f"unknown field '{P.clip(key, 40)}' (use "
                               f"{', '.join(BODY_KEYS)})")
    return body


def _text(body: dict, key: str) -> str | None:
    v = body.get(key)
    if v is not None and not isinstance(v, (str, int)):
        raise P.BadRequest(f"'{key}' must be text or a number")
    return None if v is None else str(v)


def _whatif_args(state, body: dict) -> dict:
    text = body.get("yaml")
    if text is not None and body.get("hw") is not None:
        raise P.BadRequest("give 'hw' (a preset name) or 'yaml' (an uploaded spec), not both")
    hw = None if text is not None else P.hardware(_text(body, "hw"), P.default_hardware())
    if text is not None and not isinstance(text, str):
        raise P.BadRequest("'yaml' must be the text of a hardware YAML file")
    return {"hw": hw, "text": text, "changes": body.get("set") or {},
            "wbits": _text(body, "wbits"), "abits": _text(body, "abits"),
            "batch": _batch(state, _text(body, "batch")),
            "objective": P.objective(_text(body, "objective")),
            "family": _family(state, _text(body, "family")),
            "accuracy": P.accuracy(_text(body, "accuracy"))}


# API ------------------------------------------------------------------------------------------
async def health(request):
    state = _state(request)
    return Json({"ok": True, "models": len(state.entries), "batches": state.batches})


async def api_options(request):
    state = _state(request)
    _q(request)
    return Json({"hardware": await run_in_threadpool(_hw_list), "batches": state.batches,
                 "families": state.families, "objectives": list(api.OBJECTIVES),
                 "models": sorted(state.entries, key=natural_key)})


async def api_hardware(request):
    q = _q(request, "hw")
    hw = P.hardware(q.get("hw"), P.default_hardware())
    return Json(api.hardware_summary(hw))


async def api_frontier(request):
    state = _state(request)
    v = _view(state, _q(request, "hw", "wbits", "abits", "batch", "objective", "family",
                        "accuracy"))
    return Json(await run_in_threadpool(api.frontier, state, **v))


async def api_whatif(request):
    state = _state(request)
    args = _whatif_args(state, await _json_body(request))
    return Json(await run_in_threadpool(api.whatif, state, **args))


async def api_whatif_yaml(request):
    state = _state(request)
    args = _whatif_args(state, await _json_body(request))
    name, text = await run_in_threadpool(api.whatif_yaml, args["hw"], args["text"],
                                         args["changes"])
    return Response(text, media_type="application/x-yaml; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{name}"'})


async def api_model(request):
    state = _state(request)
    q = _q(request, "name", "hw", "wbits", "abits", "batch")
    name = state.entry(q.get("name") or _default_model(state)).name
    hw = P.hardware(q.get("hw"), P.default_hardware())
    w, a = P.bits(hw, q.get("wbits"), q.get("abits"))
    return Json(await run_in_threadpool(api.model, state, name, hw, w, a,
                                        _batch(state, q.get("batch"))))


def _pair(q: dict) -> tuple:
    names = hardware_names()
    a_def = DEFAULT_PAIR[0] if DEFAULT_PAIR[0] in names else names[0]
    b_def = DEFAULT_PAIR[1] if DEFAULT_PAIR[1] in names else names[min(1, len(names) - 1)]
    return P.hardware(q.get("a"), a_def), P.hardware(q.get("b"), b_def)


async def api_compare(request):
    state = _state(request)
    q = _q(request, "a", "b", "batch", "objective", "family")
    a, b = _pair(q)
    return Json(await run_in_threadpool(
        api.compare, state, a, b, _batch(state, q.get("batch")), P.objective(q.get("objective")),
        _family(state, q.get("family"))))


async def api_studies(request):
    _q(request)
    return Json(await run_in_threadpool(api.studies, request.app.state.studies))


# pages ----------------------------------------------------------------------------------------
async def page_frontier(request):
    state = _state(request)
    v = _view(state, _q(request, "hw", "wbits", "abits", "batch", "objective", "family",
                        "accuracy"))
    html = pages.frontier_page(_info(state), await run_in_threadpool(_hw_list),
                               api.hardware_summary(v["hw"]), v["wbits"], v["abits"],
                               state.batches, v["batch"], v["objective"], state.families,
                               v["family"], v["accuracy"])
    return HTMLResponse(html)


async def page_whatif(request):
    state = _state(request)
    v = _view(state, _q(request, "hw", "wbits", "abits", "batch", "objective", "family"))
    html = pages.whatif_page(_info(state), await run_in_threadpool(_hw_list),
                             api.hardware_summary(v["hw"]), v["wbits"], v["abits"],
                             state.batches, v["batch"], v["objective"], state.families,
                             v["family"])
    return HTMLResponse(html)


async def page_model(request):
    state = _state(request)
    q = _q(request, "name", "hw", "wbits", "abits", "batch")
    name = state.entry(q.get("name") or _default_model(state)).name
    hw = P.hardware(q.get("hw"), P.default_hardware())
    w, a = P.bits(hw, q.get("wbits"), q.get("abits"))
    html = pages.model_page(_info(state), sorted(state.entries, key=natural_key), name,
                            await run_in_threadpool(_hw_list), api.hardware_summary(hw), w, a,
                            state.batches, _batch(state, q.get("batch")))
    return HTMLResponse(html)


async def page_compare(request):
    state = _state(request)
    q = _q(request, "a", "b", "batch", "objective", "family")
    a, b = _pair(q)
    html = pages.compare_page(_info(state), await run_in_threadpool(_hw_list), a.name, b.name,
                              state.batches, _batch(state, q.get("batch")),
                              P.objective(q.get("objective")), state.families,
                              _family(state, q.get("family")))
    return HTMLResponse(html)


async def page_studies(request):
    _q(request)
    return HTMLResponse(pages.studies_page(_info(_state(request))))


def _asset(request: Request, name: str) -> Response:
    asset = request.app.state.assets.get(name)
    if asset is None:
        raise P.BadRequest(f"no static file '{P.clip(name)}'", 404)
    body, media_type, etag, cache = asset
    headers = {"etag": etag, "cache-control": cache}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


async def static(request):
    return _asset(request, request.path_params["name"])


async def favicon(request):
    return _asset(request, "favicon.svg")


ROUTES = [
    Route("/", page_frontier), Route("/whatif", page_whatif), Route("/model", page_model),
    Route("/compare", page_compare), Route("/studies", page_studies),
    Route("/healthz", health), Route("/favicon.ico", favicon),
    Route("/static/{name}", static),
    Route("/api/options", api_options), Route("/api/hardware", api_hardware),
    Route("/api/frontier", api_frontier), Route("/api/model", api_model),
    Route("/api/compare", api_compare), Route("/api/studies", api_studies),
    Route("/api/whatif", api_whatif, methods=["POST"]),
    Route("/api/whatif.yaml", api_whatif_yaml, methods=["POST"]),
]
