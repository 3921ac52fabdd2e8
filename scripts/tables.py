"""What the table scripts (reproduce_table1, reproduce_table2) share: their files.

  write(workdir, 'table1', markdown_lines, csv_rows, summaries, first_field='row')

names the runs that have not finished and those that diverged under the
table, then writes `<name>.md` and `<name>.csv` into the workdir.
"""

import csv
import os
from typing import Mapping, Sequence


def write(workdir: str, name: str, md: Sequence[str], csv_rows: Sequence[Mapping],
          summaries: Mapping[object, Mapping], first_field: str) -> str:
  """Writes `<name>.md` (md, then the missing and diverged runs) and `<name>.csv`.

  Args:
    workdir: the folder of the table files.
    name: their name without extension.
    md: the markdown lines of the table.
    csv_rows: one dict per cell, all with the same keys.
    summaries: per cell, a mapping with 'missing' and 'diverged' workdir lists.
    first_field: the csv header when there are no rows.

  Returns:
    The markdown text.
  """
  md = list(md)
  missing = sorted(w for s in summaries.values() for w in s['missing'])
  diverged = sorted(w for s in summaries.values() for w in s['diverged'])
  if missing:
    md += ['', f'Missing ({len(missing)} runs not finished):'] + [f'- {w}' for w in missing]
  if diverged:
    md += ['', f'Diverged ({len(diverged)} runs, excluded):'] + [f'- {w}' for w in diverged]
  text = '\n'.join(md) + '\n'
  with open(os.path.join(workdir, f'{name}.md'), 'w') as f:
    f.write(text)
  with open(os.path.join(workdir, f'{name}.csv'), 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=list(csv_rows[0]) if csv_rows else [first_field])
    writer.writeheader()
    writer.writerows(csv_rows)
  return text
