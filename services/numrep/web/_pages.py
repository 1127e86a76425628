"""The page's HTML: one layout, the four forms, and the result pages.

Accessibility: ``<html lang>``, a skip link to the ``<main>`` landmark, one
``<h1>`` per page, every input with a ``<label for>`` and its hint linked by
``aria-describedby``, errors shown next to their field with ``role="alert"``,
linked the same way and marked ``aria-invalid``. No JavaScript."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Mapping, Sequence

from numrep.core.categories import CATEGORIES, Kind
from numrep.core.model import Action, Verdict
from numrep.web._forms import TIME_ZONES
from numrep.web._html import Html, attributes, join, render

FORMS = ("lookup", "complaint", "dispute", "case")


@dataclass(frozen=True)
class FormState:
    """What one form shows: the values sent (echoed back, escaped) and an error."""

    values: Mapping[str, str] = field(default_factory=dict)
    error: str = ""
    field: str = ""  # the field the error is about; "" for the form as a whole


@dataclass(frozen=True)
class CaseView:
    """What the case page shows, taken from a ``numrep.cases.Case``."""

    case_id: str
    kind: str       # "complaint" | "dispute"
    number: str
    category: str
    status: str     # "open" | "confirmed" | "rejected" | "upheld"
    filed_at: datetime
    deadline: datetime | None
    resolved_at: datetime | None
    outcome: str
    label_count: int
    age: timedelta
    overdue: bool
    occurred_at: datetime | None = None  # complaints: when the call came, if told


def layout(title: str, content: Html) -> Html:
    return render(
        """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>{title} · numrep</title>
<link rel="stylesheet" href="/static/style.css">
</head>
<body>
<a class="skip" href="#main">Skip to the main content</a>
<header class="site"><p><a href="/">numrep</a>: who is calling? Phone-number reputation, shared by carriers, phone makers, apps and the regulator.</p></header>
<main id="main" tabindex="-1">
{content}
</main>
<footer class="site"><p>No account needed. Phone numbers, case ids and contact details travel only inside
the forms you send, never in the page address, and are not written to the server's access log.</p></footer>
</body>
</html>
""",
        title=title,
        content=content,
    )


# --- the forms ---------------------------------------------------------------------
def home(states: Mapping[str, FormState], submission: str, cases_open: bool, title: str = "Check a number, report a call") -> Html:
    def state(name: str) -> FormState:
        return states.get(name, FormState())

    case_forms = (
        join([complaint_form(state("complaint"), submission), dispute_form(state("dispute"), submission), case_form(state("case"))])
        if cases_open
        else render('<section aria-labelledby="cases-h"><h2 id="cases-h">Complaints and disputes</h2>'
                    "<p>Filing complaints and disputes is not available on this exchange yet.</p></section>")
    )
    content = render(
        """<h1>Check a number, report a call, dispute a label</h1>
<p class="lead">See what the exchange says about a phone number and why, complain about an unwanted call,
or, if your own number is labelled wrongly, file a dispute. Each form works on its own.</p>
{lookup}
{cases}""",
        lookup=lookup_form(state("lookup")),
        cases=case_forms,
    )
    return layout(title, content)


def lookup_form(state: FormState) -> Html:
    return _form(
        "lookup",
        "Look up a number",
        "/lookup",
        state,
        join([_input("lookup", "number", "Phone number", state, type_="tel", autocomplete="off",
                     hint="International format like +12025550143, or a US number like (202) 555-0143.")]),
        "Look up",
    )


def complaint_form(state: FormState, submission: str) -> Html:
    fields = join([
        _input("complaint", "number", "The number that called you", state, type_="tel", autocomplete="off",
               hint="As shown on your phone, for example +12025550143."),
        _select("complaint", "category", "What kind of call was it?", state, _category_options(state.values.get("category", ""))),
        _input("complaint", "occurred_at", "When did it call? (optional)", state, type_="datetime-local", required=False,
               hint="Date and time of the call; pick your time zone below."),
        _select("complaint", "tz", "Time zone of that date and time", state, _zone_options(state.values.get("tz", "+00:00"))),
        _textarea("complaint", "text", "What happened?", state,
                  hint="A few words: what the caller said or wanted. Please leave out other people's personal details."),
        _hidden("submission", submission),
    ])
    return _form("complaint", "Complain about a call", "/complaint", state, fields, "File the complaint")


def dispute_form(state: FormState, submission: str) -> Html:
    fields = join([
        _input("dispute", "number", "Your phone number that is labelled wrongly", state, type_="tel", autocomplete="tel",
               hint="The number you own or use, for example +12025550143."),
        _input("dispute", "contact", "How can the regulator reach you?", state, type_="text", autocomplete="email",
               hint="An email address or another phone number. Only the regulator sees it."),
        _textarea("dispute", "evidence", "Why is the label wrong?", state,
                  hint="For example: who you are, why you call people, and since when you hold the number."),
        _hidden("submission", submission),
    ])
    return _form("dispute", "Dispute a label on your number", "/dispute", state, fields, "File the dispute")


def case_form(state: FormState) -> Html:
    return _form(
        "case",
        "Check a case",
        "/case",
        state,
        join([_input("case", "case_id", "Case id", state, type_="text", autocomplete="off", spellcheck="false",
                     hint="The id you were given when you filed a complaint or a dispute.")]),
        "Check the case",
    )


def _form(name: str, heading: str, action: str, state: FormState, fields: Html, button: str) -> Html:
    error = ""
    if state.error and not state.field:
        error = render('<p class="error" role="alert" id="{name}-error">{message}</p>', name=name, message=state.error)
    return render(
        """<section class="card" aria-labelledby="{name}-h">
<h2 id="{name}-h">{heading}</h2>
<form method="post" action="{action}" accept-charset="utf-8" id="{name}-form"{described}>
{error}{fields}
<button type="submit" id="{name}-submit">{button}</button>
</form>
</section>""",
        name=name,
        heading=heading,
        action=action,
        described=Html(f' aria-describedby="{name}-error"' if error else ""),
        error=Html(error),
        fields=fields,
        button=button,
    )


def _ids(form: str, name: str, state: FormState, hint: str) -> tuple[str, str, Html, bool]:
    """The input's id, its aria-describedby, the hint/error markup, whether it is invalid."""
    ident = f"{form}-{name}"
    described, extra = [], []
    if hint:
        described.append(f"{ident}-hint")
        extra.append(render('<p class="hint" id="{id}-hint">{hint}</p>', id=ident, hint=hint))
    invalid = bool(state.error) and state.field == name
    if invalid:
        described.append(f"{ident}-error")
        extra.append(render('<p class="error" role="alert" id="{id}-error">{message}</p>', id=ident, message=state.error))
    return ident, " ".join(described), join(extra), invalid


def _input(form: str, name: str, label: str, state: FormState, *, type_: str, hint: str = "", required: bool = True,
           autocomplete: str = "off", spellcheck: str = "") -> Html:
    ident, described, extra, invalid = _ids(form, name, state, hint)
    attrs = attributes(type=type_, id=ident, name=name, value=state.values.get(name, ""), autocomplete=autocomplete,
                       spellcheck=spellcheck, required=required, aria_describedby=described,
                       aria_invalid="true" if invalid else None, autofocus=invalid)
    return render('<div class="field"><label for="{id}">{label}</label>\n{extra}\n<input {attrs}></div>',
                  id=ident, label=label, extra=extra, attrs=attrs)


def _textarea(form: str, name: str, label: str, state: FormState, *, hint: str = "", required: bool = True) -> Html:
    ident, described, extra, invalid = _ids(form, name, state, hint)
    attrs = attributes(id=ident, name=name, rows="4", required=required, aria_describedby=described,
                       aria_invalid="true" if invalid else None, autofocus=invalid)
    return render('<div class="field"><label for="{id}">{label}</label>\n{extra}\n<textarea {attrs}>{value}</textarea></div>',
                  id=ident, label=label, extra=extra, attrs=attrs, value=state.values.get(name, ""))


def _select(form: str, name: str, label: str, state: FormState, options: Html) -> Html:
    ident, described, extra, invalid = _ids(form, name, state, "")
    attrs = attributes(id=ident, name=name, aria_describedby=described, aria_invalid="true" if invalid else None,
                       autofocus=invalid)
    return render('<div class="field"><label for="{id}">{label}</label>\n{extra}\n<select {attrs}>{options}</select></div>',
                  id=ident, label=label, extra=extra, attrs=attrs, options=options)


def _hidden(name: str, value: str) -> Html:
    return render('<input {attrs}>', attrs=attributes(type="hidden", name=name, value=value))


def _option(value: str, text: str, chosen: str) -> Html:
    return render("<option {attrs}>{text}</option>", attrs=attributes(value=value, selected=value == chosen), text=text)


def _category_options(chosen: str) -> Html:
    groups = []
    for kind in (Kind.FRAUD, Kind.HARASSMENT, Kind.MARKETING):
        options = [_option(c.code, c.title, chosen) for c in CATEGORIES.values() if c.kind is kind]
        groups.append(render('<optgroup label="{label}">{options}</optgroup>', label=kind.value.title(), options=join(options)))
    return join([render('<option value="">Choose one</option>'), *groups])


def _zone_options(chosen: str) -> Html:
    return join([_option(z, "UTC" if z == "+00:00" else f"UTC{z}", chosen) for z in TIME_ZONES])


# --- results -------------------------------------------------------------------------
_ACTION_WORDS = {
    Action.BLOCK: ("Block", "Calls from this number should be blocked."),
    Action.WARN: ("Warn", "Calls from this number are likely unwanted: be careful."),
    Action.ALLOW: ("Allow", "The exchange has no reason to stop calls from this number."),
    Action.UNKNOWN: ("Unknown", "Nobody has reported this number."),
}


def verdict_page(verdict: Verdict) -> Html:
    word, meaning = _ACTION_WORDS[verdict.action]
    category = CATEGORIES.get(verdict.category)
    category_text = f"{category.title} ({category.code})" if category else (verdict.category or "none")
    contributions = [render("<li>{text}</li>", text=c.explanation) for c in verdict.contributions if c.explanation]
    why = (
        render('<h3 id="who-h">Who said what</h3>\n<ul aria-labelledby="who-h" id="contributions">{items}</ul>', items=join(contributions))
        if contributions else Html("")
    )
    caller_id = (
        render("<dt>Caller ID check</dt><dd>{v}</dd>", v=verdict.caller_id_authentication) if verdict.caller_id_authentication else Html("")
    )
    content = render(
        """<h1>Verdict for <span class="number">{number}</span></h1>
<section aria-labelledby="verdict-h" class="card verdict verdict-{action}" id="verdict">
<h2 id="verdict-h">Action: <strong id="verdict-action">{word}</strong></h2>
<p>{meaning}</p>
<dl>
<dt>Category</dt><dd id="verdict-category">{category}</dd>
<dt>Spam probability</dt><dd id="verdict-probability">{probability}</dd>
<dt>Confidence</dt><dd id="verdict-confidence">{confidence}</dd>
<dt>Evidence</dt><dd>{labels} signed label(s), {flags} user flag(s)</dd>
{caller_id}<dt>Computed</dt><dd>{computed}</dd>
</dl>
<h3>Why</h3>
<p id="verdict-explanation">{explanation}</p>
{why}
</section>
<p><a href="/">Back to all forms</a></p>
{again}""",
        number=verdict.number,
        action=verdict.action.value,
        word=word.upper(),
        meaning=meaning,
        category=category_text,
        probability=f"{verdict.spam_probability:.0%}",
        confidence=f"{verdict.confidence:.0%}",
        labels=verdict.label_count,
        flags=verdict.flag_count,
        caller_id=caller_id,
        computed=when(verdict.computed_at),
        explanation=verdict.explanation,
        why=why,
        again=lookup_form(FormState()),
    )
    return layout(f"{word}: verdict for a number", content)


_STATUS_WORDS = {
    "open": "Open: waiting for the regulator's decision.",
    "confirmed": "Confirmed: the regulator agreed with the complaint.",
    "rejected": "Rejected: the regulator did not agree.",
    "upheld": "Upheld: the dispute was accepted and the labels behind it were withdrawn.",
}


def case_filed_page(case: CaseView) -> Html:
    what = "complaint" if case.kind == "complaint" else "dispute"
    content = render(
        """<h1>Your {what} is filed</h1>
<section class="card" aria-labelledby="filed-h">
<h2 id="filed-h">Keep this case id</h2>
<p>Your case id is <strong class="case-id" id="case-id">{case_id}</strong>. Write it down or save this page:
with it you can check the case below, and nobody else is shown it.</p>
</section>
{details}
<p><a href="/">Back to all forms</a></p>""",
        what=what,
        case_id=case.case_id,
        details=_case_details(case),
    )
    return layout(f"Your {what} is filed", content)


def case_page(case: CaseView) -> Html:
    content = render(
        """<h1>Case <span class="case-id">{case_id}</span></h1>
{details}
<p><a href="/">Back to all forms</a></p>
{again}""",
        case_id=case.case_id,
        details=_case_details(case),
        again=case_form(FormState()),
    )
    return layout("Case status", content)


def _case_details(case: CaseView) -> Html:
    category = CATEGORIES.get(case.category)
    resolved = render("<dt>Resolved</dt><dd>{v}</dd>", v=when(case.resolved_at)) if case.resolved_at else Html("")
    outcome = render('<dt>Outcome</dt><dd id="case-outcome">{v}</dd>', v=case.outcome) if case.outcome else Html("")
    deadline = Html("")
    if case.deadline is not None:
        late = " (overdue)" if case.overdue else ""
        deadline = render('<dt>Decision due by</dt><dd id="case-deadline">{v}{late}</dd>', v=when(case.deadline), late=late)
    labels = render("<dt>Labels concerned</dt><dd>{n}</dd>", n=case.label_count) if case.kind == "dispute" else Html("")
    called = render("<dt>Call received</dt><dd>{v}</dd>", v=when(case.occurred_at)) if case.occurred_at else Html("")
    return render(
        """<section class="card case status-{status}" aria-labelledby="case-h" id="case">
<h2 id="case-h">Status: <strong id="case-status">{status_upper}</strong></h2>
<p>{status_words}</p>
<dl>
<dt>Kind</dt><dd id="case-kind">{kind}</dd>
<dt>Number</dt><dd class="number">{number}</dd>
{category}{called}<dt>Filed</dt><dd>{filed}</dd>
<dt>Age</dt><dd id="case-age">{age}</dd>
{deadline}{resolved}{outcome}{labels}
</dl>
</section>""",
        status=case.status,
        status_upper=case.status.upper(),
        status_words=_STATUS_WORDS.get(case.status, case.status),
        kind=case.kind,
        number=case.number,
        category=render("<dt>Category</dt><dd>{v}</dd>", v=f"{category.title} ({category.code})") if category else Html(""),
        called=called,
        filed=when(case.filed_at),
        age=duration(case.age),
        deadline=deadline,
        resolved=resolved,
        outcome=outcome,
        labels=labels,
    )


def error_page(status: int, heading: str, message: str) -> Html:
    content = render(
        """<h1>{heading}</h1>
<p class="error" role="alert" id="page-error">{message}</p>
<p><a href="/">Back to all forms</a></p>""",
        heading=heading,
        message=message,
    )
    return layout(f"Error {status}: {heading}", content)


def when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC"


def duration(span: timedelta) -> str:
    minutes = max(0, int(span.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts: Sequence[tuple[int, str]] = ((days, "day"), (hours, "hour"), (minutes, "minute"))
    shown = [f"{n} {unit}{'' if n == 1 else 's'}" for n, unit in parts if n][:2]
    return ", ".join(shown) or "less than a minute"
