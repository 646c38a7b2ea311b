"""Backend PostgreSQL: typed models (:mod:`.models`) and one repository module per
aggregate (``repo_*.py``). All SQL of the backend lives here; no f-string SQL."""
