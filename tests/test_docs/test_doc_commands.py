"""The docs stay true: every command in a fenced shell block of README.md,
CONTRIBUTING.md, the config READMEs and docs/ names an existing tool and
only flags its argparse accepts, every ``make TARGET`` exists in the
Makefile, and every ``configs/...`` path (in a command or in inline code)
exists; commands in inline code (``python tools/...``) are checked too;
every relative link of the Markdown files points at a file.

The tools' parsers are taken from the tools themselves: each script runs as
``__main__`` until its first ``parse_args``/``parse_known_args`` call, which
is intercepted (nothing after it runs), so a renamed or removed flag fails
here without a list to keep in step.
"""
import argparse
import glob
import re
import runpy
import shlex
import sys
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / 'README.md', ROOT / 'CONTRIBUTING.md',
               *ROOT.glob('configs/*/README.md'),
               *(p for p in ROOT.glob('docs/**/*.md') if '_build' not in p.parts)])
SHELL = {'bash', 'sh', 'shell', 'console'}
# shell launchers: positional arguments before the options they pass on
LAUNCHERS = {'tools/dist_train.sh': ('tools/train.py', 2),
             'tools/dist_test.sh': ('tools/test.py', 3),
             'tools/slurm_train.sh': ('tools/train.py', 4),
             'tools/slurm_test.sh': ('tools/test.py', 4)}


def shell_blocks(path: Path):
    """``(first line number, text)`` of every fenced shell block."""
    lines = path.read_text().split('\n')
    block, start, lang = None, 0, None
    for i, line in enumerate(lines, 1):
        fence = re.match(r'^\s*```+\s*([\w-]*)', line)
        if fence and block is None:
            block, start, lang = [], i + 1, fence[1].lower()
        elif fence and block is not None:
            if lang in SHELL:
                yield start, '\n'.join(block)
            block = None
        elif block is not None:
            block.append(line)


def commands(text: str):
    """Each simple command of a shell block as a list of words: line
    continuations joined, comments dropped, split at ``&&``, ``||``,
    ``;`` and ``|``; synopsis brackets (``[--flag X]``, ``a|b``) kept
    as words and cleaned by the checks."""
    text = text.replace('\\\n', ' ')
    for line in text.split('\n'):
        line = re.sub(r'\s(&&|\|\||;)\s', '\n', line)
        for part in line.split('\n'):
            if not part.strip() or part.strip().startswith('#'):
                continue
            try:
                words = shlex.split(part, comments=True)
            except ValueError:  # an unbalanced quote in a synopsis line
                words = part.split()
            while words and re.match(r'^[A-Z_][A-Z0-9_]*=', words[0]):
                words = words[1:]  # VAR=value before the command
            if words:
                yield words


class _Captured(Exception):
    def __init__(self, parser):
        self.parser = parser


@lru_cache(maxsize=None)
def tool_options(tool: str) -> frozenset:
    """Every option string the tool's argparse parser accepts."""
    original = argparse.ArgumentParser.parse_known_args

    def capture(self, *args, **kwargs):
        raise _Captured(self)

    argv = sys.argv
    argparse.ArgumentParser.parse_known_args = capture
    try:
        sys.argv = [str(ROOT / tool)]
        runpy.run_path(str(ROOT / tool), run_name='__main__')
    except _Captured as captured:
        return frozenset(captured.parser._option_string_actions)
    finally:
        argparse.ArgumentParser.parse_known_args = original
        sys.argv = argv
    raise AssertionError(f'{tool} never parsed its arguments')


def make_targets() -> set:
    text = (ROOT / 'Makefile').read_text()
    return set(re.findall(r'^([\w-]+):', text, flags=re.M))


def expand(pattern: str):
    """Brace alternatives and ``..`` ranges (``s{0..4}``) expanded."""
    m = re.search(r'\{([^{}]*)\}', pattern)
    if not m:
        yield pattern
        return
    inner = m[1]
    rng = re.fullmatch(r'(\d+)\.\.(\d+)', inner)
    options = ([str(i) for i in range(int(rng[1]), int(rng[2]) + 1)] if rng
               else inner.split(','))
    for option in options:
        yield from expand(pattern[:m.start()] + option + pattern[m.end():])


def path_problems(word: str) -> list:
    word = word.strip('`[](),;:').rstrip('.')
    if not word.startswith('configs/') or '<' in word or 'X' in word.split('/')[-1][:1]:
        return []
    bad = []
    for path in expand(word):
        if not glob.glob(str(ROOT / path)):
            bad.append(path)
    return bad


def flag_of(word: str):
    word = word.strip('[]')
    if not word.startswith('-') or re.fullmatch(r'-[\d.e-]+', word):
        return None
    return word.split('=', 1)[0]


def check_command(words: list) -> list:
    """What is wrong with one command, as messages."""
    problems = []
    for word in words:
        problems += [f'{p} does not exist' for p in path_problems(word)]
    if words[0] == 'make':
        targets = make_targets()
        for word in words[1:]:
            if '=' in word or word.startswith('-'):
                continue
            if word not in targets:
                problems.append(f'make {word}: no such target in the Makefile')
        return problems
    for i, word in enumerate(words):
        name = word[2:] if word.startswith('./') else word
        if not name.startswith('tools/') or not name.endswith(('.py', '.sh')):
            continue
        if not (ROOT / name).is_file():
            problems.append(f'{name} does not exist')
            return problems
        rest = words[i + 1:]
        if name.endswith('.sh'):
            if name not in LAUNCHERS:
                return problems
            name, skip = LAUNCHERS[name]
            rest = rest[skip:]
        options = tool_options(name)
        for arg in rest:
            flag = flag_of(arg)
            if flag is not None and flag not in options:
                problems.append(f'{name} has no option {flag}')
        return problems
    return problems


def all_commands():
    for path in DOCS:
        for start, text in shell_blocks(path):
            for words in commands(text):
                yield path, start, words


def test_the_docs_have_commands_to_check():
    found = list(all_commands())
    tools = {w for _, _, words in found for w in words if w.startswith('tools/')}
    # the README's task blocks and the guides name most tools; the check
    # below would pass vacuously if the blocks were not found
    assert len(found) > 60, len(found)
    assert {'tools/train.py', 'tools/test.py', 'tools/deploy.py',
            'tools/quantize.py', 'tools/dist_train.sh',
            'tools/slurm_train.sh'} <= tools


@pytest.mark.parametrize('path', DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shell_command_fits_the_project(path):
    problems = []
    for start, text in shell_blocks(path):
        for words in commands(text):
            problems += [f'{path.relative_to(ROOT)}:{start}: {" ".join(words)[:90]}: {p}'
                         for p in check_command(words)]
    assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('path', DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_inline_commands_config_paths_and_links_exist(path):
    text = path.read_text()
    problems = []
    for code in re.findall(r'`([^`\n]+)`', text):
        if re.match(r'^(python3? tools/|tools/\S+\.(py|sh) |make [a-z])', code):
            for words in commands(code):  # a command in the prose
                problems += [f'`{code}`: {p}' for p in check_command(words)]
            continue
        for word in code.split():
            problems += [f'`{code}`: {p} does not exist' for p in path_problems(word)]
    for target in re.findall(r'\]\(([^)\s]+)\)', text):
        if re.match(r'^(https?:|mailto:|#)', target):
            continue
        file = target.split('#', 1)[0]
        if not (path.parent / file).exists():
            problems.append(f'link {target}: {file} does not exist')
    assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('words, problem', [
    (['python', 'tools/train.py', 'CONFIG', '--no-such-flag'], 'tools/train.py has no option --no-such-flag'),
    (['python', 'tools/no_such_tool.py'], 'tools/no_such_tool.py does not exist'),
    (['make', 'no-such-target'], 'make no-such-target: no such target in the Makefile'),
    (['python', 'tools/test.py', 'configs/detection/ssdlite_mobileone_s9.py', 'C'],
     'configs/detection/ssdlite_mobileone_s9.py does not exist'),
    (['tools/dist_train.sh', 'CONFIG', '2', '--resum'], 'tools/train.py has no option --resum'),
    (['python', 'tools/deploy.py', 'C', '[--backends', 'onnxruntime]', '[--bogus]'],
     'tools/deploy.py has no option --bogus'),
])
def test_the_check_catches(words, problem):
    assert problem in check_command(words)


def test_the_check_accepts_real_usage():
    assert check_command(['python', 'tools/train.py', 'configs/detection/ssdlite_mobileone_s{0..4}.py',
                          '--work-dir', 'w', '--cfg-options', 'a=1', '[--resume', '[CKPT]]']) == []
    assert check_command(['tools/slurm_test.sh', 'P', 'J', 'configs/detection/ssdlite_mobileone_s2.py',
                          'ckpt.pth', '--deploy']) == []
    assert check_command(['make', 'test', 'ALLOW_ENV_CHANGES=1']) == []
