"""torchvision ResNet state dict -> Flax variables: key mapping, failure paths, and (with torch) equal outputs.

The torch-free tests build a state dict with torchvision's real key names and shapes, derived here from the
architecture rather than from the converter, and check the mapping in the reverse direction (torch key -> Flax
path) with an independent parser. The torch test runs a plain-torch ResNet-50 written to torchvision's layout.
"""
from __future__ import annotations

import re
import sys

import jax
import numpy as np
import pytest
import safetensors.numpy

from siampose_jax import convert
from siampose_jax.models import resnet
from siampose_jax.models import simsiam

STAGES = {'resnet18': ((2, 2, 2, 2), 1), 'resnet50': ((3, 4, 6, 3), 4)}  # stage sizes, block expansion.


def torchvision_shapes(arch):
  """{key: shape} of torchvision's resnet18/resnet50 state dict (BasicBlock: 2 convs, Bottleneck: 3)."""
  sizes, expansion = STAGES[arch]
  shapes = {'conv1.weight': (64, 3, 7, 7)}

  def bn(prefix, c):
    shapes.update({f'{prefix}.weight': (c,), f'{prefix}.bias': (c,), f'{prefix}.running_mean': (c,),
                   f'{prefix}.running_var': (c,), f'{prefix}.num_batches_tracked': ()})

  bn('bn1', 64)
  cin = 64
  for layer, n in enumerate(sizes, start=1):
    width = 64 * 2**(layer - 1)
    for b in range(n):
      p = f'layer{layer}.{b}'
      if expansion == 4:
        convs = [(width, cin, 1, 1), (width, width, 3, 3), (width * 4, width, 1, 1)]
      else:
        convs = [(width, cin, 3, 3), (width, width, 3, 3)]
      for i, shape in enumerate(convs, start=1):
        shapes[f'{p}.conv{i}.weight'] = shape
        bn(f'{p}.bn{i}', shape[0])
      if b == 0 and (layer > 1 or cin != width * expansion):
        shapes[f'{p}.downsample.0.weight'] = (width * expansion, cin, 1, 1)
        bn(f'{p}.downsample.1', width * expansion)
      cin = width * expansion
  shapes.update({'fc.weight': (1000, cin), 'fc.bias': (1000,)})
  return shapes


def random_state_dict(arch, seed=0):
  """He-scaled convs and BN stats near identity, so a 50-layer forward pass stays finite."""
  rng = np.random.default_rng(seed)
  sd = {}
  for key, shape in torchvision_shapes(arch).items():
    if key.endswith('num_batches_tracked'):
      sd[key] = np.array(rng.integers(1, 1000), np.int64)
    elif key.endswith('running_var'):
      sd[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    elif key.endswith('.weight') and len(shape) == 1:
      sd[key] = rng.uniform(0.5, 1.0, shape).astype(np.float32)
    elif len(shape) == 4:
      fan_in = np.prod(shape[1:])
      sd[key] = (rng.normal(size=shape) * np.sqrt(2 / fan_in)).astype(np.float32)
    else:
      sd[key] = (rng.normal(size=shape) * 0.1).astype(np.float32)
  return sd


def flax_path(key):
  """Independent inverse mapping: 'layer2.0.downsample.1.running_var' -> ('batch_stats', 'stage2_block1',
  'norm_proj', 'var')."""
  m = re.fullmatch(r'(?:layer(\d)\.(\d+)\.)?(conv|bn|downsample\.)(\d)\.(\w+)', key)
  assert m, key
  layer, block, kind, idx, leaf = m.groups()
  if layer is None:
    module = ['stem_conv' if kind == 'conv' else 'stem_norm']
  elif kind == 'downsample.':
    module = [f'stage{layer}_block{int(block) + 1}', 'conv_proj' if idx == '0' else 'norm_proj']
  else:
    module = [f'stage{layer}_block{int(block) + 1}', f'{"Conv" if kind == "conv" else "BatchNorm"}_{int(idx) - 1}']
  leaf = {'weight': 'kernel' if module[-1].startswith(('Conv', 'conv', 'stem_conv')) else 'scale',
          'bias': 'bias', 'running_mean': 'mean', 'running_var': 'var'}[leaf]
  return ('batch_stats' if leaf in ('mean', 'var') else 'params', *module, leaf)


def get(tree, path):
  for p in path:
    tree = tree[p]
  return tree


@pytest.fixture(scope='module')
def resnet50_file(tmp_path_factory):
  sd = random_state_dict('resnet50')
  path = tmp_path_factory.mktemp('weights') / 'resnet50.safetensors'
  safetensors.numpy.save_file(sd, str(path))
  return sd, path


def test_key_shapes_match_the_real_torchvision_count():
  # torchvision's resnet50 state dict has 320 entries (161 params + 159 BN buffers), resnet18 has 122.
  assert len(torchvision_shapes('resnet50')) == 320
  assert len(torchvision_shapes('resnet18')) == 122


def test_resnet50_spot_checks(resnet50_file):
  sd, path = resnet50_file
  v = convert.load_imagenet_backbone(path)
  p, s = v['params'], v['batch_stats']
  np.testing.assert_array_equal(p['stem_conv']['kernel'], sd['conv1.weight'].transpose(2, 3, 1, 0))
  assert p['stem_conv']['kernel'].shape == (7, 7, 3, 64)
  np.testing.assert_array_equal(p['stem_norm']['scale'], sd['bn1.weight'])
  np.testing.assert_array_equal(s['stem_norm']['mean'], sd['bn1.running_mean'])
  np.testing.assert_array_equal(p['stage1_block1']['Conv_2']['kernel'][0, 0], sd['layer1.0.conv3.weight'][:, :, 0, 0].T)
  np.testing.assert_array_equal(p['stage2_block4']['BatchNorm_1']['scale'], sd['layer2.3.bn2.weight'])
  np.testing.assert_array_equal(p['stage3_block1']['Conv_1']['kernel'][2, 0, 5, 7],
                                sd['layer3.0.conv2.weight'][7, 5, 2, 0])
  np.testing.assert_array_equal(p['stage3_block1']['conv_proj']['kernel'],
                                sd['layer3.0.downsample.0.weight'].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(p['stage3_block1']['norm_proj']['bias'], sd['layer3.0.downsample.1.bias'])
  np.testing.assert_array_equal(s['stage4_block3']['BatchNorm_2']['var'], sd['layer4.2.bn3.running_var'])
  assert 'conv_proj' not in p['stage4_block2']


@pytest.mark.parametrize('arch', ['resnet18', 'resnet50'])
def test_every_key_maps_by_the_generic_rule(arch):
  sd = random_state_dict(arch)
  v = convert.torchvision_resnet_to_flax(sd, backbone=arch)
  mapped = [k for k in sd if not k.startswith('fc.') and not k.endswith('num_batches_tracked')]
  for key in mapped:
    want = sd[key].transpose(2, 3, 1, 0) if sd[key].ndim == 4 else sd[key]
    got = get(v, flax_path(key))
    assert got.dtype == np.float32 and got.shape == want.shape, key
    np.testing.assert_array_equal(got, want, err_msg=key)
  # Each Flax leaf filled exactly once: as many leaves as mapped keys, and the tree is our model's.
  assert len(jax.tree.leaves(v)) == len(mapped)
  model = resnet.make_backbone(arch, 64, 'imagenet')
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), np.zeros((1, 32, 32, 3), np.float32), train=False))
  assert jax.tree.structure(shapes) == jax.tree.structure(v)


@pytest.mark.parametrize('edit, message', [
    (lambda sd: sd.pop('layer3.2.bn1.running_mean'), r'missing: layer3\.2\.bn1\.running_mean'),
    (lambda sd: sd.update({'layer1.0.conv2.weight': np.zeros((64, 64, 1, 1), np.float32)}),
     r'wrong shape: layer1\.0\.conv2\.weight \(64, 64, 1, 1\) \(expected \(64, 64, 3, 3\)\)'),
    (lambda sd: sd.update({'layer2.1.bn2.bias': np.zeros((256,), np.float32)}),
     r'wrong shape: layer2\.1\.bn2\.bias \(256,\) \(expected \(128,\)\)'),
    (lambda sd: sd.update({'layer5.0.conv1.weight': np.zeros((1,), np.float32)}), r'unknown: layer5\.0\.conv1\.weight'),
])
def test_mismatch_names_the_key(edit, message):
  sd = random_state_dict('resnet50')
  edit(sd)
  with pytest.raises(ValueError, match=message):
    convert.torchvision_resnet_to_flax(sd)


def test_resnet18_weights_do_not_fit_resnet50():
  with pytest.raises(ValueError, match=r'missing: .*layer1\.0\.conv3\.weight.*wrong shape: .*layer1\.0\.conv1\.weight'):
    convert.torchvision_resnet_to_flax(random_state_dict('resnet18'), backbone='resnet50')
  with pytest.raises(ValueError, match="backbone='tiny'"):
    convert.torchvision_resnet_to_flax({}, backbone='tiny')


def test_file_errors_name_the_file(tmp_path, monkeypatch):
  with pytest.raises(ValueError, match=r'weights\.npz.*unknown weights file extension'):
    convert.load_state_dict(tmp_path / 'weights.npz')
  bad = tmp_path / 'bad.safetensors'
  bad.write_bytes(b'not safetensors')
  with pytest.raises(ValueError, match=r'bad\.safetensors'):
    convert.load_state_dict(bad)
  partial = tmp_path / 'partial.safetensors'
  safetensors.numpy.save_file({'conv1.weight': np.zeros((64, 3, 7, 7), np.float32)}, str(partial))
  with pytest.raises(ValueError, match=r'partial\.safetensors: .*missing: .*bn1\.running_var'):
    convert.load_imagenet_backbone(partial)
  monkeypatch.setitem(sys.modules, 'torch', None)  # makes `import torch` fail, with or without torch installed.
  with pytest.raises(ImportError, match=r'model\.pth.*install.*torch.*\.safetensors'):
    convert.load_state_dict(tmp_path / 'model.pth')


def test_module_prefix_is_stripped(tmp_path):
  sd = {'module.conv1.weight': np.ones((2, 3, 1, 1), np.float32), 'module.fc.bias': np.zeros(4, np.float32)}
  safetensors.numpy.save_file(sd, str(tmp_path / 'ddp.safetensors'))
  loaded = convert.load_state_dict(tmp_path / 'ddp.safetensors')
  assert sorted(loaded) == ['conv1.weight', 'fc.bias']
  np.testing.assert_array_equal(loaded['conv1.weight'], sd['module.conv1.weight'])


def test_converted_model_embeds_through_simsiam(resnet50_file):
  _, path = resnet50_file
  v = convert.load_imagenet_backbone(path)
  images = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), np.uint8)
  x = simsiam.preprocess(images)
  model = simsiam.SimSiam(backbone='resnet50', width=64, stem='imagenet')
  emb = jax.jit(lambda v, x: model.apply(v, x, method=simsiam.SimSiam.embed))(convert.encoder_variables(v), x)
  assert emb.shape == (2, 2048) and np.isfinite(emb).all() and np.abs(emb).max() > 0
  direct = jax.jit(lambda v, x: resnet.make_backbone('resnet50').apply(v, x, train=False))(v, x)
  np.testing.assert_allclose(emb, direct, rtol=1e-6)


def _torch_resnet50():
  """A torchvision-layout ResNet-50 (v1.5) in plain torch; `forward` returns the pooled feature, before fc."""
  import torch
  from torch import nn

  class Bottleneck(nn.Module):

    def __init__(self, cin, width, stride):
      super().__init__()
      self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
      self.bn1 = nn.BatchNorm2d(width)
      self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
      self.bn2 = nn.BatchNorm2d(width)
      self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
      self.bn3 = nn.BatchNorm2d(width * 4)
      self.relu = nn.ReLU()
      self.downsample = None
      if stride != 1 or cin != width * 4:
        self.downsample = nn.Sequential(nn.Conv2d(cin, width * 4, 1, stride, bias=False), nn.BatchNorm2d(width * 4))

    def forward(self, x):
      y = self.relu(self.bn1(self.conv1(x)))
      y = self.relu(self.bn2(self.conv2(y)))
      y = self.bn3(self.conv3(y))
      return self.relu(y + (x if self.downsample is None else self.downsample(x)))

  class ResNet50(nn.Module):

    def __init__(self):
      super().__init__()
      self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
      self.bn1 = nn.BatchNorm2d(64)
      self.relu = nn.ReLU()
      self.maxpool = nn.MaxPool2d(3, 2, 1)
      cin = 64
      for i, n in enumerate((3, 4, 6, 3)):
        width = 64 * 2**i
        blocks = []
        for j in range(n):
          blocks.append(Bottleneck(cin, width, 2 if i > 0 and j == 0 else 1))
          cin = width * 4
        setattr(self, f'layer{i + 1}', nn.Sequential(*blocks))
      self.avgpool = nn.AdaptiveAvgPool2d(1)
      self.fc = nn.Linear(2048, 1000)

    def forward(self, x):
      x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
      for i in range(1, 5):
        x = getattr(self, f'layer{i}')(x)
      return torch.flatten(self.avgpool(x), 1)

  return ResNet50()


def test_matches_torch_resnet50(tmp_path):
  torch = pytest.importorskip('torch')
  net = _torch_resnet50()
  # Random weights and BN statistics (not torch's identity defaults), so every mapped tensor matters.
  sd = random_state_dict('resnet50', seed=3)
  net.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
  net.eval()
  assert sorted(net.state_dict()) == sorted(sd)  # our torch model has torchvision's exact key set.
  torch.save(net.state_dict(), tmp_path / 'resnet50.pth')
  torch.save({'epoch': 3, 'state_dict': {'module.' + k: t for k, t in net.state_dict().items()}},
             tmp_path / 'wrapped.pt')

  v = convert.load_imagenet_backbone(tmp_path / 'resnet50.pth')
  wrapped = convert.load_state_dict(tmp_path / 'wrapped.pt')
  assert sorted(wrapped) == sorted(sd)
  np.testing.assert_array_equal(wrapped['layer4.2.bn3.running_var'], sd['layer4.2.bn3.running_var'])

  images = np.random.default_rng(4).integers(0, 256, (2, 64, 64, 3), np.uint8)
  x = np.asarray(simsiam.preprocess(images))
  with torch.no_grad():
    want = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
  with jax.default_matmul_precision('highest'):
    embed = jax.jit(lambda v, x: simsiam.SimSiam().apply(v, x, method=simsiam.SimSiam.embed))
    got = embed(convert.encoder_variables(v), x)
  assert want.shape == got.shape == (2, 2048)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
