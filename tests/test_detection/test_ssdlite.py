import pickle
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mobileone_mm.apis import build_model
from mobileone_mm.deploy.compare import forward_tensors
from mobileone_mm.models import MobileOne

from ..conftest import ROOT
from ..utils import assert_fused_matches_branches, randomize_bn
from ..utils import run_cli

DET = ROOT / 'configs' / 'detection'
SHAPES_CFG = DET / 'ssdlite_mobileone_s0_shapes.py'
WIDTHS = {'s0': (256, 1024), 's1': (512, 1280), 's2': (640, 2048),
          's3': (768, 2048), 's4': (896, 2048)}


def shapes_options(root: Path, epochs: int = 1) -> list:
    """--cfg-options pointing the demo config at a tiny generated data set."""
    ann = root / 'annotations' / 'instances_val.json'
    opts = [f'train_dataloader.dataset.data_root={root}/',
            f'val_dataloader.dataset.data_root={root}/',
            f'test_dataloader.dataset.data_root={root}/',
            f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}',
            'train_dataloader.batch_size=4', 'val_dataloader.batch_size=4',
            'test_dataloader.batch_size=4',
            'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
            'test_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'val_dataloader.persistent_workers=False',
            'test_dataloader.persistent_workers=False',
            f'train_cfg.max_epochs={epochs}', f'train_cfg.val_interval={epochs}',
            'default_hooks.logger.interval=1', 'randomness.seed=0',
            'default_hooks.checkpoint.interval=1']
    return opts


def shapes_cfg(root: Path, epochs: int = 1) -> Config:
    from mmengine.config import DictAction
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    options = parser.parse_args(['--o', *shapes_options(root, epochs)]).o
    cfg = Config.fromfile(str(SHAPES_CFG))
    cfg.merge_from_dict(options)
    return cfg


def run_tool(tool, *args, cwd=ROOT):
    """``tools/TOOL`` through its command line, in this process."""
    return run_cli(ROOT / 'tools' / tool, *args, cwd=cwd)


@pytest.fixture(scope='module')
def trained(shapes_root, tmp_path_factory):
    """One epoch through tools/train.py on the tiny data set."""
    work = tmp_path_factory.mktemp('det_train')
    proc = run_tool('train.py', SHAPES_CFG, '--work-dir', work,
                    '--cfg-options', *shapes_options(shapes_root))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work


@pytest.mark.parametrize('arch', sorted(WIDTHS))
def test_variant_configs_build_with_our_backbone(arch):
    cfg = Config.fromfile(str(DET / f'ssdlite_mobileone_{arch}.py'))
    assert cfg.default_scope == 'mmdet' and cfg.input_size == 320
    assert cfg.model.backbone.init_cfg.checkpoint == cfg.pretrained
    assert cfg.pretrained == f'checkpoints/mobileone_{arch}_in1k.pth'
    model = build_model(cfg)
    assert type(model.backbone) is MobileOne
    assert type(model.backbone).__module__.startswith('mobileone_mm')
    assert type(model.bbox_head).__name__ == 'SSDLiteHead'
    assert tuple(model.backbone.out_channels) == WIDTHS[arch]
    assert model.bbox_head.num_classes == 80
    feats = model.extract_feat(torch.rand(1, 3, 320, 320))
    # strides 16, 32 from the backbone, then 64, 128, 256 and the last level
    assert [f.shape[-1] for f in feats] == [20, 10, 5, 3, 2, 1]


def test_recipe_values_from_the_paper():
    cfg = Config.fromfile(str(DET / 'ssdlite_mobileone_s2.py'))
    assert cfg.train_cfg.max_epochs == 200
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == ('SGD', 0.05, 0.9, 1e-4)
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.end, warmup.by_epoch) == (
        'LinearLR', 0.001, 4500, False)
    assert cosine.type == 'CosineAnnealingLR' and cosine.T_max == 200
    assert cfg.train_dataloader.batch_size * 8 == 192
    assert cfg.auto_scale_lr.base_batch_size == 192
    assert cfg.model.bbox_head.use_depthwise and cfg.model.neck.use_depthwise
    assert cfg.model.neck.act_cfg.type == cfg.model.bbox_head.act_cfg.type == 'ReLU'
    assert cfg.model.backbone.out_indices == (2, 3)
    types = [t.type for t in cfg.train_pipeline]
    assert {'Expand', 'MinIoURandomCrop', 'PhotoMetricDistortion'} <= set(types)
    assert cfg.val_evaluator.metric == 'bbox'
    assert cfg.train_dataloader.dataset.ann_file.endswith('instances_train2017.json')


def test_loss_and_predict_on_a_batch(shapes_root):
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS
    cfg = shapes_cfg(shapes_root)
    model = build_model(cfg).train()
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch = model.data_preprocessor(pseudo_collate([dataset[0], dataset[1]]),
                                    training=True)
    losses = model(**batch, mode='loss')
    total = sum(sum(v) if isinstance(v, list) else v for v in losses.values())
    assert torch.isfinite(total) and total > 0
    total.backward()
    model.eval()
    with torch.no_grad():
        preds = model(**model.data_preprocessor(
            pseudo_collate([dataset[0]]), training=False), mode='predict')
    inst = preds[0].pred_instances
    assert inst.bboxes.shape[1] == 4 and len(inst.scores) == len(inst.labels)
    assert set(inst.labels.tolist()) <= {0, 1, 2}


def test_train_iteration_and_coco_evaluation(trained):
    logs = list(trained.glob('*/*.log'))
    assert logs, 'no log written'
    text = logs[0].read_text()
    assert 'Epoch(train)' in text and 'loss_cls' in text
    assert 'coco/bbox_mAP' in text  # validation ran predict + COCO evaluation
    assert (trained / 'epoch_1.pth').exists()


def test_fused_and_unfused_predictions_equal(trained, shapes_root, tmp_path):
    # After one epoch the class scores are nearly uniform, so neighbouring
    # scores differ by less than float32 rounding and NMS order is a coin
    # toss. Spread the logits (scale the last cls conv) so that equal
    # predictions are a meaningful, deterministic check.
    # BN statistics are randomized too: after one epoch they are near their
    # initial values, where a fusion that drops a branch can go unseen.
    state = torch.load(trained / 'epoch_1.pth', map_location='cpu', weights_only=False)
    model = build_model(shapes_cfg(shapes_root))
    model.load_state_dict(state['state_dict'])
    randomize_bn(model.backbone, seed=3)
    state['state_dict'] = model.state_dict()
    for key, value in state['state_dict'].items():
        if key.startswith('bbox_head.cls_convs.') and key.endswith('.1.weight'):
            value.mul_(50)
    ckpt = tmp_path / 'spread.pth'
    torch.save(state, ckpt)
    outs = {}
    # the unfused model runs branch by branch (not the fused algebra)
    for name, extra, form in (('unfused', [], 'reference'),
                              ('fused', ['--deploy'], 'fast')):
        out = tmp_path / f'{name}.pkl'
        proc = run_tool('test.py', SHAPES_CFG, ckpt, '--work-dir', tmp_path / name,
                        '--out', out, *extra, '--cfg-options',
                        *shapes_options(shapes_root),
                        f'model.backbone.branch_impl={form}')
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs[name] = pickle.load(open(out, 'rb'))
        if extra:
            assert 'evaluating the fused model' in (proc.stdout + proc.stderr)
    assert len(outs['fused']) == len(outs['unfused']) == 4
    for a, b in zip(outs['unfused'], outs['fused']):
        assert_same_detections(a['pred_instances'], b['pred_instances'])


def assert_same_detections(pa, pb, score_tol=1e-4, box_tol=1e-2):
    """Same detections up to float rounding: every detection of one list has
    one in the other with the same label, box and score. Detections whose
    scores differ by less than the rounding may come out of NMS and the
    top-k cut in either order, so they are matched as sets, not by rank;
    only at the cut-off score may one list hold a detection the other
    dropped."""
    assert len(pa['scores']) == len(pb['scores']) > 0
    cutoff = min(pa['scores'].min(), pb['scores'].min()) + score_tol
    for x, y in ((pa, pb), (pb, pa)):
        same = ((x['labels'][:, None] == y['labels'][None]) &
                ((x['scores'][:, None] - y['scores'][None]).abs() <= score_tol) &
                ((x['bboxes'][:, None] - y['bboxes'][None]).abs().amax(-1) <= box_tol))
        unmatched = ~same.any(1)
        assert not (unmatched & (x['scores'] > cutoff)).any(), \
            f'{int(unmatched.sum())} detections differ, scores ' \
            f'{x["scores"][unmatched].tolist()}'


def test_fused_model_outputs_equal_in_process(shapes_root):
    cfg = shapes_cfg(shapes_root)
    torch.manual_seed(0)
    model = randomize_bn(build_model(cfg))
    from mobileone_mm import reparameterize
    fused = reparameterize(model)
    x = torch.rand(2, 3, 128, 128)
    outs, fused_outs = forward_tensors(model, x), forward_tensors(fused, x)
    # class scores and boxes of each of the 6 levels
    assert len(outs) == len(fused_outs) == 2 * len(model.bbox_head.cls_convs) == 12
    assert_fused_matches_branches(model, fused, x)


def test_missing_coco_gives_one_clear_message(tmp_path):
    proc = run_tool('train.py', DET / 'ssdlite_mobileone_s2.py', '--work-dir',
                    tmp_path / 'w', cwd=tmp_path)
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr
    assert 'data/coco/annotations/instances_train2017.json' in proc.stderr
    assert 'expected layout for CocoDataset' in proc.stderr


def test_missing_pretrained_checkpoint_says_how_to_make_it(tmp_path, shapes_root):
    cfg = tmp_path / 'pretrained_cfg.py'
    cfg.write_text(f"_base_ = ['{SHAPES_CFG}']\n"
                   "model = dict(backbone=dict(init_cfg=dict(_delete_=True, type='Pretrained', "
                   "checkpoint='checkpoints/nope.pth', prefix='backbone.')))\n")
    proc = run_tool('train.py', cfg, '--work-dir', tmp_path / 'w',
                    '--cfg-options', *shapes_options(shapes_root))
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert 'checkpoints/nope.pth' in proc.stderr
    assert 'tools/convert_checkpoint.py' in proc.stderr
    assert not (tmp_path / 'w').exists() or not list((tmp_path / 'w').rglob('*.pth'))


def test_amp_without_gpu_is_a_clear_error(tmp_path, shapes_root):
    if torch.cuda.is_available():
        pytest.skip('this machine has a GPU: --amp is valid here')
    proc = run_tool('train.py', SHAPES_CFG, '--amp', '--work-dir', tmp_path / 'w',
                    '--cfg-options', *shapes_options(shapes_root))
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert '--amp needs a GPU' in proc.stderr


def test_bad_cfg_options_is_one_line_error(tmp_path):
    proc = run_tool('train.py', SHAPES_CFG, '--work-dir', tmp_path / 'w',
                    '--cfg-options', 'model.backbone.init_cfg.type=Pretrained')
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert proc.stderr.startswith('error:') and '--cfg-options' in proc.stderr


def test_det_inferencer_on_a_real_image(trained, tmp_path):
    import matplotlib
    from mmdet.apis import DetInferencer
    image = Path(matplotlib.get_data_path()) / 'sample_data' / 'grace_hopper.jpg'
    assert image.exists()
    inferencer = DetInferencer(model=str(SHAPES_CFG), weights=str(trained / 'epoch_1.pth'),
                               device='cpu')
    result = inferencer(str(image), out_dir=str(tmp_path), no_save_pred=False,
                        pred_score_thr=0.0)
    pred = result['predictions'][0]
    assert len(pred['bboxes']) == len(pred['scores']) > 0
    drawn = list((tmp_path / 'vis').glob('*.jpg'))
    assert len(drawn) == 1 and drawn[0].stat().st_size > 1000
    assert list((tmp_path / 'preds').glob('*.json'))


def test_same_detections_check_catches_differences():
    torch.manual_seed(0)
    scores = torch.linspace(0.9, 0.1, 20)
    pa = dict(scores=scores, labels=torch.randint(0, 3, (20, )),
              bboxes=torch.rand(20, 4) * 100)
    swapped = torch.arange(20)
    swapped[[5, 6]] = swapped[[6, 5]]
    pb = {k: v[swapped] for k, v in pa.items()}
    pb['scores'] = pa['scores'].clone()  # two near-ties come out swapped
    pb['scores'][[5, 6]] = pa['scores'][5]
    pa2 = dict(pa, scores=pa['scores'].clone())
    pa2['scores'][[5, 6]] = pa['scores'][5]
    assert_same_detections(pa2, pb)
    moved = {k: v.clone() for k, v in pa2.items()}
    moved['bboxes'][8, 0] += 5
    with pytest.raises(AssertionError):
        assert_same_detections(pa2, moved)
    relabelled = {k: v.clone() for k, v in pa2.items()}
    relabelled['labels'][0] = (relabelled['labels'][0] + 1) % 3
    with pytest.raises(AssertionError):
        assert_same_detections(pa2, relabelled)
