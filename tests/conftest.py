"""Test-session setup: 8 fake CPU devices, so sharded code paths run on any machine.

XLA reads the flag when the backend starts, so it must be set before anything imports jax.
"""
from __future__ import annotations

import os

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' --xla_force_host_platform_device_count=8').strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
