"""Sphinx's reStructuredText as a reader sees it, with docutils alone: the roles and directives Sphinx (and projects
such as CMake) add are unknown to docutils, which prints them as markup or drops them with an error. Each one a
document uses is registered before it is parsed, generically:

* a role (`:command:`add_executable``, `:ref:`the guide <guide>``, `:func:`~os.path.join``) becomes its text, as
  Sphinx shows it: the title of an explicit target, the last part after `~`;
* `versionadded`, `versionchanged`, `deprecated` become "New in version 3.18: ...", as Sphinx writes them;
* code directives (`code-block` in Sphinx's sense, `literalinclude` aside) keep their lines as code;
* directives that only steer Sphinx (`toctree`, `index`, `highlight`, `currentmodule`, ...) give nothing;
* any other (`.. variable:: NAME`, `.. option:: -v`, `.. function:: f(x)`, `.. seealso::`) gives its arguments as a
  line, then its content parsed as reStructuredText.
"""

from __future__ import annotations

import re

from docutils import nodes, utils
from docutils.parsers.rst import Directive, directives, roles
from docutils.parsers.rst.languages import en
from docutils.statemachine import StringList

_ROLE = re.compile(r":([A-Za-z][\w.+-]*(?::[A-Za-z][\w.+-]*)?):`")
_DIRECTIVE = re.compile(r"^[ \t]*\.\.[ \t]+([A-Za-z][\w.+-]*(?::[A-Za-z][\w.+-]*)*)[ \t]*::", re.MULTILINE)
_TARGET = re.compile(r"^(.*?)\s*<[^<>]*>$", re.DOTALL)

SILENT = {"toctree", "index", "highlight", "currentmodule", "module", "py:module", "py:currentmodule", "autosummary"}
SILENT |= {"tabularcolumns", "cmake-module", "literalinclude", "include", "sectionauthor", "codeauthor", "meta"}
VERSIONS = {"versionadded": "New in version", "versionchanged": "Changed in version", "deprecated": "Deprecated since"}


def text_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """A Sphinx role as its text: `title <target>` shows the title, `~a.b.c` shows `c`."""
    text = utils.unescape(text)
    target = _TARGET.match(text)
    if target and target.group(1):
        text = target.group(1)
    elif text.startswith("~"):
        text = text[1:].rsplit(".", 1)[-1]
    return [nodes.literal(rawtext, text.lstrip("!"))], []


class _AnyOption(dict):
    """An option spec that takes every option a Sphinx directive may have (`:caption:`, `:maxdepth:`)."""

    def __contains__(self, key) -> bool:
        return True

    def __getitem__(self, key):
        return directives.unchanged


class SphinxDirective(Directive):
    """Any directive docutils does not know, rendered as above."""

    optional_arguments = 100
    final_argument_whitespace = True
    has_content = True
    option_spec = _AnyOption()

    def run(self) -> list[nodes.Node]:
        name = self.name.lower()
        if name in SILENT:
            return []
        if name in VERSIONS:  # `.. versionadded:: 3.18 the explanation`, the explanation on the next lines too
            version, _, explanation = " ".join(self.arguments).partition(" ")
            prefix = f"{VERSIONS[name]} {version}".strip()
            content = self._content([explanation] if explanation.strip() else [])
            if content and isinstance(content[0], nodes.paragraph):
                content[0].insert(0, nodes.Text(f"{prefix}: "))
                return content
            return [nodes.paragraph("", f"{prefix}."), *content]
        heading = [nodes.paragraph("", " ".join(self.arguments))] if self.arguments else []
        return [*heading, *self._content()]

    def _content(self, first: list[str] = ()) -> list[nodes.Node]:
        """The content parsed as reStructuredText (after `first`, lines that open it: a version note's text)."""
        holder = nodes.container()
        lines = StringList([*first, *([""] if first and self.content else []), *self.content])
        self.state.nested_parse(lines, self.content_offset, holder)
        return list(holder.children)


def looks_like_sphinx_rst(text: str, least: int = 2) -> bool:
    """Whether a text file is reStructuredText in Sphinx's manner (an include fragment `*.txt`, a `changelog`):
    at least `least` roles or directives in it."""
    found = 0
    for pattern in (_ROLE, _DIRECTIVE):
        for _ in pattern.finditer(text):
            found += 1
            if found >= least:
                return True
    return False


def register_sphinx_markup(text: str) -> None:
    """Register, for the rest of the process, every role and directive `text` uses that docutils does not know."""
    known_roles = set(en.roles) | set(roles._roles)
    for name in set(_ROLE.findall(text)) - known_roles:
        roles.register_local_role(name, text_role)
    known_directives = set(en.directives) | set(directives._directives)
    for name in set(_DIRECTIVE.findall(text)) - known_directives:
        directives.register_directive(name, SphinxDirective)
