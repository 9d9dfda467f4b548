"""The FAQ quotes the tools' own messages: every error line it quotes (a
bold entry that is one code span) is made of text the package or the tools
print. The quote is split at what a message fills in (values: anything
with a digit, a path or a dotted name, a class name, a placeholder such as
FILE or CONFIG, ``...``, and the words the fit message fills in: a task and
a form); each remaining run of words must be covered by stretches of at
least two words found in the source of mobileone_mm/ and tools/ (adjacent
string literals joined), or by single words that begin or end a literal
(``'warning: {message}'``). A reworded or invented line fails here unless
its new words happen to stand together elsewhere in the source (a
heuristic: the tests below show it catching both)."""
import re
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAQ = ROOT / 'docs' / 'en' / 'faq.md'
MIN_WORDS = 2
PLACEHOLDERS = {'FILE', 'CONFIG', 'PATH', 'N', 'E', 'X'}
FILLED_IN = {'detector', 'segmentor', 'classifier', 'backbone', 'fused', 'unfused',
             'nan', 'inf'}


@lru_cache(maxsize=None)
def corpus() -> str:
    """The source of the package and the tools, with adjacent string
    literals joined (``'a ' f'b'`` -> ``a b``) and white space folded."""
    text = '\n'.join(p.read_text() for d in ('mobileone_mm', 'tools')
                     for p in sorted((ROOT / d).rglob('*.py')))
    text = text.replace("\\'", "'")
    text = re.sub(r"""(['"])\s*\n\s*\+?\s*[rbfuRBFU]*(['"])""", '', text)
    return ' '.join(text.split())


def quotes() -> list:
    return [' '.join(q.split()) for q in
            re.findall(r'\*\*`([^`]+)`\.?\*\*', FAQ.read_text())]


def is_value(word: str) -> bool:
    bare = word.strip('.,;:()[]\'"<>')
    return (bool(re.search(r'[\d/<>]', word)) or '...' in word
            or bool(re.search(r'\w[._]\w', bare))   # a path or dotted name
            or bare in PLACEHOLDERS or bare.lower() in FILLED_IN
            or (bool(re.search(r'[a-z][A-Z]', bare))  # a class name: CocoDataset
                and word not in corpus()))


def literal_edge(word: str) -> bool:
    """``word`` begins or ends a string literal or sits next to a filled-in
    value (``'warning: {message}'``, ``'... Fix: {fix}'``)."""
    w = re.escape(word)
    return bool(re.search(rf"""(['"}}]\s?{w}(\s|$))|((^|\s){w}\s?['"{{])|(['"]{w}['"])""",
                          corpus()))


def runs(quote: str) -> list:
    """The quote's runs of words between values."""
    out, current = [], []
    for word in quote.split():
        if is_value(word):
            if current:
                out.append(current)
            current = []
        else:
            current.append(word)
    return out + ([current] if current else [])


def uncovered(run: list, text: str) -> list:
    """Words of ``run`` that no found stretch of MIN_WORDS or more words
    (or the whole run, when shorter) covers, greedily from the left."""
    i, missing = 0, []
    while i < len(run):
        best = 0
        for j in range(len(run), i + MIN_WORDS - 1, -1):
            if ' '.join(run[i:j]) in text:
                best = j - i
                break
        if best:
            i += best
            continue
        if not literal_edge(run[i]):
            missing.append(run[i])
        i += 1
    return missing


def test_the_faq_quotes_messages():
    assert len(quotes()) >= 12


@pytest.mark.parametrize('quote', quotes(), ids=lambda q: q[:40])
def test_each_quote_is_the_tools_own_text(quote):
    text = corpus()
    missing = [w for run in runs(quote) for w in uncovered(run, text)]
    assert not missing, f'not in any message of the code: {missing}'


@pytest.mark.parametrize('quote', [
    'training stopped at iteration 7: the gradients exploded; call the hotline',
    'FILE: this image is broken beyond repair, please buy a new camera',
    "unknown MobileOne arch 's9': pick one of ...",
    'training halted at iteration N (epoch E): the loss is nan',
])
def test_the_check_catches_invented_and_reworded_text(quote):
    text = corpus()
    assert [w for run in runs(quote) for w in uncovered(run, text)]
