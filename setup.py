"""siampose-jax: SimSiam on video frame pairs, in JAX/Flax (see setup.cfg for metadata)."""
import setuptools

setuptools.setup()
