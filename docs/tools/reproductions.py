"""The Reproductions section, generated from the records in docs/results/*.md each time the site is built.

Each record becomes a page `reproductions/NAME.md`: its own text (tables, claims, figures, commands),
with a box in front saying how to run it again (for a study of rdvae's study registry: `rdvae repro
NAME --scale ...` for each of its scales), its links rewritten for the new place (figures and data files
point into docs/results/, other records to their pages), and the figures of the record that its text
does not show added at the end. A link to anything else (a source file, a file that is missing, an
anchor that no heading makes) is neutralised: its text stays, the link goes, and `neutralised` says
which. The overview page tabulates every claim of every record: the rows of each table whose first
column is "claim" (paper | claim | here | holds), and for a study whose record has no such table, its
stated findings, marked as not judged by a rule.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

FIGURES = (".png", ".svg", ".jpg", ".jpeg", ".gif")
# the words of a claim table's verdict cells, in the order they are looked for
VERDICTS = ("cannot tell", "pending", "partly", "yes", "no")
SCALES = {"smoke": "seconds", "cpu": "hours on 2 CPU cores", "paper": "the paper's sizes (GPU)"}
FINDINGS = re.compile(r"what it shows|reading|what holds|findings|verdict", re.IGNORECASE)


@dataclass
class Record:
    name: str                          # the file's stem: broken-elbo
    title: str                         # its first heading, as Markdown
    text: str                          # the whole file
    study: object | None = None        # the registered Study of that name, if any
    neutralised: list[str] = field(default_factory=list)

    @property
    def short(self) -> str:
        """A short title for the navigation: the heading up to its first colon or parenthesis."""
        plain = re.sub(r"[`*]", "", self.title)
        short = re.split(r"[:(]", plain, maxsplit=1)[0].strip()
        return short or self.name

    @property
    def page(self) -> str:
        return f"reproductions/{self.name}.md"


def studies() -> dict:
    """name -> Study of the study registry (rdvae's own, and those of installed plugins)."""
    from rdvae.registry import STUDIES

    return dict(STUDIES.items())


def read_records(results: Path) -> list[Record]:
    """Every docs/results/*.md, studies first (in the registry's order), then the other records."""
    registered = studies()
    found = []
    for path in sorted(results.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        heading = next((line for line in text.splitlines() if line.startswith("# ")), f"# {path.stem}")
        found.append(Record(path.stem, heading[2:].strip(), text, registered.get(path.stem)))
    order = list(registered)
    return sorted(found, key=lambda r: (r.study is None, order.index(r.name) if r.study else 0, r.name))


# -- Markdown, read line by line outside code fences ------------------------------------------------

def _outside_fences(text: str):
    """(line, in_fence) for each line."""
    fence = None
    for line in text.splitlines():
        opening = re.match(r"\s*(```+|~~~+)", line)
        if fence is None and opening:
            fence = opening.group(1)
            yield line, True
        elif fence is not None:
            if line.strip().startswith(fence[:3]) and line.strip().strip(fence[0]) == "":
                fence = None
            yield line, True
        else:
            yield line, False


def slugify(text: str) -> str:
    """The id Python-Markdown's toc extension gives a heading (its default slugify), from the heading's
    Markdown with code marks, emphasis and link targets removed."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[`*]", "", text)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(text: str) -> set[str]:
    found: set[str] = set()
    for line, fenced in _outside_fences(text):
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading and not fenced:
            slug, n = slugify(heading.group(1)), 1
            while slug in found:
                slug, n = f"{slugify(heading.group(1))}_{n}", n + 1
            found.add(slug)
    return found


LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]*)>?(\s+\"[^\"]*\")?\s*\)")


def _rewrite_link(match: re.Match, record: Record, results: Path, pages: dict[str, set[str]]) -> str:
    bang, label, target, title = match.group(1), match.group(2), match.group(3), match.group(4) or ""
    if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):   # http:, https:, mailto:
        return match.group(0)
    path, _, fragment = target.partition("#")
    if not path:   # an anchor on this page
        if fragment in pages.get(record.name, set()):
            return match.group(0)
        record.neutralised.append(f"{target} (no such heading)")
        return label
    stem = Path(path).name
    if path.endswith(".md") and "/" not in path.strip("./") and Path(stem).stem in pages:
        other = Path(stem).stem
        if fragment and fragment not in pages[other]:
            record.neutralised.append(f"{target} (no such heading in {stem}; linked to the page)")
            fragment = ""
        return f"{bang}[{label}]({other}.md{'#' + fragment if fragment else ''}{title})"
    if "/" not in path.strip("./") and (results / stem).is_file():
        return f"{bang}[{label}](../results/{stem}{title})"
    where = "a file outside docs/results" if (results / path).exists() else "missing"
    record.neutralised.append(f"{target} ({where})")
    if bang:
        return f"*(figure not available: {label or stem})*"
    return f"{label} (`{path}`)" if label.strip("`") != path else label


def rewrite_links(record: Record, results: Path, pages: dict[str, set[str]]) -> str:
    """The record's text with its links pointing where they resolve from reproductions/NAME.md."""
    out = []
    for line, fenced in _outside_fences(record.text):
        if fenced:
            out.append(line)
            continue
        parts = re.split(r"(`[^`]*`)", line)   # leave code spans alone
        for i in range(0, len(parts), 2):
            parts[i] = LINK.sub(lambda m: _rewrite_link(m, record, results, pages), parts[i])
            parts[i] = re.sub(r'(<img\b[^>]*\bsrc=")([^":]+)(")',
                              lambda m: m.group(1) + ("../results/" + Path(m.group(2)).name
                                                      if (results / Path(m.group(2)).name).is_file()
                                                      else m.group(2)) + m.group(3), parts[i])
        out.append("".join(parts))
    return "\n".join(out)


# -- tables and claims --------------------------------------------------------------------------------

def split_row(line: str) -> list[str]:
    """The cells of a Markdown table row (pipes escaped or inside code spans do not split)."""
    cells, cell, code = [], "", False
    line = line.strip()
    line = line[1:] if line.startswith("|") else line
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line):
            cell += line[i:i + 2]
            i += 2
            continue
        if ch == "`":
            code = not code
        if ch == "|" and not code:
            cells.append(cell.strip())
            cell = ""
        else:
            cell += ch
        i += 1
    if cell.strip():
        cells.append(cell.strip())
    return cells


def tables(text: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """(the heading above it, header cells, body rows) of every table outside code fences."""
    found, heading, block = [], "", []
    lines = list(_outside_fences(text)) + [("", False)]
    for line, fenced in lines:
        if not fenced and line.lstrip().startswith("|"):
            block.append(line)
            continue
        if len(block) >= 2 and re.fullmatch(r"[\s|:-]+", block[1]):
            found.append((heading, split_row(block[0]), [split_row(b) for b in block[2:]]))
        block = []
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match and not fenced:
            heading = match.group(1).strip()
    return found


def verdict(cell: str) -> str:
    plain = re.sub(r"[*_`]", "", cell).lower()
    for word in VERDICTS:
        if re.search(rf"\b{word}\b", plain):
            return word
    return ""


@dataclass
class Claim:
    record: Record
    section: str
    claim: str
    paper: str
    here: str
    holds: str


def claims(record: Record) -> list[Claim]:
    """The rows of the record's claim tables (first column "claim")."""
    found = []
    for heading, header, rows in tables(record.text):
        names = [h.lower() for h in header]
        if not names or not names[0].startswith("claim"):
            continue
        paper = next((i for i, h in enumerate(names) if h.startswith("paper")), None)
        holds = next((i for i, h in enumerate(names) if h.startswith("holds")), None)
        here = [i for i, h in enumerate(names) if h == "here"] or [
            i for i, h in enumerate(names) if i not in (0, paper, holds) and not h.startswith("runs")]
        for row in rows:
            row = row + [""] * (len(header) - len(row))
            if len(here) == 1:
                shown = row[here[0]]
            else:
                shown = "; ".join(f"{header[i]}: {row[i]}" for i in here)
            if holds is not None:
                judged = row[holds]
            else:
                judged = "; ".join(f"{header[i]}: {verdict(row[i]) or 'not judged'}" for i in here)
            said = row[paper] if paper is not None else ""
            found.append(Claim(record, heading, row[0], said, shown, judged))
    return found


def findings(record: Record) -> list[str]:
    """The bold lead sentences of the bullets under a findings heading (What it shows, Reading, ...)."""
    found, inside = [], False
    for line, fenced in _outside_fences(record.text):
        if fenced:
            continue
        heading = re.match(r"#{2,6}\s+(.*)", line)
        if heading:
            inside = bool(FINDINGS.search(heading.group(1)))
            continue
        lead = re.match(r"- \*\*(.+?)\*\*", line)
        if inside and lead:
            found.append(lead.group(1).strip().rstrip(":"))
    return found


# -- the pages ---------------------------------------------------------------------------------------

def _figures(record: Record, results: Path) -> list[str]:
    """The record's figures in docs/results (NAME.png, NAME-*.png) that its text does not show."""
    shown = set(re.findall(r"\]\(([^)\s]+)", record.text))
    shown = {Path(s).name for s in shown}
    return [p.name for p in sorted(results.iterdir())
            if p.suffix.lower() in FIGURES and p.suffix.lower() != ".svg"
            and (p.stem == record.name or p.stem.startswith(record.name + "-")) and p.name not in shown]


def _reproduce_box(record: Record) -> list[str]:
    study = record.study
    name = record.name
    lines = [f'!!! abstract "Run it again: `rdvae repro {name}`"', ""]
    description = study.description.strip()
    lines += [f"    {description[:1].upper()}{description[1:]}", ""]
    lines += ["    ```bash"]
    for scale in getattr(study, "scales", ("smoke", "cpu", "paper")):
        note = f"   # {SCALES[scale]}" if scale in SCALES else ""
        lines.append(f"    rdvae repro {name} --scale {scale} --out runs/repro-{name}-{scale}{note}")
    lines += ["    ```", "",
              f"    This page is the record `docs/results/{name}.md` as the site was built: what was run, "
              "on which machine, how long it took, and what came out. Its claims are also in the "
              "[overview](index.md).", ""]
    return lines


def page_markdown(record: Record, results: Path, pages: dict[str, set[str]]) -> str:
    record.neutralised.clear()
    body = rewrite_links(record, results, pages).splitlines()
    first = next((i for i, line in enumerate(body) if line.startswith("# ")), None)
    head, rest = (body[:first + 1], body[first + 1:]) if first is not None else ([f"# {record.name}"], body)
    if record.study is not None:
        box = _reproduce_box(record)
    else:
        box = ['!!! info "A record"', "",
               f"    This page is the record `docs/results/{record.name}.md` as the site was built.", ""]
    lines = [*head, "", *box, *rest]
    extra = _figures(record, results)
    if extra:
        lines += ["", "## More figures of this record", ""]
        for figure in extra:
            lines += [f"![{figure}](../results/{figure})", "", f"`{figure}`", ""]
    return "\n".join(lines).rstrip() + "\n"


def _cell(text: str) -> str:
    return " ".join(text.split()) or "-"


def overview_markdown(records: list[Record]) -> str:
    lines = [
        "# Reproductions",
        "",
        "Each paper rdvae reproduces is a *study* (`rdvae.studies`, registered like a plugin's): `rdvae "
        "repro` lists them, and `rdvae repro NAME --scale smoke|cpu|paper --out DIR` runs one and writes "
        "its tables beside the published numbers. `smoke` takes seconds (the tests run it), `cpu` is what "
        "was run for the records below on a 2-core machine, `paper` the paper's sizes (a GPU). Work "
        "longer than a session is split into named stages that continue where they stopped (`--stage "
        "NAME`). A study of your own is a plugin: see [Contributing](../contributing.md#add-a-study).",
        "",
        "The pages of this section are generated when the site is built from the records in "
        "`docs/results/` (what was run, with commands, machine and wall times): nothing here is typed "
        "twice.",
        "",
    ]
    lines += ["## Studies", "", "| study | what it reproduces | scales |", "|---|---|---|"]
    for record in records:
        if record.study is not None:
            scales = ", ".join(getattr(record.study, "scales", ()))
            what = _cell(record.study.description)
            lines.append(f"| [{record.name}]({record.name}.md) | {what} | {scales} |")
    lines += [
        "",
        "## Claims",
        "",
        "Every claim a record judges, as its claim tables state it: the paper, what the paper claims "
        "(and its number), what rdvae measured here, and whether the claim holds by the record's rule. A "
        "study whose record states its findings in prose is listed with those findings, not judged by a "
        "rule.",
        "",
        "| paper | claim | here | holds |",
        "|---|---|---|---|",
    ]
    for record in records:
        if record.study is None:
            continue
        paper = f"[{_cell(record.short)}]({record.name}.md)"
        rows = claims(record)
        several = len({claim.section for claim in rows}) > 1   # then each row says which table it is from
        for i, claim in enumerate(rows):
            said = f"{_cell(claim.claim)}" + (f" (paper: {_cell(claim.paper)})" if claim.paper else "")
            said += f" [table: {_cell(claim.section)}]" if several and claim.section else ""
            first = paper if i == 0 else ""
            lines.append(f"| {first} | {said} | {_cell(claim.here)} | {_cell(claim.holds)} |")
        if not rows:
            stated = findings(record)
            if stated:
                for i, finding in enumerate(stated):
                    lines.append(f"| {paper if i == 0 else ''} | {_cell(finding)} | as the record states it "
                                 f"| not judged by a rule |")
            else:
                lines.append(f"| {paper} | see the record | - | not judged by a rule |")
    others = [r for r in records if r.study is None]
    if others:
        lines += ["", "## Other records", "",
                  "Measurements of rdvae itself rather than of a paper: the quickstart, sweeps, tracking, "
                  "benchmarks, the AIS estimators, refactor checks.", ""]
        lines += [f"- [{_cell(r.title)}]({r.name}.md)" for r in others]
    return "\n".join(lines) + "\n"


def generate(docs: Path) -> tuple[dict[str, str], list[Record]]:
    """{page path: Markdown} of the whole section, and the records (with what was neutralised)."""
    results = docs / "results"
    records = read_records(results)
    pages = {r.name: anchors(r.text) for r in records}
    out = {"reproductions/index.md": overview_markdown(records)}
    for record in records:
        out[record.page] = page_markdown(record, results, pages)
    return out, records


def nav(records: list[Record]) -> list:
    """The navigation of the section."""
    studies_nav = [{r.short: r.page} for r in records if r.study is not None]
    others = [{r.short: r.page} for r in records if r.study is None]
    section = [{"Overview": "reproductions/index.md"}, *studies_nav]
    return [*section, {"Other records": others}] if others else section
