"""The workspace: a user's projects, datasets, runs, blocks and their versions (DVC).

`Workspace` (app.workspace.workspace) is the one object callers use: it knows the root and
hands out each kind of thing. The modules beside it own one kind each and take the root
explicitly: projects (project), datasets (datasets), run directories (runs), the block library
(blocks), versions and experiments in DVC (versions) and a run's event log (events).
"""

from app.workspace.workspace import Workspace  # noqa: F401
