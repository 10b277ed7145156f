"""siampose-jax: SimSiam on video frame pairs, in JAX/Flax (see setup.cfg for metadata).

The packages are siampose_jax and input_pipeline; the repository's configs/ folder is installed as
siampose_jax.configs, so that no generic top-level `configs` lands in site-packages and a config file finds
its base from any working directory.
"""
import setuptools

setuptools.setup(
    packages=setuptools.find_packages(include=['siampose_jax*', 'input_pipeline*']) + ['siampose_jax.configs'],
    package_dir={'siampose_jax.configs': 'configs'},
)
