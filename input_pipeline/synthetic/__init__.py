"""Deterministic synthetic Objectron: the embedded default dataset (shared/DESIGN.md section 3).

Each video shows one procedural object instance (input_pipeline/synthetic/objects.py) standing on a
textured ground plane (world y up, plane y = 0), filmed by a camera that orbits it with smoothly
varying speed, radius, elevation, aim and roll, under a per-video light, in a per-video room (a floor
with rugs and a backdrop of walls whose look changes with the viewing direction, muted so that it
varies less between videos than the objects do; input_pipeline/synthetic/scene.py). About 30% of
videos also show one or two unannotated distractors that hide part of the object in some frames,
and about 30% have light that drifts along the video (input_pipeline/synthetic/scene.py); the
manifest lists these choices per video. Frames are
rendered with input_pipeline/synthetic/render.py through exactly the camera model of
input_pipeline.formats.geometry, so every label is exact, and written in Objectron's per-frame tf.Example
shard layout (optionally also per-video tf.SequenceExample shards) with its index files:

  root/v1/records_shuffled/<class>/<class>_{train,test}-0000i-of-0000n
  root/v1/sequences/<class>/<class>_{train,test}-0000i-of-0000n   (formats includes 'sequences')
  root/{annotations,videos}/<class>/batch-i/j...                  (formats includes 'raw', see
                                                                   input_pipeline/formats/objectron_raw.py)
  root/index/<class>_annotations_{train,test}
  root/SYNTHETIC.json                     (manifest: version, parameters, per-video scene choices)

Generator version 4 (5 only changes the validation carve: every class keeps a training video), a
benchmark for zero-shot pose:
  * Unseen objects: every video shows its own object instance (instances_per_category=0), so no test or
    validation object appears in training, as on Objectron where each test video is another object.
    `SYNTHETIC.json` lists every video: {"videos": {id: {"split", "instance", "category", scene choices}}}.
    The last `test_fraction` of each class's videos are the test split (a quarter by default, half at the
    cpu presets); validation videos are carved out of the training videos by
    `input_pipeline.formats.splits` (the same hash the ingest uses). A video's content depends on its
    index and the seed only, so a larger set with a larger test fraction can keep the same training
    videos byte for byte and only add test objects.
  * Pose headroom: the box-fitting protocol (siampose_jax.boxfit) aligns the neighbour's ground plane with
    the query's, which undoes any difference in camera elevation, roll and distance; what remains of the
    pose is the object's yaw relative to the camera. A box whose footprint is close to square scores
    IoU > 0.5 whatever that yaw (a footprint must be about 1.6 times longer than wide before a 90 degree
    yaw error fails), so with square-ish objects a random same-category neighbour fits as well as the right
    view, and no embedding could show it knows the pose. The classes' proportions are therefore drawn as
    real ones but towards their elongated side (books ~1.5:1 lying flat, cereal boxes ~4:1, shoes ~3:1,
    bikes, cameras with their lens ~2:1, wide laptops, deep chairs, cups with long handles), with
    instance-to-instance variation kept moderate (thin objects are scored by their thickness, which the
    fit copies from the neighbour). Measured with labels only (9 x 32 videos, 24 frames, 1 in 2 kept):
    random in-category fit ~0.28 overall, the nearest-true-viewpoint oracle ~0.84; on the cpu preset's
    3,240 test frames 0.30 and 0.87 (README).

  python -m input_pipeline.synthetic --output=DIR [--videos_per_category=6 ...] [--preview=a.png]
"""
from input_pipeline.synthetic.dataset import FORMATS, GENERATOR_VERSION, MANIFEST, ensure_synthetic, generate
from input_pipeline.synthetic.videos import (Video, encode_jpeg, frame_record, make_video, render_frame,
                                             render_video, scene_info, video_records, world_to_camera)
