"""The workspace: a user's projects, datasets, runs, blocks and their versions (DVC).

Its modules own one kind of thing each: projects (project), runs and their directories (runs),
the block library (blocks), versions and experiments in DVC (versions) and a run's event log
(events). Where the workspace is comes from app.paths.
"""

from app.paths import REPOSITORY, inside, workspace_root  # noqa: F401  (until callers move)
