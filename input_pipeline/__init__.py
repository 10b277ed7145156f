"""Data for siampose-jax, in layers that import downward only:

  formats/    the real on-disk formats (Objectron records, sequences, raw captures; TFRecord framing, protos,
              camera and box conventions) read into and written from `FrameRecord`s;
  synthetic/  the embedded default: procedural videos written in those real formats;
  store/      the ArrayRecord frame store: ingest (from any format), read, inspect, object crops;
  loader/     which frames pair up -> augmentations -> the Grain training pipeline.
"""
