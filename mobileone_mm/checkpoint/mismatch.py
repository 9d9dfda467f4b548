"""Which weights of a checkpoint do not fit a model: the one comparison of
key names and shapes behind every strict load of a user's file (the
backbone's ``Pretrained``, the converter, mmdeploy conversion)."""
from typing import List, Mapping, Sequence, Tuple

SHOWN = 3  # keys named per kind of mismatch in a message


def _shape(value) -> Tuple[int, ...]:
    return tuple(getattr(value, 'shape', value))


def state_dict_mismatch(
        model_state: Mapping,
        file_state: Mapping) -> Tuple[List[str], List[str], List[str]]:
    """``(missing, unexpected, wrong_shape)``: keys of the model absent from
    the file, keys of the file the model lacks, and keys in both whose
    shapes differ, each in the order of its dict. Values are tensors or
    shapes. BN's ``num_batches_tracked`` counters may be absent: torch and
    mmengine load a BN without them.

    Example:
        >>> state_dict_mismatch({'a': (2, ), 'b': (1, ), 'bn.num_batches_tracked': ()},
        ...                     {'a': (3, ), 'c': (1, )})
        (['b'], ['c'], ['a'])
    """
    missing = [k for k in model_state if k not in file_state
               and not k.endswith('num_batches_tracked')]
    unexpected = [k for k in file_state if k not in model_state]
    wrong = [k for k in model_state if k in file_state
             and _shape(model_state[k]) != _shape(file_state[k])]
    return missing, unexpected, wrong


def few(keys: Sequence[str], shown: int = SHOWN) -> str:
    """The first ``shown`` keys.

    Example:
        >>> few(['a', 'b', 'c', 'd'])
        'a, b, c, ...'
        >>> few(['a'])
        'a'
    """
    return ', '.join(keys[:shown]) + (', ...' if len(keys) > shown else '')


def mismatch_summary(missing: Sequence[str], unexpected: Sequence[str],
                     wrong: Sequence[str], model_state: Mapping,
                     file_state: Mapping) -> str:
    """One line: how many keys of each non-empty kind of mismatch, a few of
    them, and both shapes of the first mismatched one.

    Example:
        >>> model, file = {'a': (2, ), 'b': (1, )}, {'a': (3, ), 'c': (1, )}
        >>> mismatch_summary(*state_dict_mismatch(model, file), model, file)
        '1 missing from the file (b); 1 not in the model (c); 1 of another shape (a: (3,) in the file, (2,) in the model)'
    """
    parts = []
    if missing:
        parts.append(f'{len(missing)} missing from the file ({few(missing)})')
    if unexpected:
        parts.append(f'{len(unexpected)} not in the model '
                     f'({few(unexpected)})')
    if wrong:
        first = wrong[0]
        parts.append(
            f'{len(wrong)} of another shape ({first}: '
            f'{_shape(file_state[first])} in the file, '
            f'{_shape(model_state[first])} in the model'
            + (', ...)' if len(wrong) > 1 else ')'))
    return '; '.join(parts)
