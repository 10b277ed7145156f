"""Deterministic synthetic Objectron: the embedded default dataset, written in the real Objectron formats.

Each video shows one procedural object instance (objects.py) on a textured ground plane (world y up, plane
y = 0), filmed by a camera that orbits it with smoothly varying speed, radius, elevation, aim and roll,
under a per-video light, in a per-video room (scene.py). Some videos add unannotated distractors that hide
part of the object, or light that drifts; the manifest lists these choices per video. Frames are rendered
(render.py) through exactly the camera model of input_pipeline.formats.geometry, so every label is exact,
and written in Objectron's layouts with its index files:

  root/v1/records_shuffled/<class>/<class>_{train,test}-0000i-of-0000n
  root/v1/sequences/<class>/<class>_{train,test}-0000i-of-0000n   (formats includes 'sequences')
  root/{annotations,videos}/<class>/batch-i/j...                  (formats includes 'raw')
  root/index/<class>_annotations_{train,test}
  root/SYNTHETIC.json                     (manifest: version, parameters, per-video scene choices)

It is a benchmark for zero-shot pose:
  * Unseen objects: every video shows its own object instance (instances_per_category=0), so no test or
    validation object appears in training, as on Objectron where each test video is another object. The
    last `test_fraction` of each class's videos are the test split; validation videos are carved out of
    the training videos by input_pipeline.formats.splits. A video's content depends on its index and the
    seed only, so a larger set with a larger test fraction keeps the same training videos byte for byte.
  * Pose headroom: the box fit aligns the neighbour's ground plane with the query's, which undoes any
    difference in camera elevation, roll and distance; what remains of the pose is the object's yaw. A box
    whose footprint is nearly square scores IoU > 0.5 whatever that yaw, so a random same-category
    neighbour would fit as well as the right view and no embedding could show that it knows the pose. The
    classes' proportions are therefore drawn towards their elongated side (long books and cereal boxes,
    shoes, bikes, cameras with their lens, wide laptops, deep chairs, cups with long handles), with
    moderate instance-to-instance variation. The floor and ceiling this gives are in docs/data_pipeline.md.

  python -m input_pipeline.synthetic --output=DIR [--videos_per_category=6 ...] [--preview=a.png]
"""
from input_pipeline.synthetic.dataset import FORMATS, GENERATOR_VERSION, MANIFEST, ensure_synthetic, generate
from input_pipeline.synthetic.videos import (Video, encode_jpeg, frame_record, make_video, render_frame,
                                             render_video, scene_info, video_records, world_to_camera)
