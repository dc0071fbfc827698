"""Data: sources of face images, the shard packer, and the loader that streams shards back."""
