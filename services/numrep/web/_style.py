"""The page's one stylesheet, served from /static/style.css (the Content-Security-Policy
allows styles from the page's own origin only, so nothing is inline)."""

STYLESHEET = """
:root { color-scheme: light dark; --accent: #0b5cad; --bad: #a4000f; --warn: #8a5a00; --good: #1d6b2f; }
* { box-sizing: border-box; }
body { font: 1.05rem/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 46rem; padding: 0 1rem 2rem; }
a { color: var(--accent); }
.skip { position: absolute; left: -10000px; }
.skip:focus { position: static; display: inline-block; padding: .5rem; }
header.site, footer.site { font-size: .95rem; border-bottom: 1px solid #8884; margin-bottom: 1rem; }
footer.site { border-top: 1px solid #8884; border-bottom: 0; margin-top: 2rem; }
h1 { font-size: 1.6rem; line-height: 1.25; }
.lead { font-size: 1.05rem; }
.card { border: 1px solid #8886; border-radius: .5rem; padding: 0 1rem 1rem; margin: 1rem 0; }
.field { margin: .8rem 0; }
label { display: block; font-weight: 600; }
.hint { margin: .1rem 0 .3rem; font-size: .92rem; }
input, select, textarea, button { font: inherit; }
input[type=text], input[type=tel], input[type=datetime-local], select, textarea { width: 100%; padding: .4rem; border: 1px solid #666; border-radius: .3rem; }
button { padding: .5rem 1.1rem; border: 0; border-radius: .3rem; background: var(--accent); color: #fff; cursor: pointer; }
:focus-visible { outline: 3px solid #f5a623; outline-offset: 2px; }
[aria-invalid=true] { border: 2px solid var(--bad); }
.error { color: var(--bad); font-weight: 600; }
.verdict-block h2 strong { color: var(--bad); }
.verdict-warn h2 strong { color: var(--warn); }
.verdict-allow h2 strong { color: var(--good); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; }
.number, .case-id { font-family: ui-monospace, monospace; overflow-wrap: anywhere; }
@media (prefers-color-scheme: dark) { :root { --accent: #7cb7ff; --bad: #ff8a8a; --warn: #f0c060; --good: #7fd48f; } button { color: #000; } }
"""
