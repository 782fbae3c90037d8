"""The README's configuration and metrics references are generated from the code and must match it."""

from rnnstream.docs import README, render


def test_readme_generated_sections_are_current():
    text = README.read_text()
    assert render(text) == text, "README is stale: run `python -m rnnstream.docs`"


def test_render_replaces_a_stale_block():
    text = README.read_text()
    stale = text.replace("`rnnstream_events_consumed_total`", "`rnnstream_old_name`", 1)
    assert stale != text
    assert render(stale) == text
