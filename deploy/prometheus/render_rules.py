"""Print the alert rules with their runbook links pointing at your copy of the README.

    python deploy/prometheus/render_rules.py --runbook-base-url https://git.example.com/ops/rnnstream/blob/v0.1.0/README.md \
        > /etc/prometheus/rules/rnnstream.yml
    python deploy/prometheus/render_rules.py --runbook-base-url URL --prometheusrule | kubectl apply -f -

rnnstream.rules.yml (the single source, unit-tested as is) writes each link as
``${RUNBOOK_BASE_URL}#runbook-<alert>``; this fills in the base URL (``envsubst`` does the same).
Only the standard library and PyYAML are used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlparse

HERE = Path(__file__).resolve().parent
RULES = HERE / "rnnstream.rules.yml"
PLACEHOLDER = "${RUNBOOK_BASE_URL}"


def render(base_url: str, text: str | None = None) -> str:
    """The rules text with every ``${RUNBOOK_BASE_URL}`` replaced by ``base_url`` (an http(s) URL)."""
    url = urlparse(base_url)
    if url.scheme not in ("http", "https") or not url.netloc or "#" in base_url:
        raise ValueError(f"--runbook-base-url {base_url!r}: expected an http(s) URL of the README, without '#'")
    text = RULES.read_text() if text is None else text
    return text.replace(PLACEHOLDER, base_url.rstrip("/"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runbook-base-url", required=True, metavar="URL",
                        help="where the README is published; each alert links to URL#runbook-<alert>")
    parser.add_argument("--prometheusrule", action="store_true",
                        help="print a prometheus-operator PrometheusRule instead of a plain rules file")
    args = parser.parse_args(argv)
    try:
        text = render(args.runbook_base_url)
    except ValueError as exc:
        print(f"render_rules: {exc}", file=sys.stderr)
        return 2
    if args.prometheusrule:
        sys.path.insert(0, str(HERE.parent / "k8s" / "monitoring"))
        from build_prometheusrule import render as prometheusrule

        text = prometheusrule(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
