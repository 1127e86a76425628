"""Safe HTML building: every value put into a template is escaped unless it is
already ``Html`` (built by these functions), so no page can forget to escape."""

from __future__ import annotations

from html import escape
from typing import Iterable


class Html(str):
    """Text that is already safe to place in an HTML document."""


def render(template: str, **values: object) -> Html:
    """``template`` (``str.format`` placeholders) with every value escaped for
    text and attribute contexts (quotes included), except ``Html`` values."""
    safe = {name: value if isinstance(value, Html) else escape(str(value), quote=True) for name, value in values.items()}
    return Html(template.format(**safe))


def join(parts: Iterable[Html], separator: str = "\n") -> Html:
    return Html(separator.join(parts))


def attributes(**values: str | bool | None) -> Html:
    """HTML attributes from keywords (``aria_describedby`` -> ``aria-describedby``);
    ``True`` gives a bare boolean attribute, ``False``/``None``/``""`` leaves it out."""
    out = []
    for name, value in values.items():
        attr = name.rstrip("_").replace("_", "-")
        if value is True:
            out.append(attr)
        elif value:
            out.append(f'{attr}="{escape(value, quote=True)}"')
    return Html(" ".join(out))
