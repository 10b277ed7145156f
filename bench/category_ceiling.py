"""How recognisable are the categories at a config's network and input size? A supervised reference.

Trains the config's backbone with a linear softmax head on the category labels (cross-entropy, the same
loader, crops and augmentations as the self-supervised run, view1 of each pair), then scores the 1-NN
category accuracy of its embeddings exactly as the evaluation does (test queries against the training
gallery). Set beside the self-supervised model's accuracy, it separates what the data allows at this size
from what the pair objective learns. Prints one JSON line.

  python -m bench.category_ceiling --config=configs/nearby.py:cpu [--steps=1000]
"""
from __future__ import annotations

import json
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags
from ml_collections import config_flags

from input_pipeline.formats.frame_record import CATEGORIES
from input_pipeline.loader import datasets
from input_pipeline.store import frame_store, ingest
from siampose_jax import embedding, sharding
from siampose_jax.evaluation import knn, metrics
from siampose_jax.models import resnet, simsiam

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file[:preset].')
_STEPS = flags.DEFINE_integer('steps', 0, 'Training steps (0: the config\'s total_steps).')


class Classifier(nn.Module):
  backbone: nn.Module

  @nn.compact
  def __call__(self, x, train: bool = True):
    return nn.Dense(len(CATEGORIES))(self.backbone(x, train=train))

  def embed(self, x):
    return self.backbone(x, train=False)


def main(argv):
  del argv
  config = _CONFIG.value
  steps = _STEPS.value or config.total_steps
  m = config.model
  model = Classifier(resnet.make_backbone(m.backbone, m.width, m.stem))
  store_path = ingest.prepare_store(config.data)
  store = frame_store.open_store(store_path)
  data = datasets.config_iterator(datasets.config_dataset(config, store_path), config.data)
  variables = model.init(jax.random.key(config.seed),
                         jnp.zeros((2, config.data.image_size, config.data.image_size, 3)))
  schedule = optax.warmup_cosine_decay_schedule(0.0, config.optim.base_lr * config.batch_size
                                                / config.optim.base_batch_size,
                                                config.optim.warmup_steps, steps)
  tx = optax.chain(optax.add_decayed_weights(config.optim.weight_decay), optax.sgd(schedule, 0.9))
  params, batch_stats = variables['params'], variables['batch_stats']
  opt_state = tx.init(params)

  @jax.jit
  def step(params, batch_stats, opt_state, images, labels):
    def loss_fn(p):
      logits, upd = model.apply({'params': p, 'batch_stats': batch_stats}, simsiam.preprocess(images),
                                mutable=['batch_stats'])
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), upd['batch_stats']
    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), batch_stats, opt_state, loss

  start = time.time()
  for i in range(steps):
    batch = next(data)
    params, batch_stats, opt_state, loss = step(params, batch_stats, opt_state, batch['view1'],
                                                batch['category'])
    if (i + 1) % max(1, steps // 10) == 0:
      print(f'step {i + 1}/{steps} loss {float(loss):.3f} ({time.time() - start:.0f}s)', flush=True)

  mesh = sharding.make_mesh(1)
  embed_net = simsiam.SimSiam(backbone=m.backbone, width=m.width, stem=m.stem, use_predictor=False)
  fn = embedding.make_embed_fn(embed_net, mesh)
  enc_vars = {'params': {'encoder': params['backbone']}, 'batch_stats': {'encoder': batch_stats['backbone']}}
  gallery = datasets.config_eval_arrays(store, 'train', config.data)
  queries = datasets.config_eval_arrays(store, 'test', config.data)
  g = embedding.embed_images(fn, enc_vars, gallery['image'], mesh)
  q = embedding.embed_images(fn, enc_vars, queries['image'], mesh)
  _, nn_idx = knn.knn(q, g, k=1, mesh=mesh)
  acc = metrics.knn_accuracy(gallery['category'][nn_idx[:, 0]], queries['category'])
  print(json.dumps({'bench': 'category_ceiling', 'config': config.preset, 'steps': steps,
                    'image_size': config.data.image_size, 'backbone': m.backbone, 'width': m.width,
                    'supervised_1nn_category_acc': round(100 * acc, 2), 'final_loss': float(loss),
                    'seconds': round(time.time() - start, 1), 'jax': jax.__version__}))


if __name__ == '__main__':
  flags.mark_flags_as_required(['config'])
  app.run(main)
