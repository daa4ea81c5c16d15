"""The web UI (static files shipped in the package, nothing fetched from the network) and the
run report as a page with its plots."""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from lmrec.serving.deps import get_state, require_read
from lmrec.serving.state import ServiceState

WEB = Path(__file__).resolve().parent.parent / "web"
router = APIRouter(tags=["web"], include_in_schema=False)

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body class="report"><main><p><a href="/">&larr; back to recommendations</a></p>{body}</main></body></html>"""


@router.get("/")
def index() -> FileResponse:
    return FileResponse(WEB / "index.html", media_type="text/html")


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    path = (WEB / name).resolve()
    if path.parent != WEB or not path.is_file():
        raise HTTPException(status_code=404, detail=f"no static file {name!r}")
    return FileResponse(path)


@router.get("/report")
def report_redirect() -> RedirectResponse:
    return RedirectResponse("/report/")  # the report's plot links are relative: plots/NAME.png


@router.get("/report/", response_class=HTMLResponse, dependencies=[Depends(require_read)])
def report(state: ServiceState = Depends(get_state)) -> HTMLResponse:
    """The run's report.md (metrics by bucket, plots, what the model learned) as a page."""
    import markdown

    path = state.run.path / "report.md"
    if not path.exists():
        body = (f"<h1>No report yet</h1><p>{html.escape(state.run.path.name)} has no report.md: run "
                f"<code>lmrec evaluate --run {html.escape(str(state.run.path.name))}</code>.</p>")
    else:
        body = markdown.markdown(path.read_text(), extensions=["tables"])
    return HTMLResponse(PAGE.format(title=f"report: {html.escape(state.run.path.name)}", body=body))


@router.get("/report/plots/{name}", dependencies=[Depends(require_read)])
def report_plot(name: str, state: ServiceState = Depends(get_state)) -> FileResponse:
    plots = (state.run.path / "plots").resolve()
    path = (plots / name).resolve()
    if path.parent != plots or path.suffix != ".png" or not path.is_file():
        raise HTTPException(status_code=404, detail=f"no plot {name!r} in this run's report")
    return FileResponse(path, media_type="image/png")
