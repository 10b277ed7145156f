"""The im2col convolution (resnet.im2col_conv) against XLA's, and the rule that picks between them: same
values and gradients where the rule applies, the documented choice per shape, and the `cpu` preset's
network left exactly as it was (its published sweep depends on it)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from siampose_jax.configs import distant
from siampose_jax import step as step_lib
from siampose_jax.models import resnet

DN = ('NHWC', 'HWIO', 'NHWC')

# (batch, in_hw, cin, cout, k, stride): shapes where use_im2col says yes, the ResNet ones scaled down in
# channels (ResNet-18's last stage at 64 px and 96 px, stride 1 and 2) plus a 7x7 and a 1x1 stride-2 case.
RULE_SHAPES = [(3, 2, 16, 24, 3, 1), (3, 3, 8, 16, 3, 1), (3, 4, 16, 24, 3, 2), (2, 6, 8, 16, 3, 2),
               (2, 5, 8, 8, 3, 2), (2, 8, 3, 8, 7, 2), (2, 2, 8, 16, 1, 2)]


def _conv_pair(shape):
  n, hw, cin, cout, k, s = shape
  x = jax.random.normal(jax.random.key(0), (n, hw, hw, cin))
  w = jax.random.normal(jax.random.key(1), (k, k, cin, cout)) / np.sqrt(k * k * cin)
  pad = [(k // 2, k // 2)] * 2
  xla = lambda x, w: lax.conv_general_dilated(x, w, (s, s), pad, dimension_numbers=DN)
  mine = lambda x, w: resnet.im2col_conv(x, w, (s, s), pad)
  return x, w, xla, mine


@pytest.mark.parametrize('shape', RULE_SHAPES, ids=str)
def test_im2col_equals_xla_values_and_gradients(shape):
  x, w, xla, mine = _conv_pair(shape)
  want = xla(x, w)
  assert resnet.use_im2col(want.shape[1:3], w.shape[:2])
  got = mine(x, w)
  assert got.shape == want.shape and got.dtype == want.dtype
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(want))))
  g = jax.random.normal(jax.random.key(2), want.shape)
  grads = [jax.grad(lambda x, w, f=f: jnp.vdot(f(x, w), g), argnums=(0, 1))(x, w) for f in (xla, mine)]
  for a, b in zip(*grads):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(a))))


def test_im2col_keeps_bfloat16():
  x, w, xla, mine = _conv_pair((2, 2, 16, 16, 3, 1))
  x, w = x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)
  got, want = mine(x, w), xla(x, w)
  assert got.dtype == want.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.float32(got), np.float32(want), atol=0.05 * float(jnp.max(jnp.abs(want))))


@pytest.mark.parametrize('out_hw,k,want', [
    ((2, 2), 3, True),    # ResNet-18 last stage at 64 px (3x3 on 2x2 maps, and the stride-2 conv into them)
    ((3, 3), 3, True),    # the same at 96 px
    ((4, 4), 3, False),   # 128 px, and the `cpu` preset's last stage
    ((8, 8), 3, False),
    ((32, 32), 7, False),  # imagenet stem
    ((2, 2), 1, False),   # 1x1 projection: XLA's convolution is a matmul already
    ((1, 1), 1, True),
])
def test_rule(out_hw, k, want):
  assert resnet.use_im2col(out_hw, (k, k)) is want


def _count_convs(fn, *args):
  jaxpr = jax.make_jaxpr(fn)(*args)
  return str(jaxpr).count('conv_general_dilated')


def test_resnet18_64px_forward_and_gradients_equal_the_plain_xla_network():
  x = jax.random.normal(jax.random.key(3), (4, 64, 64, 3))
  nets = {impl: resnet.make_backbone('resnet18', 64, 'imagenet', conv_impl=impl) for impl in ('auto', 'xla')}
  variables = nets['xla'].init(jax.random.key(0), x, train=False)
  ref_shapes = jax.tree.map(lambda a: (a.shape, a.dtype), variables)
  assert jax.tree.map(lambda a: (a.shape, a.dtype), nets['auto'].init(jax.random.key(0), x, train=False)) \
      == ref_shapes  # same parameter names, shapes and dtypes: checkpoints and converted weights still load
  out = {impl: net.apply(variables, x, train=False) for impl, net in nets.items()}
  np.testing.assert_allclose(out['auto'], out['xla'], rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(out['xla']))))
  # 20 convolutions; the 4 whose output is 2x2 under a 3x3 kernel (stage 4's) become matmuls.
  counts = {impl: _count_convs(lambda v, x, net=net: net.apply(v, x, train=False), variables, x)
            for impl, net in nets.items()}
  assert counts == {'xla': 20, 'auto': 16}
  r = jax.random.normal(jax.random.key(6), out['xla'].shape)
  grads = {impl: jax.grad(lambda p, net=net: jnp.vdot(net.apply(dict(variables, params=p), x, train=False), r))(
      variables['params']) for impl, net in nets.items()}
  for a, b in zip(jax.tree.leaves(grads['xla']), jax.tree.leaves(grads['auto'])):
    np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4 * float(jnp.max(jnp.abs(a))))


def test_old_recipe_network_is_unchanged():
  """The old recipe's network (docs/recipe.md: width 32 at 64 px) traces to the same program with the rule
  as with XLA's convolution everywhere, so its published numbers stay bit for bit reproducible."""
  c = distant.get_config('cpu')
  c.model.width, c.data.image_size = 32, 64
  model = step_lib.make_model(c)
  assert model.conv_impl == 'auto'
  size, batch = c.data.image_size, c.batch_size
  x = jnp.zeros((batch, size, size, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x[:2], train=True))

  def program(impl):
    m = model.clone(conv_impl=impl)
    loss = lambda v, x: jnp.sum(m.apply(v, x, train=True, mutable=['batch_stats'])[0]['p'])
    return str(jax.make_jaxpr(jax.grad(loss))(variables, x))

  auto = program('auto')
  assert auto == program('xla') and auto.count('conv_general_dilated') > 0
  assert auto != program('im2col')  # the comparison can tell the two apart
