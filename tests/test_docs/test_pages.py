"""Every documentation page opens with what its reader will be able to do,
and every page is reachable: in a toctree of docs/en/index.md (Sphinx also
fails ``make docs`` on a page outside every toctree; this says which one
without a build)."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / 'docs' / 'en'
PAGES = sorted(p for p in DOCS.rglob('*.md') if '_build' not in p.parts)


def opening(text: str) -> str:
    """The first paragraph after the page's title."""
    body = re.sub(r'^# .*\n', '', text, count=1).strip()
    return body.split('\n\n', 1)[0]


@pytest.mark.parametrize('page', PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_page_opens_with_what_the_reader_can_do(page):
    text = page.read_text()
    assert text.startswith('# '), 'a page starts with its title'
    assert 'After this page you' in opening(text), opening(text)[:200]


def test_every_page_is_in_the_index():
    index = (DOCS / 'index.md').read_text()
    listed = set(re.findall(r'^([\w/.-]+\.(?:md|rst))$', index, flags=re.M))
    pages = {str(p.relative_to(DOCS)) for p in PAGES if p.name != 'index.md'}
    pages |= {str(p.relative_to(DOCS)) for p in DOCS.glob('*.rst')}
    assert pages == listed, (pages - listed, listed - pages)


def test_the_api_reference_lists_every_module():
    listed = set(re.findall(r'^\.\. automodule:: ([\w.]+)$', (DOCS / 'api.rst').read_text(),
                            flags=re.M))
    modules = {'.'.join(p.relative_to(ROOT).with_suffix('').parts)
               for p in (ROOT / 'mobileone_mm').rglob('*.py') if p.name != '__init__.py'}
    assert listed == modules, (modules - listed, listed - modules)
