"""DeepLabV3-MobileOne configs (VOC, ADE20K, COCO+VOC, shapes) and tools."""
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from mobileone_mm.apis import build_model
from mobileone_mm.deploy.compare import forward_tensors
from mobileone_mm.models import MobileOne
from mobileone_mm.models.backbones.mobileone import SqueezeExcite

from ..conftest import ROOT
from ..utils import assert_fused_matches_branches, randomize_bn
from ..utils import run_cli

SEG = ROOT / 'configs' / 'segmentation'
SHAPES_CFG = SEG / 'deeplabv3_mobileone_s0_shapes.py'
WIDTHS = {'s0': (256, 1024), 's1': (512, 1280), 's2': (640, 2048),
          's3': (768, 2048), 's4': (896, 2048)}
NUM_CLASSES = {'voc': 21, 'ade20k': 150}
PAPER_MIOU = {'voc': {'s0': 73.7, 's1': 77.3, 's2': 77.9, 's3': 78.8, 's4': 80.1},
              'ade20k': {'s0': 33.1, 's1': 35.1, 's2': 35.7, 's3': 36.2,
                         's4': 38.2}}
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
SMALL = 64  # px: what the tests feed the 512-px configs


def run_tool(tool, *args, cwd=ROOT):
    """``tools/TOOL`` through its command line, in this process."""
    return run_cli(ROOT / 'tools' / tool, *args, cwd=cwd)


def shapes_options(voc_root: Path) -> list:
    opts = [f'{loader}.dataset.data_root={voc_root}/' for loader in LOADERS]
    opts += [f'{loader}.{key}' for loader in LOADERS for key in
             ('batch_size=4', 'num_workers=0', 'persistent_workers=False')]
    return opts + ['train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
                   'default_hooks.checkpoint.interval=1',
                   'default_hooks.logger.interval=1', 'randomness.seed=0']


def small_options(kind: str, root: Path) -> list:
    """--cfg-options running a paper config on tiny data at SMALL px: only
    sizes, loader settings and the (absent) ImageNet checkpoint change."""
    size = f'({SMALL},{SMALL})'
    opts = ['model.backbone.init_cfg=None', f'model.data_preprocessor.size={size}',
            'train_dataloader.batch_size=8', 'train_cfg.max_epochs=1',
            'train_cfg.val_interval=1', 'default_hooks.logger.interval=1',
            'default_hooks.checkpoint.interval=1', 'randomness.seed=0',
            f'val_dataloader.dataset.pipeline.1.scale={size}']
    for loader in LOADERS:
        opts += [f'{loader}.num_workers=0', f'{loader}.persistent_workers=False']
    trains = (['train_dataloader.dataset.datasets.0', 'train_dataloader.dataset.datasets.1']
              if kind == 'voc' else ['train_dataloader.dataset'])
    for ds in trains:
        opts += [f'{ds}.data_root={root}', f'{ds}.pipeline.2.scale={size}',
                 f'{ds}.pipeline.3.crop_size={size}']
    return opts + [f'val_dataloader.dataset.data_root={root}',
                   f'test_dataloader.dataset.data_root={root}']


@pytest.fixture(scope='module')
def trained(seg_root, tmp_path_factory):
    """One epoch of the shapes config through tools/train.py."""
    work = tmp_path_factory.mktemp('seg_train')
    proc = run_tool('train.py', SHAPES_CFG, '--work-dir', work,
                    '--cfg-options', *shapes_options(seg_root[0]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work


CONFIGS = [(arch, data) for data in ('voc', 'ade20k')
           for arch in sorted(WIDTHS)]


@pytest.mark.parametrize('arch,data', CONFIGS)
def test_configs_build_with_our_backbone_at_output_stride_8(arch, data):
    cfg = Config.fromfile(str(SEG / f'deeplabv3_mobileone_{arch}_{data}.py'))
    assert cfg.default_scope == 'mmseg'
    assert cfg.pretrained == f'checkpoints/mobileone_{arch}_in1k.pth'
    assert cfg.model.backbone.init_cfg.checkpoint == cfg.pretrained
    model = build_model(cfg)
    assert type(model).__name__ == 'EncoderDecoder'
    assert type(model.backbone) is MobileOne
    assert type(model.backbone).__module__.startswith('mobileone_mm')
    assert model.backbone.strides == (2, 2, 1, 1)
    assert model.backbone.dilations == (1, 1, 2, 4)
    assert tuple(model.backbone.out_channels) == WIDTHS[arch]
    assert model.decode_head.num_classes == NUM_CLASSES[data]
    assert model.auxiliary_head.num_classes == NUM_CLASSES[data]
    has_se = any(isinstance(m, SqueezeExcite) for m in model.modules())
    assert not has_se, 'paper Table 9b: S4 is trained without SE'
    # Shapes at 512x512 without the arithmetic: the meta device propagates
    # shapes only (a real S4 forward at 512 px takes minutes on 2 cores).
    model.to('meta')
    feats = model.backbone(torch.empty(1, 3, 512, 512, device='meta'))
    assert [tuple(f.shape) for f in feats] == [
        (1, WIDTHS[arch][0], 64, 64), (1, WIDTHS[arch][1], 64, 64)]
    assert model.decode_head(feats).shape == (1, NUM_CLASSES[data], 64, 64)
    assert model.auxiliary_head(feats).shape == (1, NUM_CLASSES[data], 64, 64)


def test_mobileone_s4_preset_has_se_so_the_configs_switch_it_off():
    assert MobileOne.arch_settings['s4']['num_se_blocks'] == (0, 0, 5, 1)
    for data in ('voc', 'ade20k'):
        cfg = Config.fromfile(str(SEG / f'deeplabv3_mobileone_s4_{data}.py'))
        assert cfg.model.backbone.arch == 's4'
        assert cfg.model.backbone.use_se is False
    backbone = MobileOne('s4', use_se=False)
    assert backbone.arch['num_se_blocks'] == (0, 0, 0, 0)
    preset = MobileOne.arch_settings['s4']
    assert all(backbone.arch[k] == preset[k]
               for k in ('num_blocks', 'widths', 'num_conv_branches'))
    assert not any(isinstance(m, SqueezeExcite) for m in backbone.modules())


def test_recipe_values_from_the_paper():
    for data in ('voc', 'ade20k'):
        cfg = Config.fromfile(str(SEG / f'deeplabv3_mobileone_s2_{data}.py'))
        assert cfg.train_cfg.max_epochs == 50
        opt = cfg.optim_wrapper.optimizer
        assert (opt.type, opt.lr, opt.weight_decay) == ('AdamW', 1e-4, 0.01)
        assert cfg.optim_wrapper.paramwise_cfg.custom_keys['decode_head'] == \
            dict(lr_mult=10.)
        warmup, cosine = cfg.param_scheduler
        assert (warmup.type, warmup.end, warmup.by_epoch) == ('LinearLR', 500, False)
        assert (cosine.type, cosine.T_max, cosine.eta_min) == (
            'CosineAnnealingLR', 50, 1e-6)
        assert [h for h in cfg.custom_hooks if h.type == 'EMAHook'][0].momentum == 5e-4
        head, aux = cfg.model.decode_head, cfg.model.auxiliary_head
        assert (head.type, tuple(head.dilations), head.dropout_ratio) == (
            'ASPPHead', (1, 12, 24, 36), 0.1)
        assert (aux.type, aux.in_index, aux.loss_decode.loss_weight) == (
            'FCNHead', 0, 0.4)
        assert cfg.crop_size == (512, 512)
        pipeline = [t.type for t in cfg.train_pipeline]
        assert pipeline == ['LoadImageFromFile', 'LoadAnnotations', 'RandomResize',
                            'RandomCrop', 'RandomFlip', 'PackSegInputs']
        assert cfg.train_dataloader.batch_size * 8 == cfg.auto_scale_lr.base_batch_size == 32
        text = (SEG / f'deeplabv3_mobileone_s2_{data}.py').read_text()
        assert f'{PAPER_MIOU[data]["s2"]} mIoU' in text
    ade = Config.fromfile(str(SEG / 'deeplabv3_mobileone_s0_ade20k.py'))
    # label 0 ("other") is ignored: the shared training pipeline's
    # LoadAnnotations takes reduce_zero_label from ADE20KDataset (True)
    import inspect
    import tempfile

    from mmseg.datasets import ADE20KDataset
    from mmseg.registry import TRANSFORMS
    from PIL import Image
    assert ade.train_dataloader.dataset.type == 'ADE20KDataset'
    assert inspect.signature(ADE20KDataset).parameters[
        'reduce_zero_label'].default is True
    with tempfile.TemporaryDirectory() as tmp:
        png = f'{tmp}/seg.png'
        Image.fromarray(np.array([[0, 1], [2, 3]], np.uint8)).save(png)
        load = TRANSFORMS.build(ade.train_pipeline[1])
        out = load(dict(seg_map_path=png, reduce_zero_label=True,
                        seg_fields=[]))
    assert out['gt_seg_map'].tolist() == [[255, 0], [1, 2]]
    assert ade.test_pipeline[2].reduce_zero_label
    voc = Config.fromfile(str(SEG / 'deeplabv3_mobileone_s0_voc.py'))
    prefixes = [d.data_prefix.seg_map_path for d in voc.train_dataloader.dataset.datasets]
    assert prefixes == ['SegmentationClass', 'SegmentationClassAug']
    coco = Config.fromfile(str(SEG / 'deeplabv3_mobileone_s0_coco-voc.py'))
    roots = [d.data_root for d in coco.train_dataloader.dataset.datasets]
    assert roots == ['data/VOCdevkit/VOC2012'] * 2 + ['data/coco']


def test_loss_and_predict_on_a_batch(seg_root):
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS
    cfg = Config.fromfile(str(SHAPES_CFG))
    cfg.train_dataloader.dataset.data_root = str(seg_root[0])
    torch.manual_seed(0)
    model = build_model(cfg).train()
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch = model.data_preprocessor(pseudo_collate([dataset[0], dataset[1]]),
                                    training=True)
    losses = model(**batch, mode='loss')
    assert set(losses) >= {'decode.loss_ce', 'aux.loss_ce'}
    assert set(losses) == {'decode.loss_ce', 'decode.acc_seg', 'aux.loss_ce',
                           'aux.acc_seg'}
    total = losses['decode.loss_ce'] + losses['aux.loss_ce']
    assert torch.isfinite(total) and total > 0
    total.backward()
    assert model.backbone.stem.conv_kxk[0].conv.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        preds = model(**model.data_preprocessor(pseudo_collate([dataset[0]])),
                      mode='predict')
    # predictions come back at the image's own size (the session data: 128 px)
    pred = preds[0].pred_sem_seg.data
    assert pred.shape == (1, 128, 128) and set(pred.unique().tolist()) <= {0, 1, 2, 3}
    assert preds[0].seg_logits.data.shape == (4, 128, 128)


@pytest.mark.parametrize('kind', ['voc', 'ade20k'])
def test_one_training_iteration_of_the_paper_config(kind, seg_root, tmp_path):
    root = seg_root[0] if kind == 'voc' else seg_root[1]
    work = tmp_path / kind
    proc = run_tool('train.py', SEG / f'deeplabv3_mobileone_s0_{kind}.py',
                    '--work-dir', work, '--cfg-options', *small_options(kind, root))
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = next(work.glob('*/*.log')).read_text()
    # 8 + 8 (train + aug lists) VOC images or 8 ADE images, batch 8
    last = '[2/2]' if kind == 'voc' else '[1/1]'
    assert f'Epoch(train) [1]{last}' in log and 'decode.loss_ce' in log
    assert 'mIoU' in log  # validation ran on the val split
    assert (work / 'epoch_1.pth').exists()


def test_train_then_test_fused_and_unfused_give_equal_predictions(trained, seg_root, tmp_path):
    assert 'mIoU' in next(trained.glob('*/*.log')).read_text()
    # After two iterations the class scores are nearly equal, so argmax ties
    # would make equal predictions a coin toss: spread the logits (scale the
    # classifier) so that the comparison is meaningful and deterministic.
    state = torch.load(trained / 'epoch_1.pth', map_location='cpu', weights_only=False)
    for key in ('decode_head.conv_seg.weight', 'decode_head.conv_seg.bias'):
        state['state_dict'][key].mul_(100)
    ckpt = tmp_path / 'spread.pth'
    torch.save(state, ckpt)
    outs, logs = {}, {}
    # the unfused model runs branch by branch (not the fused algebra)
    for name, extra, form in (('unfused', [], 'reference'),
                              ('fused', ['--deploy'], 'fast')):
        out = tmp_path / f'{name}.pkl'
        proc = run_tool('test.py', SHAPES_CFG, ckpt, '--work-dir', tmp_path / name,
                        '--out', out, *extra, '--cfg-options',
                        *shapes_options(seg_root[0]),
                        f'model.backbone.branch_impl={form}')
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs[name] = pickle.load(open(out, 'rb'))
        logs[name] = proc.stdout + proc.stderr
    assert 'evaluating the fused model' in logs['fused']
    assert 'evaluating the fused model' not in logs['unfused']
    assert len(outs['fused']) == len(outs['unfused']) == 4
    for a, b in zip(outs['unfused'], outs['fused']):
        la, lb = a['seg_logits']['data'], b['seg_logits']['data']
        torch.testing.assert_close(lb, la, rtol=1e-4, atol=1e-4 * la.abs().max().item())
        top2 = la.topk(2, dim=0).values
        clear = (top2[0] - top2[1]) > 1e-3  # pixels whose argmax is not a tie
        assert clear.float().mean() > 0.9
        pa, pb = a['pred_sem_seg']['data'][0], b['pred_sem_seg']['data'][0]
        assert torch.equal(pa[clear], pb[clear])

    def miou(log):
        line = [ln for ln in log.splitlines() if 'mIoU:' in ln][-1]
        return line.split('mIoU:')[1].split()[0]
    assert miou(logs['fused']) == miou(logs['unfused'])


def test_fused_model_outputs_equal_in_process():
    cfg = Config.fromfile(str(SHAPES_CFG))
    torch.manual_seed(0)
    model = randomize_bn(build_model(cfg))
    from mobileone_mm import reparameterize
    from mobileone_mm.deploy import count_unfused
    fused = reparameterize(model)
    assert count_unfused(model) > 0 and count_unfused(fused) == 0
    x = torch.rand(2, 3, 96, 96)
    outs, fused_outs = forward_tensors(model, x), forward_tensors(fused, x)
    assert len(outs) == len(fused_outs) == 1  # the decode head's logits
    assert_fused_matches_branches(model, fused, x)


def test_mmseg_inferencer_on_a_real_image(trained, tmp_path):
    import matplotlib
    from mmseg.apis import MMSegInferencer
    image = Path(matplotlib.get_data_path()) / 'sample_data' / 'grace_hopper.jpg'
    assert image.exists()
    inferencer = MMSegInferencer(model=str(SHAPES_CFG),
                                 weights=str(trained / 'epoch_1.pth'), device='cpu')
    assert type(inferencer.model.backbone) is MobileOne
    result = inferencer(str(image), out_dir=str(tmp_path))
    height, width = np.array(Image.open(image)).shape[:2]
    assert result['predictions'].shape == (height, width)
    assert set(np.unique(result['predictions']).tolist()) <= {0, 1, 2, 3}
    drawn = list((tmp_path / 'vis').glob('*.jpg'))
    assert len(drawn) == 1 and drawn[0].stat().st_size > 1000
    assert list((tmp_path / 'pred').glob('*.png'))


def test_missing_voc_gives_one_clear_message(tmp_path):
    proc = run_tool('train.py', SEG / 'deeplabv3_mobileone_s2_voc.py',
                    '--work-dir', tmp_path / 'w', cwd=tmp_path)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert proc.stderr.startswith('error: data set not found')
    assert 'data/VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt' in proc.stderr
    assert 'expected layout for PascalVOCDataset' in proc.stderr
