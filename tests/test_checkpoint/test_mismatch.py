"""mobileone_mm.checkpoint.mismatch: the key/shape comparison and its
one-line summary."""
import torch

from mobileone_mm.checkpoint import (few, mismatch_summary,
                                     state_dict_mismatch)
from mobileone_mm.models import MobileOne


def test_every_kind_of_mismatch_against_a_real_backbone():
    model = MobileOne('s0').state_dict()
    file = dict(model)
    del file['stem.conv_kxk.0.bn.running_var']
    del file['stem.conv_kxk.0.bn.num_batches_tracked']  # may be absent
    file['head.fc.weight'] = torch.zeros(2, 1024)
    file['stage1.0.conv_kxk.0.conv.weight'] = torch.zeros(48, 1, 5, 5)
    missing, unexpected, wrong = state_dict_mismatch(model, file)
    assert missing == ['stem.conv_kxk.0.bn.running_var']
    assert unexpected == ['head.fc.weight']
    assert wrong == ['stage1.0.conv_kxk.0.conv.weight']
    assert state_dict_mismatch(model, model) == ([], [], [])
    # shapes work as well as tensors
    shapes = {k: tuple(v.shape) for k, v in file.items()}
    assert state_dict_mismatch(model, shapes) == (missing, unexpected, wrong)
    summary = mismatch_summary(missing, unexpected, wrong, model, file)
    assert summary == (
        '1 missing from the file (stem.conv_kxk.0.bn.running_var); 1 not in '
        'the model (head.fc.weight); 1 of another shape (stage1.0.conv_kxk.0.'
        'conv.weight: (48, 1, 5, 5) in the file, (48, 1, 3, 3) in the model)')


def test_few_names_at_most_three():
    keys = [f'k{i}' for i in range(10)]
    assert few(keys) == 'k0, k1, k2, ...'
    assert few(keys[:3]) == 'k0, k1, k2'
    assert mismatch_summary([], [], [], {}, {}) == ''
