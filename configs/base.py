"""Base config shared by every experiment; experiment files are small diffs of it.

Usage (big_vision style): `--config=configs/distant.py:cpu`, where the part after ':' is a preset:
  (none)    the paper's setup (docs/metrics.md, "The reference's training"): ResNet-50, 224 px, batch 64,
            25 epochs, bf16;
  cpu       the recipe on which SimSiam learns on 2 CPU cores within the README's time (docs/recipe.md): a
            16-wide tiny ResNet on CPU_IMAGE_SIZE px object crops, each frame cropped around its own box,
            learning rate 0.3, CPU_STEPS steps;
  cpu_long  the cpu preset trained CPU_LONG_FACTOR times longer;
  test      smaller still, for the end-to-end tests.
Any key can then be overridden with `--config.key=value`; docs/recipe.md names the overrides that give the
earlier recipes back.
"""
from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from input_pipeline.loader import aug_params

PRESETS = ('paper', 'cpu', 'cpu_long', 'test')
CPU_STEPS = 4500
CPU_IMAGE_SIZE = 48
CPU_LONG_FACTOR = 3


def cpu_steps(preset: str, steps: int) -> int:
  """A dataset's `cpu` step count, times CPU_LONG_FACTOR under cpu_long: the one place it is scaled."""
  return steps * (CPU_LONG_FACTOR if preset == 'cpu_long' else 1)


def get_base_config(pair_mode: str, arg: str | None = None) -> ml_collections.ConfigDict:
  preset = arg or 'paper'
  if preset not in PRESETS:
    raise ValueError(f'unknown config preset {preset!r}: expected one of {PRESETS}')
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.mode = 'train_and_eval'          # train | eval | train_and_eval
  c.seed = 0
  c.batch_size = 64                  # global, in pairs
  c.num_epochs = 25                  # used when total_steps <= 0
  c.total_steps = -1
  c.log_every_steps = 50
  c.checkpoint_every_steps = 1000
  c.keep_checkpoints = 3
  c.monitor_every_steps = 1000       # online 1-NN category accuracy on held-out videos
  c.num_devices = 0                  # 0 = every visible device
  # Wait for each step before fetching the next batch, so the log's data-wait share is device idle time
  # (costs the overlap of host work with the device; off for the paper's accelerator runs).
  c.measure_data_wait = False

  # A non-finite loss or gradient norm: stop (naming the step; the last good checkpoint stays the latest)
  # or skip that update (counted as skipped_updates in the metrics).
  c.train = ml_collections.ConfigDict(dict(on_nonfinite='stop'))

  c.data = ml_collections.ConfigDict()
  c.data.dataset = 'objectron'       # objectron | ucf101 (configs/ucf101_*.py: the clip store, Table 3)
  c.data.root = config_dict.placeholder(str)   # unset: the synthetic set is generated once into cache_dir
  c.data.format = 'records'          # records | sequences | raw (Objectron layouts)
  c.data.cache_dir = '~/.cache/siampose_jax'
  c.data.store_dir = config_dict.placeholder(str)  # frame store; unset: derived from root under cache_dir
  c.data.subsample = 5               # keep 1 raw frame in 5
  c.data.image_scale = 1.0           # frames are downscaled by this at ingest (crops are taken later)
  c.data.image_size = 224
  c.data.pair_mode = pair_mode       # same_frame | nearby | distant | tcn (triplets)
  c.data.nearby_offset = 1           # in kept (subsampled) frames
  c.data.crop_margin = 0.0           # object crop = keypoint box grown by this fraction on every side
  c.data.per_frame_window = False    # False: both frames of a pair use the anchor's window (reference)
  c.data.aug = ml_collections.ConfigDict(dict(aug_params.DEFAULT_AUG))  # the reference's augmentations
  # True: the host loader only crops and resizes (RandomResizedCrop picks the pixels to decode); colour
  # jitter, grayscale and the pair's flip run in the jitted train step (siampose_jax/device_augment.py),
  # keyed by (seed, step), off the host cores that limit the loader on an accelerator.
  c.data.augment_on_device = True
  c.data.worker_count = -1           # Grain worker processes: -1 = one per usable core (1 core: none), 0 = none
  c.data.read_threads = 2            # Grain threads, each building whole batches (per worker)
  c.data.prefetch = 4                # batches read ahead by those threads
  c.data.worker_nice = 0             # added niceness of worker processes (0..19)
  c.data.decode_reduced = True       # decode JPEGs at 1/2..1/8 size when the crop allows (pixels change)
  c.data.on_bad_record = 'raise'     # raise | skip (counted per reason, reported at the end)
  c.data.instances = 'first'         # first (reference: first object of a frame) | all (a track each)
  c.data.min_visibility = 0.0        # frames whose selected instance is less visible are dropped
  c.data.val_fraction = 0.05         # training videos held out for the online monitor (0: no monitor)
  # The embedded default (input_pipeline/synthetic): one instance per video (instances_per_category=0).
  # frames_per_video = 12 kept frames x subsample, so every preset sees the same views per video.
  c.data.synthetic = ml_collections.ConfigDict(dict(
      videos_per_category=40, frames_per_video=60, test_fraction=0.25, instances_per_category=0, seed=0,
      num_workers=2))

  # simsiam (the method) | ntxent | tcn (Table 2 baselines: no predictor; tcn needs pair_mode='tcn') |
  # dual_simsiam (two heads on nearby_distant pairs: the combined model).
  c.objective = ml_collections.ConfigDict(dict(name='simsiam', ntxent_temperature=0.5, triplet_margin=0.2))

  c.model = ml_collections.ConfigDict(dict(
      backbone='resnet50', width=64, stem='imagenet', proj_dim=2048, pred_hidden=512, dtype='bfloat16',
      heads=1, split_feature=False))  # 2 heads (+ split feature): the combined model, configs/combined.py

  c.optim = ml_collections.ConfigDict(dict(
      base_lr=0.0075, base_batch_size=64, momentum=0.9, weight_decay=5e-4, warmup_steps=500,
      constant_predictor_lr=True, predictor_lr_scale=1.0))

  c.eval = ml_collections.ConfigDict(dict(
      checkpoint='',                 # '' = this run's latest | PATH | random | imagenet:PATH
      imagenet_weights='',           # torchvision ResNet-50 .pth/.safetensors: adds an 'ImageNet embeddings' row
      batch_size=256, knn_chunk=65536,
      symmetric_categories=(),       # e.g. ('cup', 'bottle'): best IoU over rotations about the up axis
      visualize=True))               # figures after the evaluation (evaluation/figures.py: viz_*.png)

  if preset in ('cpu', 'cpu_long', 'test'):
    c.measure_data_wait = True
    c.batch_size = 64
    c.data.subsample = 1
    # 30 training videos per class (27 after the validation carve) and 30 test videos: the training set
    # of a 40-video set (byte-identical), three times its test split, so that a number depends less on
    # which test objects were drawn.
    c.data.synthetic.update(videos_per_category=60, frames_per_video=12, test_fraction=0.5)
    c.data.val_fraction = 0.1
    c.data.image_scale = 0.5
    # Host path: on a CPU backend the "device" is the same host cores, so nothing is offloaded.
    c.data.augment_on_device = False
    c.model.update(backbone='tiny', width=16, stem='small', proj_dim=256, pred_hidden=64, dtype='float32')
    c.optim.update(base_lr=0.05, warmup_steps=25)
  if preset in ('cpu', 'cpu_long'):
    # The recipe (docs/recipe.md): a high rate leaves SimSiam's early plateau sooner, and cropping each
    # frame of a pair around its own box keeps a distant partner's object in view (cropped with the
    # anchor's window, as the reference does, it is often partly outside).
    c.total_steps = cpu_steps(preset, CPU_STEPS)
    c.data.image_size = CPU_IMAGE_SIZE
    c.data.per_frame_window = True
    c.optim.base_lr = 0.3
    c.log_every_steps = 100
    c.checkpoint_every_steps = 1000
    c.monitor_every_steps = 1000
  if preset == 'test':
    c.batch_size = 16
    c.total_steps = 6
    c.log_every_steps = 2
    c.checkpoint_every_steps = 3
    c.monitor_every_steps = 3
    c.data.image_size = 32
    c.data.subsample = 2
    c.data.synthetic.update(videos_per_category=3, frames_per_video=8, test_fraction=0.25)
    c.data.worker_count = 0          # in-process: tests call training without absl's flag parsing
    c.data.val_fraction = 0.3        # a few validation videos even in this tiny set
    c.model.update(width=8, proj_dim=32, pred_hidden=16)
    c.optim.warmup_steps = 2
  return c


def get_ucf101_config(pair_mode: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """UCF101 action retrieval (the paper's Table 3): the base config on clip frames, centre-cropped and
  resized to data.ucf101.frame_size at ingest; data.root = a folder with UCF-101/ and ucfTrainTestlist/
  (unset: the synthetic action set), or data.ucf101.source=tfds (TFDS's ucf101, needs the `tf` extra).
  Reference (rjean/siampose, UCF101): 112 px frames, next-frame pairs, RandomResizedCrop scale from 0.6,
  colour jitter 0.4/0.4/0.4/0.1 (its Gaussian blur and crop scales above 1 are not reproduced)."""
  c = get_base_config(pair_mode, arg)
  c.data.dataset = 'ucf101'
  c.data.subsample = 1               # unused: data.ucf101.subsample applies to clips
  c.data.image_size = 112
  c.data.decode_reduced = False      # frames are stored at about the input size
  c.data.aug.update(crop_scale=(0.6, 1.0), brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)
  c.data.ucf101 = ml_collections.ConfigDict(dict(
      source='raw',                  # raw (data.root: UCF-101/*.avi + ucfTrainTestlist/) | tfds
      split=1,                       # official split 1, 2 or 3
      frame_size=112,                # stored frames: centre square resized to this
      subsample=1,                   # keep every n-th frame of a clip (1: nearby = the next raw frame)
      tfds_data_dir=config_dict.placeholder(str),
      clip_frames=8,                 # evaluation: frames sampled uniformly per clip
      pooling='mean',                # mean | max of the frames' unit embeddings (then re-normalised)
      synthetic=dict(num_classes=10, groups=25, clips_per_group=2, num_frames=40, width=96, height=72,
                     seed=0)))
  if c.preset in ('cpu', 'cpu_long', 'test'):
    # 32 px frames and 3,000 steps at learning rate 0.05: at that size SimSiam leaves its early plateau
    # (online 1-NN flat at the random-init level) after ~1,000 steps and learns the actions
    # (docs/ucf101.md); Objectron's recipe (crop windows, 0.3) is not carried over.
    c.data.image_size = c.data.ucf101.frame_size = 32
    c.data.val_fraction = 0.1
    c.data.per_frame_window = False
    c.total_steps = cpu_steps(c.preset, 3000)
    c.optim.base_lr = 0.05
  if c.preset in ('cpu', 'cpu_long'):
    c.log_every_steps = 50
    c.monitor_every_steps = 250
  if c.preset == 'test':
    c.data.val_fraction = 0.3
    c.total_steps = 6
    c.monitor_every_steps = 3
    c.data.ucf101.clip_frames = 4
    c.data.ucf101.synthetic.update(num_classes=4, groups=4, clips_per_group=2, num_frames=8, width=40,
                                   height=32)
  return c
