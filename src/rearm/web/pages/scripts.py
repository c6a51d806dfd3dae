"""GET/POST /groups/{name}/scripts/{which}: view and edit start.sh or stop.sh.
POST /groups/{name}/template: import a script template (rearm.templates) into the group.

Both only while the group is offline, as the guide asks ("Stop the group" before replacing
start.bat): the page shows the script read-only otherwise and says why.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from rearm.model import GroupState
from rearm.validate import ConfigError
from rearm.web.context import manager_of, session_of
from rearm.web.operator import OperatorError, read_script, text_digest
from rearm.web.pages import confirm_page, confirmed, form_of, operator_of, refused
from rearm.web.render import page, redirect

routes = web.RouteTableDef()


def _template_choice(name: str | None) -> tuple[list[dict[str, str]], dict[str, object] | None]:
    """The templates there are, and the one chosen with its variables and defaults."""
    from rearm import templates

    listing = []
    for t in templates.available():
        try:
            listing.append({"name": t, "description": templates.load(t).description})
        except ConfigError:
            continue
    if not name:
        return listing, None
    try:
        template = templates.load(name)
        values, _ = templates.resolve(template, {}, partial=True)
    except ConfigError as e:
        return listing, {"name": name, "error": str(e)}
    variables = [
        {"name": v.name, "help": v.help, "value": values.get(v.name, ""), "kind": v.kind}
        for v in template.variables
    ]
    return listing, {
        "name": template.name,
        "description": template.description,
        "variables": variables,
        "services": template.services,
        "watches": template.watches,
        "error": None,
    }


def _editor(
    request: web.Request,
    name: str,
    which: str,
    *,
    text: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    manager = manager_of(request)
    current = read_script(manager.daemon, name, which)
    state = manager.daemon.groups.state(name)
    listing, chosen = _template_choice(request.query.get("template"))
    return page(
        request,
        "script.html",
        code=status,
        name=name,
        which=which,
        text=current if text is None else text,
        base=text_digest(current),
        state=state.value,
        editable=state is GroupState.OFFLINE and session_of(request).is_admin,
        error=error,
        templates=listing,
        chosen=chosen,
    )


@routes.get("/groups/{name}/scripts/{which}")
async def view(request: web.Request) -> web.StreamResponse:
    name, which = request.match_info["name"], request.match_info["which"]
    try:
        return _editor(request, name, which)
    except OperatorError as e:
        return refused(request, e)


@routes.post("/groups/{name}/scripts/{which}")
async def save(request: web.Request) -> web.StreamResponse:
    name, which = request.match_info["name"], request.match_info["which"]
    form = await form_of(request)
    text = form.get("text", "")
    try:
        operator_of(request).save_script(name, which, text, form.get("base", ""))
    except OperatorError as e:
        if e.status == 404:
            return refused(request, e)
        # Keep what the admin typed: the page shows it with the reason it was not saved.
        return _editor(request, name, which, text=text, error=str(e), status=e.status)
    session_of(request).flash(f"{which}.sh of group {name} saved.", "success")
    raise redirect(f"/groups/{quote(name, safe='')}/scripts/{which}")


@routes.post("/groups/{name}/template")
async def import_template(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    form = await form_of(request)
    template = form.get("template", "")
    values = {k.removeprefix("var_"): v.strip() for k, v in form.items() if k.startswith("var_")}
    force = form.get("force") == "on"
    back = f"/groups/{quote(name, safe='')}/scripts/start"
    if not confirmed(form):
        return confirm_page(
            request,
            title=f"Import template {template} into group {name}?",
            message="Its start.sh and stop.sh replace the group's (the old ones are kept as "
            ".bak), and its service definitions are written to etc/services/.",
            action=f"/groups/{quote(name, safe='')}/template",
            button=f"Import {template}",
            cancel=back + f"?template={quote(template, safe='')}",
            fields={
                "template": template,
                **{f"var_{k}": v for k, v in values.items()},
                **({"force": "on"} if force else {}),
            },
            danger=False,
        )
    try:
        written = operator_of(request).import_template(name, template, values, force)
    except OperatorError as e:
        if e.status == 404:
            return refused(request, e)
        session_of(request).flash(f"Template {template} not imported: {e}", "error")
        raise redirect(back + f"?template={quote(template, safe='')}") from None
    session_of(request).flash(
        f"Template {template} imported into {name}: wrote {', '.join(written) or 'nothing new'}.",
        "success",
    )
    raise redirect(back)
