"""Evaluation: everything that scores embeddings, one module per concern.

  objectron  the entry point for Objectron (Tables 1 and 2, per-query files, figures)
  ucf101     the entry point for UCF101 (Table 3, action retrieval)
  monitor    the online 1-NN monitor the training loop calls
  methods    the tables' rows: typed keys, and how each picks a training frame per query
  knn        exact cosine k-NN on device (sharded, chunked)
  boxfit     zero-shot 9-DoF box fitting from a neighbour
  iou        exact 3D IoU of oriented boxes
  metrics    AP, viewpoint and re-identification metrics (definitions: docs/metrics.md)
  tables     the paper's tables as CSV/Markdown, and tables combined over runs
  figures    what the embeddings learned, as PNGs
"""
