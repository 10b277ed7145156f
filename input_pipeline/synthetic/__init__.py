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

Video `v` of a class shows instance `v % instances_per_category`; the last
round(videos_per_category * test_fraction) videos of each class (at least one, and not all, when
0 < test_fraction < 1) are the test split, so test instances also appear in training videos (as
needed for re-identification across videos).

  python -m input_pipeline.synthetic --output=DIR [--videos_per_category=6 ...] [--preview=a.png]
"""
from input_pipeline.synthetic.dataset import FORMATS, GENERATOR_VERSION, MANIFEST, ensure_synthetic, generate
from input_pipeline.synthetic.videos import (Video, encode_jpeg, frame_record, make_video, render_frame,
                                             render_video, scene_info, video_records, world_to_camera)
