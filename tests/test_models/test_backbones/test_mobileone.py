import copy

import pytest
import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from torch.nn.modules.batchnorm import _BatchNorm

from mobileone_mm import reparameterize
from mobileone_mm.models import MobileOne, MobileOneBlock
from mobileone_mm.models.backbones.fast_branches import per_branch

from tests.utils import classifier, randomize_bn

VARIANTS = ['s0', 's1', 's2', 's3', 's4']
WIDTHS = {
    's0': (48, 48, 128, 256, 1024),
    's1': (64, 96, 192, 512, 1280),
    's2': (64, 96, 256, 640, 2048),
    's3': (64, 128, 320, 768, 2048),
    's4': (64, 192, 448, 896, 2048),
}
# ml-mobileone, fused with a 1000-class linear head (paper Table 8:
# 2.1/4.8/7.8/10.1/14.8 M params, 275/825/1299/1896/2978 M MACs).
OFFICIAL_PARAMS = {'s0': 2078504, 's1': 4764840, 's2': 7808168,
                   's3': 10078312, 's4': 14838352}
OFFICIAL_MMACS = {'s0': 275.1, 's1': 825.1, 's2': 1298.4, 's3': 1895.8,
                  's4': 2979.3}


@pytest.mark.parametrize('arch', VARIANTS)
def test_stage_shapes_per_out_indices(arch):
    model = MobileOne(arch, out_indices=(0, 1, 2, 3)).eval()
    outs = model(torch.rand(1, 3, 64, 96))
    assert len(outs) == 4
    for i, out in enumerate(outs):
        stride = 2**(i + 2)
        assert out.shape == (1, WIDTHS[arch][i + 1], 64 // stride,
                             96 // stride)
    assert model.out_channels == list(WIDTHS[arch][1:])
    assert model.stem.out_channels == WIDTHS[arch][0]

    single = MobileOne(arch, out_indices=(1, -1)).eval()
    outs = single(torch.rand(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [WIDTHS[arch][2], WIDTHS[arch][4]]
    default = MobileOne(arch)
    assert default.out_indices == (3, )


@pytest.mark.parametrize('arch', VARIANTS)
def test_structure_matches_paper(arch):
    model = MobileOne(arch)
    k = 4 if arch == 's0' else 1
    stage_blocks = [getattr(model, f'stage{i}') for i in range(1, 5)]
    assert [len(s) for s in stage_blocks] == [4, 16, 20, 2]  # pairs x 2
    assert len(model.stem.conv_kxk) == 1  # ml-mobileone's stem: one branch
    for stage in stage_blocks:
        for block in stage:
            assert len(block.conv_kxk) == k
            assert (block.conv_scale is not None) == (block.kernel_size > 1)
    dw = stage_blocks[0][0]
    assert dw.groups == dw.in_channels and dw.kernel_size == 3
    # the second depthwise block of stage 1 keeps its shape: identity branch
    assert stage_blocks[0][2].identity is not None
    assert stage_blocks[0][0].identity is None  # stride 2
    se = [isinstance(b.se, nn.Module) and not isinstance(b.se, nn.Identity)
          for s in stage_blocks for b in s]
    if arch == 's4':
        # last 5 pairs of stage 3 and the pair of stage 4
        assert se == [False] * 4 + [False] * 16 + [False] * 10 + [True] * 10 + [True] * 2
        assert stage_blocks[2][-1].se.reduce.out_channels == 896 // 16
    else:
        assert not any(se)


@pytest.mark.parametrize('arch', VARIANTS)
def test_fused_params_and_macs_match_official(arch):
    model = classifier(MobileOne(arch, deploy=True), num_classes=1000).eval()
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == OFFICIAL_PARAMS[arch]
    flops = FlopAnalyzer(model, torch.rand(1, 3, 224, 224))
    flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    assert flops.total() / 1e6 == pytest.approx(OFFICIAL_MMACS[arch], abs=0.05)
    # unfused == fused structure after switch_to_deploy
    unfused = classifier(MobileOne(arch), num_classes=1000)
    reparameterize(unfused, inplace=True)
    assert sum(p.numel() for p in unfused.parameters()) == n_params


@pytest.mark.parametrize('arch', VARIANTS)
def test_fusion_is_exact_float64(arch):
    torch.manual_seed(0)
    # per branch: the fused network against the branches themselves, not
    # against the fused kernel that the default eval form computes
    model = MobileOne(arch, out_indices=(0, 1, 2, 3),
                      branch_impl='reference').double().eval()
    randomize_bn(model)
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x)
        fused = reparameterize(model)
        assert not model.is_fused and fused.is_fused  # inplace=False copies
        out = fused(x)
    assert len(out) == len(ref) == 4
    for r, o in zip(ref, out):
        assert o.dtype == torch.float64
        torch.testing.assert_close(o, r, rtol=1e-9, atol=1e-9 * r.abs().max().item())


@pytest.mark.parametrize('norm_type', ['BN', 'SyncBN'])
def test_fusion_exact_with_dilation_and_norm(norm_type):
    torch.manual_seed(1)
    model = MobileOne('s1', out_indices=(0, 1, 2, 3), strides=(2, 2, 1, 1),
                      dilations=(1, 1, 2, 4), branch_impl='reference',
                      norm_cfg=dict(type=norm_type)).double().eval()
    assert any(isinstance(m, nn.SyncBatchNorm) for m in model.modules()) == (
        norm_type == 'SyncBN')
    randomize_bn(model)
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x)
        out = reparameterize(model)(x)
    assert [o.shape[-1] for o in out] == [16, 8, 8, 8]  # output stride 8
    for r, o in zip(ref, out):
        torch.testing.assert_close(o, r, rtol=1e-9, atol=1e-9 * r.abs().max().item())


@pytest.mark.parametrize('arch', ['s0', 's4'])
def test_output_stride_8_keeps_the_imagenet_structure(arch):
    """strides (2, 2, 1, 1) must not add identity branches to the first
    blocks of stages 3 and 4: an ImageNet checkpoint (all stride 2) loads
    strictly into the output-stride-8 backbone."""
    imagenet = MobileOne(arch, out_indices=(0, 1, 2, 3))
    os8 = MobileOne(arch, out_indices=(0, 1, 2, 3), strides=(2, 2, 1, 1),
                    dilations=(1, 1, 2, 4))
    assert os8.stage3[0].identity is None and os8.stage4[0].identity is None
    assert os8.stage3[2].identity is not None  # later depthwise blocks keep it
    result = os8.load_state_dict(imagenet.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_switch_to_deploy_idempotent_and_keeps_dtype():
    torch.manual_seed(0)
    model = MobileOne('s0').eval()
    randomize_bn(model)
    model.half().float()  # exercise dtype casts before fusing
    model.switch_to_deploy()
    assert model.is_fused
    state = copy.deepcopy(model.state_dict())
    model.switch_to_deploy()
    for block in model.blocks():
        block.switch_to_deploy()
    after = model.state_dict()
    assert state.keys() == after.keys()
    assert all(torch.equal(state[k], after[k]) for k in state)
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    half = MobileOne('s0').eval().to(torch.bfloat16)
    half.switch_to_deploy()
    assert all(p.dtype == torch.bfloat16 for p in half.parameters())


def test_fused_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = MobileOne('s4', out_indices=(2, 3)).eval()
    randomize_bn(model)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad(), per_branch(model):  # not the fusion's own algebra
        ref = model(x)
    fused = reparameterize(model)
    path = tmp_path / 'fused.pth'
    torch.save({'state_dict': fused.state_dict()}, path)
    deployed = MobileOne('s4', out_indices=(2, 3), deploy=True).eval()
    assert deployed.is_fused
    sd = torch.load(path, weights_only=True)['state_dict']
    deployed.load_state_dict(sd, strict=True)
    with torch.no_grad():
        out = deployed(x)
    assert len(out) == len(ref) == 2
    for r, o in zip(ref, out):
        torch.testing.assert_close(o, r, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('device', [
    'cpu', pytest.param('cuda', marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason='no CUDA device'))])
def test_reparameterize_whole_model_keeps_device_and_mode(device):
    model = classifier(MobileOne('s0'), num_classes=10).to(device, torch.float64)
    before = copy.deepcopy(model.state_dict())
    for training in (False, True):
        model.train(training)
        fused = reparameterize(model)
        assert fused is not model
        first, ref = next(fused.parameters()), next(model.parameters())
        assert first.device == ref.device and ref.device.type == device
        assert first.dtype == ref.dtype == torch.float64
        assert all(p.dtype == torch.float64 for p in fused.parameters())
        assert all(b.dtype == torch.float64 for b in fused.buffers()
                   if b.is_floating_point())
        assert all(p.device == ref.device for p in fused.parameters())
        assert all(m.training is training for m in fused.modules())
        assert all(m.training is training for m in model.modules())
        assert all(b.is_fused for b in fused.modules()
                   if isinstance(b, MobileOneBlock))
        # the original is untouched: not fused, no storage shared
        assert not any(b.is_fused for b in model.modules()
                       if isinstance(b, MobileOneBlock))
        ours = {p.data_ptr() for p in model.parameters()}
        assert not ours & {p.data_ptr() for p in fused.parameters()}
        after = model.state_dict()
        assert after.keys() == before.keys()
        assert all(torch.equal(after[k], before[k]) for k in before)
    model.eval()
    same = reparameterize(model, inplace=True)
    assert same is model and not model.training
    assert all(b.is_fused for b in model.modules()
               if isinstance(b, MobileOneBlock))
    assert next(model.parameters()).dtype == torch.float64


@pytest.mark.parametrize('arch', ['s0', 's4'])
def test_gradients_reach_every_parameter(arch):
    model = MobileOne(arch, out_indices=(0, 1, 2, 3)).train()
    outs = model(torch.rand(2, 3, 64, 64))
    sum(o.mean() for o in outs).backward()
    no_grad = [n for n, p in model.named_parameters()
               if p.grad is None or not torch.any(p.grad != 0)]
    assert no_grad == []


@pytest.mark.parametrize('fused', [False, True])
def test_inplace_activation_gives_the_same_outputs_and_grads(fused):
    # ReLU runs in place (as in mmcv's ConvModule); outputs and gradients
    # must equal those of the out-of-place network
    torch.manual_seed(0)
    model = MobileOne('s4', out_indices=(0, 1, 2, 3)).train()
    randomize_bn(model)
    if fused:
        model = reparameterize(model).train()
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert relus and all(m.inplace for m in relus)
    reference = copy.deepcopy(model)
    for m in reference.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    x = torch.rand(2, 3, 64, 64)
    grads = []
    for net in (model, reference):
        outs = net(x)
        sum((o * o).mean() for o in outs).backward()
        grads.append([outs] + [p.grad for p in net.parameters()])
    for a, b in zip(*grads):
        if isinstance(a, (list, tuple)):
            for u, v in zip(a, b):
                torch.testing.assert_close(u, v)
        else:
            torch.testing.assert_close(a, b)
    gelu = MobileOne('s0', act_cfg=dict(type='GELU'))  # takes no inplace
    assert any(isinstance(m, nn.GELU) for m in gelu.modules())


@pytest.mark.parametrize('frozen_stages', [0, 2, 4])
def test_frozen_stages(frozen_stages):
    model = MobileOne('s0', frozen_stages=frozen_stages, out_indices=(3, ))
    model.train()
    frozen = ['stem'] + [f'stage{i}' for i in range(1, frozen_stages + 1)]
    for name, module in model.named_children():
        params = list(module.parameters())
        if name in frozen:
            assert not any(p.requires_grad for p in params)
            assert not any(m.training for m in module.modules()
                           if isinstance(m, _BatchNorm))
        else:
            assert all(p.requires_grad for p in params)
            assert all(m.training for m in module.modules())
    model.switch_to_deploy()  # new fused convs of frozen stages stay frozen
    assert not any(p.requires_grad for p in model.stem.parameters())


def test_norm_eval_keeps_running_stats():
    model = MobileOne('s0', norm_eval=True)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and not any(bn.training for bn in bns)
    before = bns[0].running_mean.clone()
    model(torch.rand(2, 3, 32, 32) * 5)
    assert torch.equal(bns[0].running_mean, before)
    model_train = MobileOne('s0', norm_eval=False).train()
    assert all(m.training for m in model_train.modules()
               if isinstance(m, _BatchNorm))


def test_arch_dict_and_bad_input():
    arch = dict(num_blocks=(1, 1, 2, 1), widths=(16, 32, 64, 64),
                num_conv_branches=(2, 1, 1, 3), num_se_blocks=(0, 0, 1, 1))
    model = MobileOne(arch, out_indices=(0, 1, 2, 3)).eval()
    assert [o.shape[1] for o in model(torch.rand(1, 3, 32, 32))] == [16, 32, 64, 64]
    assert len(model.stage4[0].conv_kxk) == 3
    # SE on the last pair (blocks 2, 3) of stage 3's two pairs
    assert [isinstance(b.se, nn.Identity) for b in model.stage3] == [True, True, False, False]

    with pytest.raises(ValueError, match=r"s0.*s1.*s2.*s3.*s4"):
        MobileOne('s9')
    with pytest.raises(ValueError, match='missing'):
        MobileOne(dict(num_blocks=(1, 1, 1, 1)))
    with pytest.raises(ValueError, match=r'0\.\.3'):
        MobileOne('s0', out_indices=(4, ))
    with pytest.raises(ValueError, match=r'0\.\.3'):
        MobileOne('s0', out_indices=(0, -5))
    with pytest.raises(ValueError, match='strides'):
        MobileOne('s0', strides=(2, 2, 2))
    with pytest.raises(ValueError, match='frozen_stages'):
        MobileOne('s0', frozen_stages=5)


def test_pretrained_init_cfg_with_prefix(tmp_path):
    torch.manual_seed(0)
    src = MobileOne('s0').eval()
    randomize_bn(src)
    path = tmp_path / 'cls.pth'
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in src.state_dict().items()},
                'meta': {}}, path)
    model = MobileOne('s0', init_cfg=dict(type='Pretrained',
                                          checkpoint=str(path),
                                          prefix='backbone.'))
    model.init_weights()
    for k, v in src.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v)


def test_branch_gamma_init():
    """``branch_gamma`` scales only the conv branches of blocks that have an
    identity branch, leaves a loaded checkpoint alone and fuses exactly."""
    model = MobileOne('s0', branch_gamma=0.1)
    model.init_weights()
    with_identity = [b for b in model.blocks() if b.identity is not None]
    without = [b for b in model.blocks() if b.identity is None]
    assert with_identity and without
    for block in with_identity:
        branches = list(block.conv_kxk) + (
            [block.conv_scale] if block.conv_scale is not None else [])
        for branch in branches:
            assert torch.all(branch.bn.weight == 0.1)
        assert torch.all(block.identity.weight == 1)
    for block in without:
        for branch in block.conv_kxk:
            assert torch.all(branch.bn.weight == 1)
    x = torch.rand(2, 3, 64, 64)
    model.eval()
    with per_branch(model):  # not the fusion's own algebra
        unfused = model(x)[-1]
    model.switch_to_deploy()
    torch.testing.assert_close(model(x)[-1], unfused, rtol=1e-4, atol=1e-4)

    with pytest.raises(ValueError, match='branch_gamma'):
        MobileOne('s0', branch_gamma=-1)


def test_branch_gamma_skipped_for_pretrained(tmp_path):
    src = MobileOne('s0')
    path = tmp_path / 'cls.pth'
    torch.save({'state_dict': src.state_dict(), 'meta': {}}, path)
    model = MobileOne('s0', branch_gamma=0.0,
                      init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    for k, v in src.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v)
