"""The reuse API: the README's three lines in a fresh process, and what `load_encoder` returns."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tests import runs


def _readme_example() -> str:
  with open(os.path.join(runs.REPO, 'README.md')) as f:
    text = f.read()
  section = text[text.index('## Reusing the encoder'):]
  (code,) = re.findall(r'```python\n(.*?)```', section, re.S)[:1]
  return code


def test_readme_three_lines_run_in_a_clean_process(reference_run, tmp_path):
  ref_dir, ref = reference_run
  code = _readme_example()
  assert len(code.strip().splitlines()) == 3
  images = np.random.default_rng(0).integers(0, 256, (3, 50, 37, 3), dtype=np.uint8)  # not the training size
  np.save(tmp_path / 'images.npy', images)
  script = (code.replace("'runs/distant_cpu'", repr(ref_dir)).replace('(images)', "(np.load('images.npy'))")
            + "np.save('embeddings.npy', embeddings)\n")
  script = 'import numpy as np\n' + script
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}  # one device, not the training's 8
  out = subprocess.run([sys.executable, '-c', script], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  got = np.load(tmp_path / 'embeddings.npy')
  # Independently: the same resize-and-pad, then the trained model applied here by hand.
  from input_pipeline.store import crops  # pylint: disable=g-import-not-at-top
  from siampose_jax.models import simsiam  # pylint: disable=g-import-not-at-top
  size = runs.short_config('').data.image_size
  x = np.stack([crops.crop_and_resize(im, (0, 0, im.shape[1], im.shape[0]), size) for im in images])
  state = ref['state']
  want = np.asarray(ref['model'].apply({'params': state.params, 'batch_stats': state.batch_stats},
                                       simsiam.preprocess(x), method=simsiam.SimSiam.embed))
  want = want / np.linalg.norm(want, axis=-1, keepdims=True)
  assert got.shape == want.shape == (3, want.shape[1])
  np.testing.assert_allclose(np.linalg.norm(got, axis=-1), 1, rtol=1e-5)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_load_encoder_from_a_checkpoint_dir_and_its_parts(reference_run, tmp_path):
  from siampose_jax import load_encoder  # pylint: disable=g-import-not-at-top
  ref_dir, _ = reference_run
  enc = load_encoder(os.path.join(ref_dir, 'checkpoints', '9'))
  assert enc.step == 9 and enc.config.data.pair_mode == 'distant'
  latest = load_encoder(os.path.join(ref_dir, 'checkpoints'))
  assert latest.step == runs.TOTAL_STEPS
  images = [np.full((40, 20, 3), 200, np.uint8), np.zeros((10, 90, 3), np.uint8)]  # two sizes at once
  x = enc.preprocess(images)
  size = enc.config.data.image_size
  assert x.shape == (2, size, size, 3)
  feats = np.asarray(enc.model.apply(enc.variables, x, method=enc.model.embed))
  feats = feats / np.linalg.norm(feats, axis=-1, keepdims=True)
  np.testing.assert_allclose(enc.embed(images), feats, rtol=1e-4, atol=1e-5)
  with pytest.raises(ValueError, match='image 0: expected uint8 RGB'):
    enc.embed(np.zeros((1, 8, 8, 3), np.float32))
  with pytest.raises(FileNotFoundError, match='config.json'):
    load_encoder(str(tmp_path / 'missing'))
