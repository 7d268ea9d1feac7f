"""Run setup shared by the pipeline packages (curation, captioning, train, droplet): config files (YAML
loading, the lock that keeps an OUT or a run folder on one config), atomic writes, one run of a command per OUT
(an flock), the Ray connection, the check that the local paths a run reads (weights, checkpoints) exist.

Never imported by `model/` or `shards/`, which stay free of the project."""
