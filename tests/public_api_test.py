"""Tests for gumbel/__init__.py: `__all__` lists the public API and help shows it."""

import pydoc

import gumbel


def test_every_name_in_all_exists():
  assert len(set(gumbel.__all__)) == len(gumbel.__all__)
  missing = [name for name in gumbel.__all__ if not hasattr(gumbel, name)]
  assert not missing, missing


def test_all_lists_every_public_import():
  """Nothing imported into the package's namespace is left out of `__all__`
  (submodules are reached as attributes, not exports)."""
  public = {name for name, value in vars(gumbel).items()
            if not name.startswith('_') and not isinstance(value, type(gumbel))}
  assert public == set(gumbel.__all__), public ^ set(gumbel.__all__)


def test_estimator_names_stay_exported():
  assert {'ESTIMATORS', 'Estimator', 'get_estimator'} <= set(gumbel.__all__)


def test_help_lists_the_public_api():
  text = pydoc.render_doc(gumbel, renderer=pydoc.plaintext)
  for name in gumbel.__all__:
    assert f'\n    {name}' in text or f'\n    class {name}' in text, name
