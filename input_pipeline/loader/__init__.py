"""Training input: which frames pair up (pairs) -> augmentations (augment) -> the Grain pipeline (datasets)."""
