"""Documents out of the files a team has: plain text, Markdown, reStructuredText, HTML, PDF, JSON lines, and any of
them gzipped. Each kind is read by a library made for it (chosen by trying them on Debian's documentation; the
README says why):

    .txt                  paragraphs at blank lines (terminal escapes, as in man-db's manual, removed)
    .md                   markdown-it-py (CommonMark + tables): paragraphs, headings, list items; fenced code
    .rst                  docutils: paragraphs, titles, list items; literal blocks as code
    .html .htm            trafilatura: the main text without navigation, boilerplate or comments; <pre> as code
    .pdf                  pdfminer.six: text with its layout's paragraph breaks, words hyphenated at line ends joined
    .jsonl                one document per line, its text in a configurable field (a broken line is skipped and
                          reported, the good lines kept)
    no extension          README, AUTHORS, NEWS.Debian, changelog: read as .txt when their bytes are text

A document is a list of blocks; a block is prose (to be cut into sentences) or code (kept as whole lines).

A file is read in bounded memory: at most `max_bytes` of it (after gzip decoding, which streams and stops there), so
a small bomb that unpacks to gigabytes is `TooLarge`, not a crash. What is not read says why with its status:
`NotRead` (a kind this stage does not read), `NoText` (nothing to read), `TooLarge`; any other InputError is a
failure (a broken file).
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from vbert.core.errors import InputError
from vbert.text.jsonl import json_objects

KINDS = {".txt": "txt", ".md": "md", ".markdown": "md", ".rst": "rst", ".html": "html", ".htm": "html"}
KINDS |= {".pdf": "pdf", ".jsonl": "jsonl", ".rst.txt": "rst"}  # Sphinx's copy of a page's source: _sources/*.rst.txt
TEXT_SUFFIXES = {"", ".debian", ".source", ".news", ".readme"}  # README, NEWS.Debian, README.source: text if it is
SNIFF_BYTES = 8192  # the head of an extension-less file that must decode as UTF-8 without NUL bytes to count as text


class NotRead(InputError):
    """A file ingest does not read (an image, a stylesheet, a binary): skipped, not a failure."""

    status = "skipped"


class NoText(NotRead):
    """A file with nothing to read (empty, or a page without text)."""

    status = "empty"


class TooLarge(NotRead):
    """A file (or what it unpacks to) over the size limit: left out whole, never read partly."""

    status = "too_large"


@dataclass(frozen=True)
class Block:
    text: str
    code: bool = False
    heading: bool = False  # a title: one line as it is, never cut into sentences ("10.1. Overview")


Document = list[Block]


def suffix_of(path: Path) -> str:
    """The suffix that names a file's kind, lower-cased, `.gz` aside (`notes.md.gz`: `.md`; `README`: '';
    `index.rst.txt`: `.rst.txt`)."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".rst.txt"):
        return ".rst.txt"
    return Path(name).suffix if not name.startswith(".") or name.count(".") > 1 else ""


def kind_of(path: Path) -> str | None:
    """The kind of a file by its name (`notes.md.gz` is Markdown), `txt?` for a name that may hold text (README,
    NEWS.Debian.gz: read as text if its bytes are), or None for a kind we do not read."""
    suffix = suffix_of(path)
    return KINDS.get(suffix) or ("txt?" if suffix in TEXT_SUFFIXES else None)


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """The file's bytes (gunzipped for .gz, streaming), at most `max_bytes` of them or TooLarge."""
    if path.suffix.lower() != ".gz":
        size = path.stat().st_size
        if size > max_bytes:
            raise TooLarge(f"{path}: {size:,} bytes, over ingest.max_file_bytes = {max_bytes:,}")
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as stream:
            raw = stream.read(max_bytes + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise InputError(f"{path}: not a readable gzip file ({error})") from error
    if len(raw) > max_bytes:
        raise TooLarge(f"{path}: unpacks to over ingest.max_file_bytes = {max_bytes:,} bytes")
    return raw


def decode(raw: bytes, path: Path) -> str:
    """UTF-8 (a BOM allowed); anything else is refused, naming the first bad byte's line."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 (byte 0x{raw[error.start]:02x})") from error


def _prose(text: str) -> str:
    return " ".join(text.split())


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|.\x08")  # terminal colours, and nroff's overstrike (x BS x)


def _indent(line: str) -> int:
    return len(line.expandtabs(8)) - len(line.expandtabs(8).lstrip())


_WORDS = re.compile(r"[A-Za-z][A-Za-z'-]*")


def _reads_as_prose(lines: list[str]) -> bool:
    """Mostly words, and sentences that end: indented prose (an abstract, a quotation), not code."""
    text = " ".join(lines)
    letters = sum(len(w) for w in _WORDS.findall(text))
    return letters >= 0.75 * len(text.replace(" ", "")) and bool(re.search(r"[.!?]$", text.rstrip()))


def _paragraph_blocks(text: str) -> Document:
    """Blocks of a plain text: paragraphs at blank lines. A paragraph indented 4 or more columns beyond the text's
    usual indentation (its most common one: a formatted manual indents all its prose) is code, a block per line,
    unless it reads as prose."""
    text = _ANSI.sub("", text)
    indents = [_indent(line) for line in text.splitlines() if line.strip()]
    usual = max(set(indents), key=indents.count) if indents else 0
    blocks: Document = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [line for line in paragraph.splitlines() if line.strip()]
        if not lines:
            continue
        if min(_indent(line) for line in lines) >= usual + 4 and not _reads_as_prose(lines):
            blocks += [Block(line.strip(), code=True) for line in lines]
        else:
            blocks.append(Block(_prose(paragraph)))
    return blocks


def read_txt(raw: bytes, path: Path) -> list[Document]:
    """Paragraphs; a text file written in Sphinx's reStructuredText (an include fragment, a changelog) as .rst."""
    from vbert.text.sphinx_rst import looks_like_sphinx_rst

    text = decode(raw, path)
    return read_rst(raw, path) if looks_like_sphinx_rst(text) else [_paragraph_blocks(text)]


def _inline_text(token) -> str:
    """An inline token's text without Markdown syntax: link and image text kept, code spans' content kept."""
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content)
    return _prose("".join(parts))


def read_md(raw: bytes, path: Path) -> list[Document]:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(decode(raw, path))
    blocks: Document = []
    row: list[str] | None = None  # a table row's cells, joined into one line when the row ends
    heading = False
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            heading = token.type == "heading_open"
        elif token.type == "tr_open":
            row = []
        elif token.type == "tr_close":
            if row is not None and any(row):
                blocks.append(Block(" | ".join(cell for cell in row if cell)))
            row = None
        elif token.type == "inline":
            text = _inline_text(token)
            if row is not None:
                row.append(text)
            elif text:
                blocks.append(Block(text, heading=heading))
        elif token.type in ("fence", "code_block"):
            blocks += [Block(line.rstrip(), code=True) for line in token.content.splitlines() if line.strip()]
    return [blocks]


def read_rst(raw: bytes, path: Path) -> list[Document]:
    """docutils, with the Sphinx roles and directives the text uses rendered as their text (`vbert.text.sphinx_rst`):
    paragraphs, titles, definition-list terms and rubrics as prose, literal blocks as code."""
    from docutils import nodes
    from docutils.core import publish_doctree

    from vbert.text.sphinx_rst import register_sphinx_markup

    text = decode(raw, path)
    register_sphinx_markup(text)
    settings = {"report_level": 5, "halt_level": 5, "file_insertion_enabled": False, "raw_enabled": False}
    tree = publish_doctree(text, source_path=str(path), settings_overrides=settings)
    blocks: Document = []
    kinds = (nodes.paragraph, nodes.title, nodes.term, nodes.rubric, nodes.field_name, nodes.literal_block)
    for node in tree.findall(lambda n: isinstance(n, kinds)):
        if node.next_node(nodes.system_message) is not None or isinstance(node.parent, nodes.system_message):
            continue  # docutils' own messages about markup it could not handle
        if isinstance(node, nodes.literal_block):
            blocks += [Block(line.rstrip(), code=True) for line in node.astext().splitlines() if line.strip()]
        elif text := _prose(node.astext()):
            blocks.append(Block(text, heading=isinstance(node, nodes.title)))
    return [blocks]


_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
MENU_MIN_LINKS = 5  # an element with this many links or more, nearly all its text theirs, is a menu
MENU_LINK_SHARE = 0.8


def _visible_chars(element) -> int:
    return sum(len("".join(part.split())) for part in element.itertext())


def _is_menu(element) -> bool:
    """Many links, and nearly all the element's text is theirs."""
    links = element.findall(".//a")
    if len(links) < MENU_MIN_LINKS:
        return False
    text = _visible_chars(element)
    return text > 0 and sum(_visible_chars(a) for a in links) >= MENU_LINK_SHARE * text


HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
PREFIX_CHARS = 40  # a heading is put back before the block whose text starts as the heading's next paragraph does


def _headings(tree) -> list[tuple[str, str]]:
    """Each heading's text and the start of the text that follows it (its next paragraph), in page order."""
    found, waiting = [], None
    for element in tree.iter(*HEADINGS, "p", "li", "dd", "dt", "td", "pre"):
        text = _prose("".join(element.itertext()))
        if element.tag in HEADINGS:
            waiting = text or None
        elif text and waiting is not None:
            found.append((waiting, text[:PREFIX_CHARS]))
            waiting = None
    return found


def _with_headings(blocks: Document, headings: list[tuple[str, str]]) -> Document:
    """The extractor's blocks with the headings it dropped (DocBook's sections, say) back in their own lines."""
    present = {block.text for block in blocks}
    starts: dict[str, int] = {}
    for index, block in enumerate(blocks):
        starts.setdefault(block.text[:PREFIX_CHARS], index)
    before: dict[int, list[Block]] = {}
    for heading, following in headings:
        if heading not in present and following in starts:
            before.setdefault(starts[following], []).append(Block(heading, heading=True))
    out: Document = []
    for index, block in enumerate(blocks):
        out += [*before.get(index, []), block]
    return out


def _prepared_html(html: str) -> tuple[str, list[tuple[str, str]]]:
    """The page as the extractor should see it: every <pre> with its content inside a <code> (trafilatura keeps the
    lines of `<pre><code>` but joins those of a bare <pre>), and link-dense blocks (a site menu: "Main Menu Home
    Introduction Documentation ...", an alphabetic index) removed; and its headings (`_headings`)."""
    import lxml.html

    try:  # an XHTML page's `<?xml ... encoding=...?>` would make lxml refuse the (already decoded) text
        tree = lxml.html.document_fromstring(_XML_DECLARATION.sub("", html, count=1))
    except (ValueError, lxml.etree.ParserError):
        return html, []
    for pre in tree.iter("pre"):
        for br in pre.iter("br"):  # a line break inside <pre> (gtk-doc's signatures) is the line's end
            br.tail = "\n" + (br.tail or "")
            br.drop_tag()
        if pre.find("code") is None:
            code = lxml.html.Element("code")
            code.text, pre.text = pre.text, None
            for child in list(pre):
                code.append(child)  # moves the child, with its tail
            pre.append(code)
    for element in [e for e in tree.iter("td", "div", "ul", "ol", "table", "p") if _is_menu(e)]:
        if element.getparent() is not None:
            element.drop_tree()  # its tail text stays
    return lxml.html.tostring(tree, encoding="unicode"), _headings(tree)


# Navigation that generators mark as such but trafilatura keeps: the element holding HTML's navigation links
# (rel next/prev/up: texinfo's "Next: ..., Previous: ..., Up: ..." bar on every page) and ARIA navigation landmarks.
NAVIGATION_XPATH = [
    "//*[a[@rel='next' or @rel='prev' or @rel='previous' or @rel='up']]",
    "//*[@role='navigation']",
]


def read_html(raw: bytes, path: Path) -> list[Document]:
    import trafilatura
    from lxml import etree

    page, headings = _prepared_html(decode_html(raw, path))
    extracted = trafilatura.extract(
        page,
        output_format="xml",
        include_comments=False,
        include_tables=True,
        favor_recall=True,
        prune_xpath=NAVIGATION_XPATH,
    )
    if not extracted:
        return [[]]
    blocks: Document = []
    wanted = ("p", "head", "item", "code", "quote", "row", "cell")
    for element in etree.fromstring(extracted.encode()).iter(*wanted):
        if not any(ancestor.tag in wanted for ancestor in element.iterancestors()):
            blocks += _html_blocks(element)  # nested ones are part of their block (inline code in a paragraph)
    return [_with_headings(blocks, headings)]


def _code_lines(text: str) -> Document:
    return [Block(line.rstrip(), code=True) for line in text.splitlines() if line.strip()]


def _html_blocks(element) -> Document:
    """One extracted element's blocks in order: its prose (a line break, `<br>`, ends a block), with any multi-line
    code inside it (a <pre> that the extractor put in a paragraph) as code lines."""
    text = "".join(element.itertext())
    if element.tag == "code":
        return _code_lines(text) if "\n" in text.strip() else ([Block(_prose(text))] if text.strip() else [])
    if element.tag == "row" and (row := _table_row(element)) is not None:
        return [row] if row.text else []
    if element.tag == "head":
        return [Block(_prose(text), heading=True)] if _prose(text) else []
    blocks: Document = []
    prose = [element.text or ""]

    def end_prose() -> None:
        if _prose("".join(prose)):
            blocks.append(Block(_prose("".join(prose))))
        prose.clear()

    for child in element:
        child_text = "".join(child.itertext())
        if child.tag == "code" and ("\n" in child_text.strip() or element.tag not in INLINE_PARENTS):
            end_prose()  # a code block (a <pre> in a table cell, say), not inline code in a sentence
            blocks += _code_lines(child_text)
        elif child.tag in BLOCK_ELEMENTS:
            end_prose()
            blocks += _html_blocks(child)
        elif child.tag == "lb":
            end_prose()
        else:
            prose.append(child_text)
        prose.append(child.tail or "")
    end_prose()
    return blocks


TABLE_CELL_CHARS = 300  # a row of cells this short at most is a table's row; longer ones lay out a page


def _table_row(row) -> Block | None:
    """A data table's row as one line, its cells joined by " | "; None for a row that lays out a page (a cell
    holding paragraphs, lists or code, or long text), whose cells are blocks of their own."""
    cells = [cell for cell in row if cell.tag == "cell"]
    if not cells or any(cell.find(".//p") is not None or cell.find(".//list") is not None for cell in cells):
        return None
    texts = [_prose("".join(cell.itertext())) for cell in cells]
    if any(
        len(text) > TABLE_CELL_CHARS or "\n" in "".join(cell.itertext()).strip()
        for text, cell in zip(texts, cells, strict=True)
    ):
        return None
    return Block(" | ".join(text for text in texts if text))


INLINE_PARENTS = {"p", "head", "item", "quote"}  # where a one-line <code> is inline code, part of the sentence
BLOCK_ELEMENTS = {"p", "head", "list", "item", "quote", "table", "row", "cell"}  # each its own blocks


_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_-]+)""", re.IGNORECASE)


def decode_html(raw: bytes, path: Path) -> str:
    """UTF-8, or the charset the page declares in a <meta> (ISO-8859-1 pages are common in older manuals)."""
    try:
        return decode(raw, path)
    except InputError as error:
        declared = _CHARSET.search(raw[:8192])
        if declared is None:
            raise
        try:
            return raw.decode(declared.group(1).decode("ascii"))
        except (LookupError, UnicodeDecodeError):
            raise error from None


_HYPHENATED = re.compile(r"(\w)-\n(?=[a-z])")


def read_pdf(raw: bytes, path: Path) -> list[Document]:
    from pdfminer.high_level import extract_text
    from pdfminer.pdfparser import PDFSyntaxError

    try:
        text = extract_text(io.BytesIO(raw))
    except (PDFSyntaxError, ValueError, TypeError, KeyError) as error:
        raise InputError(f"{path}: not a readable PDF ({type(error).__name__}: {error})") from error
    text = _HYPHENATED.sub(r"\1", text.replace("\x0c", "\n\n"))  # page breaks; "man-\nagement" -> "management"
    return [[block for block in _paragraph_blocks(text) if not re.fullmatch(r"[\d\s.]+", block.text)]]


def read_jsonl(raw: bytes, path: Path, text_field: str, problems: list[str]) -> list[Document]:
    """One document per line; a line that is not a JSON object with the text field is skipped and reported in
    `problems` (with its line number), the good lines kept."""
    documents = []
    for number, line in enumerate(decode(raw, path).splitlines(), start=1):
        try:
            for _, record in json_objects([line], path):
                text = record.get(text_field)
                if not isinstance(text, str):
                    raise InputError(f"{path}:{number}: no string field {text_field!r}")
                documents.append(_paragraph_blocks(text))
        except InputError as error:
            problems.append(str(error).replace(f"{path}:1:", f"{path}:{number}:", 1))
    if problems and not documents:
        raise InputError(f"{problems[0]} (and every other line: no document)")
    return documents


def _looks_like_text(raw: bytes) -> bool:
    head = raw[:SNIFF_BYTES]
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 4:  # a character cut at the sniffed head's end is not a bad byte
            return False
    return b"\0" not in head


def read_documents(
    path: Path, jsonl_text_field: str = "text", max_bytes: int = 1 << 30, problems: list[str] | None = None
) -> list[Document]:
    """The documents of one file (one, or one per line of a .jsonl); NotRead, NoText or TooLarge when it is left
    out, another InputError naming the file when it is broken. Lines skipped inside it go to `problems`."""
    kind = kind_of(path)
    if kind is None:
        raise NotRead(f"{path}: {suffix_of(path) or 'no extension'} is not a kind this stage reads")
    raw = read_bytes(path, max_bytes)
    if kind == "txt?":
        if not _looks_like_text(raw):
            raise NotRead(f"{path}: no extension and not text")
        kind = "txt"
    if not raw.strip():
        raise NoText(f"{path}: empty")
    if kind == "jsonl":
        return read_jsonl(raw, path, jsonl_text_field, [] if problems is None else problems)
    return {"txt": read_txt, "md": read_md, "rst": read_rst, "html": read_html, "pdf": read_pdf}[kind](raw, path)
