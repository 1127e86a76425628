"""`make run`'s walkthrough (`numrep demo --no-serve`) on the embedded store, as
a user sees it: a federation seeded from real FTC complaints, a per-call lookup,
a handset sync with a tombstone, the trust engine learning that the careless app
is often wrong, and a swarm of new app accounts that cannot move a number."""

from __future__ import annotations

import re
import subprocess
import sys


def test_the_demo_walks_through_the_federation_and_learns_whom_to_believe(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "numrep.cli.main", "demo", "--data-dir", str(tmp_path / "demo"), "--listen", "127.0.0.1:0",
         "--fresh", "--no-serve", "--numbers", "600"],
        capture_output=True, text=True, timeout=300,
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]

    assert "most complained-about" in out and "signed labels" in out
    assert re.search(r"\+\d+  BLOCK", out), "the worst caller is blocked"
    assert "held on the handset now: False" in out, "a retraction reaches the handset as a tombstone"

    learned = dict(re.findall(r"(app-\w+)'s users' flags: spam reports right (\d+)% of the time", out))
    assert int(learned["app-noisy"]) < int(learned["app-callguard"])
    assert "trust epoch 1, fitted" in out

    swarm = out.split("after 40 brand-new CallGuard accounts flag it")[1].split("after carrier-east")[0]
    assert "ALLOW" in swarm or "UNKNOWN" in swarm
    after_carrier = out.split("after carrier-east's network sees it too")[1]
    assert "WARN" in after_carrier.splitlines()[1]

    consent = out.split("== Consent and refusals")[1]
    assert "outside the allowed hours mon-fri 09:00-19:00" in consent and "a callee who refused is blocked" in consent
