"""The backbone's ``init_cfg=dict(type='Pretrained', ...)`` as a user meets
it: Apple's, mmpretrain's, timm's and our files load, converted on load and
with or without ``prefix``, and give the source model's outputs; a file that
does not fill the backbone stops with one message naming both variants and
the fix (mobileone_mm/checkpoint/pretrained.py)."""
import pytest
import timm
import torch
from safetensors.torch import save_file

from mobileone_mm.checkpoint import backbone_state_dict, load_file
from mobileone_mm.models import MobileOne
from mobileone_mm.utils.errors import UserError

from ..test_detection.test_ssdlite import SHAPES_CFG, run_tool, shapes_options
from ..utils import apple_model, randomize_bn

PREFIXES = [None, 'backbone.']


def pretrained(path, prefix=None, **kwargs) -> MobileOne:
    """A backbone initialised from ``path`` through ``init_cfg``."""
    init_cfg = dict(type='Pretrained', checkpoint=str(path))
    if prefix is not None:
        init_cfg['prefix'] = prefix
    model = MobileOne(init_cfg=init_cfg, **kwargs)
    model.init_weights()
    return model.eval()


def assert_same_features(model: MobileOne, reference) -> None:
    """Stage-4 features of ``model`` equal ``reference(x)`` (float64: random
    BN statistics make deep nets amplify float32 rounding)."""
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        ref = reference(x)
        out = model.double()(x)[-1]
    torch.testing.assert_close(out, ref, rtol=1e-7,
                               atol=1e-7 * ref.abs().max().item())


def apple_features(ref):
    def forward(x):
        for i in range(5):
            x = getattr(ref, f'stage{i}')(x)
        return x
    return forward


@pytest.fixture(scope='module')
def apple(tmp_path_factory):
    """Apple's released layouts for S0: the unfused file is a bare state
    dict, the fused one as tools wrapping it in DataParallel write it."""
    root = tmp_path_factory.mktemp('apple')
    unfused, fused = apple_model('s0'), apple_model('s0', fused=True)
    torch.save(unfused.state_dict(), root / 'mobileone_s0_unfused.pth.tar')
    torch.save({'state_dict': {f'module.{k}': v
                               for k, v in fused.state_dict().items()}},
               root / 'mobileone_s0.pth.tar')
    return root, unfused.double(), fused.double()


@pytest.mark.parametrize('prefix', PREFIXES)
def test_apple_unfused_file(apple, prefix):
    root, ref, _ = apple
    model = pretrained(root / 'mobileone_s0_unfused.pth.tar', prefix)
    assert not model.is_fused
    assert_same_features(model, apple_features(ref))


@pytest.mark.parametrize('prefix', PREFIXES)
def test_apple_fused_file_into_a_deploy_backbone(apple, prefix):
    root, _, ref = apple
    model = pretrained(root / 'mobileone_s0.pth.tar', prefix, deploy=True)
    assert model.is_fused
    assert_same_features(model, apple_features(ref))


@pytest.fixture(scope='module')
def mmpretrain_file(tmp_path_factory):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    ref = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='MobileOne', arch='s0'),  # mmpretrain's own
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=7, in_channels=1024)))
    assert type(ref.backbone).__module__.startswith('mmpretrain')
    randomize_bn(ref).eval()
    path = tmp_path_factory.mktemp('mmpretrain') / 'mobileone-s0.pth'
    torch.save({'state_dict': ref.state_dict(), 'meta': {'epoch': 3}}, path)
    return path, ref.backbone.double()


@pytest.mark.parametrize('prefix', PREFIXES)
def test_mmpretrain_file(mmpretrain_file, prefix):
    path, ref = mmpretrain_file
    assert_same_features(pretrained(path, prefix), lambda x: ref(x)[-1])


@pytest.fixture(scope='module')
def timm_files(tmp_path_factory):
    torch.manual_seed(0)
    ref = randomize_bn(timm.create_model('mobileone_s0', pretrained=False,
                                         num_classes=5)).eval()
    root = tmp_path_factory.mktemp('timm')
    save_file(ref.state_dict(), str(root / 'model.safetensors'))
    torch.save(ref.state_dict(), root / 'pytorch_model.pth')
    return root, ref.double()


@pytest.mark.parametrize('name', ['model.safetensors', 'pytorch_model.pth'])
@pytest.mark.parametrize('prefix', PREFIXES)
def test_timm_file(timm_files, name, prefix):
    root, ref = timm_files
    assert_same_features(pretrained(root / name, prefix), ref.forward_features)


@pytest.fixture(scope='module')
def ours(tmp_path_factory):
    """An mmengine classifier checkpoint (``backbone.*`` and ``head.*``
    keys) and a bare backbone state dict."""
    torch.manual_seed(0)
    ref = randomize_bn(MobileOne('s0')).eval()
    root = tmp_path_factory.mktemp('ours')
    head = {'head.fc.weight': torch.rand(3, 1024), 'head.fc.bias': torch.rand(3)}
    torch.save({'state_dict': {**{f'backbone.{k}': v for k, v in
                                  ref.state_dict().items()}, **head},
                'meta': {'epoch': 1}}, root / 'epoch_1.pth')
    torch.save(ref.state_dict(), root / 'backbone.pth')
    return root, ref.double()


@pytest.mark.parametrize('name', ['epoch_1.pth', 'backbone.pth'])
@pytest.mark.parametrize('prefix', PREFIXES)
def test_our_files_and_branch_gamma_is_skipped(ours, name, prefix):
    root, ref = ours
    model = pretrained(root / name, prefix, branch_gamma=0.0)
    assert all(b.conv_kxk[0].bn.weight.abs().sum() > 0 for b in model.blocks())
    assert_same_features(model, lambda x: ref(x)[-1])


def test_prefix_picks_the_keys_it_names(tmp_path):
    torch.manual_seed(0)
    ref = MobileOne('s0')
    student = {f'student.backbone.{k}': v for k, v in ref.state_dict().items()}
    teacher = {f'teacher.backbone.{k}': torch.zeros_like(v)
               for k, v in ref.state_dict().items()}
    torch.save({'state_dict': {**teacher, **student}}, tmp_path / 'kd.pth')
    state = backbone_state_dict(str(tmp_path / 'kd.pth'),
                                prefix='student.backbone')
    assert state.keys() == ref.state_dict().keys()
    torch.testing.assert_close(state['stem.conv_kxk.0.conv.weight'],
                               ref.stem.conv_kxk[0].conv.weight)


def test_wrong_variant_names_both_variants_and_the_fix(ours):
    root, _ = ours  # an S0 file
    with pytest.raises(UserError) as err:
        pretrained(root / 'epoch_1.pth', 'backbone.', arch='s2')
    message = str(err.value)
    assert '\n' not in message and str(root / 'epoch_1.pth') in message
    assert 'The file holds a MobileOne-S0 (unfused) backbone' in message
    assert 'the config builds a MobileOne-S2 (unfused) backbone' in message
    assert "model.backbone.arch='s0'" in message
    assert 'of another shape (stem.conv_kxk.0.conv.weight: (48, 3, 3, 3) in ' \
        'the file, (64, 3, 3, 3) in the model' in message


def test_fused_file_into_train_time_backbone_says_deploy(apple):
    root, _, _ = apple
    with pytest.raises(UserError) as err:
        pretrained(root / 'mobileone_s0.pth.tar')
    message = str(err.value)
    assert 'The file holds a MobileOne-S0 (fused) backbone' in message
    assert 'builds a MobileOne-S0 (unfused) backbone' in message
    assert 'deploy=True' in message and '_deploy config' in message
    assert 'mobileone_s0_unfused.pth.tar' in message

    with pytest.raises(UserError, match=r'builds a MobileOne-S0 \(fused\).*'
                       'deploy=False.*tools/reparameterize.py'):
        pretrained(root / 'mobileone_s0_unfused.pth.tar', deploy=True)


SMALL_SE = dict(num_blocks=(1, 1, 1, 1), widths=(16, 16, 32, 32),
                num_conv_branches=(1, 1, 1, 1), num_se_blocks=(0, 0, 1, 1))


def test_se_weights_are_extra_for_use_se_false(tmp_path):
    torch.manual_seed(0)
    with_se = randomize_bn(MobileOne(SMALL_SE))
    torch.save(with_se.state_dict(), tmp_path / 'se.pth')
    model = pretrained(tmp_path / 'se.pth', arch=SMALL_SE, use_se=False)
    assert not any('.se.' in k for k in model.state_dict())
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, with_se.state_dict()[k].to(v.dtype))

    torch.save(model.state_dict(), tmp_path / 'no_se.pth')
    with pytest.raises(UserError, match=r'Fix: set model.backbone.use_se=False '
                       r'\(the file has no SE blocks\)'):
        pretrained(tmp_path / 'no_se.pth', arch=SMALL_SE)


def test_partial_and_foreign_files(ours, tmp_path):
    root, ref = ours
    partial = {k: v for k, v in ref.state_dict().items()
               if not k.startswith('stage4.')}
    torch.save(partial, tmp_path / 'partial.pth')
    with pytest.raises(UserError, match=r'missing from the file \(stage4\.0\..*an '
                       r'incomplete MobileOne-S0 \(unfused\) backbone.*Fix: '
                       r'use a complete'):
        pretrained(tmp_path / 'partial.pth')
    torch.save({'conv1.weight': torch.zeros(1)}, tmp_path / 'resnet.pth')
    with pytest.raises(UserError, match='The file holds no MobileOne weights.*Fix: point init_cfg'):
        pretrained(tmp_path / 'resnet.pth')
    torch.save({'epoch': 3}, tmp_path / 'no_weights.pth')
    with pytest.raises(UserError, match=f'{tmp_path}/no_weights.pth: no state '
                       'dict of tensors'):
        pretrained(tmp_path / 'no_weights.pth')


def test_train_tool_stops_on_a_wrong_variant(tmp_path, shapes_root):
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                               MobileOne('s1').state_dict().items()}},
               tmp_path / 's1.pth')
    assert load_file(str(tmp_path / 's1.pth'))  # a readable S1 file
    cfg = tmp_path / 'pretrained_s1.py'
    cfg.write_text(
        f"_base_ = ['{SHAPES_CFG}']\n"
        "model = dict(backbone=dict(init_cfg=dict(_delete_=True, "
        f"type='Pretrained', checkpoint='{tmp_path / 's1.pth'}', "
        "prefix='backbone.')))\n")
    proc = run_tool('train.py', cfg, '--work-dir', tmp_path / 'w',
                    '--cfg-options', *shapes_options(shapes_root))
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and str(tmp_path / 's1.pth') in last
    assert 'The file holds a MobileOne-S1 (unfused) backbone' in last
    assert 'the config builds a MobileOne-S0 (unfused) backbone' in last
    assert "model.backbone.arch='s1'" in last
    assert not list((tmp_path / 'w').rglob('*.pth'))
