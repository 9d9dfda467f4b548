"""Every figure table in docs/notes names a date and a machine.

A table counts as named when its section (the text from the heading above
it to the next heading) holds a date (YYYY-MM-DD) and a machine: a CPU or
device model (AMD EPYC, Zen 2, Intel Xeon, Sapphire Rapids, Apple M*,
iPhone, an NVIDIA GPU).
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTES = sorted((ROOT / 'docs' / 'en' / 'notes').glob('*.md'))
DATE = re.compile(r'\b20\d\d-[01]\d-[0-3]\d\b')
MACHINE = re.compile(r'AMD EPYC|Zen ?\d|Intel Xeon|Xeon|Sapphire Rapids|Apple M\d|'
                     r'iPhone ?\d+|NVIDIA|H100|H200|A100')


def sections(text: str):
    """``(heading, body)`` of each section of a Markdown page."""
    parts = re.split(r'^(#{1,6} .*)$', text, flags=re.M)
    yield '(top)', parts[0]
    for i in range(1, len(parts), 2):
        yield parts[i], parts[i + 1]


def tables(body: str) -> int:
    """How many Markdown tables (a header row and a ``|---|`` row)."""
    lines = body.split('\n')
    return sum(1 for a, b in zip(lines, lines[1:])
               if a.lstrip().startswith('|') and re.match(r'^\s*\|[\s:|-]+\|\s*$', b)
               and '-' in b)


def unnamed_tables(text: str) -> list:
    return [heading for heading, body in sections(text)
            if tables(body) and not (DATE.search(body) and MACHINE.search(body))]


def test_the_notes_hold_tables():
    assert sum(tables(p.read_text()) for p in NOTES) >= 8


@pytest.mark.parametrize('page', NOTES, ids=lambda p: p.name)
def test_every_figure_table_names_a_date_and_a_machine(page):
    unnamed = unnamed_tables(page.read_text())
    assert not unnamed, (f'{page.name}: tables without a date and a machine '
                         f'in their section: {unnamed}')


@pytest.mark.parametrize('text, unnamed', [
    ('# A\n\n| a | b |\n|---|---|\n| 1 | 2 |\n', ['(top)', '# A'][1:]),
    ('# A\n\n2026-12-06, AMD EPYC\n\n| a | b |\n|---|---|\n| 1 | 2 |\n', []),
    ('# A\n\n2026-12-06\n\n| a | b |\n|---|---|\n| 1 | 2 |\n', ['# A']),
    ('# A\n\nAMD EPYC 2026-12-06\n\n## B\n\n| a |\n|---|\n| 1 |\n', ['## B']),
])
def test_the_check_catches(text, unnamed):
    assert unnamed_tables(text) == unnamed
