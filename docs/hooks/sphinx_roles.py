"""MkDocs hook: the docstrings use Sphinx roles (:func:`load`, :mod:`.metrics`); mkdocstrings renders
their target as code but keeps the role's name in front of it. Drop the role name, keep the code."""

import re

ROLE = re.compile(r":(?:func|meth|class|mod|data|attr|exc|obj):(?=<code>)")


def on_page_content(html, page, config, files):
    return ROLE.sub("", html)
