"""Each kind of file read into prose and code blocks, then into corpus lines; bad files named with the reason."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.helpers import REPO
from vbert.core.errors import InputError
from vbert.text.documents import Block, kind_of, read_documents
from vbert.text.sentences import document_lines, split_sentences

MARKDOWN = """# Install

Run the tool, e.g. `zstd -19 file`. It writes file.zst next to it.

```sh
zstd -d file.zst -o out. # one line. never split
```

- first item
- second item with [a link](https://example.org)
"""

RST = """Title
=====

A paragraph with *emphasis* and ``code``. A second sentence.

.. code-block:: python

    print("a. b")
    x = 1

.. unknowndirective:: a directive docutils does not know gives its text
"""

HTML = """<html><head><title>t</title></head><body>
<nav><a href="/">Home</a> <a href="/docs">Docs</a></nav>
<main><p>Next: <a href="b.html" rel="next">Closures</a>, Up: <a href="i.html" rel="up">Using libffi</a></p>
<div role="navigation"><a href="c.html">Contents</a></div>
<h1>Thread safety</h1>
<p>libffi is not completely thread-safe. However, many parts are, e.g. the closure API.</p>
<pre>int x = 1;
int y = 2;</pre>
<p>Use a lock around <code>ffi_prep_cif</code> calls.</p></main>
<footer>Copyright 2022</footer></body></html>"""


def write(path, data: bytes | str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_kinds_by_name():
    assert [kind_of(REPO / n) for n in ("a.md", "a.MD.gz", "b.htm", "c.rst.gz", "d.pdf", "e.jsonl", "f.doc")] == [
        "md",
        "md",
        "html",
        "rst",
        "pdf",
        "jsonl",
        None,
    ]


def test_markdown_prose_and_code(tmp_path):
    [document] = read_documents(write(tmp_path / "a.md.gz", gzip.compress(MARKDOWN.encode())))
    assert document == [
        Block("Install", heading=True),
        Block("Run the tool, e.g. zstd -19 file. It writes file.zst next to it."),
        Block("zstd -d file.zst -o out. # one line. never split", code=True),
        Block("first item"),
        Block("second item with a link"),
    ]
    assert document_lines(document) == [
        "Install",
        "Run the tool, e.g. zstd -19 file.",
        "It writes file.zst next to it.",
        "zstd -d file.zst -o out. # one line. never split",  # code stays one whole line
        "first item",
        "second item with a link",
    ]


def test_restructuredtext_prose_and_literal_blocks(tmp_path):
    [document] = read_documents(write(tmp_path / "a.rst", RST))
    assert document == [
        Block("Title", heading=True),
        Block("A paragraph with emphasis and code. A second sentence."),
        Block('print("a. b")', code=True),
        Block("x = 1", code=True),
        Block("a directive docutils does not know gives its text"),
    ]


SPHINX_RST = """\
add_custom_command
------------------

Controlled by :prop_tgt:`CUDA_SEPARABLE_COMPILATION` and :command:`add_executable`; see :ref:`the guide <guide>`
and :func:`~os.path.join`.

.. versionadded:: 3.18
  When a device link step is involved, :policy:`CMP0105` applies.

.. versionchanged:: 3.20

  Blank line, then the body.

.. variable:: CMAKE_FOO

  The foo variable.

``ALL``
  Build every target.

.. toctree::
   :maxdepth: 2

   other-page

.. code-block:: cmake

  add_executable(x y.c)
"""


def test_sphinx_roles_and_directives_as_a_reader_sees_them(tmp_path):
    [document] = read_documents(write(tmp_path / "command.rst", SPHINX_RST))
    assert document == [
        Block("add_custom_command", heading=True),
        Block("Controlled by CUDA_SEPARABLE_COMPILATION and add_executable; see the guide and join."),
        Block("New in version 3.18: When a device link step is involved, CMP0105 applies."),
        Block("Changed in version 3.20: Blank line, then the body."),
        Block("CMAKE_FOO"),
        Block("The foo variable."),
        Block("ALL"),  # a definition list's term, kept with its definition
        Block("Build every target."),
        Block("add_executable(x y.c)", code=True),
    ]
    # the same source as an include fragment (.txt) or Sphinx's copy (_sources/*.rst.txt) reads the same
    assert read_documents(write(tmp_path / "fragment.txt", SPHINX_RST)) == [document]
    assert kind_of(tmp_path / "_sources/index.rst.txt") == "rst"


def test_html_line_breaks_end_blocks_and_a_declared_charset_is_used(tmp_path):
    page = (
        "<html><head><meta http-equiv='Content-Type' content='text/html; charset=ISO-8859-1'></head><body>"
        "<div><p>Release 3.19.0 (11 Apr 2022)<br>* Fixed a bug in the caf\xe9 module.<br>* Fixed another.</p>"
        "<p>A second paragraph with enough words in it to be kept by the extractor.</p></div></body></html>"
    )
    [document] = read_documents(write(tmp_path / "news.html", page.encode("latin-1")))
    assert [b.text for b in document] == [
        "Release 3.19.0 (11 Apr 2022)",
        "* Fixed a bug in the café module.",
        "* Fixed another.",
        "A second paragraph with enough words in it to be kept by the extractor.",
    ]


def test_headings_stay_whole_lines_even_where_the_extractor_drops_them(tmp_path):
    body = "".join(
        f"<p>Paragraph {i} of the DHAT manual has enough words in it to be kept as text.</p>" for i in range(3)
    )
    page = (
        "<html><head><title>DHAT</title></head><body><div class='chapter'><div class='titlepage'><div><div>"
        "<h1 class='title'><a name='dh'></a>10. DHAT: a dynamic heap analysis tool</h1></div></div></div>"
        + body
        + "<div class='sect1'><div class='titlepage'><div><div><h2 class='title'>10.1. Overview</h2></div></div></div>"
        "<p>DHAT is primarily a tool for examining how programs use their heap allocations.</p></div></div>"
        "</body></html>"
    )
    lines = document_lines(read_documents(write(tmp_path / "dh-manual.html", page))[0])
    assert "10.1. Overview" in lines  # one line, not "10.1." / "Overview"
    assert (
        lines.index("10.1. Overview")
        == lines.index("DHAT is primarily a tool for examining how programs use their heap allocations.") - 1
    )
    [document] = read_documents(write(tmp_path / "numbered.md", "## 10.1. Overview\n\nText. More text.\n"))
    assert document_lines(document) == ["10.1. Overview", "Text.", "More text."]


def test_xhtml_menus_pre_line_breaks_and_table_rows(tmp_path):
    menu = "".join(f'<li><a href="p{i}.html">Page {i}</a></li>' for i in range(8))
    page = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<html><body><table><tr><td><ul>' + menu + "</ul></td><td>"
        "<p>The transform module implements the bulk of the processing of a stylesheet and its templates.</p>"
        '<pre class="programlisting">void\txsltApplyImports\t(xsltTransformContextPtr ctxt, <br/>'
        "\t\t\t xmlNodePtr node);</pre></td></tr></table></body></html>"
    )
    [document] = read_documents(write(tmp_path / "api.html", page))
    assert [(b.text, b.code) for b in document] == [
        ("The transform module implements the bulk of the processing of a stylesheet and its templates.", False),
        ("void\txsltApplyImports\t(xsltTransformContextPtr ctxt,", True),
        ("\t\t\t xmlNodePtr node);", True),
    ]  # the link-dense menu dropped; the signature keeps its two lines
    data = (
        "<html><body><div><p>The options the tool takes are listed below, with what each one of them does.</p>"
        "<table><tr><th>Option</th><th>Meaning</th></tr><tr><td>-v</td><td>verbose output</td></tr></table>"
        "</div></body></html>"
    )
    [document] = read_documents(write(tmp_path / "options.html", data))
    assert [b.text for b in document][1:] == ["Option | Meaning", "-v | verbose output"]  # a data table's rows
    table = "| option | meaning |\n|---|---|\n| `-v` | verbose output |\n| `-q` | quiet |\n"
    [document] = read_documents(write(tmp_path / "t.md", table))
    assert [b.text for b in document] == ["option | meaning", "-v | verbose output", "-q | quiet"]


def test_html_main_text_without_navigation_and_code_as_lines(tmp_path):
    [document] = read_documents(write(tmp_path / "a.html", HTML))
    texts = [(b.text, b.code) for b in document]
    assert ("int x = 1;", True) in texts and ("int y = 2;", True) in texts
    assert ("Use a lock around ffi_prep_cif calls.", False) in texts
    assert not any("Home" in t or "Copyright" in t for t, _ in texts)
    assert not any("Next:" in t or "Contents" in t for t, _ in texts)  # rel=next/up links, an ARIA landmark


def test_plain_text_paragraphs_indented_code_and_terminal_escapes(tmp_path):
    text = "\x1b[1mman-db\x1b[0m keeps an index.\nIt is fast.\n\n    $ mandb -c\n    $ man -k foo\n"
    [document] = read_documents(write(tmp_path / "a.txt", text))
    assert document == [
        Block("man-db keeps an index. It is fast."),
        Block("$ mandb -c", code=True),
        Block("$ man -k foo", code=True),
    ]


def test_jsonl_one_document_per_line(tmp_path):
    lines = [json.dumps({"body": "First doc. Two sentences."}), "", json.dumps({"body": "Second doc."})]
    documents = read_documents(write(tmp_path / "a.jsonl", "\n".join(lines)), jsonl_text_field="body")
    assert [document_lines(d) for d in documents] == [["First doc.", "Two sentences."], ["Second doc."]]
    problems: list[str] = []  # a bad line is skipped and reported, the good ones kept
    documents = read_documents(write(tmp_path / "a.jsonl", '{"text": "ok"}\n{"body": "x"}\n'), problems=problems)
    assert [document_lines(d) for d in documents] == [["ok"]] and len(problems) == 1
    assert problems[0].endswith("a.jsonl:2: no string field 'text'")
    with pytest.raises(InputError, match=r"a.jsonl:1: no string field 'text' \(and every other line: no document\)"):
        read_documents(write(tmp_path / "a.jsonl", '{"body": "x"}\n'))


def test_a_real_pdf_gives_its_text_with_hyphenation_joined():
    [document] = read_documents(REPO / "data/sample/raw/docs/pdf/libtasn1.pdf")
    text = " ".join(document_lines(document))
    assert "Distinguished Encoding Rules (DER, as per X.690) encoding and decoding functions." in text
    assert "structures management" in text  # "man-\nagement" at a line end in the PDF


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.md", b"  \n", "empty"),
        ("latin1.txt", "caf\xe9\nna\xefve".encode("latin-1"), r"latin1.txt:1: not UTF-8 \(byte 0xe9\)"),
        ("broken.pdf", b"%PDF-1.4 this is not a pdf", "not a readable PDF"),
        ("broken.md.gz", b"not gzip", "not a readable gzip file"),
        ("bad.jsonl", b'{oops\n{"text": 1}\n', r"bad.jsonl:1: not valid JSON"),
    ],
)
def test_unreadable_files_are_named_with_the_reason(tmp_path, name, data, reason):
    with pytest.raises(InputError, match=reason):
        read_documents(write(tmp_path / name, data))


@pytest.mark.parametrize(
    "sentence",
    [
        "The os.EOL constant is the line end.",
        "Call dns.lookup() first.",
        "Output goes to dhat.out.<pid> by default.",
        "On Windows C:\\foo.txt and C:\\foo.HTML refer to the same file.",
        "Version v1.2.3 fixed it.",
        "Paths such as ./build/lib.linux-x86_64-3.11 are made by the build step.",
    ],
)
def test_sentences_are_never_cut_inside_an_identifier_path_or_version(sentence):
    assert split_sentences(f"{sentence} It works.") == [sentence, "It works."]


def test_sentences_of_technical_text():
    assert split_sentences("Install it, e.g. with pip. Version v2.3.1 works. See /usr/share/doc for more.") == [
        "Install it, e.g. with pip.",
        "Version v2.3.1 works.",
        "See /usr/share/doc for more.",
    ]
