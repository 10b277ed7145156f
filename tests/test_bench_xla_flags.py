"""bench/xla_flags.py: a variant whose flags XLA rejects is reported with its error, not dropped or timed;
an unknown variant name stops before anything runs."""
from __future__ import annotations

import json

import pytest

from bench import xla_flags


def test_a_rejected_flag_is_reported_as_that_variants_error(monkeypatch, capsys):
  monkeypatch.setitem(xla_flags.VARIANTS, 'bogus', '--xla_cpu_no_such_flag_for_this_test=1')
  monkeypatch.setattr('sys.argv', ['xla_flags', '--variants=bogus', '--rounds=2', '--iters=1'])
  xla_flags.main()
  (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  assert row['variant'] == 'bogus' and 'error' in row and 'step_s' not in row, row
  assert row['xla_flags'] == '--xla_cpu_no_such_flag_for_this_test=1'


def test_unknown_variant_names_the_known_ones(monkeypatch):
  monkeypatch.setattr('sys.argv', ['xla_flags', '--variants=baseline,fast'])
  with pytest.raises(SystemExit, match=r"unknown variants \['fast'\].*baseline"):
    xla_flags.main()
