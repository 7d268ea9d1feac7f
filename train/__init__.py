"""The DropletVideo trainer: shards -> adaptive equalization sampling + buckets -> DeepSpeed -> checkpoints and an
exported pipeline. Imports `model` and `shards` only."""
