"""Runs the ```python blocks of a Markdown page in order, as one script.

A later block may use an earlier block's names. A block whose first line starts
with `>>>` is a doctest run in the same namespace (ELLIPSIS on, so an error's
message may be shortened with `...`); any other block is executed as written.
Used by tests/readme_test.py and tests/docs_test.py.
"""

import contextlib
import doctest
import io
import pathlib
import re

_BLOCK = re.compile(r'^```python\n(.*?)^```', flags=re.S | re.M)


def python_blocks(path: pathlib.Path) -> list:
  """(first line number, code) of each ```python block of the page, in order."""
  text = path.read_text()
  return [(text.count('\n', 0, m.start(1)) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


def run_page(path: pathlib.Path) -> tuple:
  """Runs every python block of `path`; returns (namespace, stdout of the plain blocks).

  Raises:
    AssertionError: a doctest block's output differs (the report names the line).
    Exception: whatever a plain block raises, with the page and line in its traceback.
  """
  namespace, out = {'__name__': '__main__'}, io.StringIO()
  runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
  for lineno, code in python_blocks(path):
    if code.lstrip().startswith('>>>'):
      test = doctest.DocTestParser().get_doctest(code, namespace, path.name, str(path), lineno - 1)
      report = io.StringIO()
      result = runner.run(test, out=report.write, clear_globs=False)
      assert not result.failed, f'{path.name}, the doctest at line {lineno}:\n{report.getvalue()}'
    else:
      # Padded with newlines so that a traceback's line numbers are the page's.
      with contextlib.redirect_stdout(out):
        exec(compile('\n' * (lineno - 1) + code, str(path), 'exec'), namespace)  # pylint: disable=exec-used
  return namespace, out.getvalue()
