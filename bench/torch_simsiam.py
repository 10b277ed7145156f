"""The reference for bench/step.py: the same SimSiam network as siampose_jax.models (ResNet v1.5 trunk with
the 'imagenet' / 'small' / 'cifar' stems and any width, 3-layer projector, bottleneck predictor), loss and
optimiser (SGD, momentum, coupled weight decay) written in plain PyTorch, so the step comparison needs no
torchvision and covers the narrow CPU networks torchvision does not have."""
from __future__ import annotations

import torch
from torch import nn

STAGES = {'resnet18': ((2, 2, 2, 2), 'basic'), 'resnet34': ((3, 4, 6, 3), 'basic'),
          'resnet50': ((3, 4, 6, 3), 'bottleneck'), 'tiny': ((1, 1, 1, 1), 'basic')}


def _bn(c):
  return nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)  # flax momentum 0.9 = torch 0.1


def _conv(cin, cout, k, stride=1):
  return nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False)


class _Basic(nn.Module):
  expansion = 1

  def __init__(self, cin, filters, stride):
    super().__init__()
    self.body = nn.Sequential(_conv(cin, filters, 3, stride), _bn(filters), nn.ReLU(inplace=True),
                              _conv(filters, filters, 3), _bn(filters))
    self.proj = (None if stride == 1 and cin == filters else
                 nn.Sequential(_conv(cin, filters, 1, stride), _bn(filters)))

  def forward(self, x):
    r = x if self.proj is None else self.proj(x)
    return torch.relu(r + self.body(x))


class _Bottleneck(nn.Module):
  expansion = 4

  def __init__(self, cin, filters, stride):
    super().__init__()
    out = filters * 4
    self.body = nn.Sequential(_conv(cin, filters, 1), _bn(filters), nn.ReLU(inplace=True),
                              _conv(filters, filters, 3, stride), _bn(filters), nn.ReLU(inplace=True),
                              _conv(filters, out, 1), _bn(out))
    self.proj = None if stride == 1 and cin == out else nn.Sequential(_conv(cin, out, 1, stride), _bn(out))

  def forward(self, x):
    r = x if self.proj is None else self.proj(x)
    return torch.relu(r + self.body(x))


class ResNet(nn.Module):
  """Trunk + global average pool, as siampose_jax.models.resnet.ResNet."""

  def __init__(self, backbone='resnet18', width=64, stem='imagenet'):
    super().__init__()
    sizes, kind = STAGES[backbone]
    block = _Basic if kind == 'basic' else _Bottleneck
    if stem == 'imagenet':
      layers = [_conv(3, width, 7, 2), _bn(width), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
    else:
      layers = [_conv(3, width, 3, 2 if stem == 'small' else 1), _bn(width), nn.ReLU(inplace=True)]
    cin = width
    for i, n in enumerate(sizes):
      for j in range(n):
        layers.append(block(cin, width * 2**i, 2 if i > 0 and j == 0 else 1))
        cin = width * 2**i * block.expansion
    self.trunk = nn.Sequential(*layers)
    self.dim = cin

  def forward(self, x):
    return self.trunk(x).mean(dim=(2, 3))


def _mlp(cin, features, bn_last):
  """siampose_jax.models.simsiam.MLP: bias-free dense + BN (+ ReLU) layers; the last has a bias when it has
  no BN, and its BN (projector) has no scale or offset."""
  layers = []
  for i, f in enumerate(features):
    last = i == len(features) - 1
    layers.append(nn.Linear(cin, f, bias=last and not bn_last))
    if not last or bn_last:
      layers.append(nn.BatchNorm1d(f, eps=1e-5, momentum=0.1, affine=not last))
    if not last:
      layers.append(nn.ReLU(inplace=True))
    cin = f
  return nn.Sequential(*layers)


class SimSiam(nn.Module):

  def __init__(self, backbone='resnet18', width=64, stem='imagenet', proj_dim=2048, pred_hidden=512):
    super().__init__()
    self.encoder = ResNet(backbone, width, stem)
    self.projector = _mlp(self.encoder.dim, (proj_dim,) * 3, bn_last=True)
    self.predictor = _mlp(proj_dim, (pred_hidden, proj_dim), bn_last=False)

  def forward(self, x):
    z = self.projector(self.encoder(x))
    return z, self.predictor(z)


def simsiam_loss(p1, p2, z1, z2):
  cos = nn.functional.cosine_similarity
  return -0.5 * (cos(p1, z2.detach(), dim=-1).mean() + cos(p2, z1.detach(), dim=-1).mean())


def make_step(model, *, lr, momentum, weight_decay, predictor_lr, device, amp_dtype=None):
  """One SimSiam update per call (each view through the network separately, as the JAX step); returns
  the loss tensor. The predictor has its own (constant) learning rate, as optim.make_optimizer."""
  pred = list(model.predictor.parameters())
  ids = {id(p) for p in pred}
  rest = [p for p in model.parameters() if id(p) not in ids]
  opt = torch.optim.SGD([dict(params=rest, lr=lr), dict(params=pred, lr=predictor_lr)], lr=lr,
                        momentum=momentum, weight_decay=weight_decay)

  def step(x1, x2):
    with torch.autocast(device, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
      z1, p1 = model(x1)
      z2, p2 = model(x2)
      loss = simsiam_loss(p1.float(), p2.float(), z1.float(), z2.float())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss

  return step
